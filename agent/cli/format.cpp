#include "cli/format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "core/duration.h"

namespace qabox::cli {
namespace {

using std::chrono::milliseconds;

bool isSet(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

milliseconds sinceEpoch(const google::protobuf::Timestamp& t) {
  return milliseconds(t.seconds() * 1000 + t.nanos() / 1'000'000);
}

milliseconds nowMillis(TimePoint now) {
  return std::chrono::duration_cast<milliseconds>(now.time_since_epoch());
}

std::string paint(const std::string& text, const char* code, const Style& style) {
  if (!style.color) return text;
  return std::string("\x1b[") + code + "m" + text + "\x1b[0m";
}

std::string yesNo(bool v) { return v ? "yes" : "no"; }

std::string orDash(std::string_view s) { return s.empty() ? "-" : cleanCell(s); }

// "memory 256M, cpus 1, pids 256"; "-" when none is set.
std::string describeLimits(const v1::ResourceLimits& l) {
  std::string out;
  auto add = [&](std::string_view name, const std::string& value) {
    out += (out.empty() ? "" : ", ") + std::string(name) + " " + value;
  };
  if (!l.memory().empty()) add("memory", cleanCell(l.memory()));
  if (l.cpus()) add("cpus", std::to_string(l.cpus()));
  if (l.pids()) add("pids", std::to_string(l.pids()));
  return out.empty() ? "-" : out;
}

std::string truncated(std::string_view s, size_t max) {
  std::string clean = cleanCell(s);
  if (displayWidth(clean) <= max) return clean;
  // Cut on a code point boundary.
  size_t points = 0;
  size_t i = 0;
  for (; i < clean.size() && points < max - 3; ++i) {
    if ((static_cast<unsigned char>(clean[i]) & 0xC0) != 0x80) ++points;
  }
  while (i < clean.size() && (static_cast<unsigned char>(clean[i]) & 0xC0) == 0x80) ++i;
  return clean.substr(0, i) + "...";
}

std::string withRelative(const google::protobuf::Timestamp& t, TimePoint now) {
  if (!isSet(t)) return "-";
  return absoluteTime(t) + " (" + relativeTime(t, now) + ")";
}

}  // namespace

std::string shortDuration(milliseconds d) {
  int64_t s = std::abs(d.count()) / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  // Hours up to two days read better than "1d".
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string relativeTime(const google::protobuf::Timestamp& t, TimePoint now) {
  if (!isSet(t)) return "-";
  milliseconds diff = nowMillis(now) - sinceEpoch(t);
  if (diff.count() >= 0) return shortDuration(diff) + " ago";
  return "in " + shortDuration(-diff);
}

std::string age(const google::protobuf::Timestamp& t, TimePoint now) {
  if (!isSet(t)) return "-";
  milliseconds diff = nowMillis(now) - sinceEpoch(t);
  return shortDuration(std::max(diff, milliseconds(0)));
}

std::string absoluteTime(const google::protobuf::Timestamp& t) {
  if (!isSet(t)) return "-";
  std::time_t secs = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  if (gmtime_r(&secs, &tm) == nullptr) return "-";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string elapsed(milliseconds d) {
  int64_t ms = std::max<int64_t>(d.count(), 0);
  char buf[32];
  if (ms < 10'000) {
    std::snprintf(buf, sizeof buf, "%.2fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>((ms / 1000) % 60));
  }
  return buf;
}

milliseconds toMillis(const google::protobuf::Duration& d) {
  return milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

std::string humanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  v /= 1024;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

size_t displayWidth(std::string_view s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0x1b && i + 1 < s.size() && s[i + 1] == '[') {
      i += 2;
      while (i < s.size() && !(s[i] >= '@' && s[i] <= '~')) ++i;
      continue;
    }
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::string cleanCell(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    out += (c < 0x20 || c == 0x7f) ? ' ' : ch;
  }
  return out;
}

std::string renderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(headers.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], displayWidth(row[i]));
    }
  };
  measure(headers);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : std::string();
      line += cell;
      if (i + 1 < widths.size()) line += std::string(widths[i] - displayWidth(cell) + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(headers);
  for (const auto& row : rows) emit(row);
  return out;
}

std::string renderKeyValues(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& [k, v] : rows) width = std::max(width, displayWidth(k) + 1);
  std::string out;
  for (const auto& [k, v] : rows) {
    std::string line = k + ":" + std::string(width - displayWidth(k) - 1 + 1, ' ') + v;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string stateName(v1::Environment::State state) {
  if (state == v1::Environment::STATE_UNSPECIFIED) return "UNKNOWN";
  const std::string& name = v1::Environment::State_Name(state);
  return name.empty() ? "UNKNOWN" : name;
}

std::string coloredState(v1::Environment::State state, const Style& style) {
  const char* code = "0";
  switch (state) {
    case v1::Environment::READY: code = "32"; break;
    case v1::Environment::FAILED:
    case v1::Environment::LOST:
    case v1::Environment::BROKEN: code = "31"; break;
    case v1::Environment::CREATING:
    case v1::Environment::DEPLOYING:
    case v1::Environment::DELETING: code = "33"; break;
    case v1::Environment::SLEEPING: code = "34"; break;
    default: return stateName(state);
  }
  return paint(stateName(state), code, style);
}

std::string shortCommit(std::string_view commit) {
  if (commit.empty()) return "-";
  return cleanCell(commit.substr(0, 10));
}

namespace {

// The target branch, or "behind develop by 3" once it has moved on.
std::string targetCell(const v1::Environment& e, const Style& style) {
  if (e.target_branch().empty() || e.target_commit().empty()) return "-";
  std::string target = cleanCell(e.target_branch());
  if (e.behind() == 0) return target;
  return paint("behind " + target + " by " + std::to_string(e.behind()), "33", style);
}

}  // namespace

std::string formatEnvironmentTable(const v1::ListEnvironmentsResponse& list, TimePoint now,
                                   const Style& style) {
  // In a cluster, which host each lives on.
  const bool hosts = std::any_of(list.environments().begin(), list.environments().end(),
                                 [](const v1::Environment& e) { return !e.host().empty(); });
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : list.environments()) {
    std::string image = orDash(e.image());
    if (!e.image().empty() && e.image_version() > 0) {
      image += ":" + std::to_string(e.image_version());
    }
    std::string ticket = cleanCell(e.ticket());
    if (e.pinned()) ticket += " (pinned)";
    rows.push_back({ticket, coloredState(e.state(), style), orDash(e.url()), image,
                    shortCommit(e.commit()), targetCell(e, style), age(e.created_at(), now),
                    relativeTime(e.last_access_at(), now)});
    if (hosts) rows.back().insert(rows.back().begin() + 2, orDash(e.host()));
  }
  std::vector<std::string> headers = {"TICKET", "STATE",  "URL", "IMAGE",
                                      "COMMIT", "TARGET", "AGE", "LAST USED"};
  if (hosts) headers.insert(headers.begin() + 2, "HOST");
  std::string table = renderTable(headers, rows);
  for (const auto& w : list.warnings())
    table += paint("warning: " + cleanCell(w), "33", style) + "\n";
  return table;
}

namespace {

// `table`'s lines, each indented by two spaces.
std::string indented(const std::string& table) {
  std::string out;
  size_t start = 0;
  while (start < table.size()) {
    size_t end = table.find('\n', start);
    out += "  " + table.substr(start, end - start + 1);
    start = end + 1;
  }
  return out;
}

// What the environment's supervisor says of its services and processes: the
// services' names and a short "name state" list for the key-value part...
std::pair<std::string, std::string> processSummary(const v1::Environment& e) {
  std::string services, processes;
  for (const auto& p : e.processes()) {
    if (p.service()) services += (services.empty() ? "" : " ") + cleanCell(p.name());
    processes += (processes.empty() ? "" : ", ") + cleanCell(p.name()) + " " + cleanCell(p.state());
  }
  return {orDash(services), orDash(processes)};
}

// ...and a table of each one's state, pid and restarts.
std::string processTable(const v1::Environment& e) {
  if (e.processes().empty()) return "";
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : e.processes()) {
    std::string state = cleanCell(p.state());
    if (!p.message().empty()) state += " (" + cleanCell(p.message()) + ")";
    rows.push_back({cleanCell(p.name()), p.service() ? "service" : "process", state,
                    p.pid() ? std::to_string(p.pid()) : "-", std::to_string(p.restarts())});
  }
  return "\nProcesses:\n" +
         indented(renderTable({"NAME", "KIND", "STATE", "PID", "RESTARTS"}, rows));
}

// "3 commits of develop (deploy again to bring it up to date)", "0 (up to
// date with develop)", or "-" without a target.
std::string behindValue(const v1::Environment& e, const Style& style) {
  if (e.target_branch().empty() || e.target_commit().empty()) return "-";
  std::string target = cleanCell(e.target_branch());
  if (e.behind() == 0) return "0 (up to date with " + target + ")";
  return paint("behind " + target + " by " + std::to_string(e.behind()), "33", style) +
         " (deploy again to bring it up to date)";
}

}  // namespace

std::string formatEnvironment(const v1::Environment& e, const v1::ListEventsResponse* events,
                              TimePoint now, const Style& style) {
  std::string env;
  std::map<std::string, std::string> sorted(e.env().begin(), e.env().end());
  for (const auto& [k, v] : sorted) env += (env.empty() ? "" : " ") + cleanCell(k + "=" + v);
  std::vector<std::string> secretKeys(e.secret_keys().begin(), e.secret_keys().end());
  std::sort(secretKeys.begin(), secretKeys.end());
  std::string secrets;
  for (const auto& k : secretKeys) secrets += (secrets.empty() ? "" : " ") + cleanCell(k);
  const auto [services, processes] = processSummary(e);
  std::string phases;
  for (const auto& p : e.phases()) {
    phases += (phases.empty() ? "" : ", ") + cleanCell(p.phase()) + " " +
              std::to_string(google::protobuf::util::TimeUtil::DurationToMilliseconds(p.took())) +
              " ms";
  }

  std::string out = renderKeyValues({
      {"ticket", cleanCell(e.ticket())},
      {"state", coloredState(e.state(), style)},
      {"message", orDash(e.message())},
      {"url", orDash(e.url())},
      {"host", orDash(e.host())},  // in a cluster: the host it lives on
      {"hostname", orDash(e.hostname())},
      {"ip", orDash(e.ip())},
      {"port", e.port() ? std::to_string(e.port()) : "-"},
      {"image", orDash(e.image())},
      {"image_version", e.image_version() ? std::to_string(e.image_version()) : "-"},
      {"container", orDash(e.container())},
      {"repo", orDash(e.repo())},
      {"source_branch", orDash(e.source_branch())},
      {"target_branch", orDash(e.target_branch())},
      {"commit", orDash(e.commit())},
      {"source_commit", orDash(e.source_commit())},
      {"target_commit", orDash(e.target_commit())},
      {"target_head", orDash(e.target_head())},
      {"behind", behindValue(e, style)},
      {"pinned", yesNo(e.pinned())},
      {"access", orDash(e.access())},
      {"created_at", withRelative(e.created_at(), now)},
      {"updated_at", withRelative(e.updated_at(), now)},
      {"deployed_at", withRelative(e.deployed_at(), now)},
      {"last_access_at", withRelative(e.last_access_at(), now)},
      {"expires_at", withRelative(e.expires_at(), now)},
      {"request_count", std::to_string(e.request_count())},
      {"bytes_in", humanBytes(e.bytes_in())},
      {"bytes_out", humanBytes(e.bytes_out())},
      {"env", orDash(env)},
      {"secret_keys", orDash(secrets)},
      {"limits", describeLimits(e.limits())},
      {"asked_limits", describeLimits(e.asked_limits())},
      {"services", services},
      {"processes", processes},
      {"phases", orDash(phases)},
  });
  out += processTable(e);
  if (events != nullptr) {
    out += "\nEvents:\n";
    if (events->events().empty()) {
      out += "  (none)\n";
    } else {
      out += indented(formatEventsTable(*events, now));
    }
  }
  return out;
}

std::string formatEventsTable(const v1::ListEventsResponse& events, TimePoint now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& ev : events.events()) {
    rows.push_back({relativeTime(ev.at(), now), orDash(ev.ticket()), orDash(ev.action()),
                    orDash(ev.outcome()), orDash(ev.actor()), truncated(ev.detail(), 100)});
  }
  return renderTable({"WHEN", "TICKET", "ACTION", "OUTCOME", "ACTOR", "DETAIL"}, rows);
}

