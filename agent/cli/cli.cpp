#include "cli/cli.h"

#include <google/protobuf/util/time_util.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "cli/client.h"
#include "cli/completion.h"
#include "cli/endpoint.h"
#include "cli/exit_code.h"
#include "cli/format.h"
#include "cli/progress.h"
#include "core/duration.h"

namespace qabox::cli {
namespace {

using google::protobuf::util::TimeUtil;
using std::chrono::milliseconds;

constexpr const char* kProgram = "qabox";

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

// Long operations get their own deadlines; the rest use kUnaryDeadline.
constexpr milliseconds kSlowUnaryDeadline{std::chrono::minutes(2)};
constexpr milliseconds kReapDeadline{std::chrono::minutes(30)};
constexpr milliseconds kVersionDeadline{std::chrono::seconds(5)};

enum class Output { kTable, kJson, kName };

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::chrono::milliseconds durationOrUsage(const std::string& flag, const std::string& text) {
  auto d = parseDuration(text);
  if (!d) throw UsageError(flag + ": " + d.status().message());
  return *d;
}

google::protobuf::Duration toProtoDuration(milliseconds d) {
  return TimeUtil::MillisecondsToDuration(d.count());
}

// KEY=VALUE, or KEY alone to take the value from our own environment so
// secrets need not appear on the command line.
std::map<std::string, std::string> assignments(const std::string& flag,
                                               const std::vector<std::string>& items) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    if (key.empty()) throw UsageError(flag + " \"" + item + "\": give KEY=VALUE");
    if (eq != std::string::npos) {
      out[key] = item.substr(eq + 1);
      continue;
    }
    const char* value = std::getenv(key.c_str());
    if (value == nullptr) {
      throw UsageError(flag + " " + key + ": give KEY=VALUE, or set " + key +
                       " in the environment");
    }
    out[key] = value;
  }
  return out;
}

std::string commandPath(const CLI::App* app) {
  std::string path;
  for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
    std::string name = a->get_parent() == nullptr ? std::string(kProgram) : a->get_name();
    path = path.empty() ? name : name + " " + path;
  }
  return path;
}

class Cli {
 public:
  Cli(std::ostream& out, std::ostream& err, const RunOptions& options)
      : out_(out), err_(err), options_(options) {
    const char* noColor = std::getenv("NO_COLOR");
    bool colorAllowed = noColor == nullptr || noColor[0] == '\0';
    outStyle_.color = colorAllowed && options.stdoutIsTerminal;
    errStyle_.color = colorAllowed && options.stderrIsTerminal;
    define();
  }

  int run(int argc, char** argv) {
    try {
      app_.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app_.exit(e, out_, err_);
      return usageError(e.what());
    }
    for (const auto& [app, action] : actions_) {
      if (!app->parsed()) continue;
      try {
        return action();
      } catch (const UsageError& e) {
        return usageError(e.what());
      } catch (const std::exception& e) {
        err_ << "qabox: " << e.what() << "\n";
        return kExitError;
      }
    }
    return usageError("a command is required");
  }

 private:
  // -- the command tree -----------------------------------------------------

  // `summary` is one line for the command list; `details` and the example
  // go to the command's own --help.
  CLI::App* command(CLI::App* parent, const std::string& name, const std::string& summary,
                    const std::string& example, std::function<int()> action = nullptr,
                    const std::string& details = "") {
    CLI::App* sub = parent->add_subcommand(name, summary);
    std::string footer;
    if (!details.empty()) footer += details + "\n\n";
    if (!example.empty()) footer += "Example:\n" + example + "\n\n";
    footer += kGlobalHelp;
    sub->footer(footer);
    if (action) actions_.emplace_back(sub, std::move(action));
    return sub;
  }

