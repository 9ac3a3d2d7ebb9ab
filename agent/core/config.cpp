#include "core/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <utility>

#include "core/ascii.h"
#include "core/duration.h"
#include "core/endpoint.h"
#include "core/environment.h"
#include "core/ticket.h"

namespace qabox {
namespace {

// Reads typed keys out of one table and remembers which it saw, so unknown
// keys (typos) are reported instead of silently ignored.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix)
      : table_(table), prefix_(std::move(prefix)) {}

  Status string(std::string_view key, std::string& out) {
    return read(key, [&](const toml::node& n) -> Status {
      auto v = n.value<std::string>();
      if (!v) return bad(key, "must be a string");
      out = *v;
      return Status::ok();
    });
  }
  Status boolean(std::string_view key, bool& out) {
    return read(key, [&](const toml::node& n) -> Status {
      auto v = n.value<bool>();
      if (!n.is_boolean() || !v) return bad(key, "must be true or false");
      out = *v;
      return Status::ok();
    });
  }
  Status count(std::string_view key, uint32_t& out, int64_t min, int64_t max) {
    return read(key, [&](const toml::node& n) -> Status {
      auto v = n.value<int64_t>();
      if (!n.is_integer() || !v) return bad(key, "must be a whole number");
      if (*v < min || *v > max) {
        return bad(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      }
      out = static_cast<uint32_t>(*v);
      return Status::ok();
    });
  }
  Status duration(std::string_view key, std::chrono::milliseconds& out) {
    return read(key, [&](const toml::node& n) -> Status {
      auto v = n.value<std::string>();
      if (!n.is_string() || !v) return bad(key, "must be a duration string such as \"10m\"");
      auto d = parseDuration(*v);
      if (!d) return invalidArgument(name(key) + ": " + d.status().message());
      out = *d;
      return Status::ok();
    });
  }
  Status stringList(std::string_view key, std::vector<std::string>& out) {
    return read(key, [&](const toml::node& n) -> Status {
      if (auto s = n.value<std::string>(); n.is_string() && s) {
        out = {*s};
        return Status::ok();
      }
      const toml::array* arr = n.as_array();
      if (!arr) return bad(key, "must be a list of strings");
      out.clear();
      for (const auto& item : *arr) {
        auto s = item.value<std::string>();
        if (!item.is_string() || !s) return bad(key, "must be a list of strings");
        out.push_back(*s);
      }
      return Status::ok();
    });
  }
  // The node under `key`, if there is one (for a key read by the caller).
  const toml::node* node(std::string_view key) const { return table_.get(key); }
  // A key read by the caller itself: only marked as known.
  Status custom(std::string_view key) {
    seen_.insert(std::string(key));
    return Status::ok();
  }
  Status noUnknownKeys(const std::set<std::string>& tables = {}) const {
    for (const auto& [k, v] : table_) {
      std::string key(k.str());
      if (!seen_.count(key) && !tables.count(key)) {
        return invalidArgument(name(key) + ": unknown key (check its spelling)");
      }
    }
    return Status::ok();
  }

  std::string name(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

 private:
  template <typename F>
  Status read(std::string_view key, F&& f) {
    seen_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (!n) return Status::ok();  // keep the default
    return f(*n);
  }
  Status bad(std::string_view key, const std::string& rule) const {
    return invalidArgument(name(key) + ": " + rule);
  }

  const toml::table& table_;
  std::string prefix_;
  std::set<std::string> seen_;
};

Status parseSection(const toml::table& root, std::string_view name,
                    const std::function<Status(TableReader&)>& body) {
  const toml::node* n = root.get(name);
  if (!n) return Status::ok();
  const toml::table* t = n->as_table();
  if (!t)
    return invalidArgument(std::string(name) + ": must be a table ([" + std::string(name) + "])");
  TableReader r(*t, std::string(name));
  QABOX_RETURN_IF_ERROR(body(r));
  return r.noUnknownKeys();
}

bool parseIpv4(const std::string& s, uint32_t& out) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  out = ntohl(a.s_addr);
  return true;
}

Status readEgress(const toml::table& network, EgressPolicy& out) {
  const toml::node* n = network.get("egress");
  if (!n) return Status::ok();
  const std::string use =
      ": use \"none\", \"all\" or a list of \"CIDR[:port]\" such as "
      "[\"10.0.0.0/8\", \"198.51.100.7/32:443\"]";
  if (auto s = n->value<std::string>(); n->is_string() && s) {
    if (*s == "none" || *s == "all") {
      out.mode = *s == "none" ? EgressPolicy::Mode::kNone : EgressPolicy::Mode::kAll;
      out.allow.clear();
      return Status::ok();
    }
    return invalidArgument("network.egress \"" + *s + "\"" + use);
  }
  const toml::array* arr = n->as_array();
  if (!arr) return invalidArgument("network.egress" + use);
  EgressPolicy p;
  p.mode = EgressPolicy::Mode::kList;
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    if (!item.is_string() || !s) return invalidArgument("network.egress: every entry" + use);
    QABOX_ASSIGN_OR_RETURN(auto rule, parseEgressRule(*s));
    p.allow.push_back(std::move(rule));
  }
  out = std::move(p);
  return Status::ok();
}

Status checkListenAddress(const std::string& key, const std::string& value, bool allowUnix) {
  if (allowUnix && value.rfind("unix://", 0) == 0) {
    if (value.size() <= 7 || value[7] != '/') {
      return invalidArgument(key + " \"" + value +
                             "\": a unix socket needs an absolute path, "
                             "as unix:///run/qabox/qabox.sock");
    }
    return Status::ok();
  }
  auto hostPort = parseHostPort(value, key);
  if (!hostPort.isOk() && allowUnix && value.find(':') == std::string::npos) {
    return invalidArgument(key + " \"" + value + "\": use host:port or unix:///path");
  }
  QABOX_RETURN_IF_ERROR(hostPort.status());
  // The agent listens where the config says: ":80" names no address.
  if (hostPort->host.empty()) {
    return invalidArgument(key + " \"" + value +
                           "\": use host:port, with a host (0.0.0.0 for all)");
  }
  return Status::ok();
}

}  // namespace

