// The real qabox-init, with real processes, on a scratch root.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "init_fixture.h"

namespace qabox::test {
namespace {

using supervise::ProcState;
using supervise::Stage;
using namespace std::chrono_literals;

class Supervisor : public InitFixture {
 protected:
  std::string mark(const std::string& name) const { return path("/" + name); }
};

TEST_F(Supervisor, SecondServiceStartsOnlyOnceTheFirstIsReady) {
  // a's process runs at once; it is ready 300 ms later, when A exists.
  auto a = proc("a", Stage::kService, "sleep 0.3; touch " + mark("A") + "; exec sleep 100",
                "test -f " + mark("A"));
  auto b = proc("b", Stage::kService,
                "if [ -f " + mark("A") + " ]; then echo yes; else echo no; fi >" + mark("B") +
                    "; exec sleep 100");
  supervise({a, b});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("a", ProcState::kStarting); }));
  EXPECT_TRUE(inState("b", ProcState::kWaiting));
  EXPECT_NE(proc("b")->message.find("waiting for a"), std::string::npos) << proc("b")->message;
  ASSERT_TRUE(waitFor([&] { return inState("b", ProcState::kReady); }));
  EXPECT_TRUE(waitFor([&] { return slurp(mark("B")) == "yes\n"; })) << slurp(mark("B"));
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, SetupRunsAsRootAfterReadyBeforeItCounts) {
  auto a = proc("a", Stage::kService, "exec sleep 100", "true");
  a.setup = "sleep 0.3; echo setup says $GREETING; touch " + mark("SETUP");
  auto b =
      proc("b", Stage::kService,
           "test -f " + mark("SETUP") + " && echo after-setup >" + mark("B") + "; exec sleep 100");
  supervise({a, b});
  write("/etc/qabox/app.env", "GREETING='hello there'\n");
  start();
  ASSERT_TRUE(waitFor([&] {
    auto p = proc("a");
    return p && p->state == ProcState::kStarting && p->message == "running its setup";
  }));
  EXPECT_TRUE(inState("b", ProcState::kWaiting));
  ASSERT_TRUE(waitFor([&] { return inState("b", ProcState::kReady); }));
  EXPECT_TRUE(waitFor([&] { return slurp(mark("B")) == "after-setup\n"; }));
  EXPECT_NE(log("a").find("setup says hello there"), std::string::npos) << log("a");
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, FailingSetupRestartsTheProcess) {
  auto a = proc("a", Stage::kService, "exec sleep 100", "true");
  a.setup = "echo nope; exit 3";
  supervise({a});
  start();
  ASSERT_TRUE(waitFor([&] {
    auto p = proc("a");
    return p && p->restarts >= 1;
  }));
  EXPECT_NE(initLog().find("a: setup exited with code 3"), std::string::npos) << initLog();
  EXPECT_FALSE(inState("a", ProcState::kReady));
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, AppStageWaitsForAppRunAndEveryService) {
  auto s = proc("svc", Stage::kService, "exec sleep 100", "test -f " + mark("SVC"));
  auto web = proc("web", Stage::kApp, "pwd >" + mark("WEB") + "; exec sleep 100");
  auto worker = proc("worker", Stage::kApp, "touch " + mark("WORKER") + "; exec sleep 100");
  supervise({s, web, worker});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("svc", ProcState::kStarting); }));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(inState("web", ProcState::kWaiting));
  write("/etc/qabox/app.run", "exec sleep 100\n");  // app.run, but svc not ready
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(inState("web", ProcState::kWaiting));
  EXPECT_FALSE(exists("/WEB"));
  write("/SVC", "");
  ASSERT_TRUE(waitFor([&] { return inState("worker", ProcState::kReady); }));
  // The app's default cwd.
  EXPECT_TRUE(waitFor([&] { return slurp(mark("WEB")) == path("/srv/app") + "\n"; }))
      << slurp(mark("WEB"));
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, AppWaitsForAppRunWhenServicesAreReady) {
  supervise({proc("web", Stage::kApp, "exec sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] {
    auto p = proc("web");
    return p && p->message == "waiting for /etc/qabox/app.run";
  }));
  auto before = std::chrono::steady_clock::now();
  write("/etc/qabox/app.run", "");
  ASSERT_TRUE(waitFor([&] { return inState("web", ProcState::kReady); }));
  EXPECT_LT(std::chrono::steady_clock::now() - before, 500ms);
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, KilledProcessRestartsWithBackoffAndIsCounted) {
  supervise({proc("web", Stage::kService, "echo run; exec sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] { return log("web") == "run\n"; }));
  int64_t first = proc("web")->pid;
  ASSERT_EQ(::kill(static_cast<pid_t>(first), SIGKILL), 0);
  ASSERT_TRUE(waitFor([&] { return inState("web", ProcState::kBackoff); }));
  auto p = proc("web");
  EXPECT_EQ(p->lastExit, 137);
  EXPECT_NE(p->message.find("killed by signal 9"), std::string::npos) << p->message;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitFor([&] { return inState("web", ProcState::kReady); }));
  auto firstDelay = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(proc("web")->restarts, 1u);
  EXPECT_NE(proc("web")->pid, first);
  ASSERT_TRUE(waitFor([&] { return log("web") == "run\nrun\n"; }));
  // Again, at once: the delay doubles (100 ms, then 200 ms).
  ASSERT_EQ(::kill(static_cast<pid_t>(proc("web")->pid), SIGKILL), 0);
  t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitFor([&] { return inState("web", ProcState::kBackoff); }));
  ASSERT_TRUE(waitFor([&] { return inState("web", ProcState::kReady); }));
  auto secondDelay = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(secondDelay, 190ms);
  EXPECT_GT(secondDelay, firstDelay);
  EXPECT_EQ(proc("web")->restarts, 2u);
  EXPECT_TRUE(waitFor([&] { return log("web") == "run\nrun\nrun\n"; })) << log("web");
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, ARestartedServiceGoesThroughReadyAndSetupAgain) {
  auto a = proc("a", Stage::kService, "echo run >>" + mark("RUNS") + "; exec sleep 100",
                "grep -q run " + mark("RUNS"));
  a.setup = "echo setup >>" + mark("RUNS");
  supervise({a});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("a", ProcState::kReady); }));
  ASSERT_EQ(::kill(static_cast<pid_t>(proc("a")->pid), SIGKILL), 0);
  ASSERT_TRUE(waitFor([&] {
    auto p = proc("a");
    return p && p->restarts == 1 && p->state == ProcState::kReady;
  }));
  EXPECT_EQ(slurp(mark("RUNS")), "run\nsetup\nrun\nsetup\n");
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, WaitingInitUsesNoCpu) {
  // A service never ready, an app waiting behind it and app.run: init wakes
  // for the checks only.
  supervise({proc("svc", Stage::kService, "exec sleep 100", "false"),
             proc("web", Stage::kApp, "exec sleep 100")});
  write("/etc/qabox/app.run", "");
  start();
  ASSERT_TRUE(waitFor([&] { return inState("svc", ProcState::kStarting); }));
  std::this_thread::sleep_for(1s);
  std::string stat = slurp("/proc/" + std::to_string(pid_) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stol(field);
  }
  EXPECT_LT(ticks, 20) << "utime+stime in clock ticks after a second";
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, AppRunAloneKeepsAppLogUnderQaboxLogMax) {
  write("/etc/qabox/app.env", "QABOX_LOG_MAX='8192'\n");
  write("/etc/qabox/app.run",
        "head -c 100000 /dev/zero | tr '\\0' y; echo; echo DONE; exec sleep 100\n");
  start();
  ASSERT_TRUE(waitFor([&] { return log("app").find("DONE") != std::string::npos; }));
  EXPECT_LE(log("app").size(), 8192u);
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, ExitKillsWhatIsLeftOfTheGroup) {
  // The shell exits; the sleep it left behind in its group must not live on.
  supervise(
      {proc("web", Stage::kService, "sleep 100 & echo $! >" + mark("CHILD") + "; sleep 0.2")});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("web", ProcState::kBackoff); }));
  pid_t child = std::stoi(slurp(mark("CHILD")));
  EXPECT_TRUE(waitFor([&] { return ::kill(child, 0) != 0 && errno == ESRCH; }, 2s));
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, StopsInReverseOrderThenExits) {
  std::vector<supervise::ProcessDef> procs;
  for (const char* n : {"a", "b", "c"}) {
    procs.push_back(proc(n, n[0] == 'c' ? Stage::kApp : Stage::kService,
                         std::string("trap 'echo ") + n + " >>" + mark("ORDER") +
                             "; exit 0' TERM; touch " + mark(n) + "; while :; do sleep 0.05; done",
                         "test -f " + mark(n)));
  }
  supervise(procs);
  write("/etc/qabox/app.run", "");
  start();
  ASSERT_TRUE(waitFor([&] { return inState("c", ProcState::kReady); }));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  EXPECT_EQ(slurp(mark("ORDER")), "c\nb\na\n");
  auto s = status();
  ASSERT_TRUE(s);
  for (const auto& p : s->processes) EXPECT_EQ(p.state, ProcState::kStopped) << p.name;
}

