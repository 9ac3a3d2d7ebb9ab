// The event loop of qabox-init: one thread, one poll() over a signalfd
// (SIGCHLD and the stop signals) and the output pipes, waking for the
// nearest timer. Nothing in it blocks: children are reaped with WNOHANG,
// pipes are non-blocking, every wait on a child has a deadline.
#include "init/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>

#include "init/clock.h"

namespace qabox::init {
namespace {

using supervise::ProcState;

constexpr size_t kMaxSuperviseBytes = 1 << 20;
constexpr size_t kMaxProcesses = 64;
constexpr uint64_t kInitLogMax = 1 << 20;
constexpr size_t kMaxMessage = 256;
constexpr int kSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// Only without a signalfd (it could not be made) do the handlers see a
// signal; with one, they are there because PID 1 gets no signal it has no
// handler for.
volatile sig_atomic_t gStopSignal = 0;
void onSignal(int sig) {
  if (sig == SIGTERM || sig == SIGINT || sig == SIGPWR) gStopSignal = 1;
}

int64_t envMs(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  return end != nullptr && *end == '\0' && n >= 0 ? n : fallback;
}

int exitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 0;
}

}  // namespace

Timings Timings::fromEnv() {
  Timings t;
  t.backoffMs = envMs("QABOX_INIT_BACKOFF_MS", t.backoffMs);
  t.backoffMaxMs = envMs("QABOX_INIT_BACKOFF_MAX_MS", t.backoffMaxMs);
  t.resetAfterMs = envMs("QABOX_INIT_RESET_MS", t.resetAfterMs);
  t.checkTimeoutMs = envMs("QABOX_INIT_CHECK_TIMEOUT_MS", t.checkTimeoutMs);
  t.setupTimeoutMs = envMs("QABOX_INIT_SETUP_TIMEOUT_MS", t.setupTimeoutMs);
  t.killGraceMs = envMs("QABOX_INIT_KILL_GRACE_MS", t.killGraceMs);
  return t;
}

Supervisor::Supervisor(InitOptions options) : o_(std::move(options)), t_(o_.timings) {}

int Supervisor::run() {
  prepare();
  if (!waitForClaim()) {
    note("stopped before a deploy claimed this pooled container");
    return 0;
  }
  load();
  while (true) {
    try {
      iterate();
      if (stopping_ && advanceStop()) break;
    } catch (const std::exception& e) {  // bad_alloc: PID 1 goes on
      note(std::string("error: ") + e.what());
    }
  }
  flushStatus();
  note("every process stopped; exiting");
  return 0;
}

void Supervisor::prepare() {
  bootMs_ = wallMs();
  ::umask(022);  // what the processes' files get, whatever started init
  // 0, 1 and 2 open, so no pipe of ours lands there.
  int fd = ::open("/dev/null", O_RDWR);
  while (fd >= 0 && fd < 3) fd = ::open("/dev/null", O_RDWR);
  if (fd >= 3) ::close(fd);
  const std::string signalError = prepareSignals();
  auto logDir = openDir(o_.paths(supervise::kLogDir));
  if (logDir) {
    logDir_ = std::move(*logDir);
    if (Status s = initLog_.open(logDir_.get(), "init.log", kInitLogMax); !s.isOk()) {
      note("init.log: " + s.message());
    }
  } else {
    note(logDir.status().message());
  }
  auto runDir = openDir(o_.paths("/run/qabox"));
  if (runDir) {
    runDir_ = std::move(*runDir);
  } else {
    note(runDir.status().message());
  }
  if (!signalError.empty()) note(signalError);
  note("qabox-init started (pid " + std::to_string(::getpid()) + ")");
}

// What went wrong, or "".
std::string Supervisor::prepareSignals() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  for (int sig : kSignals) {
    sigaddset(&set, sig);
    ::sigaction(sig, &sa, nullptr);
  }
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  std::string error;
  signals_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signals_) {
    error = std::string("signalfd: ") + std::strerror(errno) + "; polling for exits instead";
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  }
  if (!o_.pid1 && ::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    error +=
        std::string(error.empty() ? "" : "; ") + "PR_SET_CHILD_SUBREAPER: " + std::strerror(errno);
  }
  return error;
}

