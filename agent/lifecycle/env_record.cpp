#include "lifecycle/env_record.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "core/ticket.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/atomic_file.h"
#include "sys/safe_path.h"

namespace qabox {

namespace {

using nlohmann::json;

json limitsJson(const ResourceLimits& l) {
  return {{"memory", l.memory}, {"cpus", l.cpus}, {"pids", l.pids}};
}

ResourceLimits limitsFrom(const json& j) {
  ResourceLimits l;
  l.memory = j.value("memory", "");
  l.cpus = j.value("cpus", 0U);
  l.pids = j.value("pids", 0U);
  return l;
}

json optMillis(const std::optional<TimePoint>& t) {
  return t ? json(toUnixMillis(*t)) : json(nullptr);
}

std::optional<TimePoint> optTime(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return fromUnixMillis(j[key].get<int64_t>());
}

json specJson(const DeploySpec& s) {
  return {{"image", s.image},
          {"repo", s.repo},
          {"source_branch", s.sourceBranch},
          {"target_branch", s.targetBranch},
          {"env", s.env},
          // Names only: the values never leave the deploy's memory.
          {"secret_names", s.secretKeys},
          {"ttl_ms", s.ttl ? json(s.ttl->count()) : json(nullptr)},
          {"limits", limitsJson(s.limits)},
          {"access", s.access}};
}

DeploySpec specFrom(const json& j) {
  DeploySpec s;
  s.image = j.at("image").get<std::string>();
  s.repo = j.value("repo", "");
  s.sourceBranch = j.value("source_branch", "");
  s.targetBranch = j.value("target_branch", "");
  s.env = j.value("env", std::map<std::string, std::string>{});
  s.secretKeys = j.value("secret_names", std::vector<std::string>{});
  if (j.contains("ttl_ms") && !j["ttl_ms"].is_null()) {
    s.ttl = std::chrono::milliseconds(j["ttl_ms"].get<int64_t>());
  }
  if (j.contains("limits")) s.limits = limitsFrom(j["limits"]);
  s.access = j.value("access", "");
  return s;
}

Environment environmentFrom(const json& j) {
  Environment e;
  e.ticket = j.at("ticket").get<std::string>();
  e.slug = j.at("slug").get<std::string>();
  e.container = j.at("container").get<std::string>();
  e.ip = j.at("ip").get<std::string>();
  e.port = j.value("port", 80U);
  e.spec = specFrom(j.at("spec"));
  e.imageVersion = j.at("image_version").get<uint32_t>();
  e.commit = j.value("commit", "");
  e.sourceCommit = j.value("source_commit", "");
  e.targetCommit = j.value("target_commit", "");
  e.pinned = j.value("pinned", false);
  e.message = j.value("message", "");
  e.createdAt = fromUnixMillis(j.at("created_at").get<int64_t>());
  e.deployedAt = fromUnixMillis(j.value("deployed_at", int64_t{0}));
  e.updatedAt = fromUnixMillis(j.value("updated_at", int64_t{0}));
  e.expiresAt = optTime(j, "expires_at");
  e.lastAccessAt = optTime(j, "last_access_at");
  if (j.contains("limits")) e.limits = limitsFrom(j["limits"]);
  e.depsLayer = j.value("deps_layer", "");
  e.dataLayer = j.value("data_layer", "");
  return e;
}

bool isLayerHash(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The names deploys give: qabox-<slug>, or qabox-<slug>_<n> for a redeploy.
bool isContainerOf(const std::string& name, const std::string& slug) {
  const std::string base = containerNameFor(slug);
  if (name == base) return true;
  if (name.size() <= base.size() + 1 || name.compare(0, base.size(), base) != 0) return false;
  if (name[base.size()] != '_') return false;
  const std::string n = name.substr(base.size() + 1);
  return n.find_first_not_of("0123456789") == std::string::npos && n[0] != '0';
}

Status checkAddress(const Environment& e, const std::string& subnetText) {
  auto subnet = parseSubnet(subnetText);
  if (!subnet) return subnet.status();
  auto ip = parseIpv4(e.ip);
  if (!ip || formatIpv4(*ip) != e.ip) return invalidArgument("ip: not a canonical IPv4 address");
  auto offset = offsetOf(*subnet, e.ip);
  if (!offset || *offset < 2 || *offset >= hostCount(*subnet) + 2) {
    return invalidArgument("ip: " + e.ip + " is not a container's address in " + subnetText);
  }
  return Status::ok();
}

Status checkFields(const Environment& e, const std::string& subnet) {
  if (e.ticket.empty() || e.slug.empty() || e.container.empty() || e.ip.empty()) {
    return invalidArgument("ticket, slug, container and ip must not be empty");
  }
  auto ticket = parseTicket(e.ticket);
  if (!ticket) return invalidArgument("ticket: " + ticket.status().message());
  if (ticket->slug != e.slug) return invalidArgument("slug: not the slug of " + e.ticket);
  if (!isContainerOf(e.container, e.slug) && !isPoolContainer(e.container)) {
    return invalidArgument("container: " + e.container + " is not a name given to " + e.slug);
  }
  QABOX_RETURN_IF_ERROR(checkAddress(e, subnet));
  if (e.port < 1 || e.port > 65535) return invalidArgument("port: not in 1..65535");
  if (!e.depsLayer.empty() && !isLayerHash(e.depsLayer)) {
    return invalidArgument("deps_layer: not a layer hash");
  }
  if (!e.dataLayer.empty() && !isLayerHash(e.dataLayer)) {
    return invalidArgument("data_layer: not a layer hash");
  }
  if (e.imageVersion == 0) return invalidArgument("image_version: must be > 0");
  return Status::ok();
}

}  // namespace

std::string envRecordJson(const Environment& e) {
  json j = {{"version", kEnvRecordVersion},
            {"ticket", e.ticket},
            {"slug", e.slug},
            {"container", e.container},
            {"state", std::string(stateName(e.state))},
            {"ip", e.ip},
            {"port", e.port},
            {"spec", specJson(e.spec)},
            {"image_version", e.imageVersion},
            {"commit", e.commit},
            {"source_commit", e.sourceCommit},
            {"target_commit", e.targetCommit},
            {"pinned", e.pinned},
            {"message", e.message},
            {"created_at", toUnixMillis(e.createdAt)},
            {"deployed_at", toUnixMillis(e.deployedAt)},
            {"updated_at", toUnixMillis(e.updatedAt)},
            {"expires_at", optMillis(e.expiresAt)},
            {"last_access_at", optMillis(e.lastAccessAt)},
            {"limits", limitsJson(e.limits)},
            {"deps_layer", e.depsLayer},
            {"data_layer", e.dataLayer}};
  // Text from a pull request (branch names, messages) that is not UTF-8
  // must not stop the record from being written.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<Environment> parseEnvRecord(std::string_view text, const std::string& subnet) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("not a JSON object");
  try {
    if (j.value("version", 0) != kEnvRecordVersion) {
      return invalidArgument("version: not " + std::to_string(kEnvRecordVersion));
    }
    Environment e = environmentFrom(j);
    auto state = parseState(j.at("state").get<std::string>());
    if (!state) return invalidArgument("state: not a state");
    e.state = *state;
    QABOX_RETURN_IF_ERROR(checkFields(e, subnet));
    return e;
  } catch (const json::exception& ex) {
    return invalidArgument(ex.what());
  }
}

Result<std::string> readRecordFile(const std::string& path) {
  // sys/safe_path: a regular file only, no link followed, no FIFO opened.
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  off_t offset = 0;
  QABOX_ASSIGN_OR_RETURN(std::string text,
                         readFileBeneath(dir, path.substr(slash + 1), offset, kMaxRecordBytes + 1));
  if (text.size() > kMaxRecordBytes) {
    return invalidArgument(path + ": larger than " + std::to_string(kMaxRecordBytes) + " bytes");
  }
  return text;
}

Result<Environment> readEnvRecord(const std::string& stateDir, const std::string& container,
                                  const std::string& subnet) {
  QABOX_ASSIGN_OR_RETURN(std::string text,
                         readRecordFile(paths::containerRecord(stateDir, container)));
  auto env = parseEnvRecord(text, subnet);
  if (!env) return env.status();
  if (env->container != container) {
    return invalidArgument("its qabox.json names container " + env->container);
  }
  return env;
}

Status writeEnvRecord(const std::string& stateDir, const Environment& env) {
  const std::string dir = paths::containerDir(stateDir, env.container);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Status::ok();
  return writeFileAtomically(paths::containerRecord(stateDir, env.container), envRecordJson(env),
                             0600);
}

}  // namespace qabox
