#include "sys/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

}  // namespace

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
  int inPipe[2], outPipe[2], errPipe[2];
  if (pipe2(inPipe, O_CLOEXEC) != 0) return internalError(std::string("pipe: ") + strerror(errno));
  Fd inR{inPipe[0]}, inW{inPipe[1]};
  if (pipe2(outPipe, O_CLOEXEC) != 0) return internalError(std::string("pipe: ") + strerror(errno));
  Fd outR{outPipe[0]}, outW{outPipe[1]};
  if (pipe2(errPipe, O_CLOEXEC) != 0) return internalError(std::string("pipe: ") + strerror(errno));
  Fd errR{errPipe[0]}, errW{errPipe[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, inR.fd, 0);
  posix_spawn_file_actions_adddup2(&actions, outW.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, errW.fd, 2);
  // Nothing else crosses exec: not a socket, pipe or file of the agent's
  // that some library opened without close-on-exec (Asio's listeners were).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (spec.cwd) posix_spawn_file_actions_addchdir_np(&actions, spec.cwd->c_str());

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
  inR.close();
  outW.close();
  errW.close();

  ProcessResult result;
  size_t inOff = 0;
  if (spec.stdinData.empty()) inW.close();
  fcntl(inW.fd, F_SETFL, O_NONBLOCK);
  auto deadline = std::chrono::steady_clock::now() + spec.timeout;
  char buf[16384];
  while (outR.fd >= 0 || errR.fd >= 0) {
    pollfd fds[3];
    int n = 0;
    int outIdx = -1, errIdx = -1, inIdx = -1;
    if (outR.fd >= 0) {
      fds[n] = {outR.fd, POLLIN, 0};
      outIdx = n++;
    }
    if (errR.fd >= 0) {
      fds[n] = {errR.fd, POLLIN, 0};
      errIdx = n++;
    }
    if (inW.fd >= 0) {
      fds[n] = {inW.fd, POLLOUT, 0};
      inIdx = n++;
    }
    int waitMs = -1;
    if (spec.timeout.count() > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        result.timedOut = true;
        kill(-pid, SIGKILL);
        break;
      }
      waitMs = static_cast<int>(left.count());
    }
    int pr = poll(fds, n, waitMs);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) break;
    auto drain = [&](int idx, Fd& fd, bool isErr) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t r = read(fd.fd, buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) return;
        fd.close();
        return;
      }
      std::string_view data(buf, static_cast<size_t>(r));
      appendCapped(isErr ? result.err : result.out, data, spec.maxCapture);
      if (spec.onOutput) spec.onOutput(isErr, data);
    };
    drain(outIdx, outR, false);
    drain(errIdx, errR, true);
    if (inIdx >= 0 && (fds[inIdx].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(inW.fd, spec.stdinData.data() + inOff, spec.stdinData.size() - inOff);
      if (w > 0) inOff += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) inW.close();
      if (inOff >= spec.stdinData.size()) inW.close();
    }
  }
  inW.close();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
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
