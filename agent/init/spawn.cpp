#include "init/spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace qabox::init {
namespace {

constexpr int kChildFailed = 127;

// Only async-signal-safe calls from here on: the child of a fork.
[[noreturn]] void die(const char* what) {
  const char* why = std::strerror(errno);
  const char* parts[] = {"qabox-init: ", what, ": ", why, "\n"};
  for (const char* p : parts) {
    if (::write(2, p, std::strlen(p)) < 0) break;  // nowhere else to say it
  }
  ::_exit(kChildFailed);
}

void closeFrom3() {
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
  long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); ++fd)
    ::close(static_cast<int>(fd));
}

void resetSignals() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // KILL/STOP refuse: fine
}

[[noreturn]] void child(const SpawnSpec& s, char* const argv[], char* const envp[]) {
  resetSignals();
  if (::setsid() < 0) die("setsid");
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) die("opening /dev/null");
  int out = s.outFd >= 0 ? s.outFd : null;
  if (::dup2(null, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) die("dup2");
  closeFrom3();
  if (::chdir(s.cwd.c_str()) != 0) die(("chdir " + s.cwd).c_str());
  if (s.user) {
    const UserIds& u = *s.user;
    bool same = u.uid == ::geteuid() && u.gid == ::getegid();
    if (!same && ::setgroups(u.groups.size(), u.groups.data()) != 0) die("setgroups");
    if (::setgid(u.gid) != 0) die("setgid");
    if (::setuid(u.uid) != 0) die("setuid");
  }
  if (s.dieWithInit) ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a test's init may be killed
  ::execve("/bin/sh", argv, envp);
  die("exec /bin/sh");
}

}  // namespace

Result<pid_t> spawn(const SpawnSpec& spec) {
  // Everything the child needs is made before the fork.
  std::string sh = "sh", dashC = "-c", command = spec.command;
  char* argv[] = {sh.data(), dashC.data(), command.data(), nullptr};
  std::vector<std::string> env = spec.env;
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return unavailable(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) child(spec, argv, envp.data());
  return pid;
}

}  // namespace qabox::init
