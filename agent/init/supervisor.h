#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "init/contract.h"
#include "init/files.h"
#include "init/log_sink.h"
#include "init/users.h"
#include "sys/fd.h"

namespace qabox::init {

// Every delay qabox-init waits, in ms. The defaults are a container's; tests
// set shorter ones through QABOX_INIT_* variables (see fromEnv).
struct Timings {
  int64_t backoffMs = 1000;         // the first restart's delay, doubling...
  int64_t backoffMaxMs = 30000;     // ...up to this
  int64_t resetAfterMs = 10000;     // a run this long starts the doubling again
  int64_t checkFirstMs = 10;        // the first ready check, doubling...
  int64_t checkMaxMs = 200;         // ...up to this between checks
  int64_t checkTimeoutMs = 5000;    // a ready check still running then is killed
  int64_t setupTimeoutMs = 120000;  // likewise a setup
  int64_t appRunPollMs = 10;        // how often app.run is looked for
  int64_t killGraceMs = 5000;       // after SIGKILL, how long a stop waits for the exit
  static Timings fromEnv();
};

struct InitOptions {
  Paths paths;
  Timings timings;
  bool pid1 = true;
};

// One supervised process and what init is doing about it.
struct Proc {
  supervise::ProcessDef def;
  bool fromAppRun = false;  // no supervise.json: the command is app.run's content
  supervise::ProcessStatus st;
  pid_t pid = 0;  // also its process group's id
  int64_t startedAt = 0;
  uint32_t spawns = 0;
  UniqueFd out;  // its output, read into `log`
  LogSink log;
  std::string logError;  // the last problem with the log, said once
  std::string failMessage;
  int64_t backoffMs = 0;
  int64_t restartAt = 0;
  // Ready check and setup, each in a process group of its own.
  pid_t check = 0;
  int64_t checkDeadline = 0;
  bool checkKilled = false;
  int64_t nextCheck = 0;
  int64_t checkInterval = 0;
  pid_t setup = 0;
  int64_t setupDeadline = 0;
  UniqueFd setupOut;
  // Stopping.
  int64_t killAt = 0;
  bool killed = false;
};

class Supervisor {
 public:
  explicit Supervisor(InitOptions options);
  // Until a stop signal has stopped everything; the exit code.
  int run();

 private:
  void prepare();
  std::string prepareSignals();
  // False when a stop signal came before a deploy claimed the container.
  bool waitForClaim();
  void load();
  void iterate();
  int pollTimeout();
  void handleSignals();
  void reap();
  void readOutput(Proc& p, UniqueFd& fd, bool drain);

  void startEligible();
  bool appRunExists();
  void timers();
  void stopTimer(Proc& p, int64_t now);
  void passReadyIfTrivial(Proc& p);
  Result<UserIds> userFor(const std::string& name);
  Result<pid_t> spawnAs(const std::string& command, const std::string& user, const std::string& cwd,
                        int outFd);
  std::string defaultCwd(const Proc& p) const;
  void spawnMain(Proc& p);
  void startCheck(Proc& p);
  void passReady(Proc& p);
  void onMainExit(Proc& p, int code);
  void onCheckExit(Proc& p, int code);
  void onSetupExit(Proc& p, int code);
  void scheduleRestart(Proc& p, const std::string& why);
  void killHelpers(Proc& p);
  void beginStop();
  bool advanceStop();

  std::vector<std::string> environment(const std::string& home);
  Result<std::string> resolveCommand(Proc& p);
  void openLog(Proc& p);
  uint64_t appEnvLogMax(uint64_t fallback);
  void setState(Proc& p, supervise::ProcState state, std::string message = "");
  void flushStatus();
  void note(const std::string& line);

  InitOptions o_;
  const Timings& t_;
  std::vector<Proc> procs_;
  uint64_t logMax_ = supervise::SuperviseFile{}.logMax;
  UniqueFd signals_;
  UniqueFd logDir_;
  UniqueFd runDir_;
  LogSink initLog_;
  int64_t bootMs_ = 0;
  bool appRun_ = false;
  int64_t nextAppRunCheck_ = 0;
  bool stopping_ = false;
  int stopIndex_ = -1;
  bool dirty_ = true;
  std::string lastEnvErrors_;
  std::string lastStatusError_;
};

}  // namespace qabox::init