  void define() {
    app_.name(kProgram);
    app_.description("qabox: per-pull-request QA environments on this host's agent (qaboxd)");
    // Subcommands inherit this: options they do not know go to their
    // parent, so global options work before and after the command.
    app_.fallthrough();
    app_.require_subcommand(1);
    app_.add_option("--endpoint", endpoint_,
                    "The agent: unix:///path, host:port, https://host:port");
    app_.add_option("-o,--output", output_, "Output: table, json or name")
        ->check(CLI::IsMember({"table", "json", "name"}));
    app_.add_option("--token", token_, "Bearer token (or QABOX_TOKEN)");
    app_.add_option("--ca-cert", caCert_, "CA certificate for a TLS endpoint (or QABOX_CA_CERT)");
    app_.add_option("--cert", cert_, "Client certificate for mutual TLS (or QABOX_CERT)");
    app_.add_option("--key", key_, "The client certificate's key (or QABOX_KEY)");

    defineEnvironmentCommands();
    defineOtherCommands();
    app_.footer(std::string(kMainFooter) + kExitCodeHelp);
  }

  void defineEnvironmentCommands() {
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
    deploy->add_flag("--force", deploy_.force, "Redeploy even when the merge result is unchanged");
    deploy->add_flag("--wait,!--no-wait", deploy_.wait,
                     "Wait until ready (default), or return once the agent started");
    deploy->add_option("--timeout", deploy_.timeout, "Give up waiting after this long")
        ->capture_default_str();

    auto* list = command(&app_, "list", "List the environments on this host",
                         "  qabox list\n  qabox ls -o name", [this] { return cmdList(); });
    list->alias("ls");

    auto* get =
        command(&app_, "get", "Show an environment and its last 10 events",
                "  qabox get EXMP-113\n  qabox get EXMP-113 -o json", [this] { return cmdGet(); });
    get->add_option("ticket", ticket_, "The ticket")->required();

    auto* del = command(&app_, "delete", "Delete an environment: its container, address and route",
                        "  qabox delete EXMP-113", [this] { return cmdDelete(); });
    del->alias("rm");
    del->add_option("ticket", ticket_, "The ticket")->required();

    auto* logs = command(&app_, "logs", "Print the app's log, or the last deploy's hook output",
                         "  qabox logs EXMP-113 -f --tail 100\n  qabox logs EXMP-113 --deploy",
                         [this] { return cmdLogs(); });
    logs->add_option("ticket", ticket_, "The ticket")->required();
    logs->add_flag("--deploy", logs_.deploy, "The last deploy's hook output");
    logs->add_flag("-f,--follow", logs_.follow, "Keep printing new output");
    logs->add_option("--tail", logs_.tail, "Start with the last N lines (0: all)");

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
    exec->add_flag("-i,--stdin", exec_.sendStdin,
                   "Send our stdin (read to its end) to the command");
    exec->add_option("--timeout", exec_.timeout,
                     "Kill the command after this long (agent default: 10m)");

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
    auto* wake = command(&app_, "wake", "Start a sleeping environment again",
                         "  qabox wake EXMP-113", [this] { return cmdSleep(false); });
    wake->add_option("ticket", ticket_, "The ticket")->required();
  }