Result<EgressPolicy::Rule> parseEgressRule(std::string_view text) {
  const std::string quoted = "network.egress \"" + std::string(text) + "\"";
  std::string_view rest = text;
  EgressPolicy::Rule rule;
  if (rest.find_first_of(":") != std::string_view::npos && rest.find(':') != rest.rfind(':')) {
    return invalidArgument(quoted +
                           ": IPv6 is not supported (containers have IPv4 only); "
                           "use an IPv4 CIDR[:port] such as 198.51.100.0/24:443");
  }
  if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    std::string_view port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos ||
        std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535) {
      return invalidArgument(quoted + ": the port after ':' must be a number from 1 to 65535");
    }
    rule.port = static_cast<uint16_t>(std::stoi(std::string(port)));
    rest = rest.substr(0, colon);
  }
  int prefix = 32;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view len = rest.substr(slash + 1);
    if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != len.npos ||
        std::stoi(std::string(len)) > 32) {
      return invalidArgument(quoted + ": the prefix length must be a number from 0 to 32");
    }
    prefix = std::stoi(std::string(len));
    rest = rest.substr(0, slash);
  }
  uint32_t addr = 0;
  if (!parseIpv4(std::string(rest), addr)) {
    return invalidArgument(quoted + ": use an IPv4 CIDR[:port] such as 198.51.100.0/24:443");
  }
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((addr & ~mask) != 0) {
    in_addr net{htonl(addr & mask)};
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &net, buf, sizeof buf);
    return invalidArgument(quoted + ": host bits must be zero (" + buf + "/" +
                           std::to_string(prefix) + ")");
  }
  rule.cidr = std::string(rest) + "/" + std::to_string(prefix);
  return rule;
}

Status checkAccessMode(std::string_view field, std::string_view mode) {
  if (mode == "open" || mode == "login") return Status::ok();
  return invalidArgument(std::string(field) + " " + quoteForMessage(mode) +
                         ": use \"open\" (anyone who reaches the router) or \"login\" (people "
                         "signed in to the dashboard, or a bearer token)");
}

std::string Config::urlFor(std::string_view slug) const {
  std::string host = std::string(slug) + "." + routing.domain;
  uint16_t port = portOfListen(routing.listen).value_or(80);
  if (port != 80) host += ":" + std::to_string(port);
  return "http://" + host;
}

const RepoConfig* findRepo(const std::vector<RepoConfig>& repos, std::string_view nameOrUrl) {
  for (const auto& r : repos) {
    if (r.name == nameOrUrl || r.url == nameOrUrl) return &r;
  }
  return nullptr;
}

const RepoConfig* Config::findRepo(std::string_view nameOrUrl) const {
  return qabox::findRepo(repos, nameOrUrl);
}