namespace {

// Image versions as a tree: each under the parent version it was built on
// (a base image, or one whose parent version is not listed, at the top).
void imageTreeRows(const v1::ListImagesResponse& images, TimePoint now,
                   std::vector<std::vector<std::string>>& rows) {
  using Key = std::pair<std::string, uint32_t>;
  std::set<Key> listed;
  for (const auto& im : images.images()) listed.insert({im.name(), im.version()});
  std::map<Key, std::vector<const v1::Image*>> children;
  std::vector<const v1::Image*> roots;
  for (const auto& im : images.images()) {
    Key parent{im.parent(), im.parent_version()};
    if (!im.parent().empty() && listed.count(parent)) {
      children[parent].push_back(&im);
    } else {
      roots.push_back(&im);
    }
  }
  auto byName = [](const v1::Image* a, const v1::Image* b) {
    return std::make_pair(a->name(), a->version()) < std::make_pair(b->name(), b->version());
  };
  std::function<void(const v1::Image*, size_t)> add = [&](const v1::Image* im, size_t depth) {
    std::string name = depth == 0 ? "" : std::string(3 * (depth - 1), ' ') + "`- ";
    rows.push_back({name + cleanCell(im->name()), std::to_string(im->version()),
                    relativeTime(im->built_at(), now), std::to_string(im->environments()),
                    im->current() ? "yes" : "-", orDash(truncated(im->description(), 60))});
    auto it = children.find({im->name(), im->version()});
    if (it == children.end()) return;
    std::sort(it->second.begin(), it->second.end(), byName);
    for (const auto* c : it->second) add(c, depth + 1);
  };
  std::sort(roots.begin(), roots.end(), byName);
  for (const auto* r : roots) add(r, 0);
}

}  // namespace

