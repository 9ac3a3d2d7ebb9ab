#pragma once

// The `qabox` command as one object, internal to the CLI: the plumbing the
// commands share (cli.cpp), the command tree (command_tree.cpp), the
// environment commands (environment_commands.cpp) and the images, host,
// events, tokens and the CLI's own commands (host_commands.cpp).

#include <google/protobuf/duration.pb.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/format.h"

namespace qabox::cli {

inline constexpr const char* kProgram = "qabox";

// Long operations get their own deadlines; the rest use kUnaryDeadline.
inline constexpr std::chrono::milliseconds kSlowUnaryDeadline{std::chrono::minutes(2)};
inline constexpr std::chrono::milliseconds kReapDeadline{std::chrono::minutes(30)};
inline constexpr std::chrono::milliseconds kVersionDeadline{std::chrono::seconds(5)};

enum class Output { kTable, kJson, kName };

// A mistake in the command line: exit code kExitUsage, with the usage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::chrono::milliseconds durationOrUsage(const std::string& flag, const std::string& text);
google::protobuf::Duration toProtoDuration(std::chrono::milliseconds d);

// KEY=VALUE, or KEY alone to take the value from our own environment so
// secrets need not appear on the command line.
std::map<std::string, std::string> assignments(const std::string& flag,
                                               const std::vector<std::string>& items);

class Cli {
 public:
  Cli(std::ostream& out, std::ostream& err, const RunOptions& options);
  int run(int argc, char** argv);

 private:
  // -- the command tree (command_tree.cpp) ----------------------------------

  // `summary` is one line for the command list; `details` and the example
  // go to the command's own --help.
  CLI::App* command(CLI::App* parent, const std::string& name, const std::string& summary,
                    const std::string& example, std::function<int()> action = nullptr,
                    const std::string& details = "");
  void define();
  void defineDeployCommand();
  void defineRedeployCommand();
  void defineEnvironmentCommands();
  void defineKeepingCommands();
  void defineImageCommands();
  void defineHostCommands();
  void defineTokenCommands();
  void defineCliCommands();

  // -- plumbing (cli.cpp) ---------------------------------------------------

  int usageError(std::string message);
  Output output() const;
  // Connects lazily so --help and usage errors never need an agent or a
  // config file. Returns the exit code when there is no client.
  std::optional<int> connect();
  int fail(const grpc::Status& status) { return client_->report(status, err_); }
  // The message on stdout in the chosen format; `table` is only rendered
  // when asked for.
  int emit(const google::protobuf::Message& message, const std::function<std::string()>& table,
           const std::vector<std::string>& names);
  static TimePoint now() { return std::chrono::system_clock::now(); }

  // -- environments (environment_commands.cpp) ------------------------------

  // What the deploy stream said before it ended.
  struct DeployOutcome {
    std::optional<v1::Environment> final;
    bool failed = false;
    bool sawEvent = false;
  };
  v1::DeployRequest deployRequest() const;
  int cmdDeploy();
  int cmdRedeploy();
  // Follows a deploy's stream (`open` starts it) to its end, for deploy and
  // redeploy alike.
  using DeployStream = std::unique_ptr<grpc::ClientReader<v1::DeployEvent>>;
  int followDeploy(const std::string& ticket,
                   const std::function<DeployStream(grpc::ClientContext*)>& open);
  int deployFinished(const grpc::Status& status, const DeployOutcome& outcome,
                     std::chrono::milliseconds took);
  int emitEnvironmentLine(const v1::Environment& env);
  static v1::GetEnvironmentRequest ticketRequest(const std::string& ticket);
  int cmdList();
  int cmdGet();
  int cmdDelete();
  int cmdLogs();
  int cmdExec();
  int cmdReap();
  int cmdPin(bool pinned);
  int cmdSleep(bool sleep);

  // -- images, host, events, tokens, the CLI itself (host_commands.cpp) -----

  int cmdImageBuild();
  int cmdImageList();
  int cmdImageRemove();
  int cmdStatus();
  int cmdCheck();
  int cmdHosts();
  int cmdDrain(bool drain);
  int cmdEvents();
  int cmdTokenCreate();
  int cmdTokenList();
  int cmdTokenRevoke();
  int cmdVersion();
  int cmdCompletion();

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
  bool listLocal_ = false;  // list: this host's environments only
  struct {
    std::string ticket, image, repo, source, target, ttl, memory, access, host;
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
    std::string process;
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
    bool force = false;
  } image_;
  struct {
    uint32_t limit = 50;
  } events_;
  struct {
    std::string role, name, ttl;
  } tokenCmd_;
};

}  // namespace qabox::cli