namespace {

Status checkSizes(const Config& c) {
  if (!c.limits.maxMemory.empty() && !parseMemorySize(c.limits.maxMemory)) {
    return invalidArgument("limits.max_memory \"" + c.limits.maxMemory +
                           "\": must be a size such as 512M or 2G (\"\": no maximum)");
  }
  if (!c.limits.maxDisk.empty() && !parseMemorySize(c.limits.maxDisk)) {
    return invalidArgument("limits.max_disk \"" + c.limits.maxDisk +
                           "\": must be a size such as 512M or 10G (\"\": no maximum)");
  }
  if (c.limits.diskCheckInterval < std::chrono::seconds(1)) {
    return invalidArgument("limits.disk_check_interval: must be at least 1s");
  }
  {
    auto logMax = parseMemorySize(c.deploy.logMax);
    if (!logMax || *logMax < (64u << 10) || *logMax > (1ULL << 30)) {
      return invalidArgument("deploy.log_max \"" + c.deploy.logMax +
                             "\": must be a size between 64K and 1G, such as 8M");
    }
  }
  return Status::ok();
}

Status checkPaths(const Config& c) {
  if (c.stateDir.empty() || c.stateDir.front() != '/') {
    return invalidArgument("state_dir \"" + c.stateDir + "\": must be an absolute path");
  }
  if (c.imagesDir.empty() || c.imagesDir.front() != '/') {
    return invalidArgument("images_dir \"" + c.imagesDir + "\": must be an absolute path");
  }
  if (auto s = checkImageName(c.defaultImage); !s.isOk()) {
    return s.withContext("default_image");
  }
  // The pool's paths go into the containers' lxc.mount.entry lines (fields
  // split on whitespace, options on ','): the characters dataMountEntry takes.
  const std::string& pool = c.storage.dataPool;
  const bool poolChars = std::all_of(pool.begin(), pool.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("/._-+@=", ch) != nullptr;
  });
  if (!pool.empty() && (pool.front() != '/' || !poolChars || pool.size() < 2)) {
    return invalidArgument("storage.data_pool \"" + pool +
                           "\": must be an absolute path of letters, digits and / . _ - + @ = "
                           "(\"\": datasets as overlay layers)");
  }
  if (c.containers.unprivileged && c.containers.isolatedIds &&
      uint64_t{c.containers.idBase} + (uint64_t{c.limits.maxEnvironments} + 1) * 65536 >
          4294967295ULL) {
    return invalidArgument("containers.id_base " + std::to_string(c.containers.idBase) +
                           ": with isolated_ids, limits.max_environments = " +
                           std::to_string(c.limits.maxEnvironments) +
                           " environments of 65536 ids each do not fit below 2^32");
  }
  return Status::ok();
}

Status checkApi(const Config& c) {
  if (c.api.listen.empty()) return invalidArgument("api.listen: must name at least one address");
  for (const auto& l : c.api.listen)
    QABOX_RETURN_IF_ERROR(checkListenAddress("api.listen", l, true));
  if (c.api.tlsCert.empty() != c.api.tlsKey.empty()) {
    return invalidArgument("api.tls_cert and api.tls_key: set both or neither");
  }
  for (const auto& l : c.api.listen) {
    if (l.rfind("unix://", 0) != 0 && c.api.tlsCert.empty()) {
      return invalidArgument("api.listen \"" + l +
                             "\": a TCP address serves TLS only: set api.tls_cert and "
                             "api.tls_key (PEM files), or listen on a unix:///path socket");
    }
  }
  for (const auto& [key, path] :
       {std::pair{"api.tls_cert", c.api.tlsCert}, std::pair{"api.tls_key", c.api.tlsKey},
        std::pair{"api.client_ca", c.api.clientCa}}) {
    if (!path.empty() && path.front() != '/') {
      return invalidArgument(std::string(key) + " \"" + path + "\": must be an absolute path");
    }
  }
  if (!c.api.clientCa.empty() && c.api.tlsCert.empty()) {
    return invalidArgument(
        "api.client_ca: needs api.tls_cert and api.tls_key (client "
        "certificates are checked on TLS listeners only)");
  }
  if (c.api.socketGroup.empty() || c.api.socketGroup.find_first_of(" :/\n") != std::string::npos) {
    return invalidArgument("api.socket_group \"" + c.api.socketGroup +
                           "\": must be a group name, as qabox");
  }
  return Status::ok();
}

Status checkBridge(const Config& c) {
  const auto& b = c.network.bridge;
  if (b.empty() || b.size() > 15) {
    return invalidArgument("network.bridge \"" + b +
                           "\": must be 1 to 15 characters (a Linux interface name)");
  }
  for (char ch : b) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') {
      return invalidArgument("network.bridge \"" + b +
                             "\": only letters, digits, '-' and '_' are allowed");
    }
  }
  return Status::ok();
}

Status checkSubnet(const Config& c) {
  const auto& s = c.network.subnet;
  auto slash = s.find('/');
  uint32_t addr = 0;
  if (slash == std::string::npos || !parseIpv4(s.substr(0, slash), addr)) {
    return invalidArgument("network.subnet \"" + s + "\": use an IPv4 CIDR such as 10.44.0.0/24");
  }
  std::string len = s.substr(slash + 1);
  if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != std::string::npos) {
    return invalidArgument("network.subnet \"" + s + "\": prefix length must be a number");
  }
  int prefix = std::stoi(len);
  if (prefix < 8 || prefix > 30) {
    return invalidArgument("network.subnet \"" + s + "\": prefix length must be between 8 and 30");
  }
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((addr & ~mask) != 0) {
    return invalidArgument("network.subnet \"" + s +
                           "\": host bits must be zero (the network address)");
  }
  return Status::ok();
}

