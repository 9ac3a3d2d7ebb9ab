// One process's life in qabox-init: waiting, started, ready checks, setup,
// ready, exit, backoff, restart.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "init/app_env.h"
#include "init/clock.h"
#include "init/spawn.h"
#include "init/supervisor.h"
#include "init/users.h"

namespace qabox::init {
namespace {

using supervise::ProcState;
using supervise::Stage;

constexpr size_t kMaxEnvBytes = 1 << 20;
constexpr size_t kMaxUserDbBytes = 4 << 20;
constexpr size_t kMaxAppRunBytes = 1 << 20;

std::string describeExit(int code) {
  if (code > 128) return "killed by signal " + std::to_string(code - 128);
  return "exited with code " + std::to_string(code);
}

std::string seconds(int64_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

void killGroup(pid_t pgid, int sig) {
  // ESRCH: the group is gone already, which is what was wanted.
  if (pgid > 0 && ::kill(-pgid, sig) != 0 && errno != ESRCH) {
    ::kill(pgid, sig);  // not a group leader after all (it never got to setsid)
  }
}

Result<std::pair<UniqueFd, UniqueFd>> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return unavailable(std::string("pipe: ") + std::strerror(errno));
  UniqueFd r(fds[0]), w(fds[1]);
  if (::fcntl(r.get(), F_SETFL, O_NONBLOCK) != 0) {
    return internalError(std::string("pipe: ") + std::strerror(errno));
  }
  return std::make_pair(std::move(r), std::move(w));
}

}  // namespace

bool Supervisor::appRunExists() {
  if (appRun_) return true;
  const int64_t now = monoMs();
  if (now < nextAppRunCheck_) return false;
  nextAppRunCheck_ = now + t_.appRunPollMs;
  struct stat st {};
  appRun_ = ::stat(o_.paths("/etc/qabox/app.run").c_str(), &st) == 0;
  if (appRun_) note("app.run exists: the app's processes may start");
  return appRun_;
}

// Starts each waiting process whose turn has come: every process before it
// is ready, and for the app's processes, app.run exists.
void Supervisor::startEligible() {
  if (stopping_) return;
  for (Proc& p : procs_) {
    if (p.st.state == ProcState::kWaiting) {
      if (p.def.stage == Stage::kApp && !appRunExists()) {
        setState(p, ProcState::kWaiting, "waiting for /etc/qabox/app.run");
        return;
      }
      spawnMain(p);
      if (p.st.state == ProcState::kStarting) passReadyIfTrivial(p);
    }
    if (p.st.state != ProcState::kReady) {
      for (Proc& later : procs_) {
        if (&later > &p && later.st.state == ProcState::kWaiting)
          setState(later, ProcState::kWaiting, "waiting for " + p.def.name + " to be ready");
      }
      return;
    }
  }
}

void Supervisor::passReadyIfTrivial(Proc& p) {
  if (p.def.ready.empty() && p.def.setup.empty()) passReady(p);
}

void Supervisor::timers() {
  const int64_t now = monoMs();
  for (Proc& p : procs_) {
    if (p.check != 0 && !p.checkKilled && now >= p.checkDeadline) {
      killGroup(p.check, SIGKILL);
      p.checkKilled = true;
    }
    if (p.setup != 0 && now >= p.setupDeadline) {
      note(p.def.name + ": setup still running after " + seconds(t_.setupTimeoutMs) + ": killed");
      killGroup(p.setup, SIGKILL);
      p.setupDeadline = now + t_.killGraceMs;
    }
    if (stopping_) {
      if (p.st.state == ProcState::kStopping) stopTimer(p, now);
      continue;
    }
    if (p.st.state == ProcState::kStarting && p.check == 0 && p.setup == 0 && now >= p.nextCheck)
      startCheck(p);
    if (p.st.state == ProcState::kBackoff && now >= p.restartAt) {
      spawnMain(p);
      if (p.st.state == ProcState::kStarting) passReadyIfTrivial(p);
    }
  }
}

void Supervisor::stopTimer(Proc& p, int64_t now) {
  if (!p.killed && now >= p.killAt) {
    note(p.def.name + ": still running " + seconds(p.def.stopTimeoutMs) +
         " after SIGTERM: SIGKILL to its process group");
    killGroup(p.pid, SIGKILL);
    p.killed = true;
    p.killAt = now + t_.killGraceMs;
  } else if (p.killed && now >= p.killAt) {
    note(p.def.name + ": did not exit after SIGKILL; given up on");
    p.pid = 0;
    p.st.pid = 0;
    p.out.reset();
    setState(p, ProcState::kStopped, "did not exit after SIGKILL");
  }
}

Result<std::string> Supervisor::resolveCommand(Proc& p) {
  if (!p.fromAppRun) return p.def.command;
  QABOX_ASSIGN_OR_RETURN(std::string run,
                         readBounded(o_.paths("/etc/qabox/app.run"), kMaxAppRunBytes));
  if (run.find('\0') != std::string::npos) return invalidArgument("app.run holds a NUL byte");
  return run;
}

std::vector<std::string> Supervisor::environment(const std::string& home) {
  auto text = readBounded(o_.paths("/etc/qabox/app.env"), kMaxEnvBytes);
  AppEnv env;
  std::string errors;
  if (text) {
    env = parseAppEnv(*text);
    for (const std::string& e : env.errors) errors += e + "\n";
  } else if (text.status().code() != Code::kNotFound) {
    errors = "app.env: " + text.status().message() + "; no variable of it is given\n";
  }
  if (errors != lastEnvErrors_) {
    lastEnvErrors_ = errors;
    if (!errors.empty()) note(errors.substr(0, errors.size() - 1));
  }
  return processEnvironment(env, home);
}

// Without supervise.json, app.log keeps to the cap the agent gives the
// busybox init: QABOX_LOG_MAX in app.env.
uint64_t Supervisor::appEnvLogMax(uint64_t fallback) {
  auto text = readBounded(o_.paths("/etc/qabox/app.env"), kMaxEnvBytes);
  if (!text) return fallback;
  uint64_t max = fallback;
  for (const auto& [k, v] : parseAppEnv(*text).vars) {
    if (k != "QABOX_LOG_MAX") continue;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), max);
    if (ec != std::errc() || end != v.data() + v.size()) max = fallback;
  }
  return max;
}

