#include "daemon/flags.h"

#include "core/failpoint.h"
#include "daemon/check.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <string_view>

namespace qabox {

int exitBeforeCheck(int argc, char** argv, int otherwise) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--check") return kCheckCannotRun;
  }
  return otherwise;
}

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
  CLI::Option* printDefault = app.add_flag("--print-default-config", f.printDefaultConfig,
                                           "print the embedded default config and exit");
  CLI::Option* rebuild =
      app.add_flag("--rebuild-state", f.rebuildState,
                   "rebuild a lost or corrupt qabox.db from what each container and image version "
                   "carries about itself, then exit (refused while an agent runs on state_dir)");
  CLI::Option* check =
      app.add_flag("--check", f.check,
                   "check this host against the agent's invariants and exit: every container, "
                   "lease, mount, veth, firewall binding, log, layer, image, cgroup and open "
                   "journal entry must have its owner. Prints one violation a line (KIND NAME: "
                   "what); exit 0 none, 1 some, 2 the check could not run. With no agent running "
                   "it reads the store without writing; with one, ask it: qabox check");
  // Each does one thing and exits: at most one of them (CLI11 makes it both ways).
  check->excludes(rebuild)->excludes(printDefault);
  rebuild->excludes(printDefault);
  app.set_version_flag("--version", std::string("qaboxd " QABOX_VERSION) +
                                        (failpoint::compiledIn() ? " (failpoints compiled in)"
                                                                 : " (no failpoints)"));
  // The variables are for systemd's EnvironmentFile (/etc/default/qaboxd):
  // ExecStart stays one line, and a flag given wins over its variable.
  app.footer(
      "Example:\n  qaboxd --config /etc/qabox/qaboxd.toml\n  qaboxd --print-default-config > "
      "/etc/qabox/qaboxd.toml\n  qaboxd --config /etc/qabox/qaboxd.toml --check   # after a crash, "
      "before "
      "restarting");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ExcludesError& e) {
    std::cerr << "qaboxd: " << e.what()
              << ": --check, --rebuild-state and --print-default-config each run alone\n";
    return exitBeforeCheck(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    // --help and --version are not failures.
    return rc == 0 ? 0 : exitBeforeCheck(argc, argv, rc);
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