  void defineOtherCommands() {
    auto* image = command(&app_, "image", "Base images: build, list, delete",
                          "  qabox image ls\n  qabox image build busybox");
    image->require_subcommand(1);
    auto* build = command(image, "build", "Build a new version of a base image from its recipe",
                          "  qabox image build busybox", [this] { return cmdImageBuild(); });
    build->add_option("image", name_, "The image's recipe name")->required();
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

    command(&app_, "status",
            "Show the host: environments, capacity, addresses, disk, memory, agent version",
            "  qabox status", [this] { return cmdStatus(); });

    auto* events = command(&app_, "events", "The audit log: who did what, newest first",
                           "  qabox events\n  qabox events EXMP-113 --limit 20",
                           [this] { return cmdEvents(); });
    events->add_option("ticket", ticket_, "Only this ticket");
    events->add_option("--limit", events_.limit, "At most N events")->capture_default_str();

    auto* token =
        command(&app_, "token", "API tokens: create, list, revoke",
                "  qabox token create --role ci --name jenkins --ttl 90d", nullptr,
                "Roles: ci (deploy, get, list, logs, delete, sleep, wake), reaper (reap, list),\n"
                "ops (everything). Status and events are readable with any token.");
    token->require_subcommand(1);
    auto* create =
        command(token, "create", "Create a token. The secret is printed once, on stdout; store it",
                "  qabox token create --role ci --name jenkins --ttl 90d",
                [this] { return cmdTokenCreate(); });
    create->add_option("--role", tokenCmd_.role, "ci, reaper or ops")
        ->required()
        ->check(CLI::IsMember({"ci", "reaper", "ops"}));
    create->add_option("--name", tokenCmd_.name, "A name to know it by, as jenkins")->required();
    create->add_option("--ttl", tokenCmd_.ttl, "Expire after this long, as 90d (default: never)");
    auto* tls = command(token, "ls", "List tokens (never their secrets).", "  qabox token ls",
                        [this] { return cmdTokenList(); });
    tls->alias("list");
    auto* revoke = command(token, "revoke", "Revoke a token; it stops working at once",
                           "  qabox token revoke jenkins", [this] { return cmdTokenRevoke(); });
    revoke->add_option("token", name_, "The token's name")->required();

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

  // -- plumbing -------------------------------------------------------------

  int usageError(std::string message) {
    CLI::App* leaf = &app_;
    while (!leaf->get_subcommands().empty()) leaf = leaf->get_subcommands().front();
    std::string path = commandPath(leaf);
    if (leaf->get_require_subcommand_min() > 0 && leaf->get_subcommands().empty()) {
      // Unknown words fall through to the top, so look there too.
      auto remaining = app_.remaining(true);
      auto word = std::find_if(remaining.begin(), remaining.end(),
                               [](const std::string& w) { return !w.empty() && w[0] != '-'; });
      message =
          word == remaining.end() ? "a command is required" : "unknown command \"" + *word + "\"";
    }
    if (leaf->get_name() == "exec" && message.find("not expected") != std::string::npos) {
      message += " (put -- before the command)";
    }
    err_ << "qabox: " << message << "\n"
         << CLI::Formatter().make_usage(leaf, path) << "Run '" << path << " --help' for more.\n";
    return kExitUsage;
  }

  Output output() const {
    if (output_ == "json") return Output::kJson;
    if (output_ == "name") return Output::kName;
    return Output::kTable;
  }

  // Connects lazily so --help and usage errors never need an agent or a
  // config file. Returns the exit code when there is no client.
  std::optional<int> connect() {
    if (client_) return std::nullopt;
    ConnectionFlags flags;
    if (!endpoint_.empty()) flags.endpoint = endpoint_;
    if (!token_.empty()) flags.token = token_;
    if (!caCert_.empty()) flags.caCert = caCert_;
    if (!cert_.empty()) flags.cert = cert_;
    if (!key_.empty()) flags.key = key_;
    auto conn = resolveConnectionFromProcess(flags);
    if (!conn) {
      err_ << "qabox: " << conn.status().message() << "\n";
      return kExitError;
    }
    auto client = Client::create(std::move(conn).value());
    if (!client) {
      err_ << "qabox: " << client.status().message() << "\n";
      return kExitError;
    }
    client_ = std::move(client).value();
    return std::nullopt;
  }

  int fail(const grpc::Status& status) { return client_->report(status, err_); }

  // The message on stdout in the chosen format; `table` is only rendered
  // when asked for.
  int emit(const google::protobuf::Message& message, const std::function<std::string()>& table,
           const std::vector<std::string>& names) {
    switch (output()) {
      case Output::kJson: out_ << toJson(message) << "\n"; break;
      case Output::kName:
        for (const auto& n : names) out_ << n << "\n";
        break;
      case Output::kTable: out_ << table(); break;
    }
    out_.flush();
    return kExitOk;
  }

  static TimePoint now() { return std::chrono::system_clock::now(); }

  // -- environments ---------------------------------------------------------

  int cmdDeploy() {
    v1::DeployRequest req;
    req.set_ticket(deploy_.ticket);
    req.set_image(deploy_.image);
    req.set_repo(deploy_.repo);
    req.set_source_branch(deploy_.source);
    req.set_target_branch(deploy_.target);
    for (const auto& [k, v] : assignments("--env", deploy_.env)) (*req.mutable_env())[k] = v;
    for (const auto& [k, v] : assignments("--secret", deploy_.secrets)) {
      (*req.mutable_secrets())[k] = v;
    }
    req.set_force(deploy_.force);
    if (!deploy_.memory.empty() || deploy_.cpus || deploy_.pids) {
      req.mutable_limits()->set_memory(deploy_.memory);
      req.mutable_limits()->set_cpus(deploy_.cpus);
      req.mutable_limits()->set_pids(deploy_.pids);
    }
    if (!deploy_.ttl.empty()) {
      milliseconds ttl = durationOrUsage("--ttl", deploy_.ttl);
      if (ttl.count() <= 0) throw UsageError("--ttl: must be positive, as 48h");
      *req.mutable_ttl() = toProtoDuration(ttl);
    }
    milliseconds timeout = durationOrUsage("--timeout", deploy_.timeout);
    if (timeout.count() <= 0) throw UsageError("--timeout: must be positive, as 10m");
    if (auto rc = connect()) return *rc;

    auto ctx = client_->context(timeout);
    auto reader = client_->stub().Deploy(ctx.get(), req);
    auto progress = makeDeployProgress(err_, options_.stderrIsTerminal, errStyle_, req.ticket());
    auto started = std::chrono::steady_clock::now();
    std::optional<v1::Environment> final;
    bool finalFailed = false;
    bool sawEvent = false;
    v1::DeployEvent event;
    while (reader->Read(&event)) {
      sawEvent = true;
      if (event.has_environment()) {
        final = event.environment();
        finalFailed = event.phase() == "failed";
      } else {
        progress->phase(event);
      }
      if (!deploy_.wait) break;
    }
    if (!deploy_.wait && sawEvent && !final) {
      // The agent finishes a deploy whose caller went away, so leaving now
      // does not abandon it.
      ctx->TryCancel();
      (void)reader->Finish();
      progress->finish();
      auto getCtx = client_->context();
      v1::Environment env;
      grpc::Status s =
          client_->stub().GetEnvironment(getCtx.get(), ticketRequest(req.ticket()), &env);
      if (!s.ok()) return fail(s);
      return emitEnvironmentLine(env);
    }
    grpc::Status status = reader->Finish();
    progress->finish();
    if (!status.ok()) {
      // Without wait_for_ready an absent agent fails fast with UNAVAILABLE,
      // so a deadline here means the agent took the deploy and is still on it.
      if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        err_ << "qabox: gave up waiting after " << deploy_.timeout
             << "; the deploy goes on in the agent: follow it with qabox get " << req.ticket()
             << "\n";
        return kExitUnavailable;
      }
      return fail(status);
    }
    if (!final) {
      err_ << "qabox: the agent ended the deploy without reporting the environment\n";
      return kExitError;
    }
    auto took =
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
    if (final->state() == v1::Environment::FAILED || finalFailed) {
      emitEnvironmentLine(*final);
      err_ << "qabox: deploy of " << final->ticket() << " failed";
      if (!final->message().empty()) err_ << ": " << final->message();
      err_ << "\nqabox: see the hook output with: qabox logs " << final->ticket() << " --deploy\n";
      return kExitDeployFailed;
    }
    if (output() == Output::kTable) err_ << "deployed in " << elapsed(took) << "\n";
    return emitEnvironmentLine(*final);
  }