TEST_F(Supervisor, SigkillAfterStopTimeout) {
  auto stubborn = proc("stubborn", Stage::kService,
                       "trap '' TERM; touch " + mark("T") + "; while :; do sleep 0.05; done",
                       "test -f " + mark("T"));
  stubborn.stopTimeoutMs = 400;
  supervise({stubborn});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("stubborn", ProcState::kReady); }));
  pid_t group = static_cast<pid_t>(proc("stubborn")->pid);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(stop(), 0);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 390ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_TRUE(waitFor([&] { return ::kill(-group, 0) != 0 && errno == ESRCH; }, 2s));
  EXPECT_NE(initLog().find("SIGKILL"), std::string::npos);
  EXPECT_EQ(proc("stubborn")->lastExit, 137);
}

TEST_F(Supervisor, EachProcessHasItsOwnCappedLog) {
  auto flood = proc("flood", Stage::kService,
                    "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo END; exec sleep 100");
  auto quiet = proc("quiet", Stage::kService, "echo quiet only; exec sleep 100");
  supervise({flood, quiet}, 64 << 10);
  start();
  ASSERT_TRUE(waitFor([&] { return inState("quiet", ProcState::kReady); }));
  ASSERT_TRUE(waitFor([&] { return log("flood").find("END\n") != std::string::npos; }));
  std::string f = log("flood");
  EXPECT_LE(f.size(), 64u << 10);
  EXPECT_EQ(f.rfind("[qabox: ", 0), 0u);
  EXPECT_NE(f.find("bytes of output dropped here"), std::string::npos);
  EXPECT_EQ(log("quiet"), "quiet only\n");
  struct stat st {};
  ASSERT_EQ(::stat(path("/var/log/qabox/quiet.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, EndlessFloodDoesNotStallInit) {
  auto yes = proc("yes", Stage::kService, "exec yes flooding");
  auto later = proc("later", Stage::kService, "exec sleep 100", "test -f " + mark("L"));
  supervise({yes, later}, 64 << 10);
  start();
  ASSERT_TRUE(waitFor([&] { return inState("later", ProcState::kStarting); }));
  write("/L", "");
  ASSERT_TRUE(waitFor([&] { return inState("later", ProcState::kReady); }, 3s));
  EXPECT_LE(log("yes").size(), 64u << 10);
  EXPECT_EQ(stop(3s), 0);
}

TEST_F(Supervisor, HangingReadyCheckIsKilledAndRetried) {
  supervise({proc("svc", Stage::kService, "exec sleep 100", "sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] {
    auto p = proc("svc");
    return p && p->message.find("ready check timed out") != std::string::npos;
  }));
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, BadSuperviseJsonIsReportedAndInitKeepsRunning) {
  write(supervise::kSuperviseFile,
        "{\"processes\": [{\"name\": \"BAD NAME\", \"command\": \"x\"}]}");
  start();
  ASSERT_TRUE(
      waitFor([&] { return initLog().find("nothing is supervised") != std::string::npos; }));
  EXPECT_NE(initLog().find("processes[0].name"), std::string::npos) << initLog();
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(alive());
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, HugeOrDeepSuperviseJsonNeverCrashes) {
  for (const std::string& text : {std::string(3 << 20, ' '), std::string(1 << 20, '['),
                                  std::string("{\"processes\": 7}"), std::string("\0\xff", 2)}) {
    write(supervise::kSuperviseFile, text);
    start();
    ASSERT_TRUE(waitFor([&] {
      return initLog().find("nothing is supervised") != std::string::npos;
    })) << initLog();
    EXPECT_EQ(stop(), 0);
    std::filesystem::remove(path("/var/log/qabox/init.log"));
  }
}

TEST_F(Supervisor, WithoutSuperviseJsonAppRunRunsAsApp) {
  start();
  ASSERT_TRUE(waitFor([&] { return inState("app", ProcState::kWaiting); }));
  write("/etc/qabox/app.env", "WHO='the app'\n");
  write("/etc/qabox/app.run", "echo hello from $WHO in $(pwd); exec sleep 100\n");
  ASSERT_TRUE(waitFor([&] { return inState("app", ProcState::kReady); }));
  ASSERT_TRUE(waitFor([&] { return !log("app").empty(); }));
  EXPECT_EQ(log("app"), "hello from the app in " + path("/srv/app") + "\n");
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, BadAppEnvLinesAreReportedGoodOnesGiven) {
  write("/etc/qabox/app.env", "A='1'\nthis is not\nB='x'\\''y'\n");
  supervise({proc("p", Stage::kService, "echo \"$A $B\"; exec sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] { return log("p") == "1 x'y\n"; })) << log("p");
  EXPECT_NE(initLog().find("app.env: line 2"), std::string::npos) << initLog();
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, ChildrenGetStdioOnlyAndDevNullIn) {
  supervise({proc("p", Stage::kService, "exec sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("p", ProcState::kReady); }));
  const std::string fds = "/proc/" + std::to_string(proc("p")->pid) + "/fd";
  // Until the shell has exec'd sleep it may hold fds of its own.
  ASSERT_TRUE(waitFor([&] {
    return std::filesystem::read_symlink("/proc/" + std::to_string(proc("p")->pid) + "/exe")
               .filename() == "sleep";
  }));
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(fds)) {
    names.push_back(e.path().filename());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(std::filesystem::read_symlink(fds + "/0"), "/dev/null");
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, OrphansAreReaped) {
  // Each run leaves an orphan that exits: reparented to init, it must not stay a zombie.
  supervise({proc("p", Stage::kService, "(sleep 0.1 &) ; exec sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("p", ProcState::kReady); }));
  std::this_thread::sleep_for(400ms);
  int zombies = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string stat = slurp(e.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 >= stat.size()) continue;
    char state = stat[close + 2];
    int ppid = std::atoi(stat.c_str() + close + 4);
    if (ppid == pid_ && state == 'Z') ++zombies;
  }
  EXPECT_EQ(zombies, 0);
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, SymlinkedLogIsRefused) {
  write("/outside", "untouched");
  std::filesystem::create_directories(path("/var/log/qabox"));
  ASSERT_EQ(::symlink(path("/outside").c_str(), path("/var/log/qabox/web.log").c_str()), 0);
  supervise({proc("web", Stage::kService, "echo planted; exec sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("web", ProcState::kReady); }));
  ASSERT_TRUE(waitFor([&] { return initLog().find("web.log is a symlink") != std::string::npos; }))
      << initLog();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(slurp(path("/outside")), "untouched");
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, RunsAsTheUserOfTheRootsPasswd) {
  ASSERT_EQ(::geteuid(), 0u) << "needs root: switches users";
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
  write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\ntester:x:4321:4322::/home/tester:/bin/sh\n");
  write("/etc/group", "root:x:0:\ntester:x:4322:\nextra:x:4400:other,tester\n");
  auto p = proc("p", Stage::kService, "echo $(id -u) $(id -g) $(id -G) $HOME; exec sleep 100");
  p.user = "tester";
  p.cwd = "/srv/app";
  auto unknown = proc("ghost", Stage::kApp, "exec sleep 100");
  unknown.user = "ghost";
  supervise({p, unknown});
  write("/etc/qabox/app.run", "");
  start();
  ASSERT_TRUE(waitFor([&] { return !log("p").empty(); }));
  EXPECT_EQ(log("p"), "4321 4322 4322 4400 /home/tester\n");
  ASSERT_TRUE(waitFor([&] { return inState("ghost", ProcState::kBackoff); }));
  EXPECT_NE(proc("ghost")->message.find("user ghost: not in /etc/passwd"), std::string::npos);
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, StatusJsonRoundTripsAndStaysValid) {
  supervise({proc("a", Stage::kService, "exec sleep 100"), proc("b", Stage::kApp, "exit 4")});
  write("/etc/qabox/app.run", "");
  start();
  ASSERT_TRUE(waitFor([&] {
    auto p = proc("b");
    return p && p->restarts >= 2;
  }));
  auto s = status();
  ASSERT_TRUE(s);
  EXPECT_GT(s->bootMs, 0);
  ASSERT_EQ(s->processes.size(), 2u);
  EXPECT_EQ(s->processes[0].name, "a");
  EXPECT_EQ(s->processes[0].state, ProcState::kReady);
  EXPECT_GT(s->processes[0].pid, 0);
  EXPECT_EQ(s->processes[1].lastExit, 4);
  EXPECT_EQ(supervise::toJson(*supervise::parseStatus(supervise::toJson(*s))),
            supervise::toJson(*s));
  EXPECT_FALSE(exists("/run/qabox/status.json.tmp"));
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, HugeStringsKeepStatusJsonReadable) {
  std::vector<supervise::ProcessDef> procs;
  for (int i = 0; i < 8; ++i) {  // 800 kB of supervise.json, under its 1 MiB
    auto p = proc("p" + std::to_string(i), Stage::kService, "exec sleep 100");
    p.user = std::string(100000, 'u');
    procs.push_back(p);
  }
  supervise(procs);
  start();
  ASSERT_TRUE(waitFor([&] { return inState("p0", ProcState::kBackoff); })) << initLog().size();
  EXPECT_LE(slurp(path(supervise::kStatusFile)).size(), supervise::kMaxStatusBytes);
  EXPECT_EQ(stop(), 0);
}

TEST_F(Supervisor, RefusesToRunAsASecondSupervisor) {
  std::string cmd = std::string("env -u QABOX_INIT_ROOT ") + QABOX_INIT_BIN + " 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  EXPECT_EQ(WEXITSTATUS(::pclose(f)), 2);
  EXPECT_NE(std::string(buf, n).find("not PID 1"), std::string::npos);
}

TEST_F(Supervisor, StatusCommandPrintsATable) {
  supervise({proc("a", Stage::kService, "exec sleep 100")});
  start();
  ASSERT_TRUE(waitFor([&] { return inState("a", ProcState::kReady); }));
  std::string cmd = "QABOX_INIT_ROOT=" + root_ + " " + QABOX_INIT_BIN + " status";
  FILE* f = ::popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  EXPECT_EQ(::pclose(f), 0);
  EXPECT_NE(out.find("NAME"), std::string::npos) << out;
  EXPECT_NE(out.find("a     ready"), std::string::npos) << out;
  EXPECT_EQ(stop(), 0);
}

}  // namespace
}  // namespace qabox::test