bool Supervisor::waitForClaim() {
  const std::string marker = o_.paths(supervise::kPooledFile);
  bool waited = false;
  while (::access(marker.c_str(), F_OK) == 0) {
    if (!waited) note("pooled: waiting for a deploy to claim this container");
    waited = true;
    pollfd p{signals_.get(), POLLIN, 0};
    ::poll(&p, signals_ ? 1 : 0, static_cast<int>(t_.appRunPollMs));
    bool stop = gStopSignal != 0;
    signalfd_siginfo si{};
    while (signals_ && ::read(signals_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      const int sig = static_cast<int>(si.ssi_signo);
      stop = stop || sig == SIGTERM || sig == SIGINT || sig == SIGPWR;
    }
    int status = 0;
    while (::waitpid(-1, &status, WNOHANG) > 0) {
    }
    if (stop) return false;
  }
  if (waited) note("claimed by a deploy");
  return true;
}

void Supervisor::load() {
  const std::string path = o_.paths(supervise::kSuperviseFile);
  auto text = readBounded(path, kMaxSuperviseBytes);
  if (!text && text.status().code() == Code::kNotFound) {
    note("no supervise.json: /etc/qabox/app.run runs as process app once it exists");
    Proc p;
    p.def.name = "app";
    p.fromAppRun = true;
    procs_.push_back(std::move(p));
    logMax_ = appEnvLogMax(logMax_);
  } else if (!text) {
    note("supervise.json: " + text.status().message() + "; nothing is supervised");
  } else if (auto f = supervise::parseSuperviseFile(*text); !f) {
    note(f.status().message() + "; nothing is supervised");
  } else if (f->processes.size() > kMaxProcesses) {
    note("supervise.json: processes: more than " + std::to_string(kMaxProcesses) +
         "; nothing is supervised");
  } else {
    logMax_ = f->logMax;
    for (supervise::ProcessDef& d : f->processes) {
      if (d.name == "init") {
        note("supervise.json: a process named init (init.log is qabox-init's own): skipped");
        continue;
      }
      Proc p;
      p.def = std::move(d);
      procs_.push_back(std::move(p));
    }
  }
  for (Proc& p : procs_) {
    p.st.name = p.def.name;
    p.backoffMs = t_.backoffMs;
    setState(p, ProcState::kWaiting);
  }
  note("supervising " + std::to_string(procs_.size()) + " processes");
}

void Supervisor::iterate() {
  startEligible();
  timers();
  flushStatus();
  if (stopping_ && stopIndex_ < 0) return;
  std::vector<pollfd> fds;
  std::vector<std::pair<Proc*, UniqueFd*>> owners;
  fds.push_back({signals_.get(), POLLIN, 0});
  owners.emplace_back(nullptr, nullptr);
  for (Proc& p : procs_) {
    for (UniqueFd* fd : {&p.out, &p.setupOut}) {
      if (!*fd) continue;
      fds.push_back({fd->get(), POLLIN, 0});
      owners.emplace_back(&p, fd);
    }
  }
  int n = ::poll(fds.data(), fds.size(), signals_ ? pollTimeout() : std::min(pollTimeout(), 50));
  if (!signals_) {
    reap();
    if (gStopSignal) beginStop();
  }
  if (n < 0 && errno != EINTR) note(std::string("poll: ") + std::strerror(errno));
  if (n <= 0) return;
  for (size_t i = 1; i < fds.size(); ++i) {
    if (fds[i].revents != 0) readOutput(*owners[i].first, *owners[i].second, false);
  }
  if (fds[0].revents != 0) handleSignals();
}

int Supervisor::pollTimeout() {
  const int64_t now = monoMs();
  int64_t wake = now + 1000;
  auto soon = [&](int64_t at) {
    if (at > 0) wake = std::min(wake, at);
  };
  for (const Proc& p : procs_) {
    if (p.check != 0 && !p.checkKilled) soon(p.checkDeadline);
    if (p.setup != 0) soon(p.setupDeadline);
    if (p.st.state == ProcState::kStarting && p.check == 0 && p.setup == 0 && !stopping_)
      soon(p.nextCheck);
    if (p.st.state == ProcState::kBackoff && !stopping_) soon(p.restartAt);
    if (p.st.state == ProcState::kStopping) soon(p.killAt);
    if (p.st.state == ProcState::kWaiting && p.def.stage == supervise::Stage::kApp && !appRun_)
      soon(std::max(nextAppRunCheck_, now + t_.appRunPollMs));
  }
  return static_cast<int>(std::clamp<int64_t>(wake - now, 0, 1000));
}

void Supervisor::handleSignals() {
  signalfd_siginfo si{};
  bool child = false;
  while (::read(signals_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    const int sig = static_cast<int>(si.ssi_signo);
    if (sig == SIGCHLD) {
      child = true;
    } else if (sig == SIGTERM || sig == SIGINT || sig == SIGPWR) {
      note(std::string("signal ") + strsignal(sig) + ": stopping");
      beginStop();
    } else {
      note(std::string("signal ") + strsignal(sig) + ": ignored");
    }
  }
  if (child) reap();
}

void Supervisor::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    const int code = exitCode(status);
    for (Proc& p : procs_) {
      if (pid == p.pid) {
        onMainExit(p, code);
      } else if (pid == p.check) {
        onCheckExit(p, code);
      } else if (pid == p.setup) {
        onSetupExit(p, code);
      } else {
        continue;
      }
      break;
    }
  }
}