// routing.access and its allowlist; the CIDRs come back normalised.
Status checkAccess(const Config& c) {
  QABOX_RETURN_IF_ERROR(checkAccessMode("routing.access", c.routing.access));
  for (const std::string& cidr : c.routing.accessAllow) {
    auto rule = parseEgressRule(cidr);
    if (!rule || rule->port != 0) {
      return invalidArgument("routing.access_allow \"" + cidr +
                             "\": use IPv4 networks such as 10.20.0.0/16, without a port");
    }
    if (rule->cidr != cidr && rule->cidr != cidr + "/32") {
      return invalidArgument("routing.access_allow \"" + cidr + "\": write it as " + rule->cidr);
    }
  }
  if (c.dashboard.sessionTtl < std::chrono::minutes(1)) {
    return invalidArgument("dashboard.session_ttl: must be at least 1m");
  }
  return Status::ok();
}

Status checkRouting(const Config& c) {
  const auto& d = c.routing.domain;
  if (d.empty() || d.size() > 200 || d.front() == '.' || d.back() == '.' ||
      d.find("..") != std::string::npos) {
    return invalidArgument("routing.domain \"" + d +
                           "\": must be a DNS name such as qa.company.int");
  }
  for (char ch : d) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.') {
      return invalidArgument("routing.domain \"" + d +
                             "\": only letters, digits, '-' and '.' are allowed");
    }
  }
  QABOX_RETURN_IF_ERROR(checkListenAddress("routing.listen", c.routing.listen, false));
  if (!c.routing.tlsListen.empty()) {
    QABOX_RETURN_IF_ERROR(checkListenAddress("routing.tls_listen", c.routing.tlsListen, false));
    if (c.routing.tlsCert.empty() || c.routing.tlsKey.empty()) {
      return invalidArgument("routing.tls_listen: needs routing.tls_cert and routing.tls_key");
    }
  }
  return checkAccess(c);
}

Status checkChoice(const RepoConfig& r, std::string_view key, const std::string& value,
                   std::initializer_list<std::string_view> allowed) {
  for (std::string_view a : allowed) {
    if (value == a) return Status::ok();
  }
  std::string list;
  for (std::string_view a : allowed) list += (list.empty() ? "" : " or ") + std::string(a);
  return invalidArgument("repos." + std::string(key) + " \"" + value + "\" (repo " + r.name +
                         "): must be " + list);
}

Status checkRepoWebhook(const RepoConfig& r) {
  const std::string where = " (repo " + r.name + ")";
  if (!r.fullName.empty()) {
    size_t slash = r.fullName.find('/');
    bool ok = slash != std::string::npos && slash > 0 && slash + 1 < r.fullName.size() &&
              r.fullName.size() <= 255 &&
              r.fullName.find_first_of(" \t\r\n\"\\?#:") == std::string::npos;
    if (!ok) {
      return invalidArgument("repos.full_name \"" + r.fullName + "\"" + where +
                             ": must be owner/name as the git host shows it, e.g. acme/shop");
    }
  }
  if (!r.webhookSecret.empty() && !r.webhookSecretFile.empty()) {
    return invalidArgument("repos.webhook_secret_file" + where +
                           ": give webhook_secret or webhook_secret_file, not both");
  }
  if ((!r.webhookSecret.empty() || !r.webhookSecretFile.empty()) && r.fullName.empty()) {
    return invalidArgument("repos.webhook_secret" + where +
                           ": needs full_name, the repo's name on its git host");
  }
  if (!r.webhookSecret.empty() && r.webhookSecret.size() < 16) {
    return invalidArgument("repos.webhook_secret" + where + ": must be at least 16 characters");
  }
  if (!r.webhookSecretFile.empty() && r.webhookSecretFile.front() != '/') {
    return invalidArgument("repos.webhook_secret_file \"" + r.webhookSecretFile + "\"" + where +
                           ": must be an absolute path");
  }
  QABOX_RETURN_IF_ERROR(checkChoice(r, "on_merged", r.onMerged, {"reclaim", "ignore"}));
  QABOX_RETURN_IF_ERROR(checkChoice(r, "on_closed", r.onClosed, {"reclaim", "keep"}));
  QABOX_RETURN_IF_ERROR(checkChoice(r, "on_push", r.onPush, {"redeploy", "ignore"}));
  QABOX_RETURN_IF_ERROR(checkChoice(r, "on_target_push", r.onTargetPush, {"mark", "redeploy"}));
  if (r.deployPhrase.size() > 200) {
    return invalidArgument("repos.deploy_phrase" + where + ": at most 200 characters");
  }
  if (r.ticketPattern.empty() || r.ticketPattern.size() > 200) {
    return invalidArgument("repos.ticket_pattern" + where +
                           ": must be a regex of 1 to 200 characters");
  }
  try {
    std::regex re(r.ticketPattern);
  } catch (const std::regex_error& e) {
    return invalidArgument("repos.ticket_pattern \"" + r.ticketPattern + "\"" + where + ": " +
                           e.what());
  }
  return Status::ok();
}