  int emitEnvironmentLine(const v1::Environment& env) {
    return emit(env,
                [&] {
                  std::string line =
                      cleanCell(env.ticket()) + " " + coloredState(env.state(), outStyle_);
                  if (!env.url().empty()) line += " " + cleanCell(env.url());
                  if (!env.commit().empty()) line += " (commit " + shortCommit(env.commit()) + ")";
                  if (env.pinned()) line += " pinned";
                  return line + "\n";
                },
                {env.ticket()});
  }

  static v1::GetEnvironmentRequest ticketRequest(const std::string& ticket) {
    v1::GetEnvironmentRequest req;
    req.set_ticket(ticket);
    return req;
  }

  int cmdList() {
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context();
    v1::ListEnvironmentsResponse resp;
    grpc::Status s = client_->stub().ListEnvironments(ctx.get(), {}, &resp);
    if (!s.ok()) return fail(s);
    std::vector<std::string> names;
    for (const auto& e : resp.environments()) names.push_back(e.ticket());
    return emit(
        resp, [&] { return formatEnvironmentTable(resp, now(), outStyle_); }, names);
  }

  int cmdGet() {
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context();
    v1::Environment env;
    grpc::Status s = client_->stub().GetEnvironment(ctx.get(), ticketRequest(ticket_), &env);
    if (!s.ok()) return fail(s);
    if (output() != Output::kTable) return emit(env, nullptr, {env.ticket()});
    v1::ListEventsRequest evReq;
    evReq.set_ticket(env.ticket());
    evReq.set_limit(10);
    v1::ListEventsResponse events;
    auto evCtx = client_->context();
    grpc::Status es = client_->stub().ListEvents(evCtx.get(), evReq, &events);
    if (!es.ok()) err_ << "qabox: events not shown: " << es.error_message() << "\n";
    out_ << formatEnvironment(env, es.ok() ? &events : nullptr, now(), outStyle_);
    out_.flush();
    return kExitOk;
  }

