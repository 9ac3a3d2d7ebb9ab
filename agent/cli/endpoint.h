#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox::cli {

inline constexpr std::string_view kDefaultEndpoint = "unix:///run/qabox/qabox.sock";

// What ~/.config/qabox/config.toml may say.
struct ConfigFile {
  std::string path;
  std::optional<std::string> endpoint;
  std::optional<std::string> token;
  // Relative paths are resolved against the file's directory.
  std::optional<std::string> caCert;
  std::optional<std::string> cert;  // client certificate, for agents that ask for one
  std::optional<std::string> key;
};

// Parses the text of a config file; `path` names it in messages.
Result<ConfigFile> parseConfigFile(std::string_view text, const std::string& path);

// $XDG_CONFIG_HOME/qabox/config.toml, else $HOME/.config/qabox/config.toml;
// empty when neither variable is set.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
std::string configFilePath(const EnvLookup& env);

// Reads and parses the file; nullopt when it does not exist.
Result<std::optional<ConfigFile>> loadConfigFile(const std::string& path);

struct ConnectionFlags {
  std::optional<std::string> endpoint;
  std::optional<std::string> token;
  std::optional<std::string> caCert;
  std::optional<std::string> cert = std::nullopt;
  std::optional<std::string> key = std::nullopt;
};

// Where the agent is and how to talk to it.
struct Connection {
  std::string endpoint;  // as the user gave it
  // How the endpoint was chosen, quoted in "cannot reach" messages.
  std::string endpointSource;
  std::string target;  // what grpc::CreateChannel gets
  bool unixSocket = false;
  bool tls = false;
  std::string token;   // empty: none
  std::string caCert;  // a file path; empty: the system roots when tls
  std::string cert;    // client certificate and key files (mTLS); empty: none
  std::string key;
};

// How an endpoint string becomes a channel target: "unix:///p" and "/p" are
// unix sockets (never TLS); "https://h:p" and "grpcs://h:p" are TLS;
// "http://h:p" and "grpc://h:p" are plaintext; a bare "h:p" or "dns:///h:p"
// is TLS when a CA certificate is configured or the port is 443.
Status applyEndpoint(std::string_view endpoint, bool haveCaCert, Connection& conn);

// Each setting comes from the first of: flag, environment (QABOX_ENDPOINT,
// QABOX_TOKEN, QABOX_CA_CERT, QABOX_CERT, QABOX_KEY), config file, default.
// A client certificate needs its key and the reverse. Pure: the caller
// supplies the environment and the parsed file.
Result<Connection> resolveConnection(const ConnectionFlags& flags, const EnvLookup& env,
                                     const std::optional<ConfigFile>& config);

// The same, reading the process environment and the user's config file.
Result<Connection> resolveConnectionFromProcess(const ConnectionFlags& flags);

}  // namespace qabox::cli
