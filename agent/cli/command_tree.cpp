#include <string>

#include "cli/app.h"
#include "cli/exit_code.h"

// The command tree: every command, its options and its help, in the order
// `qabox --help` lists them.
namespace qabox::cli {
namespace {

constexpr const char* kGlobalHelp =
    "Global options, accepted before or after the command:\n"
    "  --endpoint E      unix:///path, host:port or https://host:port\n"
    "  -o, --output F    table (default), json or name\n"
    "  --token T         bearer token\n"
    "  --ca-cert FILE    CA certificate for TLS\n"
    "  --cert FILE       client certificate, when the agent asks for one (with --key)\n"
    "  --key FILE        the client certificate's private key\n";

constexpr const char* kMainFooter =
    "Examples:\n"
    "  qabox deploy EXMP-113 --repo shop --source feature/EXMP-113 --target develop\n"
    "  qabox list\n"
    "  qabox -o json get EXMP-113\n"
    "\n"
    "The agent is found through, in order: --endpoint, QABOX_ENDPOINT, endpoint in\n"
    "~/.config/qabox/config.toml, then unix:///run/qabox/qabox.sock. The token comes\n"
    "from --token, QABOX_TOKEN or token in the same file; the CA certificate from\n"
    "--ca-cert, QABOX_CA_CERT or ca_cert; a client certificate and key from --cert and\n"
    "--key, QABOX_CERT and QABOX_KEY, or cert and key. On the local unix socket root and\n"
    "members of the group qabox need no token.\n"
    "\n";

}  // namespace

// `summary` is one line for the command list; `details` and the example
// go to the command's own --help.
CLI::App* Cli::command(CLI::App* parent, const std::string& name, const std::string& summary,
                       const std::string& example, std::function<int()> action,
                       const std::string& details) {
  CLI::App* sub = parent->add_subcommand(name, summary);
  std::string footer;
  if (!details.empty()) footer += details + "\n\n";
  if (!example.empty()) footer += "Example:\n" + example + "\n\n";
  footer += kGlobalHelp;
  sub->footer(footer);
  if (action) actions_.emplace_back(sub, std::move(action));
  return sub;
}

void Cli::define() {
  app_.name(kProgram);
  app_.description("qabox: per-pull-request QA environments on this host's agent (qaboxd)");
  // Subcommands inherit this: options they do not know go to their
  // parent, so global options work before and after the command.
  app_.fallthrough();
  app_.require_subcommand(1);
  app_.add_option("--endpoint", endpoint_, "The agent: unix:///path, host:port, https://host:port");
  app_.add_option("-o,--output", output_, "Output: table, json or name")
      ->check(CLI::IsMember({"table", "json", "name"}));
  app_.add_option("--token", token_, "Bearer token (or QABOX_TOKEN)");
  app_.add_option("--ca-cert", caCert_, "CA certificate for a TLS endpoint (or QABOX_CA_CERT)");
  app_.add_option("--cert", cert_, "Client certificate for mutual TLS (or QABOX_CERT)");
  app_.add_option("--key", key_, "The client certificate's key (or QABOX_KEY)");

  defineDeployCommand();
  defineRedeployCommand();
  defineEnvironmentCommands();
  defineKeepingCommands();
  defineImageCommands();
  defineHostCommands();
  defineTokenCommands();
  defineCliCommands();
  app_.footer(std::string(kMainFooter) + kExitCodeHelp);
}

void Cli::defineDeployCommand() {
  auto* deploy = command(
      &app_, "deploy", "Create or update a ticket's environment and wait until it is ready",
      "  qabox deploy EXMP-113 --repo shop --source feature/EXMP-113 --target develop \\\n"
      "      --env FEATURE_X=on --secret API_KEY --ttl 48h -o json",
      [this] { return cmdDeploy(); },
      "Merges --source into --target, deploys the result and waits for the health check.\n"
      "Progress goes to stderr, the environment to stdout. Exits 7 when the environment\n"
      "ends FAILED (a hook or the health check failed).");
  deploy->add_option("ticket", deploy_.ticket, "The ticket, as EXMP-113")->required();
  deploy->add_option("--image", deploy_.image, "Base image (default: the agent's)");
  deploy->add_option("--repo", deploy_.repo, "App repository, by its name in the agent's list");
  deploy->add_option("--source", deploy_.source, "Branch to merge, as feature/EXMP-113");
  deploy->add_option("--target", deploy_.target, "Branch merged into, as develop");
  deploy
      ->add_option("--env", deploy_.env,
                   "KEY=VALUE for the app; KEY alone takes our environment's value")
      ->allow_extra_args(false);
  deploy
      ->add_option("--secret", deploy_.secrets,
                   "KEY=VALUE never shown or logged; KEY alone takes our environment's value")
      ->allow_extra_args(false);
  deploy->add_option("--ttl", deploy_.ttl, "Reclaim after this long, as 48h");
  deploy->add_option("--memory", deploy_.memory,
                     "Memory limit, as 512M or 1G (default: the image's; at most the "
                     "agent's limits.max_memory)");
  deploy->add_option("--cpus", deploy_.cpus, "CPU limit in whole CPUs (default: the image's)")
      ->check(CLI::Range(1, 1024));
  deploy->add_option("--pids", deploy_.pids, "Process limit (default: the image's)")
      ->check(CLI::Range(1, 4194304));
  deploy
      ->add_option("--access", deploy_.access,
                   "Who may open its URL: open, or login (people signed in to the dashboard; "
                   "default: the agent's routing.access)")
      ->check(CLI::IsMember({"open", "login"}));
  deploy->add_option("--host", deploy_.host,
                     "In a cluster: the host to place a new ticket on (default: the one with "
                     "the most free capacity; qabox hosts lists them)");
  deploy->add_flag("--force", deploy_.force, "Redeploy even when the merge result is unchanged");
  deploy->add_flag("--wait,!--no-wait", deploy_.wait,
                   "Wait until ready (default), or return once the agent started");
  deploy->add_option("--timeout", deploy_.timeout, "Give up waiting after this long")
      ->capture_default_str();
}

void Cli::defineRedeployCommand() {
  auto* redeploy = command(
      &app_, "redeploy", "Deploy a ticket again from its branches' newest commits",
      "  qabox redeploy EXMP-113\n  qabox redeploy EXMP-113 --force -o json",
      [this] { return cmdRedeploy(); },
      "Merges the same source into the same target as the environment's deploy, with the\n"
      "same image and variables. An environment deployed with --secret is refused: the\n"
      "agent never keeps secret values, so its pipeline must deploy it. Exits 7 when the\n"
      "environment ends FAILED.");
  redeploy->add_option("ticket", ticket_, "The ticket, as EXMP-113")->required();
  redeploy->add_flag("--force", deploy_.force, "Even when the merge result is unchanged");
  redeploy->add_flag("--wait,!--no-wait", deploy_.wait,
                     "Wait until ready (default), or return once the agent started");
  redeploy->add_option("--timeout", deploy_.timeout, "Give up waiting after this long")
      ->capture_default_str();
}

void Cli::defineEnvironmentCommands() {
  auto* list = command(&app_, "list",
                       "List the environments (in a cluster: every host's, with a HOST column, "
                       "and the LOST tickets of hosts that are down)",
                       "  qabox list\n  qabox ls -o name\n  qabox list --local",
                       [this] { return cmdList(); });
  list->alias("ls");
  list->add_flag("--local", listLocal_, "In a cluster: this host's environments only");

  auto* get =
      command(&app_, "get", "Show an environment and its last 10 events",
              "  qabox get EXMP-113\n  qabox get EXMP-113 -o json", [this] { return cmdGet(); });
  get->add_option("ticket", ticket_, "The ticket")->required();

  auto* del = command(&app_, "delete", "Delete an environment: its container, address and route",
                      "  qabox delete EXMP-113", [this] { return cmdDelete(); });
  del->alias("rm");
  del->add_option("ticket", ticket_, "The ticket")->required();

  auto* logs = command(&app_, "logs", "Print the app's log, or the last deploy's hook output",
                       "  qabox logs EXMP-113 -f --tail 100\n  qabox logs EXMP-113 --deploy\n"
                       "  qabox logs EXMP-113 --process postgres",
                       [this] { return cmdLogs(); });
  logs->add_option("ticket", ticket_, "The ticket")->required();
  logs->add_flag("--deploy", logs_.deploy, "The last deploy's hook output");
  logs->add_flag("-f,--follow", logs_.follow, "Keep printing new output");
  logs->add_option("--tail", logs_.tail, "Start with the last N lines (0: all)");
  logs->add_option("--process", logs_.process,
                   "One supervised process's or service's log (web, worker, postgres); "
                   "default: the routed process's");

  auto* exec = command(
      &app_, "exec", "Run a command in an environment's container",
      "  qabox exec EXMP-113 -- sh -c 'ls -la /srv/app'\n"
      "  echo 'select 1' | qabox exec EXMP-113 --stdin -- psql",
      [this] { return cmdExec(); },
      "Put -- before the command. Its stdout and stderr become ours, and qabox exits with\n"
      "its exit code.");
  exec->add_option("ticket", ticket_, "The ticket")->required();
  exec->add_option("command", exec_.argv, "The command and its arguments")->required();
  exec->add_option("--env", exec_.env, "KEY=VALUE for the command")->allow_extra_args(false);
  exec->add_flag("-i,--stdin", exec_.sendStdin, "Send our stdin (read to its end) to the command");
  exec->add_option("--timeout", exec_.timeout,
                   "Kill the command after this long (agent default: 10m)");
}

// The reaper, and what keeps an environment from it or puts it to sleep.
void Cli::defineKeepingCommands() {
  auto* reap = command(
      &app_, "reap", "Reclaim environments now by the reaper's policies (pinned ones never)",
      "  qabox reap --dry-run\n  qabox reap --policy merged", [this] { return cmdReap(); });
  reap->add_flag("--dry-run", reap_.dryRun, "Show what would be reclaimed; change nothing");
  reap->add_option("--policy", reap_.policy, "Only this policy: merged, idle, ttl or max_age")
      ->check(CLI::IsMember({"merged", "idle", "ttl", "max_age"}));

  auto* pin = command(&app_, "pin", "Keep an environment: no reaper policy reclaims it",
                      "  qabox pin EXMP-113", [this] { return cmdPin(true); });
  pin->add_option("ticket", ticket_, "The ticket")->required();
  auto* unpin = command(&app_, "unpin", "Let the reaper's policies apply again",
                        "  qabox unpin EXMP-113", [this] { return cmdPin(false); });
  unpin->add_option("ticket", ticket_, "The ticket")->required();
  auto* sleep = command(&app_, "sleep", "Stop an environment's container, keeping it",
                        "  qabox sleep EXMP-113", [this] { return cmdSleep(true); });
  sleep->add_option("ticket", ticket_, "The ticket")->required();
  auto* wake = command(&app_, "wake", "Start a sleeping environment again", "  qabox wake EXMP-113",
                       [this] { return cmdSleep(false); });
  wake->add_option("ticket", ticket_, "The ticket")->required();
}

void Cli::defineImageCommands() {
  auto* image = command(&app_, "image", "Base images: build, list, delete",
                        "  qabox image ls\n  qabox image build busybox");
  image->require_subcommand(1);
  auto* build = command(image, "build",
                        "Build a new version of an image from its recipe (and its parent first, "
                        "if that has none); nothing new when the recipe is unchanged",
                        "  qabox image build busybox\n  qabox image build python --force",
                        [this] { return cmdImageBuild(); });
  build->add_option("image", name_, "The image's recipe name")->required();
  build->add_flag("--force", image_.force, "A new version even when the recipe is unchanged");
  build->add_option("--timeout", image_.timeout, "Give up waiting after this long")
      ->capture_default_str();
  auto* ils = command(image, "ls", "List image versions and recipes not built yet",
                      "  qabox image ls", [this] { return cmdImageList(); });
  ils->alias("list");
  auto* irm = command(image, "rm", "Delete image versions no environment uses (or one version)",
                      "  qabox image rm busybox\n  qabox image rm busybox --version 2",
                      [this] { return cmdImageRemove(); });
  irm->alias("delete");
  irm->add_option("image", name_, "The image name")->required();
  irm->add_option("--version", image_.version, "Only this version (default: every unused one)");
}

void Cli::defineHostCommands() {
  command(&app_, "status",
          "Show the host: environments, capacity, addresses, disk, memory, agent version",
          "  qabox status", [this] { return cmdStatus(); });
  command(
      &app_, "check", "Check the host against the agent's invariants: what has no owner (ops)",
      "  qabox check\n  qabox check -o json | jq -r '.violations[] | .kind + \" \" + .name'",
      [this] { return cmdCheck(); },
      "The agent compares its store with the host: every container under its lxcpath has\n"
      "a row, every row its container (or a state that says why not: FAILED \"is gone\",\n"
      "BROKEN), every lease a live row and no address two; and no mount under the state\n"
      "dir, veth on the bridge, firewall binding, route, logs/ or layers/ directory, image\n"
      "version, work/ leftover or lxc.payload/lxc.monitor cgroup is without an owner; no\n"
      "journal entry is open longer than the calls in flight. What a call in flight is\n"
      "making is its own. Exit 0: none; 8: some, one row each (KIND NAME WHAT). The agent\n"
      "stopped: qaboxd --config FILE --check reads the same offline.");

  command(
      &app_, "hosts", "List the hosts of the cluster with their state, capacity and images",
      "  qabox hosts\n  qabox hosts -o json | jq -r '.hosts[] | select(.state==\"DOWN\") "
      "| .name'",
      [this] { return cmdHosts(); },
      "UP: its agent keeps its lease in etcd; DRAINING: up, and takes no new tickets;\n"
      "DOWN: its lease expired, and the tickets it owned are LOST until deployed again\n"
      "(a new deploy places them on a live host). A host not in a cluster lists itself.");
  auto* host = command(&app_, "host", "Administer a host of the cluster: drain, undrain",
                       "  qabox host drain qa-2");
  host->require_subcommand(1);
  auto* drain =
      command(host, "drain", "Stop placing new tickets on a host; what it holds goes on (ops)",
              "  qabox host drain qa-2", [this] { return cmdDrain(true); });
  drain->add_option("name", name_, "The host, as qabox hosts names it")->required();
  auto* undrain = command(host, "undrain", "Place new tickets on a drained host again (ops)",
                          "  qabox host undrain qa-2", [this] { return cmdDrain(false); });
  undrain->add_option("name", name_, "The host, as qabox hosts names it")->required();

  auto* events =
      command(&app_, "events", "The audit log: who did what, newest first",
              "  qabox events\n  qabox events EXMP-113 --limit 20", [this] { return cmdEvents(); });
  events->add_option("ticket", ticket_, "Only this ticket");
  events->add_option("--limit", events_.limit, "At most N events")->capture_default_str();
}

void Cli::defineTokenCommands() {
  auto* token = command(
      &app_, "token", "API tokens: create, list, revoke",
      "  qabox token create --role ci --name jenkins --ttl 90d", nullptr,
      "Roles: ci (deploy, redeploy, get, list, logs, delete, sleep, wake), reaper (reap,\n"
      "list), ops (everything), and for people who test: viewer (get, list, logs; signs in\n"
      "to the dashboard and opens previews behind a login) and qa (viewer, and redeploy,\n"
      "wake, sleep, pin). Status and events are readable with any token.\n"
      "A person signs in to the dashboard by pasting their token once per browser.");
  token->require_subcommand(1);
  auto* create =
      command(token, "create", "Create a token. The secret is printed once, on stdout; store it",
              "  qabox token create --role ci --name jenkins --ttl 90d",
              [this] { return cmdTokenCreate(); });
  create
      ->add_option("--role", tokenCmd_.role,
                   "ci, reaper, ops, viewer (reads, opens previews) or qa (viewer + redeploy, "
                   "wake, sleep, pin)")
      ->required()
      ->check(CLI::IsMember({"ci", "reaper", "ops", "viewer", "qa"}));
  create->add_option("--name", tokenCmd_.name, "A name to know it by, as jenkins")->required();
  create->add_option("--ttl", tokenCmd_.ttl, "Expire after this long, as 90d (default: never)");
  auto* tls = command(token, "ls", "List tokens (never their secrets).", "  qabox token ls",
                      [this] { return cmdTokenList(); });
  tls->alias("list");
  auto* revoke = command(token, "revoke", "Revoke a token; it stops working at once",
                         "  qabox token revoke jenkins", [this] { return cmdTokenRevoke(); });
  revoke->add_option("token", name_, "The token's name")->required();
}

void Cli::defineCliCommands() {
  command(&app_, "version", "Print the CLI's version and, if reachable, the agent's",
          "  qabox version", [this] { return cmdVersion(); });

  auto* completion = command(&app_, "completion", "Print a shell completion script",
                             "  source <(qabox completion bash)");
  completion->require_subcommand(1);
  command(completion, "bash",
          "Print the bash completion script. Tickets are completed by asking the agent",
          "  source <(qabox completion bash)\n"
          "  qabox completion bash > /etc/bash_completion.d/qabox",
          [this] { return cmdCompletion(); });
}

}  // namespace qabox::cli