void Supervisor::readOutput(Proc& p, UniqueFd& fd, bool drain) {
  static char buf[65536];
  for (int round = 0; fd && round < (drain ? 64 : 1); ++round) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      fd.reset();
      return;
    }
    if (!p.log.isOpen()) continue;  // refused or unwritable: said once, dropped
    Status s = p.log.write(std::string_view(buf, static_cast<size_t>(n)));
    if (!s.isOk() && s.message() != p.logError) {
      p.logError = s.message();
      note(p.def.name + ".log: " + s.message() + "; output is lost until it can be written");
    } else if (s.isOk()) {
      p.logError.clear();
    }
  }
}

void Supervisor::beginStop() {
  if (stopping_) return;
  stopping_ = true;
  stopIndex_ = static_cast<int>(procs_.size()) - 1;
}

// Stops the processes one at a time, last first; true once all have.
bool Supervisor::advanceStop() {
  const int64_t now = monoMs();
  while (stopIndex_ >= 0) {
    Proc& p = procs_[static_cast<size_t>(stopIndex_)];
    if (p.pid == 0) {
      killHelpers(p);
      if (p.st.state != ProcState::kStopped) setState(p, ProcState::kStopped, p.st.message);
      --stopIndex_;
      continue;
    }
    if (p.st.state != ProcState::kStopping) {
      killHelpers(p);
      if (::kill(-p.pid, SIGTERM) != 0) note("SIGTERM " + p.def.name + ": " + std::strerror(errno));
      p.killAt = now + p.def.stopTimeoutMs;
      p.killed = false;
      setState(p, ProcState::kStopping);
      note("stopping " + p.def.name + " (SIGTERM to its process group)");
    }
    return false;
  }
  return true;
}

void Supervisor::setState(Proc& p, ProcState state, std::string message) {
  // status.json stays well under what the agent reads (kMaxStatusBytes):
  // a message may quote supervise.json's strings.
  if (message.size() > kMaxMessage) message.resize(kMaxMessage);
  if (p.st.state == state && p.st.message == message && p.st.sinceMs != 0) return;
  if (p.st.state != state || p.st.sinceMs == 0) p.st.sinceMs = wallMs();
  p.st.state = state;
  p.st.message = std::move(message);
  dirty_ = true;
}

void Supervisor::flushStatus() {
  if (!dirty_) return;
  dirty_ = false;
  supervise::InitStatus s;
  s.bootMs = bootMs_;
  for (const Proc& p : procs_) s.processes.push_back(p.st);
  Status w = runDir_ ? replaceFile(runDir_.get(), "status.json", supervise::toJson(s), 0644)
                     : failedPrecondition("/run/qabox could not be opened");
  if (!w.isOk() && w.message() != lastStatusError_) note("status.json: " + w.message());
  lastStatusError_ = w.isOk() ? "" : w.message();
}

void Supervisor::note(const std::string& line) {
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ ", &tm);
  std::string text = stamp + line + "\n";
  if (initLog_.isOpen() && initLog_.write(text).isOk()) return;
  if (::write(2, text.data(), text.size()) < 0) return;  // no console either: nothing to do
}

}  // namespace qabox::init