std::string formatImagesTable(const v1::ListImagesResponse& images, TimePoint now) {
  std::vector<std::vector<std::string>> rows;
  std::set<std::string> built;
  for (const auto& im : images.images()) built.insert(im.name());
  imageTreeRows(images, now, rows);
  std::string out =
      renderTable({"IMAGE", "VERSION", "BUILT", "ENVS", "CURRENT", "DESCRIPTION"}, rows);
  std::string unbuilt;
  for (const auto& r : images.recipes()) {
    if (built.count(r) == 0) unbuilt += (unbuilt.empty() ? "" : ", ") + cleanCell(r);
  }
  if (!unbuilt.empty()) out += "\nNot built yet (qabox image build NAME): " + unbuilt + "\n";
  if (images.layers_size() > 0) {
    // [deps] and [data] layers: built once per hash, shared by the
    // environments on them.
    std::vector<std::vector<std::string>> layers;
    for (const auto& l : images.layers()) {
      layers.push_back({cleanCell(l.hash().substr(0, 12)), cleanCell(l.kind()),
                        l.lineage().empty() ? "-" : cleanCell(l.lineage()),
                        cleanCell(l.image()) + " v" + std::to_string(l.image_version()),
                        humanBytes(l.size_bytes()), relativeTime(l.built_at(), now),
                        relativeTime(l.last_used_at(), now), std::to_string(l.environments())});
    }
    out += "\nCached layers ([deps] installs, [data] datasets):\n" +
           renderTable({"LAYER", "KIND", "FOR", "IMAGE", "SIZE", "BUILT", "LAST USED", "ENVS"},
                       layers);
  }
  return out;
}