Status checkRepos(const Config& c) {
  std::set<std::string> names;
  for (const auto& r : c.repos) {
    if (r.name.empty() || r.url.empty())
      return invalidArgument("repos: every entry needs name and url");
    if (auto s = checkImageName(r.name); !s.isOk()) {
      return invalidArgument("repos.name \"" + r.name +
                             "\": only lower-case letters, digits and '-', starting with a letter");
    }
    if (r.url.front() == '-')
      return invalidArgument("repos.url \"" + r.url + "\": must not start with '-'");
    if (!names.insert(r.name).second)
      return invalidArgument("repos.name \"" + r.name + "\": listed twice");
    QABOX_RETURN_IF_ERROR(checkRepoWebhook(r));
  }
  std::set<std::string> fullNames;
  for (const auto& r : c.repos) {
    if (r.fullName.empty()) continue;
    if (!fullNames.insert(asciiLowered(r.fullName)).second)
      return invalidArgument("repos.full_name \"" + r.fullName + "\": listed twice");
  }
  auto maxBody = parseMemorySize(c.webhooks.maxBody);
  if (!maxBody || *maxBody < 4096 || *maxBody > (64ULL << 20)) {
    return invalidArgument("webhooks.max_body \"" + c.webhooks.maxBody +
                           "\": must be a size between 4K and 64M, such as 1M");
  }
  return Status::ok();
}

Status checkEvents(const Config& c) {
  // Pruning below these would drop what a person is still reading about.
  if (c.events.maxAge.count() > 0 && c.events.maxAge < std::chrono::minutes(1)) {
    return invalidArgument("events.max_age \"" + formatDuration(c.events.maxAge) +
                           "\": must be \"0\" (no age limit) or at least \"1m\"");
  }
  if (c.events.maxRows > 0 && c.events.maxRows < 100) {
    return invalidArgument("events.max_rows " + std::to_string(c.events.maxRows) +
                           ": must be 0 (no limit) or at least 100");
  }
  if (c.events.refusedEvery < std::chrono::milliseconds(10)) {
    return invalidArgument("events.refused_every \"" + formatDuration(c.events.refusedEvery) +
                           "\": must be at least \"10ms\"");
  }
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
  if (!kLevels.count(c.logLevel)) {
    return invalidArgument("log_level \"" + c.logLevel +
                           "\": use trace, debug, info, warn, error or off");
  }
  return Status::ok();
}

Status readApi(const toml::table& root, Config& c) {
  return parseSection(root, "api", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.stringList("listen", c.api.listen));
    QABOX_RETURN_IF_ERROR(r.string("tls_cert", c.api.tlsCert));
    QABOX_RETURN_IF_ERROR(r.string("tls_key", c.api.tlsKey));
    QABOX_RETURN_IF_ERROR(r.string("client_ca", c.api.clientCa));
    QABOX_RETURN_IF_ERROR(r.string("socket_group", c.api.socketGroup));
    return r.count("max_message_bytes", c.api.maxMessageBytes, 1024, 64 * 1024 * 1024);
  });
}

Status readNetwork(const toml::table& root, Config& c) {
  return parseSection(root, "network", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.string("bridge", c.network.bridge));
    QABOX_RETURN_IF_ERROR(r.boolean("isolate", c.network.isolate));
    QABOX_RETURN_IF_ERROR(r.custom("egress"));
    QABOX_RETURN_IF_ERROR(readEgress(*root["network"].as_table(), c.network.egress));
    return r.string("subnet", c.network.subnet);
  });
}

Status readDashboard(const toml::table& root, Config& c) {
  return parseSection(root, "dashboard", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.boolean("enabled", c.dashboard.enabled));
    return r.duration("session_ttl", c.dashboard.sessionTtl);
  });
}

Status readRouting(const toml::table& root, Config& c) {
  return parseSection(root, "routing", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.string("domain", c.routing.domain));
    QABOX_RETURN_IF_ERROR(r.string("listen", c.routing.listen));
    QABOX_RETURN_IF_ERROR(r.string("tls_listen", c.routing.tlsListen));
    QABOX_RETURN_IF_ERROR(r.string("tls_cert", c.routing.tlsCert));
    QABOX_RETURN_IF_ERROR(r.string("tls_key", c.routing.tlsKey));
    QABOX_RETURN_IF_ERROR(r.duration("idle_timeout", c.routing.idleTimeout));
    QABOX_RETURN_IF_ERROR(r.duration("header_timeout", c.routing.headerTimeout));
    QABOX_RETURN_IF_ERROR(r.duration("backend_timeout", c.routing.backendTimeout));
    QABOX_RETURN_IF_ERROR(r.string("access", c.routing.access));
    QABOX_RETURN_IF_ERROR(r.stringList("access_allow", c.routing.accessAllow));
    return r.duration("stats_flush_interval", c.routing.statsFlushInterval);
  });
}