  int cmdDelete() {
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context(kSlowUnaryDeadline);
    v1::DeleteEnvironmentRequest req;
    req.set_ticket(ticket_);
    v1::DeleteEnvironmentResponse resp;
    grpc::Status s = client_->stub().DeleteEnvironment(ctx.get(), req, &resp);
    if (!s.ok()) return fail(s);
    std::string ticket = resp.ticket().empty() ? ticket_ : resp.ticket();
    return emit(resp, [&] { return cleanCell(ticket) + " deleted\n"; }, {ticket});
  }

  int cmdLogs() {
    if (auto rc = connect()) return *rc;
    v1::StreamLogsRequest req;
    req.set_ticket(ticket_);
    req.set_deploy(logs_.deploy);
    req.set_follow(logs_.follow);
    req.set_tail(logs_.tail);
    // No deadline: a followed log streams until interrupted.
    auto ctx = client_->context(std::nullopt);
    auto reader = client_->stub().StreamLogs(ctx.get(), req);
    v1::LogChunk chunk;
    while (reader->Read(&chunk)) {
      if (output() == Output::kJson) {
        out_ << toJson(chunk) << "\n";
      } else {
        out_.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
      }
      out_.flush();
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return fail(s);
    return kExitOk;
  }

  int cmdExec() {
    v1::ExecRequest req;
    req.set_ticket(ticket_);
    for (const auto& a : exec_.argv) req.add_argv(a);
    for (const auto& [k, v] : assignments("--env", exec_.env)) (*req.mutable_env())[k] = v;
    std::optional<milliseconds> deadline;
    if (!exec_.timeout.empty()) {
      milliseconds t = durationOrUsage("--timeout", exec_.timeout);
      if (t.count() <= 0) throw UsageError("--timeout: must be positive, as 10m");
      *req.mutable_timeout() = toProtoDuration(t);
      // The agent enforces the timeout; ours only covers an agent that hangs.
      deadline = t + std::chrono::seconds(30);
    }
    if (exec_.sendStdin && options_.in != nullptr) {
      std::ostringstream data;
      data << options_.in->rdbuf();
      req.set_stdin(data.str());
    }
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context(deadline);
    auto reader = client_->stub().Exec(ctx.get(), req);
    std::optional<int> exitCode;
    v1::ExecOutput output;
    while (reader->Read(&output)) {
      if (this->output() == Output::kJson) {
        out_ << toJson(output) << "\n";
        out_.flush();
      } else {
        if (!output.stdout().empty()) {
          out_.write(output.stdout().data(), static_cast<std::streamsize>(output.stdout().size()));
          out_.flush();
        }
        if (!output.stderr().empty()) {
          err_.write(output.stderr().data(), static_cast<std::streamsize>(output.stderr().size()));
          err_.flush();
        }
      }
      if (output.exited()) exitCode = output.exit_code();
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return fail(s);
    if (!exitCode) {
      err_ << "qabox: the agent ended exec without the command's exit code\n";
      return kExitError;
    }
    return *exitCode;
  }

  int cmdReap() {
    if (auto rc = connect()) return *rc;
    v1::ReapRequest req;
    req.set_dry_run(reap_.dryRun);
    req.set_policy(reap_.policy);
    auto ctx = client_->context(kReapDeadline);
    v1::ReapResponse resp;
    grpc::Status s = client_->stub().Reap(ctx.get(), req, &resp);
    if (!s.ok()) return fail(s);
    for (const auto& w : resp.warnings()) err_ << "qabox: warning: " << w << "\n";
    std::vector<std::string> names;
    for (const auto& r : resp.reclaimed()) names.push_back(r.ticket());
    return emit(
        resp, [&] { return formatReap(resp); }, names);
  }

  int cmdPin(bool pinned) {
    if (auto rc = connect()) return *rc;
    v1::SetPinnedRequest req;
    req.set_ticket(ticket_);
    req.set_pinned(pinned);
    auto ctx = client_->context();
    v1::Environment env;
    grpc::Status s = client_->stub().SetPinned(ctx.get(), req, &env);
    if (!s.ok()) return fail(s);
    return emit(
        env, [&] { return cleanCell(env.ticket()) + (env.pinned() ? " pinned\n" : " unpinned\n"); },
        {env.ticket()});
  }

  int cmdSleep(bool sleep) {
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context(kSlowUnaryDeadline);
    v1::Environment env;
    grpc::Status s;
    if (sleep) {
      v1::SleepEnvironmentRequest req;
      req.set_ticket(ticket_);
      s = client_->stub().SleepEnvironment(ctx.get(), req, &env);
    } else {
      v1::WakeEnvironmentRequest req;
      req.set_ticket(ticket_);
      s = client_->stub().WakeEnvironment(ctx.get(), req, &env);
    }
    if (!s.ok()) return fail(s);
    return emitEnvironmentLine(env);
  }

  // -- images, host, events, tokens -----------------------------------------

  int cmdImageBuild() {
    milliseconds timeout = durationOrUsage("--timeout", image_.timeout);
    if (timeout.count() <= 0) throw UsageError("--timeout: must be positive, as 30m");
    if (auto rc = connect()) return *rc;
    v1::BuildImageRequest req;
    req.set_name(name_);
    auto ctx = client_->context(timeout);
    err_ << "building " << name_ << "...\n";
    v1::Image im;
    grpc::Status s = client_->stub().BuildImage(ctx.get(), req, &im);
    if (!s.ok()) return fail(s);
    return emit(im,
                [&] {
                  return cleanCell(im.name()) + " version " + std::to_string(im.version()) +
                         " built" + (im.current() ? ", now current" : "") + "\n";
                },
                {im.name()});
  }

  int cmdImageList() {
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context();
    v1::ListImagesResponse resp;
    grpc::Status s = client_->stub().ListImages(ctx.get(), {}, &resp);
    if (!s.ok()) return fail(s);
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const auto& im : resp.images()) {
      if (seen.insert(im.name()).second) names.push_back(im.name());
    }
    for (const auto& r : resp.recipes()) {
      if (seen.insert(r).second) names.push_back(r);
    }
    return emit(
        resp, [&] { return formatImagesTable(resp, now()); }, names);
  }

  int cmdImageRemove() {
    if (auto rc = connect()) return *rc;
    v1::DeleteImageRequest req;
    req.set_name(name_);
    req.set_version(image_.version);
    auto ctx = client_->context(kSlowUnaryDeadline);
    v1::DeleteImageResponse resp;
    grpc::Status s = client_->stub().DeleteImage(ctx.get(), req, &resp);
    if (!s.ok()) return fail(s);
    std::vector<std::string> names;
    for (const auto& im : resp.deleted()) {
      names.push_back(im.name() + ":" + std::to_string(im.version()));
    }
    return emit(
        resp,
        [&] {
          if (names.empty())
            return std::string("Nothing deleted: every version is in use or current\n");
          std::string text;
          for (const auto& n : names) text += "deleted " + cleanCell(n) + "\n";
          return text;
        },
        names);
  }

  int cmdStatus() {
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context();
    v1::HostStatus status;
    grpc::Status s = client_->stub().GetHostStatus(ctx.get(), {}, &status);
    if (!s.ok()) return fail(s);
    if (output() == Output::kName) {
      out_ << formatHostStatus(status);
      return kExitOk;
    }
    return emit(status, [&] { return formatHostStatus(status); }, {});
  }

  int cmdEvents() {
    if (auto rc = connect()) return *rc;
    v1::ListEventsRequest req;
    req.set_ticket(ticket_);
    req.set_limit(events_.limit);
    auto ctx = client_->context();
    v1::ListEventsResponse resp;
    grpc::Status s = client_->stub().ListEvents(ctx.get(), req, &resp);
    if (!s.ok()) return fail(s);
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const auto& e : resp.events()) {
      if (!e.ticket().empty() && seen.insert(e.ticket()).second) names.push_back(e.ticket());
    }
    return emit(
        resp, [&] { return formatEventsTable(resp, now()); }, names);
  }

