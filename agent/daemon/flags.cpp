#include "daemon/flags.h"

#include <CLI/CLI.hpp>

namespace qabox {

std::optional<int> parseFlags(int argc, char** argv, Flags& f) {
  CLI::App app{
      "qaboxd: the qabox agent. Gives every ticket an LXC environment with the merge "
      "result of its pull request, routed at http://<ticket>.<domain>."};
  app.add_option("-c,--config", f.configPath,
                 "TOML config file; without it the embedded default config is used");
  app.add_option("--state-dir", f.stateDir, "overrides state_dir")->envname("QABOX_STATE_DIR");
  app.add_option("--images-dir", f.imagesDir, "overrides images_dir")->envname("QABOX_IMAGES_DIR");
  app.add_option("--listen", f.listen, "overrides api.listen (unix:///path or host:port)")
      ->envname("QABOX_LISTEN");
  app.add_option("--router-listen", f.routerListen, "overrides routing.listen (host:port)")
      ->envname("QABOX_ROUTER_LISTEN");
  app.add_option("--bridge", f.bridge, "overrides network.bridge")->envname("QABOX_BRIDGE");
  app.add_option("--subnet", f.subnet, "overrides network.subnet")->envname("QABOX_SUBNET");
  app.add_option("--domain", f.domain, "overrides routing.domain")->envname("QABOX_DOMAIN");
  app.add_option("--log-level", f.logLevel, "trace, debug, info, warn, error or off")
      ->envname("QABOX_LOG_LEVEL");
  app.add_option("--metrics-listen", f.metricsListen,
                 "overrides metrics.listen (host:port, or \"\")")
      ->envname("QABOX_METRICS_LISTEN");
  app.add_option("--repo", f.repos, "adds NAME=URL to the repo allowlist (repeatable)");
  app.add_flag("--print-default-config", f.printDefaultConfig,
               "print the embedded default config and exit");
  app.add_flag("--check", f.check,
               "check this host against the agent's invariants and exit: every container, "
               "lease, mount, veth, firewall binding, log, layer, image, cgroup and open "
               "journal entry must have its owner. Prints one violation a line (KIND NAME: "
               "what); exit 0 none, 1 some, 2 the check could not run. With no agent running "
               "it reads the store without writing; with one, ask it: qabox check");
  app.set_version_flag("--version", "qaboxd " QABOX_VERSION);
  // The variables are for systemd's EnvironmentFile (/etc/default/qaboxd):
  // ExecStart stays one line, and a flag given wins over its variable.
  app.footer(
      "Example:\n  qaboxd --config /etc/qabox/qaboxd.toml\n  qaboxd --print-default-config > "
      "/etc/qabox/qaboxd.toml\n  qaboxd --config /etc/qabox/qaboxd.toml --check   # after a crash, "
      "before "
      "restarting");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

Result<Config> configFrom(const Flags& f) {
  QABOX_ASSIGN_OR_RETURN(Config config, f.configPath.empty() ? parseConfig(defaultConfigToml())
                                                             : loadConfig(f.configPath));
  auto set = [](std::string& key, const std::string& flag) {
    if (!flag.empty()) key = flag;
  };
  set(config.stateDir, f.stateDir);
  set(config.imagesDir, f.imagesDir);
  if (!f.listen.empty()) config.api.listen = {f.listen};
  set(config.routing.listen, f.routerListen);
  set(config.network.bridge, f.bridge);
  set(config.network.subnet, f.subnet);
  set(config.routing.domain, f.domain);
  set(config.logLevel, f.logLevel);
  if (f.metricsListen) config.metrics.listen = *f.metricsListen;
  for (const auto& r : f.repos) {
    auto eq = r.find('=');
    if (eq == std::string::npos) return invalidArgument("--repo \"" + r + "\": use NAME=URL");
    config.repos.push_back({r.substr(0, eq), r.substr(eq + 1)});
  }
  QABOX_RETURN_IF_ERROR(validateConfig(config));
  return config;
}

}  // namespace qabox