Status readLimits(const toml::table& root, Config& c) {
  return parseSection(root, "limits", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.count("max_environments", c.limits.maxEnvironments, 1, 100000));
    QABOX_RETURN_IF_ERROR(r.string("max_memory", c.limits.maxMemory));
    QABOX_RETURN_IF_ERROR(r.count("max_cpus", c.limits.maxCpus, 0, 1024));
    QABOX_RETURN_IF_ERROR(r.count("max_pids", c.limits.maxPids, 0, 4194304));
    QABOX_RETURN_IF_ERROR(r.string("max_disk", c.limits.maxDisk));
    QABOX_RETURN_IF_ERROR(r.count("max_files", c.limits.maxFiles, 1000, 100'000'000));
    return r.duration("disk_check_interval", c.limits.diskCheckInterval);
  });
}

Status readContainers(const toml::table& root, Config& c) {
  return parseSection(root, "containers", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.boolean("unprivileged", c.containers.unprivileged));
    QABOX_RETURN_IF_ERROR(r.boolean("allow_nested_userns", c.containers.allowNestedUserns));
    QABOX_RETURN_IF_ERROR(r.boolean("isolated_ids", c.containers.isolatedIds));
    // Above the host's own system and user ids, and room for 65536 ids.
    return r.count("id_base", c.containers.idBase, 65536, 4294967295LL - 65536);
  });
}

Status readStorage(const toml::table& root, Config& c) {
  return parseSection(root, "storage",
                      [&](TableReader& r) { return r.string("data_pool", c.storage.dataPool); });
}

Status readDeploy(const toml::table& root, Config& c) {
  return parseSection(root, "deploy", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.duration("fetch_timeout", c.deploy.fetchTimeout));
    QABOX_RETURN_IF_ERROR(r.duration("hook_timeout", c.deploy.hookTimeout));
    QABOX_RETURN_IF_ERROR(r.duration("health_timeout", c.deploy.healthTimeout));
    QABOX_RETURN_IF_ERROR(r.duration("start_timeout", c.deploy.startTimeout));
    QABOX_RETURN_IF_ERROR(r.duration("deps_max_age", c.deploy.depsMaxAge));
    return r.string("log_max", c.deploy.logMax);
  });
}

Status readPool(const toml::table& root, Config& c) {
  return parseSection(root, "pool", [&](TableReader& r) -> Status {
    QABOX_RETURN_IF_ERROR(r.count("size", c.pool.size, 0, 64));
    QABOX_RETURN_IF_ERROR(r.string("min_free_memory", c.pool.minFreeMemory));
    QABOX_RETURN_IF_ERROR(r.string("min_free_disk", c.pool.minFreeDisk));
    QABOX_RETURN_IF_ERROR(r.duration("interval", c.pool.interval));
    for (const auto& [key, value] : {std::pair{"min_free_memory", &c.pool.minFreeMemory},
                                     std::pair{"min_free_disk", &c.pool.minFreeDisk}}) {
      if (!parseMemorySize(*value)) {
        return invalidArgument(r.name(key) + ": \"" + *value +
                               "\" is not a size such as \"512M\" or \"2G\"");
      }
    }
    if (c.pool.interval < std::chrono::milliseconds(100)) {
      return invalidArgument(r.name("interval") + ": must be at least 100ms");
    }
    QABOX_RETURN_IF_ERROR(r.custom("images"));
    const toml::node* images = r.node("images");
    if (!images) return Status::ok();
    const toml::table* t = images->as_table();
    if (!t) return invalidArgument(r.name("images") + ": must be a table ([pool.images])");
    for (const auto& [k, v] : *t) {
      const std::string name(k.str());
      if (Status s = checkImageName(name); !s.isOk()) {
        return invalidArgument("pool.images." + name + ": " + s.message());
      }
      auto n = v.value<int64_t>();
      if (!v.is_integer() || !n || *n < 0 || *n > 64) {
        return invalidArgument("pool.images." + name + ": must be a whole number between 0 and 64");
      }
      c.pool.images[name] = static_cast<uint32_t>(*n);
    }
    return Status::ok();
  });
}

