#include "cli/endpoint.h"

#include <toml++/toml.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/endpoint.h"

namespace qabox::cli {
namespace {

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::optional<std::string> nonEmpty(const std::optional<std::string>& v) {
  if (!v || v->empty()) return std::nullopt;
  return v;
}

Result<std::optional<std::string>> stringKey(const toml::table& t, const char* key,
                                             const std::string& path) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return std::optional<std::string>();
  if (!node->is_string()) {
    return invalidArgument("config file " + path + ": " + key + ": must be a string");
  }
  return std::optional<std::string>(node->as_string()->get());
}

}  // namespace

Result<ConfigFile> parseConfigFile(std::string_view text, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return invalidArgument("config file " + path + ":" + std::to_string(where.line) + ":" +
                           std::to_string(where.column) + ": " + std::string(e.description()));
  }
  ConfigFile out;
  out.path = path;
  QABOX_ASSIGN_OR_RETURN(out.endpoint, stringKey(table, "endpoint", path));
  QABOX_ASSIGN_OR_RETURN(out.token, stringKey(table, "token", path));
  QABOX_ASSIGN_OR_RETURN(out.caCert, stringKey(table, "ca_cert", path));
  QABOX_ASSIGN_OR_RETURN(out.cert, stringKey(table, "cert", path));
  QABOX_ASSIGN_OR_RETURN(out.key, stringKey(table, "key", path));
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (auto* file : {&out.caCert, &out.cert, &out.key}) {
    if (*file && !(*file)->empty() && !startsWith(**file, "/")) *file = (dir / **file).string();
  }
  return out;
}

std::string configFilePath(const EnvLookup& env) {
  if (auto xdg = nonEmpty(env("XDG_CONFIG_HOME"))) return *xdg + "/qabox/config.toml";
  if (auto home = nonEmpty(env("HOME"))) return *home + "/.config/qabox/config.toml";
  return {};
}

Result<std::optional<ConfigFile>> loadConfigFile(const std::string& path) {
  if (path.empty()) return std::optional<ConfigFile>();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<ConfigFile>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalidArgument("config file " + path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  QABOX_ASSIGN_OR_RETURN(ConfigFile file, parseConfigFile(text.str(), path));
  return std::optional<ConfigFile>(std::move(file));
}

Status applyEndpoint(std::string_view endpoint, bool haveCaCert, Connection& conn) {
  auto bad = [&](const std::string& rule) {
    return invalidArgument("endpoint \"" + std::string(endpoint) + "\": " + rule);
  };
  conn.endpoint = std::string(endpoint);
  conn.unixSocket = false;
  conn.tls = false;
  if (endpoint.empty()) return bad("must not be empty");
  if (startsWith(endpoint, "unix:") || startsWith(endpoint, "unix-abstract:")) {
    conn.target = std::string(endpoint);
    conn.unixSocket = true;
    return Status::ok();
  }
  if (startsWith(endpoint, "/")) {
    conn.target = "unix://" + std::string(endpoint);
    conn.unixSocket = true;
    return Status::ok();
  }
  std::string_view rest = endpoint;
  std::optional<bool> explicitTls;
  for (auto [scheme, tls] : {std::pair{"https://", true}, std::pair{"grpcs://", true},
                             std::pair{"http://", false}, std::pair{"grpc://", false}}) {
    if (startsWith(rest, scheme)) {
      rest.remove_prefix(std::string_view(scheme).size());
      explicitTls = tls;
      break;
    }
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view hostPort = rest;
  if (startsWith(hostPort, "dns:")) {
    hostPort.remove_prefix(4);
    while (startsWith(hostPort, "/")) hostPort.remove_prefix(1);
  } else if (rest.find('/') != std::string_view::npos) {
    return bad("use unix:///path, host:port or https://host:port");
  }
  if (hostPort.empty()) return bad("no host");
  size_t colon = hostPort.rfind(':');
  bool hasPort = colon != std::string_view::npos && hostPort.back() != ']';
  std::string target(rest);
  if (!hasPort) {
    if (explicitTls == true) {
      target += ":443";
    } else {
      return bad("give a port, as host:50051");
    }
  }
  // The agent's own parser: the CLI refuses what the agent would.
  QABOX_ASSIGN_OR_RETURN(
      HostPort hp,
      parseHostPort(hasPort ? std::string(hostPort) : std::string(hostPort) + ":443", "endpoint"));
  conn.target = std::move(target);
  conn.tls = explicitTls.value_or(haveCaCert || hp.port == 443);
  return Status::ok();
}

Result<Connection> resolveConnection(const ConnectionFlags& flags, const EnvLookup& env,
                                     const std::optional<ConfigFile>& config) {
  Connection conn;
  std::string endpoint;
  if (auto v = nonEmpty(flags.endpoint)) {
    endpoint = *v;
    conn.endpointSource = "from --endpoint";
  } else if (auto e = nonEmpty(env("QABOX_ENDPOINT"))) {
    endpoint = *e;
    conn.endpointSource = "from QABOX_ENDPOINT";
  } else if (config && nonEmpty(config->endpoint)) {
    endpoint = *config->endpoint;
    conn.endpointSource = "from endpoint in " + config->path;
  } else {
    endpoint = std::string(kDefaultEndpoint);
    conn.endpointSource = "the default local socket; set --endpoint or QABOX_ENDPOINT";
  }

  if (auto v = nonEmpty(flags.token)) {
    conn.token = *v;
  } else if (auto e = nonEmpty(env("QABOX_TOKEN"))) {
    conn.token = *e;
  } else if (config && nonEmpty(config->token)) {
    conn.token = *config->token;
  }

  if (auto v = nonEmpty(flags.caCert)) {
    conn.caCert = *v;
  } else if (auto e = nonEmpty(env("QABOX_CA_CERT"))) {
    conn.caCert = *e;
  } else if (config && nonEmpty(config->caCert)) {
    conn.caCert = *config->caCert;
  }

  auto pick = [&](const std::optional<std::string>& flag, const char* var,
                  const std::optional<std::string>& file) -> std::string {
    if (auto v = nonEmpty(flag)) return *v;
    if (auto e = nonEmpty(env(var))) return *e;
    if (config && nonEmpty(file)) return *file;
    return {};
  };
  conn.cert = pick(flags.cert, "QABOX_CERT", config ? config->cert : std::nullopt);
  conn.key = pick(flags.key, "QABOX_KEY", config ? config->key : std::nullopt);
  if (conn.cert.empty() != conn.key.empty()) {
    return invalidArgument(
        "a client certificate needs its key: give both --cert and --key (or QABOX_CERT and "
        "QABOX_KEY, or cert and key in the config file)");
  }

  QABOX_RETURN_IF_ERROR(applyEndpoint(endpoint, !conn.caCert.empty() || !conn.cert.empty(), conn));
  return conn;
}

Result<Connection> resolveConnectionFromProcess(const ConnectionFlags& flags) {
  EnvLookup env = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  QABOX_ASSIGN_OR_RETURN(auto config, loadConfigFile(configFilePath(env)));
  return resolveConnection(flags, env, config);
}

}  // namespace qabox::cli
