// Issue 12, items 12 and 14: what an environment's code may ask the kernel
// for (a seccomp deny list on every container), and containers that start
// whether or not Debian's uidmap (newuidmap/newgidmap) is installed. Real
// containers, real daemon.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

// What a hostile app tries, built static so it runs in the busybox image:
// one "name result" line per call (OK or the errno's name).
constexpr const char* kProbeSource = R"(#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char* name, long rc) {
  printf("%s %s\n", name, rc >= 0 ? "OK" : strerrorname_np(errno));
}
struct clone_args_v0 {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};
static long forked(long pid) {
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  return pid;
}
int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  pid_t child = fork();
  if (child == 0) {
    report("unshare", unshare(CLONE_NEWUSER));
    _exit(0);
  }
  waitpid(child, NULL, 0);
  report("clone", forked(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)));
  struct clone_args_v0 args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
  report("clone3", forked(syscall(SYS_clone3, &args, sizeof args)));
  report("fork", forked(fork()));
  report("keyctl", syscall(SYS_keyctl, 0, -3, 0));
  report("add_key", syscall(SYS_add_key, "user", "qabox", "x", 1, -2));
  report("request_key", syscall(SYS_request_key, "user", "qabox", NULL, 0));
  report("userfaultfd", syscall(SYS_userfaultfd, 1));
  struct perf_event_attr pe = {.type = PERF_TYPE_SOFTWARE, .size = sizeof pe,
                               .config = PERF_COUNT_SW_TASK_CLOCK, .exclude_kernel = 1,
                               .exclude_hv = 1};
  report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
  char params[120] = {0};
  report("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
  report("bpf", syscall(SYS_bpf, 0, NULL, 0));
  report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  report("init_module", syscall(SYS_init_module, NULL, 0, ""));
  report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
  return 0;
}
)";

// What the deny list must answer (and fork, which must keep working).
const std::vector<std::string> kDenied = {"unshare EPERM",
                                          "clone EPERM",
                                          "clone3 ENOSYS",
                                          "fork OK",
                                          "keyctl EPERM",
                                          "add_key EPERM",
                                          "request_key EPERM",
                                          "userfaultfd EPERM",
                                          "bpf EPERM",
                                          "kexec_load EPERM",
                                          "perf_event_open EPERM",
                                          "io_uring_setup EPERM",
                                          "init_module EPERM",
                                          "open_by_handle_at EPERM"};

// The hooks and the app each run the probe and busybox's `unshare -U`,
// leaving what they saw in www/ for the test to fetch.
constexpr const char* kAppToml = R"([app]
start = "./probe > www/probe-app.txt 2>&1; exec httpd -f -p 8080 -h /srv/app/www"
port = 8080
health = "/health.txt"
[hooks]
build = "sh hook.sh"
)";
constexpr const char* kHook =
    "mkdir -p www && echo ok > www/health.txt\n"
    "./probe > www/probe-hook.txt 2>&1\n"
    "unshare -U true > www/unshare-hook.txt 2>&1; echo \"rc=$?\" >> www/unshare-hook.txt\n";