Status readReaper(const toml::table& root, Config& c) {
  return parseSection(root, "reaper", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.duration("interval", c.reaper.interval));
    QABOX_RETURN_IF_ERROR(r.duration("idle_after", c.reaper.idleAfter));
    QABOX_RETURN_IF_ERROR(r.duration("max_age", c.reaper.maxAge));
    QABOX_RETURN_IF_ERROR(r.duration("sleep_after", c.reaper.sleepAfter));
    QABOX_RETURN_IF_ERROR(r.duration("wake_timeout", c.reaper.wakeTimeout));
    QABOX_RETURN_IF_ERROR(r.boolean("reclaim_merged", c.reaper.reclaimMerged));
    return r.boolean("reclaim_deleted", c.reaper.reclaimDeleted);
  });
}

Status readEvents(const toml::table& root, Config& c) {
  return parseSection(root, "events", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.duration("max_age", c.events.maxAge));
    QABOX_RETURN_IF_ERROR(r.count("refused_burst", c.events.refusedBurst, 1, 1'000'000));
    QABOX_RETURN_IF_ERROR(r.duration("refused_every", c.events.refusedEvery));
    return r.count("max_rows", c.events.maxRows, 0, 1'000'000'000);
  });
}

Status readWebhooks(const toml::table& root, Config& c) {
  return parseSection(root, "webhooks", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.string("max_body", c.webhooks.maxBody));
    QABOX_RETURN_IF_ERROR(r.count("queue", c.webhooks.queue, 1, 100'000));
    return r.count("workers", c.webhooks.workers, 1, 64);
  });
}

Status readMetrics(const toml::table& root, Config& c) {
  return parseSection(root, "metrics",
                      [&](TableReader& r) { return r.string("listen", c.metrics.listen); });
}

Status readLog(const toml::table& root, Config& c) {
  return parseSection(root, "log",
                      [&](TableReader& r) { return r.string("format", c.log.format); });
}

Status checkMetricsAndLog(const Config& c) {
  if (!c.metrics.listen.empty()) {
    QABOX_RETURN_IF_ERROR(checkListenAddress("metrics.listen", c.metrics.listen, false));
  }
  if (c.log.format != "text" && c.log.format != "json") {
    return invalidArgument("log.format \"" + c.log.format + "\": use text or json");
  }
  return Status::ok();
}

Status readCluster(const toml::table& root, Config& c) {
  return parseSection(root, "cluster", [&](TableReader& r) {
    QABOX_RETURN_IF_ERROR(r.stringList("etcd", c.cluster.etcd));
    QABOX_RETURN_IF_ERROR(r.string("ca", c.cluster.ca));
    QABOX_RETURN_IF_ERROR(r.string("cert", c.cluster.cert));
    QABOX_RETURN_IF_ERROR(r.string("key", c.cluster.key));
    QABOX_RETURN_IF_ERROR(r.string("name", c.cluster.name));
    QABOX_RETURN_IF_ERROR(r.string("advertise_api", c.cluster.advertiseApi));
    QABOX_RETURN_IF_ERROR(r.string("advertise_router", c.cluster.advertiseRouter));
    QABOX_RETURN_IF_ERROR(r.string("peer_listen", c.cluster.peerListen));
    QABOX_RETURN_IF_ERROR(r.count("capacity", c.cluster.capacity, 0, 1'000'000));
    QABOX_RETURN_IF_ERROR(r.duration("lease_ttl", c.cluster.leaseTtl));
    return r.string("prefix", c.cluster.prefix);
  });
}

Status checkClusterEndpoints(const Config::Cluster& k) {
  for (const auto& e : k.etcd) {
    const bool tls = e.rfind("https://", 0) == 0;
    if (!tls && e.rfind("http://", 0) != 0) {
      return invalidArgument("cluster.etcd \"" + e +
                             "\": use https://host:port (http:// is for loopback only)");
    }
    QABOX_RETURN_IF_ERROR(parseHostPort(e.substr(tls ? 8 : 7), "cluster.etcd").status());
  }
  for (const auto& [key, path] : {std::pair{"cluster.ca", k.ca}, std::pair{"cluster.cert", k.cert},
                                  std::pair{"cluster.key", k.key}}) {
    if (path.empty()) {
      return invalidArgument(std::string(key) +
                             ": needed for TLS between agents (and to etcd): a PEM file");
    }
    if (!path.empty() && path.front() != '/') {
      return invalidArgument(std::string(key) + " \"" + path + "\": must be an absolute path");
    }
  }
  return Status::ok();
}