  int cmdTokenCreate() {
    v1::CreateTokenRequest req;
    req.set_name(tokenCmd_.name);
    req.set_role(tokenCmd_.role);
    if (!tokenCmd_.ttl.empty()) {
      milliseconds ttl = durationOrUsage("--ttl", tokenCmd_.ttl);
      if (ttl.count() <= 0) throw UsageError("--ttl: must be positive, as 90d");
      *req.mutable_ttl() = toProtoDuration(ttl);
    }
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context();
    v1::CreateTokenResponse resp;
    grpc::Status s = client_->stub().CreateToken(ctx.get(), req, &resp);
    if (!s.ok()) return fail(s);
    if (output() == Output::kTable) {
      // The secret alone on stdout, so TOKEN=$(qabox token create ...) works.
      err_ << "token " << resp.token().name() << " (" << resp.token().role()
           << ") created; the secret below is shown only once\n";
    }
    return emit(resp, [&] { return resp.secret() + "\n"; }, {resp.token().name()});
  }

  int cmdTokenList() {
    if (auto rc = connect()) return *rc;
    auto ctx = client_->context();
    v1::ListTokensResponse resp;
    grpc::Status s = client_->stub().ListTokens(ctx.get(), {}, &resp);
    if (!s.ok()) return fail(s);
    std::vector<std::string> names;
    for (const auto& t : resp.tokens()) names.push_back(t.name());
    return emit(
        resp, [&] { return formatTokensTable(resp, now()); }, names);
  }