std::string fileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class LxcHostile : public ::testing::Test {
 protected:
  void SetUp() override { QABOX_REQUIRE_LXC(); }

  // A host whose repo "evil" holds the probe, the hook and the app.
  void start(const std::string& extraToml = "") {
    host_ = std::make_unique<TestHost>();
    std::string build = host_->stateDir() + "/probe-build";
    fs::create_directories(build);
    std::ofstream(build + "/probe.c") << kProbeSource;
    auto cc = runOrDie({"gcc", "-static", "-O2", "-o", build + "/probe", build + "/probe.c"});
    ASSERT_EQ(cc.exitCode, 0) << cc.err;
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", kAppToml);
    git_->write("hook.sh", kHook);
    git_->write("probe", fileText(build + "/probe"));
    git_->makeExecutable("probe");
    git_->commit("a hostile app");
    git_->push("develop");
    git_->checkout("feature/evil", true);
    git_->push("feature/evil");
    TestHost::Options o;
    o.repos = {{"evil", git_->bare()}};
    o.healthTimeout = "10s";
    o.extraToml = extraToml;
    host_->writeConfig(o);
    host_->startWithBusybox();
  }

  CliResult deploy(const std::string& ticket) {
    return host_->cli(
        {"deploy", ticket, "--repo", "evil", "--source", "feature/evil", "--target", "develop"});
  }
  CliResult exec(const std::string& ticket, std::vector<std::string> argv) {
    std::vector<std::string> args = {"exec", ticket, "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    return host_->cli(args);
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

void expectDenied(const std::string& probe, const std::string& where) {
  for (const auto& line : kDenied) {
    EXPECT_TRUE(contains(probe, line + "\n")) << where << ": want \"" << line << "\" in\n" << probe;
  }
}

TEST_F(LxcHostile, NoUserNamespacesKeyringsOrKernelInterfacesFromHooksExecOrTheApp) {
  start();
  CliResult d = deploy("EVIL-1");
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err;
  auto e = host_->env("EVIL-1");
  ASSERT_TRUE(e.has_value());

  // From a hook.
  CliResult hook = exec("EVIL-1", {"cat", "www/probe-hook.txt"});
  ASSERT_EQ(hook.exitCode, 0) << hook.err;
  expectDenied(hook.out, "hook");
  CliResult hookUnshare = exec("EVIL-1", {"cat", "www/unshare-hook.txt"});
  EXPECT_TRUE(contains(hookUnshare.out, "Operation not permitted")) << hookUnshare.out;
  EXPECT_FALSE(contains(hookUnshare.out, "rc=0")) << hookUnshare.out;

  // From the running app (init's child, not an attach).
  HttpReply app = httpGet(e->ip(), 8080, "/probe-app.txt");
  ASSERT_EQ(app.status, 200) << app.error;
  expectDenied(app.body, "app");

  // From qabox exec.
  CliResult probe = exec("EVIL-1", {"./probe"});
  ASSERT_EQ(probe.exitCode, 0) << probe.err;
  expectDenied(probe.out, "exec");
  CliResult unshare = exec("EVIL-1", {"unshare", "-U", "-r", "id", "-u"});
  EXPECT_NE(unshare.exitCode, 0) << unshare.out;
  EXPECT_TRUE(contains(unshare.err + unshare.out, "Operation not permitted")) << unshare.err;
  // Every process is filtered, init included.
  CliResult status = exec("EVIL-1", {"grep", "^Seccomp:", "/proc/1/status", "/proc/self/status"});
  EXPECT_EQ(status.out, "/proc/1/status:Seccomp:\t2\n/proc/self/status:Seccomp:\t2\n")
      << status.out << status.err;

  // A normal app still works: threads (busybox sh pipelines), fork, exec, HTTP.
  EXPECT_EQ(exec("EVIL-1", {"sh", "-c", "seq 3 | wc -l"}).out, "3\n");
  EXPECT_EQ(httpGet(e->ip(), 8080, "/health.txt").status, 200);
  EXPECT_TRUE(host_->daemonRunning());
}

TEST_F(LxcHostile, NestedUserNamespacesOnlyWhenTheConfigAllowsThem) {
  start("[containers]\nallow_nested_userns = true\n");
  ASSERT_EQ(deploy("NEST-1").exitCode, 0);
  CliResult unshare = exec("NEST-1", {"unshare", "-U", "-r", "id", "-u"});
  EXPECT_EQ(unshare.exitCode, 0) << unshare.err;
  EXPECT_EQ(unshare.out, "0\n");
  CliResult probe = exec("NEST-1", {"./probe"});
  EXPECT_TRUE(contains(probe.out, "unshare OK\n")) << probe.out;
  EXPECT_TRUE(contains(probe.out, "clone OK\n")) << probe.out;
  // The rest of the list stays.
  EXPECT_TRUE(contains(probe.out, "keyctl EPERM\n")) << probe.out;
  EXPECT_TRUE(contains(probe.out, "bpf EPERM\n")) << probe.out;
}

// The host uid a container's init runs as.
uid_t hostUidOfInit(TestHost& host, const std::string& container) {
  auto pid = runOrDie({"lxc-info", "-P", host.lxcPath(), "-n", container, "-pH"});
  std::string status = fileText("/proc/" + pid.out.substr(0, pid.out.find('\n')) + "/status");
  size_t at = status.find("\nUid:\t");
  EXPECT_NE(at, std::string::npos) << pid.out << pid.err;
  return at == std::string::npos ? 0 : static_cast<uid_t>(std::stoul(status.substr(at + 6)));
}

TEST(LxcIsolatedIds, EachEnvironmentsRootIsHostIdsOfItsOwn) {
  QABOX_REQUIRE_LXC();
  TestHost host;
  host.startWithBusybox();
  ASSERT_EQ(host.cli({"deploy", "ISO-1"}).exitCode, 0);
  ASSERT_EQ(host.cli({"deploy", "ISO-2"}).exitCode, 0);
  std::map<std::string, uid_t> uid;
  for (const char* t : {"ISO-1", "ISO-2"}) {
    auto e = host.env(t);
    ASSERT_TRUE(e.has_value());
    uid[t] = hostUidOfInit(host, e->container());
    // Root inside, the image's files root's, its own secret root's only.
    EXPECT_EQ(host.cli({"exec", t, "--", "id", "-u"}).out, "0\n");
    EXPECT_EQ(host.cli({"exec", t, "--", "stat", "-c", "%u", "/bin/busybox"}).out, "0\n");
    CliResult w =
        host.cli({"exec", t, "--", "sh", "-c",
                  std::string("echo secret-") + t + " > /root/secret && chmod 600 /root/secret"});
    ASSERT_EQ(w.exitCode, 0) << w.err;
    struct stat st {};
    std::string secret = host.lxcPath() + "/" + e->container() + "/overlay/delta/root/secret";
    ASSERT_EQ(::stat(secret.c_str(), &st), 0) << secret;
    EXPECT_EQ(st.st_uid, uid[t]) << secret;
    EXPECT_EQ(host.cli({"exec", t, "--", "cat", "/root/secret"}).out,
              std::string("secret-") + t + "\n");
  }
  // Two ranges of 65536 above the images' (id_base), never the images' own.
  EXPECT_NE(uid["ISO-1"], uid["ISO-2"]);
  for (const auto& [t, u] : uid) {
    EXPECT_GE(u, 1000065536u) << t;
    EXPECT_LT(u, 1000000000u + 21 * 65536u) << t;
    EXPECT_EQ((u - 1000000000u) % 65536u, 0u) << t;
  }
  // One environment's root, escaped to the host, cannot read the other's files.
  std::string other =
      host.lxcPath() + "/" + host.env("ISO-2")->container() + "/overlay/delta/root/secret";
  std::string asIso1 = std::to_string(uid["ISO-1"]);
  auto cross = runOrDie(
      {"setpriv", "--reuid=" + asIso1, "--regid=" + asIso1, "--clear-groups", "cat", other});
  EXPECT_NE(cross.exitCode, 0) << cross.out;
  EXPECT_FALSE(contains(cross.out, "secret-ISO-2")) << cross.out;
  EXPECT_TRUE(contains(cross.err, "Permission denied")) << cross.err;

  // A deleted environment's range is free again; a restart keeps the others'.
  ASSERT_EQ(host.cli({"delete", "ISO-1"}).exitCode, 0);
  ASSERT_EQ(host.cli({"deploy", "ISO-3"}).exitCode, 0);
  EXPECT_EQ(hostUidOfInit(host, host.env("ISO-3")->container()), uid["ISO-1"]);
  EXPECT_EQ(host.stopDaemon(), 0);
  host.startDaemon();
  ASSERT_EQ(host.cli({"deploy", "ISO-4"}).exitCode, 0);
  uid_t four = hostUidOfInit(host, host.env("ISO-4")->container());
  EXPECT_NE(four, uid["ISO-1"]);
  EXPECT_NE(four, uid["ISO-2"]);
  EXPECT_EQ(hostUidOfInit(host, host.env("ISO-2")->container()), uid["ISO-2"]);
  // Asleep and awake again: the same ids, the mounts made again.
  ASSERT_EQ(host.cli({"sleep", "ISO-2"}).exitCode, 0);
  std::string iso2 = host.lxcPath() + "/" + host.env("ISO-2")->container();
  EXPECT_FALSE(contains(fileText("/proc/self/mountinfo"), iso2 + "/rootfs ")) << "unmounted asleep";
  ASSERT_EQ(host.cli({"wake", "ISO-2"}).exitCode, 0);
  EXPECT_TRUE(contains(fileText("/proc/self/mountinfo"), iso2 + "/rootfs ")) << "mounted awake";
  EXPECT_EQ(hostUidOfInit(host, host.env("ISO-2")->container()), uid["ISO-2"]);
  EXPECT_EQ(host.cli({"exec", "ISO-2", "--", "cat", "/root/secret"}).out, "secret-ISO-2\n");
  // Deleting unmounts: nothing of the environments stays mounted.
  for (const char* t : {"ISO-2", "ISO-3", "ISO-4"}) {
    EXPECT_EQ(host.cli({"delete", t}).exitCode, 0) << t;
  }
  auto mounts = fileText("/proc/self/mountinfo");
  EXPECT_FALSE(contains(mounts, host.lxcPath())) << mounts;
}

TEST(LxcIsolatedIds, AnImageBuiltWithTheOldIdBaseStillDeploys) {
  QABOX_REQUIRE_LXC();
  // Built when id_base defaulted to 100000: its rootfs belongs to 100000..
  TestHost::Options old;
  old.extraToml = "[containers]\nid_base = 100000\n";
  TestHost host(old);
  host.startWithBusybox();
  ASSERT_EQ(host.stopDaemon(), 0);
  host.writeConfig(TestHost::Options{});
  host.startDaemon();
  CliResult d = host.cli({"deploy", "OLD-1"});
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err << host.logText();
  auto e = host.env("OLD-1");
  ASSERT_TRUE(e.has_value());
  // Its clone runs as a range above the new base, and sees the image's
  // files as root's.
  EXPECT_EQ(hostUidOfInit(host, e->container()), 1000065536u);
  EXPECT_EQ(host.cli({"exec", "OLD-1", "--", "stat", "-c", "%u:%g", "/bin/busybox"}).out, "0:0\n");
  EXPECT_EQ(host.cli({"exec", "OLD-1", "--", "id", "-u"}).out, "0\n");
  EXPECT_EQ(httpGet(e->ip(), 80, "/").status, 200);
}

// /etc/subuid and /etc/subgid as they were, put back however the test ends.
class SubIdFilesGuard {
 public:
  SubIdFilesGuard() {
    for (const char* f : {"/etc/subuid", "/etc/subgid"}) {
      saved_.push_back({f, fs::exists(f), fileText(f)});
    }
  }
  ~SubIdFilesGuard() {
    std::error_code ec;
    for (const auto& s : saved_) {
      fs::remove_all(s.path + ".qabox-tmp", ec);
      if (!s.existed) {
        fs::remove(s.path, ec);
        continue;
      }
      std::ofstream(s.path, std::ios::trunc) << s.text;
      ::chmod(s.path.c_str(), 0644);
    }
  }

 private:
  struct Saved {
    std::string path;
    bool existed;
    std::string text;
  };
  std::vector<Saved> saved_;
};

// Debian's uidmap, unpacked (never installed: that would change every
// other test on the host), behind wrappers on the daemon's PATH that log
// each call, so the test knows newuidmap really mapped the ids.
class LxcUidmap : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    std::string deb = uidmapDeb();
    if (deb.empty()) {
      const char* why =
          "needs uidmap's package file: scripts/install-deps.sh downloads it to "
          "/var/cache/qabox-test (or set QABOX_UIDMAP_DEB)";
      if (inCi()) FAIL() << why;
      GTEST_SKIP() << why;
    }
    guard_ = std::make_unique<SubIdFilesGuard>();
    host_ = std::make_unique<TestHost>();
    std::string unpacked = host_->stateDir() + "/uidmap";
    auto x = runOrDie({"dpkg-deb", "-x", deb, unpacked});
    ASSERT_EQ(x.exitCode, 0) << x.err;
    bin_ = host_->stateDir() + "/uidmap-bin";
    log_ = host_->stateDir() + "/uidmap.log";
    fs::create_directories(bin_);
    for (const char* tool : {"newuidmap", "newgidmap"}) {
      ASSERT_TRUE(fs::exists(unpacked + "/usr/bin/" + tool));
      std::ofstream(bin_ + "/" + tool)
          << "#!/bin/sh\necho \"" << tool << " $*\" >> " << log_ << "\nexec " << unpacked
          << "/usr/bin/" << tool << " \"$@\"\n";
      // liblxc uses only a newuidmap that is setuid root (or has the
      // capability), as the package installs it; as root the script's own
      // bit changes nothing else.
      ASSERT_EQ(::chmod((bin_ + "/" + tool).c_str(), 04755), 0);
    }
  }

  static std::string uidmapDeb() {
    if (const char* d = std::getenv("QABOX_UIDMAP_DEB")) return d;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/var/cache/qabox-test", ec)) {
      if (e.path().filename().string().rfind("uidmap_", 0) == 0) return e.path();
    }
    return "";
  }

  // The daemon (and the helpers it runs) find the wrappers first on PATH,
  // as liblxc looks newuidmap up there.
  struct PathWithUidmap {
    explicit PathWithUidmap(const std::string& bin) {
      const char* p = std::getenv("PATH");
      old = p ? p : "/usr/sbin:/usr/bin:/sbin:/bin";
      setenv("PATH", (bin + ":" + old).c_str(), 1);
    }
    ~PathWithUidmap() { setenv("PATH", old.c_str(), 1); }
    std::string old;
  };

  // qaboxd run in the foreground: for a start that must be refused.
  ProcessResult refusedStart() {
    PathWithUidmap path(bin_);
    return runOrDie(
        {binDir() + "/agent/daemon/qaboxd", "--config=" + host_->stateDir() + "/qaboxd.toml"});
  }

  std::unique_ptr<SubIdFilesGuard> guard_;
  std::unique_ptr<TestHost> host_;
  std::string bin_;
  std::string log_;
};