Status checkCluster(const Config& c) {
  const auto& k = c.cluster;
  if (!k.enabled()) return Status::ok();
  QABOX_RETURN_IF_ERROR(checkClusterEndpoints(k));
  if (!k.name.empty()) QABOX_RETURN_IF_ERROR(checkHostName(k.name, "cluster.name"));
  for (const auto& [key, value] : {std::pair{"cluster.advertise_api", k.advertiseApi},
                                   std::pair{"cluster.advertise_router", k.advertiseRouter}}) {
    if (value.empty()) {
      return invalidArgument(std::string(key) +
                             ": needed with cluster.etcd: the host:port peers reach this host at");
    }
    QABOX_RETURN_IF_ERROR(checkListenAddress(key, value, false));
  }
  if (!k.peerListen.empty()) {
    QABOX_RETURN_IF_ERROR(checkListenAddress("cluster.peer_listen", k.peerListen, false));
  }
  if (k.leaseTtl < std::chrono::seconds(2) || k.leaseTtl > std::chrono::minutes(5)) {
    return invalidArgument("cluster.lease_ttl: must be between 2s and 5m");
  }
  if (k.prefix.size() < 2 || k.prefix.front() != '/' || k.prefix.back() != '/') {
    return invalidArgument("cluster.prefix \"" + k.prefix + "\": must start and end with /");
  }
  return Status::ok();
}

Status readRepos(const toml::table& root, Config& c) {
  if (const toml::node* n = root.get("repos")) {
    const toml::array* arr = n->as_array();
    if (!arr) return invalidArgument("repos: must be a list of tables ([[repos]])");
    for (const auto& item : *arr) {
      const toml::table* t = item.as_table();
      if (!t) return invalidArgument("repos: must be a list of tables ([[repos]])");
      RepoConfig repo;
      TableReader r(*t, "repos");
      QABOX_RETURN_IF_ERROR(r.string("name", repo.name));
      QABOX_RETURN_IF_ERROR(r.string("url", repo.url));
      QABOX_RETURN_IF_ERROR(r.string("full_name", repo.fullName));
      QABOX_RETURN_IF_ERROR(r.string("webhook_secret", repo.webhookSecret));
      QABOX_RETURN_IF_ERROR(r.string("webhook_secret_file", repo.webhookSecretFile));
      QABOX_RETURN_IF_ERROR(r.string("on_merged", repo.onMerged));
      QABOX_RETURN_IF_ERROR(r.string("on_closed", repo.onClosed));
      QABOX_RETURN_IF_ERROR(r.string("on_push", repo.onPush));
      QABOX_RETURN_IF_ERROR(r.string("on_target_push", repo.onTargetPush));
      QABOX_RETURN_IF_ERROR(r.string("deploy_phrase", repo.deployPhrase));
      QABOX_RETURN_IF_ERROR(r.string("ticket_pattern", repo.ticketPattern));
      QABOX_RETURN_IF_ERROR(r.noUnknownKeys());
      c.repos.push_back(std::move(repo));
    }
  }
  return Status::ok();
}

}  // namespace

Status validateConfig(const Config& c) {
  for (auto* check : {checkSizes, checkPaths, checkApi, checkBridge, checkSubnet, checkRouting}) {
    QABOX_RETURN_IF_ERROR(check(c));
  }
  if (c.limits.maxEnvironments == 0) {
    return invalidArgument("limits.max_environments: must be at least 1");
  }
  QABOX_RETURN_IF_ERROR(checkRepos(c));
  QABOX_RETURN_IF_ERROR(checkMetricsAndLog(c));
  QABOX_RETURN_IF_ERROR(checkCluster(c));
  return checkEvents(c);
}

Result<Config> parseConfig(std::string_view text) {
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "config: line " << e.source().begin.line << ", column " << e.source().begin.column
        << ": " << e.description();
    return invalidArgument(msg.str());
  }
  Config c;
  TableReader top(root, "");
  QABOX_RETURN_IF_ERROR(top.string("state_dir", c.stateDir));
  QABOX_RETURN_IF_ERROR(top.string("images_dir", c.imagesDir));
  QABOX_RETURN_IF_ERROR(top.string("default_image", c.defaultImage));
  QABOX_RETURN_IF_ERROR(top.string("log_level", c.logLevel));
  QABOX_RETURN_IF_ERROR(top.noUnknownKeys(
      {"api", "network", "routing", "dashboard", "limits", "containers", "storage", "deploy",
       "pool", "reaper", "events", "repos", "webhooks", "metrics", "log", "cluster"}));

  for (auto* read : {readApi, readNetwork, readRouting, readDashboard, readLimits, readContainers,
                     readStorage, readDeploy, readPool, readReaper, readEvents, readRepos,
                     readWebhooks, readMetrics, readLog, readCluster}) {
    QABOX_RETURN_IF_ERROR(read(root, c));
  }
  QABOX_RETURN_IF_ERROR(validateConfig(c));
  return c;
}

std::string localHostName(const Config& config) {
  if (!config.cluster.name.empty()) return config.cluster.name;
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "qabox";
  std::string name(buf);
  name = name.substr(0, name.find('.'));
  name = asciiLowered(name);
  return checkHostName(name, "host").isOk() ? name : "qabox";
}

Result<Config> loadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return invalidArgument("config " + path + ": cannot be read (does the file exist?)");
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = parseConfig(ss.str());
  if (!c) return c.status().withContext("config " + path);
  return c;
}

}  // namespace qabox