  int cmdTokenRevoke() {
    if (auto rc = connect()) return *rc;
    v1::RevokeTokenRequest req;
    req.set_name(name_);
    auto ctx = client_->context();
    v1::RevokeTokenResponse resp;
    grpc::Status s = client_->stub().RevokeToken(ctx.get(), req, &resp);
    if (!s.ok()) return fail(s);
    std::string name = resp.token().name().empty() ? name_ : resp.token().name();
    return emit(resp, [&] { return "token " + cleanCell(name) + " revoked\n"; }, {name});
  }

  // -- the CLI itself -------------------------------------------------------

  int cmdVersion() {
    std::string agentVersion;
    std::string problem;
    if (auto rc = connect()) {
      problem = "agent version unknown";
    } else {
      auto ctx = client_->context(kVersionDeadline);
      v1::HostStatus status;
      grpc::Status s = client_->stub().GetHostStatus(ctx.get(), {}, &status);
      if (s.ok()) {
        agentVersion = status.version();
      } else {
        std::ostringstream msg;
        client_->report(s, msg);
        problem = msg.str();
      }
    }
    if (!problem.empty() && output() != Output::kJson) {
      err_ << (problem.back() == '\n' ? problem : problem + "\n");
    }
    if (output() == Output::kJson) {
      // Not a proto message: the CLI's own version has no RPC.
      out_ << "{\"client_version\":\"" << QABOX_VERSION << "\",\"agent_version\":\""
           << jsonEscape(agentVersion) << "\"}\n";
    } else {
      out_ << "qabox " << QABOX_VERSION << "\n";
      if (!agentVersion.empty()) {
        out_ << "qaboxd " << cleanCell(agentVersion) << " at " << client_->connection().endpoint
             << "\n";
      }
    }
    return kExitOk;
  }