std::string formatHostsTable(const v1::ListHostsResponse& hosts) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& h : hosts.hosts()) {
    std::string images;
    for (const auto& im : h.images()) images += (images.empty() ? "" : ",") + cleanCell(im);
    rows.push_back({cleanCell(h.name()) + (h.self() ? " *" : ""), cleanCell(h.state()),
                    std::to_string(h.environments()) + "/" + std::to_string(h.capacity()),
                    h.memory_free_bytes() ? humanBytes(h.memory_free_bytes()) : "-",
                    h.disk_free_bytes() ? humanBytes(h.disk_free_bytes()) : "-",
                    images.empty() ? "-" : images, h.api().empty() ? "-" : cleanCell(h.api()),
                    cleanCell(h.version())});
  }
  std::string out = renderTable(
      {"HOST", "STATE", "ENVS", "MEM FREE", "DISK FREE", "IMAGES", "API", "VERSION"}, rows);
  if (!hosts.clustered()) {
    out += "\nNot in a cluster: set [cluster] etcd to join hosts into one qabox.\n";
  } else if (!hosts.etcd_connected()) {
    out += "\netcd is unreachable: this is what the host last knew; new placements wait.\n";
  }
  return out;
}

std::string formatHostStatus(const v1::HostStatus& s) {
  std::map<std::string, uint32_t> byState(s.environments_by_state().begin(),
                                          s.environments_by_state().end());
  std::string states;
  for (const auto& [state, n] : byState) {
    states += (states.empty() ? "" : ", ") + cleanCell(state) + " " + std::to_string(n);
  }
  auto ofTotal = [](uint64_t part, uint64_t total, const char* what) {
    if (total == 0) return std::string("-");
    return humanBytes(part) + " " + what + " of " + humanBytes(total) + " (" +
           std::to_string(part * 100 / total) + "%)";
  };
  std::map<std::string, std::pair<uint32_t, uint32_t>> pool;  // image -> ready, filling
  for (const auto& [image, n] : s.pool_ready()) pool[image].first = n;
  for (const auto& [image, n] : s.pool_filling()) pool[image].second = n;
  std::string pooled;
  for (const auto& [image, n] : pool) {
    pooled += (pooled.empty() ? "" : ", ") + cleanCell(image) + " " + std::to_string(n.first) +
              " ready" + (n.second > 0 ? " + " + std::to_string(n.second) + " filling" : "");
  }
  if (pooled.empty()) pooled = s.pool_size() > 0 ? "empty (filling)" : "off";
  return renderKeyValues({
      {"agent version", orDash(s.version())},
      {"uptime", formatDuration(toMillis(s.uptime()))},
      {"environments",
       std::to_string(s.environments()) + " of " + std::to_string(s.max_environments())},
      {"by state", orDash(states)},
      {"sleeping", std::to_string(s.sleeping())},
      {"capacity left", std::to_string(s.capacity_left())},
      {"warm pool", pooled},
      {"addresses left", std::to_string(s.addresses_left())},
      {"disk", ofTotal(s.disk_free_bytes(), s.disk_total_bytes(), "free")},
      {"memory", ofTotal(s.memory_available_bytes(), s.memory_total_bytes(), "available")},
      {"state dir", orDash(s.state_dir())},
      {"bridge", orDash(s.bridge())},
      {"subnet", orDash(s.subnet())},
      {"domain", orDash(s.domain())},
      {"requests routed", std::to_string(s.requests_routed())},
  });
}