TEST_F(LxcUidmap, DeployExecSleepWakeAndDeleteWithNewuidmapInUse) {
  {
    PathWithUidmap path(bin_);
    host_->startWithBusybox();
  }
  if (HasFatalFailure()) return;
  // The agent reserved its range for root, keeping what was there.
  EXPECT_TRUE(contains(fileText("/etc/subuid"), "root:1000000000:1376256\n"))
      << fileText("/etc/subuid");
  EXPECT_TRUE(contains(fileText("/etc/subgid"), "root:1000000000:1376256\n"))
      << fileText("/etc/subgid");

  CliResult d = host_->cli({"deploy", "UID-1"});
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err << host_->logText();
  // liblxc mapped the container's ids through newuidmap and newgidmap.
  std::string calls = fileText(log_);
  EXPECT_TRUE(contains(calls, "newuidmap ")) << calls;
  EXPECT_TRUE(contains(calls, "newgidmap ")) << calls;
  // The first environment holds the first range above the images'.
  EXPECT_TRUE(contains(calls, " 0 1000065536 65536")) << calls;

  CliResult id = host_->cli({"exec", "UID-1", "--", "cat", "/proc/self/uid_map"});
  ASSERT_EQ(id.exitCode, 0) << id.err;
  std::istringstream words(id.out);
  uint64_t inside = 1, outside = 0, count = 0;
  words >> inside >> outside >> count;
  EXPECT_EQ(inside, 0u);
  EXPECT_EQ(outside, 1000065536u) << id.out;
  EXPECT_EQ(count, 65536u) << id.out;
  auto e = host_->env("UID-1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(httpGet(e->ip(), 80, "/").status, 200);

  size_t before = calls.size();
  ASSERT_EQ(host_->cli({"sleep", "UID-1"}).exitCode, 0);
  ASSERT_EQ(host_->env("UID-1")->state(), v1::Environment::SLEEPING);
  CliResult wake = host_->cli({"wake", "UID-1"});
  ASSERT_EQ(wake.exitCode, 0) << wake.err << host_->logText();
  EXPECT_GT(fileText(log_).size(), before) << "the wake maps through newuidmap again";
  EXPECT_EQ(host_->cli({"exec", "UID-1", "--", "id", "-u"}).out, "0\n");

  CliResult del = host_->cli({"delete", "UID-1"});
  EXPECT_EQ(del.exitCode, 0) << del.err;
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_TRUE(host_->daemonRunning());
}

TEST_F(LxcUidmap, RefusesARangeALoginUserHolds) {
  // useradd gave alice the ids the config asks for.
  std::ofstream("/etc/subuid", std::ios::trunc) << "alice:1000000000:65536\n";
  ProcessResult r = refusedStart();
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "\"alice:1000000000:65536\"")) << r.err;
  EXPECT_TRUE(contains(r.err, "containers.id_base")) << r.err;
  EXPECT_EQ(fileText("/etc/subuid"), "alice:1000000000:65536\n");
}

TEST_F(LxcUidmap, NamesTheLinesToAddWhenItCannotWriteThem) {
  // What root cannot write through either: the temporary file's place taken.
  std::ofstream("/etc/subuid", std::ios::trunc) << "";
  fs::create_directories("/etc/subuid.qabox-tmp/x");
  ProcessResult r = refusedStart();
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "add these lines to it yourself:\nroot:1000000000:1376256\n"))
      << r.err;
}

}  // namespace
}  // namespace qabox::testing