  static std::string jsonEscape(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += c;
      }
    }
    return out;
  }

  int cmdCompletion() {
    out_ << bashCompletion(app_, kProgram,
                           {{"--output", "table json name"},
                            {"--policy", "merged idle ttl max_age"},
                            {"--role", "ci reaper ops"},
                            {"--ca-cert", "@file"},
                            {"--cert", "@file"},
                            {"--key", "@file"}});
    return kExitOk;
  }

  std::ostream& out_;
  std::ostream& err_;
  RunOptions options_;
  Style outStyle_;
  Style errStyle_;
  CLI::App app_;
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions_;
  std::unique_ptr<Client> client_;

  std::string endpoint_;
  std::string output_ = "table";
  std::string token_;
  std::string caCert_;
  std::string cert_;
  std::string key_;

  std::string ticket_;
  std::string name_;
  struct {
    std::string ticket, image, repo, source, target, ttl, memory;
    uint32_t cpus = 0, pids = 0;
    std::string timeout = "10m";
    std::vector<std::string> env, secrets;
    bool force = false;
    bool wait = true;
  } deploy_;
  struct {
    bool deploy = false;
    bool follow = false;
    uint32_t tail = 0;
  } logs_;
  struct {
    std::vector<std::string> argv, env;
    std::string timeout;
    bool sendStdin = false;
  } exec_;
  struct {
    bool dryRun = false;
    std::string policy;
  } reap_;
  struct {
    std::string timeout = "30m";
    uint32_t version = 0;
  } image_;
  struct {
    uint32_t limit = 50;
  } events_;
  struct {
    std::string role, name, ttl;
  } tokenCmd_;
};

}  // namespace

int runCli(int argc, char** argv, std::ostream& out, std::ostream& err, const RunOptions& options) {
  try {
    Cli cli(out, err, options);
    return cli.run(argc, argv);
  } catch (const std::exception& e) {
    err << "qabox: " << e.what() << "\n";
    return kExitError;
  }
}

int runCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  return runCli(argc, argv, out, err, RunOptions{});
}

}  // namespace qabox::cli