void Supervisor::openLog(Proc& p) {
  if (p.log.isOpen() || !logDir_) return;
  Status s = p.log.open(logDir_.get(), p.def.name + ".log", logMax_);
  if (!s.isOk() && s.message() != p.logError) {
    p.logError = s.message();
    note(s.message() + "; " + p.def.name + "'s output is dropped");
  }
}

Result<UserIds> Supervisor::userFor(const std::string& name) {
  auto passwd = readBounded(o_.paths("/etc/passwd"), kMaxUserDbBytes);
  auto group = readBounded(o_.paths("/etc/group"), kMaxUserDbBytes);
  if (!passwd && !(passwd.status().code() == Code::kNotFound && name.empty()))
    return passwd.status();
  return lookupUser(passwd ? *passwd : "", group ? *group : "", name);
}

Result<pid_t> Supervisor::spawnAs(const std::string& command, const std::string& user,
                                  const std::string& cwd, int outFd) {
  QABOX_ASSIGN_OR_RETURN(UserIds u, userFor(user));
  SpawnSpec spec;
  spec.command = command;
  spec.env = environment(u.home);
  if (!user.empty()) spec.user = u;
  spec.cwd = o_.paths(cwd);
  spec.outFd = outFd;
  spec.dieWithInit = !o_.pid1;
  return spawn(spec);
}

void Supervisor::spawnMain(Proc& p) {
  p.failMessage.clear();
  const int64_t now = monoMs();
  p.startedAt = now;
  if (p.spawns++ > 0) ++p.st.restarts;
  openLog(p);
  auto command = resolveCommand(p);
  auto pipe = makePipe();
  Result<pid_t> pid = !command ? Result<pid_t>(command.status())
                      : !pipe  ? Result<pid_t>(pipe.status())
                               : spawnAs(*command, p.def.user, defaultCwd(p), pipe->second.get());
  if (!pid) {
    note(p.def.name + ": could not start: " + pid.status().message());
    p.startedAt = 0;
    return scheduleRestart(p, pid.status().message());
  }
  p.pid = *pid;
  p.st.pid = *pid;
  p.out = std::move(pipe->first);
  p.nextCheck = now + t_.checkFirstMs;
  p.checkInterval = t_.checkFirstMs;
  note("started " + p.def.name + " (pid " + std::to_string(*pid) + ")");
  setState(p, ProcState::kStarting, p.def.ready.empty() ? "" : "waiting for its ready check");
}