std::string formatTokensTable(const v1::ListTokensResponse& tokens, TimePoint now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : tokens.tokens()) {
    std::string expires = isSet(t.expires_at()) ? relativeTime(t.expires_at(), now) : "never";
    std::string used = isSet(t.last_used_at()) ? relativeTime(t.last_used_at(), now) : "never";
    std::string revoked = t.revoked() ? (isSet(t.revoked_at()) ? relativeTime(t.revoked_at(), now)
                                                               : std::string("yes"))
                                      : std::string("no");
    rows.push_back({cleanCell(t.name()), orDash(t.role()), relativeTime(t.created_at(), now),
                    expires, used, revoked});
  }
  return renderTable({"NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED", "REVOKED"}, rows);
}

std::string formatViolationsTable(const v1::CheckInvariantsResponse& checked) {
  if (checked.violations().empty()) {
    return "No violations: every container, lease, mount, veth, binding, route, log, layer, "
           "image, cgroup and journal entry has its owner\n";
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : checked.violations()) {
    rows.push_back({cleanCell(v.kind()), cleanCell(v.name()), cleanCell(v.what())});
  }
  std::string out = renderTable({"KIND", "NAME", "WHAT"}, rows);
  const size_t listed = static_cast<size_t>(checked.violations().size());
  const size_t total = std::max<size_t>(checked.total(), listed);
  if (checked.truncated() && total > listed) {
    out += "... and " + std::to_string(total - listed) + " more\n";
  }
  // The map's order is the wire's: sorted here so the line is stable.
  std::map<std::string, uint32_t> totals(checked.totals().begin(), checked.totals().end());
  if (!totals.empty()) {
    std::string line;
    for (const auto& [kind, n] : totals) {
      line += (line.empty() ? "" : ", ") + cleanCell(kind) + " " + std::to_string(n);
    }
    out += std::to_string(total) + " violation(s): " + line + "\n";
  }
  return out;
}

std::string formatReap(const v1::ReapResponse& reap) {
  if (reap.reclaimed().empty()) {
    return reap.dry_run() ? "Nothing would be reclaimed\n" : "Nothing to reclaim\n";
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : reap.reclaimed()) {
    std::string result;
    if (!r.error().empty()) {
      result = "failed: " + cleanCell(r.error());
    } else if (r.done()) {
      result = "reclaimed";
    } else {
      result = reap.dry_run() ? "would reclaim" : "not reclaimed";
    }
    rows.push_back({cleanCell(r.ticket()), orDash(r.policy()), orDash(r.reason()), result});
  }
  std::string out = renderTable({"TICKET", "POLICY", "REASON", "RESULT"}, rows);
  if (reap.dry_run()) out += "\nDry run: nothing was reclaimed\n";
  return out;
}

std::string formatDeployPhase(const v1::DeployEvent& event) {
  std::string line = cleanCell(event.phase()) + " " + elapsed(toMillis(event.took()));
  if (!event.detail().empty()) line += "  " + cleanCell(event.detail());
  return line;
}

std::string toJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = false;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return "{}";
  return out;
}

}  // namespace qabox::cli
