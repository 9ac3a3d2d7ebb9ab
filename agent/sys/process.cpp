#include "sys/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

extern char** environ;

namespace qabox {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

void appendCapped(std::string& buf, std::string_view data, size_t cap) {
  buf.append(data);
  if (buf.size() > cap) buf.erase(0, buf.size() - cap);
}

// The child's stdin, stdout and stderr: the end it gets, and ours.
struct Pipes {
  Fd inR, inW, outR, outW, errR, errW;
};

Status openPipes(Pipes& p) {
  for (auto [r, w] :
       {std::pair{&p.inR, &p.inW}, std::pair{&p.outR, &p.outW}, std::pair{&p.errR, &p.errW}}) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return internalError(std::string("pipe: ") + strerror(errno));
    r->fd = fds[0];
    w->fd = fds[1];
  }
  return Status::ok();
}

thread_local bool tIdleSpawns = false;
// Nice 19 rather than SCHED_IDLE: a task at SCHED_IDLE that takes a lock of
// the kernel's (moving a new container's init into its cgroup takes the one
// every fork on the host waits for) can sit on it for as long as the host
// is busy; at nice 19 it still gets its share, a small one.
constexpr int kIdleNice = 19;

// posix_spawnp with the pipes as stdio, nothing else inherited, in a process
// group of its own; the child's pid, or why it could not start.
Result<pid_t> spawn(const ProcessSpec& spec, const Pipes& p) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int setup = spec.stdinFile.empty()
                  ? posix_spawn_file_actions_adddup2(&actions, p.inR.fd, 0)
                  : posix_spawn_file_actions_addopen(&actions, 0, spec.stdinFile.c_str(),
                                                     O_RDONLY | O_NOFOLLOW, 0);
  if (setup == 0) setup = posix_spawn_file_actions_adddup2(&actions, p.outW.fd, 1);
  if (setup == 0) setup = posix_spawn_file_actions_adddup2(&actions, p.errW.fd, 2);
  // Nothing else crosses exec: not a socket, pipe or file of the agent's
  // that some library opened without close-on-exec (Asio's listeners were).
  if (setup == 0) setup = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (setup == 0 && spec.cwd) {
    setup = posix_spawn_file_actions_addchdir_np(&actions, spec.cwd->c_str());
  }
  if (setup != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return internalError("cannot start " + spec.argv[0] + ": " + strerror(setup));
  }

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A fresh process group, so a timeout kills the whole tree, and default
  // signal handling whatever the daemon blocked.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> envStrings;
  std::vector<char*> envp;
  char** envArg = environ;
  if (spec.env) {
    for (const auto& [k, v] : *spec.env) envStrings.push_back(k + "=" + v);
    for (auto& s : envStrings) envp.push_back(s.data());
    envp.push_back(nullptr);
    envArg = envp.data();
  }

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envArg);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return failedPrecondition("cannot start " + spec.argv[0] + ": " + strerror(rc));
  }
  if (tIdleSpawns) {
    // posix_spawn takes no priority; set at once, while the child is still
    // being loaded, before it can have started anything of its own.
    setpriority(PRIO_PROCESS, static_cast<id_t>(pid), kIdleNice);
  }
  return pid;
}

// Feeds the child its stdin and collects its output until it closes both
// output pipes, or kills its process group at the deadline.
class Pump {
 public:
  Pump(const ProcessSpec& spec, Pipes& p, ProcessResult& result)
      : spec_(spec), p_(p), result_(result) {}

  void run(pid_t pid) {
    if (spec_.stdinData.empty() || !spec_.stdinFile.empty()) p_.inW.close();
    fcntl(p_.inW.fd, F_SETFL, O_NONBLOCK);
    auto deadline = std::chrono::steady_clock::now() + spec_.timeout;
    while (p_.outR.fd >= 0 || p_.errR.fd >= 0) {
      int n = 0;
      outIdx_ = errIdx_ = inIdx_ = -1;
      if (p_.outR.fd >= 0) add(p_.outR.fd, POLLIN, outIdx_, n);
      if (p_.errR.fd >= 0) add(p_.errR.fd, POLLIN, errIdx_, n);
      if (p_.inW.fd >= 0) add(p_.inW.fd, POLLOUT, inIdx_, n);
      int waitMs = -1;
      if (spec_.timeout.count() > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          result_.timedOut = true;
          kill(-pid, SIGKILL);
          break;
        }
        waitMs = static_cast<int>(left.count());
      }
      int pr = poll(fds_, static_cast<nfds_t>(n), waitMs);
      if (pr < 0 && errno == EINTR) continue;
      if (pr < 0) break;
      drain(outIdx_, p_.outR, false);
      drain(errIdx_, p_.errR, true);
      feed();
    }
    p_.inW.close();
  }

 private:
  void add(int fd, short events, int& idx, int& n) {
    fds_[n] = {fd, events, 0};
    idx = n++;
  }

  void drain(int idx, Fd& fd, bool isErr) {
    if (idx < 0 || !(fds_[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
    ssize_t r = read(fd.fd, buf_, sizeof buf_);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) return;
      fd.close();
      return;
    }
    std::string_view data(buf_, static_cast<size_t>(r));
    appendCapped(isErr ? result_.err : result_.out, data, spec_.maxCapture);
    if (spec_.onOutput) spec_.onOutput(isErr, data);
  }

  void feed() {
    if (inIdx_ < 0 || !(fds_[inIdx_].revents & (POLLOUT | POLLERR | POLLHUP))) return;
    const std::string& data = spec_.stdinData;
    ssize_t w = write(p_.inW.fd, data.data() + inOff_, data.size() - inOff_);
    if (w > 0) inOff_ += static_cast<size_t>(w);
    if (w < 0 && errno != EAGAIN && errno != EINTR) p_.inW.close();
    if (inOff_ >= data.size()) p_.inW.close();
  }

  const ProcessSpec& spec_;
  Pipes& p_;
  ProcessResult& result_;
  pollfd fds_[3] = {};
  int outIdx_ = -1, errIdx_ = -1, inIdx_ = -1;
  size_t inOff_ = 0;
  char buf_[16384];
};

}  // namespace

IdleSpawns::IdleSpawns() : was_(tIdleSpawns) { tIdleSpawns = true; }
IdleSpawns::~IdleSpawns() { tIdleSpawns = was_; }

std::string lastLines(std::string_view text, size_t lines) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  size_t pos = text.size();
  for (size_t n = 0; n < lines; ++n) {
    size_t nl = pos == 0 ? std::string_view::npos : text.rfind('\n', pos - 1);
    if (nl == std::string_view::npos) return std::string(text);
    pos = nl;
  }
  return std::string(text.substr(pos + 1));
}

Result<ProcessResult> RealProcessRunner::run(const ProcessSpec& spec) {
  if (spec.argv.empty()) return invalidArgument("process: empty argument vector");
  Pipes pipes;
  QABOX_RETURN_IF_ERROR(openPipes(pipes));
  auto pid = spawn(spec, pipes);
  if (!pid) return pid.status();
  pipes.inR.close();
  pipes.outW.close();
  pipes.errW.close();

  ProcessResult result;
  Pump(spec, pipes, result).run(*pid);
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exitCode = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (result.timedOut) result.exitCode = -1;
  return result;
}

}  // namespace qabox