std::string Supervisor::defaultCwd(const Proc& p) const {
  if (!p.def.cwd.empty()) return p.def.cwd;
  return p.def.stage == Stage::kService ? "/" : "/srv/app";
}

void Supervisor::startCheck(Proc& p) {
  if (p.def.ready.empty()) return passReady(p);
  auto pid = spawnAs(p.def.ready, "", defaultCwd(p), -1);
  if (!pid) {
    note(p.def.name + ": ready check could not start: " + pid.status().message());
    p.nextCheck = monoMs() + t_.checkMaxMs;
    return;
  }
  p.check = *pid;
  p.checkKilled = false;
  p.checkDeadline = monoMs() + t_.checkTimeoutMs;
}

void Supervisor::passReady(Proc& p) {
  if (p.def.setup.empty()) {
    note(p.def.name + " is ready");
    return setState(p, ProcState::kReady);
  }
  auto pipe = makePipe();
  auto pid = pipe ? spawnAs(p.def.setup, "", defaultCwd(p), pipe->second.get())
                  : Result<pid_t>(pipe.status());
  if (!pid) {
    p.failMessage = "setup could not start: " + pid.status().message();
    killGroup(p.pid, SIGKILL);  // its exit restarts it, and setup with it
    return;
  }
  p.setup = *pid;
  p.setupOut = std::move(pipe->first);
  p.setupDeadline = monoMs() + t_.setupTimeoutMs;
  setState(p, ProcState::kStarting, "running its setup");
}

void Supervisor::onCheckExit(Proc& p, int code) {
  p.check = 0;
  if (p.st.state != ProcState::kStarting || stopping_) return;
  if (code == 0) return passReady(p);
  const int64_t now = monoMs();
  p.nextCheck = now + p.checkInterval;
  p.checkInterval = std::min(p.checkInterval * 2, t_.checkMaxMs);
  setState(p, ProcState::kStarting,
           p.checkKilled ? "ready check timed out after " + seconds(t_.checkTimeoutMs)
                         : "ready check " + describeExit(code));
}

void Supervisor::onSetupExit(Proc& p, int code) {
  p.setup = 0;
  readOutput(p, p.setupOut, true);
  p.setupOut.reset();
  if (p.st.state != ProcState::kStarting || stopping_) return;
  if (code == 0) {
    note(p.def.name + ": setup done; ready");
    return setState(p, ProcState::kReady);
  }
  p.failMessage = "setup " + describeExit(code);
  note(p.def.name + ": " + p.failMessage + "; restarting it");
  killGroup(p.pid, SIGKILL);
}

void Supervisor::killHelpers(Proc& p) {
  // Their exits are reaped as strangers' from here on.
  killGroup(p.check, SIGKILL);
  killGroup(p.setup, SIGKILL);
  p.check = p.setup = 0;
  p.setupOut.reset();
}

void Supervisor::onMainExit(Proc& p, int code) {
  killGroup(p.pid, SIGKILL);  // what is left of its process group
  killHelpers(p);
  readOutput(p, p.out, true);
  p.out.reset();
  p.pid = 0;
  p.st.pid = 0;
  p.st.lastExit = code;
  std::string why = p.failMessage.empty() ? describeExit(code) : p.failMessage;
  note(p.def.name + " " + why);
  if (stopping_) return setState(p, ProcState::kStopped, why);
  scheduleRestart(p, why);
}

void Supervisor::scheduleRestart(Proc& p, const std::string& why) {
  const int64_t now = monoMs();
  if (p.startedAt > 0 && now - p.startedAt >= t_.resetAfterMs) p.backoffMs = t_.backoffMs;
  const int64_t delay = p.backoffMs;
  p.backoffMs = std::min(delay * 2, t_.backoffMaxMs);
  p.restartAt = now + delay;
  setState(p, ProcState::kBackoff, why + "; restarting in " + seconds(delay));
}

}  // namespace qabox::init
