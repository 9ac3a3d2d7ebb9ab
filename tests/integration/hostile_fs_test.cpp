// Issue 12: an environment's code is an attacker's. What runs in a
// container plants symlinks, FIFOs and hard links where the agent looks
// (its app log, the files the agent writes before start), ships a git tree
// full of links, and lists its descriptors looking for the agent's. The
// agent must read and write nothing on the host through any of it, never
// block, pass no descriptor on, and keep serving everyone else. Real
// containers, real daemon.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

constexpr const char* kSecret = "HOST-SECRET-7f3a9c";

// The app and its hooks list their own descriptors: /proc/$$/fd is the
// shell's (ls is its child), the listing's own fd stays out of it.
constexpr const char* kAppToml = R"([app]
start = "ls -l /proc/$$/fd > /srv/app/app-fds.txt; exec httpd -f -p 80 -h /srv/app"
port = 80
health = "/index.html"
[hooks]
build = "ls -l /proc/$$/fd > /srv/app/hook-fds.txt"
)";

// One host for the suite: an image build and a witness environment that
// must keep answering whatever the others do.
class LxcHostile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string why;
    if (!lxcAvailable(&why)) return;
    host_ = new TestHost();
    const std::string dir = host_->stateDir();
    // What the attacks aim at: a host file and a host directory.
    fs::create_directories(dir + "/host/dir");
    std::ofstream(dir + "/host/secret.txt") << kSecret << "\n";
    std::ofstream(dir + "/host/dir/app.log") << kSecret << "\n";

    git_ = new GitFixture(dir + "/src");
    git_->write("qabox.toml", kAppToml);
    git_->write("index.html", "tree\n");
    git_->write("etc/qabox/readme", "a directory named like the agent's\n");
    // Links in the tree: named srv, absolute to the host, climbing out,
    // and one named like the agent's config dir.
    const std::string work = dir + "/src/work";
    fs::create_directory_symlink("/", work + "/srv");
    fs::create_directory_symlink(dir + "/host/dir", work + "/hostdir");
    fs::create_directory_symlink("../../../../../..", work + "/up");
    fs::create_symlink(dir + "/host/secret.txt", work + "/secret");
    fs::create_directory_symlink(dir + "/host/dir", work + "/etc/qabox/dir");
    git_->commit("app with links");
    git_->push("develop");
    // A branch whose hook plants links to host paths inside its container.
    git_->checkout("feature/PLANT-1", true);
    std::string toml = kAppToml;
    toml.replace(toml.find("build = \""), std::string("build = \"").size(),
                 "build = \"ln -sfn " + dir +
                     "/host/dir /srv/app/planted; ln -sfn / /root/slash; "
                     "ln -sf " +
                     dir + "/host/secret.txt /root/secret; mkfifo /root/fifo; ");
    git_->write("qabox.toml", toml);
    git_->commit("hook plants links");
    git_->push("feature/PLANT-1");
    git_->checkout("develop");

    TestHost::Options o;
    o.repos = {{"app", git_->bare()}};
    o.healthTimeout = "10s";
    host_->writeConfig(o);
    host_->startDaemon();
    if (host_->cli({"image", "build", "busybox"}).exitCode != 0) return;
    if (host_->cli({"deploy", "WIT-1"}).exitCode != 0) return;
    ready_ = true;
  }
  static void TearDownTestSuite() {
    delete git_;
    git_ = nullptr;
    delete host_;
    host_ = nullptr;
  }
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    ASSERT_TRUE(host_ && ready_) << "the suite's host did not come up"
                                 << (host_ ? host_->logText() : "");
  }

  CliResult sh(const std::string& ticket, const std::string& script) {
    return host_->cli({"exec", ticket, "--", "sh", "-c", script});
  }
  CliResult deployRepo(const std::string& ticket, const std::string& source = "develop") {
    return host_->cli(
        {"deploy", ticket, "--repo", "app", "--source", source, "--target", "develop"});
  }

  // The agent is up, the witness answers through the router, its logs
  // still stream, and the host's files are as they were.
  void expectHostUnharmed() {
    EXPECT_TRUE(host_->daemonRunning()) << host_->logText();
    auto page = httpGet("127.0.0.1", host_->routerPort(), "/", "wit-1." + host_->domain());
    EXPECT_EQ(page.status, 200) << page.error;
    CliResult logs = host_->cli({"logs", "WIT-1"}, std::chrono::seconds(10));
    EXPECT_EQ(logs.exitCode, 0) << logs.err;
    const std::string dir = host_->stateDir();
    EXPECT_EQ(readFile(dir + "/host/secret.txt"), std::string(kSecret) + "\n");
    EXPECT_EQ(readFile(dir + "/host/dir/app.log"), std::string(kSecret) + "\n");
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir + "/host/dir")) names.push_back(e.path());
    EXPECT_EQ(names.size(), 1u) << "something was written into the host directory";
  }

  // `qabox logs TICKET [--follow]`: it ends promptly, says what is wrong,
  // and never shows the host's secret.
  void expectLogsRefused(const std::string& ticket, const std::string& words) {
    for (bool follow : {false, true}) {
      std::vector<std::string> args = {"logs", ticket};
      if (follow) args.push_back("--follow");
      auto start = steady_clock::now();
      CliResult r = host_->cli(args, std::chrono::seconds(15));
      auto took = steady_clock::now() - start;
      EXPECT_LT(took, std::chrono::seconds(5)) << "follow=" << follow;
      EXPECT_NE(r.exitCode, 0) << "follow=" << follow << ": " << r.out;
      EXPECT_FALSE(contains(r.out + r.err, kSecret)) << r.out << r.err;
      EXPECT_TRUE(contains(r.err, words)) << "follow=" << follow << ": " << r.err;
      EXPECT_TRUE(contains(r.err, "app.log")) << r.err;
    }
  }

  static TestHost* host_;
  static GitFixture* git_;
  static bool ready_;
};
TestHost* LxcHostile::host_ = nullptr;
GitFixture* LxcHostile::git_ = nullptr;
bool LxcHostile::ready_ = false;

TEST_F(LxcHostile, AppLogSymlinkToHostFileIsRefused) {
  ASSERT_EQ(host_->cli({"deploy", "LINK-1"}).exitCode, 0);
  const std::string secret = host_->stateDir() + "/host/secret.txt";
  ASSERT_EQ(sh("LINK-1", "ln -sf " + secret + " /var/log/qabox/app.log").exitCode, 0);
  expectLogsRefused("LINK-1", "symlink");
  // Relative, climbing out of the upper dir to the same file.
  ASSERT_EQ(
      sh("LINK-1", "ln -sf ../../../../../../../../../../.." + secret + " /var/log/qabox/app.log")
          .exitCode,
      0);
  expectLogsRefused("LINK-1", "symlink");
  // A link that stays inside is refused too: no links at all.
  ASSERT_EQ(
      sh("LINK-1", "echo inside > /root/log && ln -sf /root/log /var/log/qabox/app.log").exitCode,
      0);
  CliResult inside = host_->cli({"logs", "LINK-1"});
  EXPECT_NE(inside.exitCode, 0);
  EXPECT_TRUE(contains(inside.err, "symlink")) << inside.err;
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "LINK-1"}).exitCode, 0);
}

TEST_F(LxcHostile, AppLogFifoNeitherHangsLogsNorTheAgent) {
  ASSERT_EQ(host_->cli({"deploy", "FIFO-1"}).exitCode, 0);
  ASSERT_EQ(sh("FIFO-1", "rm -f /var/log/qabox/app.log && mkfifo /var/log/qabox/app.log").exitCode,
            0);
  expectLogsRefused("FIFO-1", "FIFO");
  // Many at once: none blocks a thread of the agent's.
  std::vector<int> pids;
  for (int i = 0; i < 8; ++i) pids.push_back(host_->cliAsync({"logs", "FIFO-1"}));
  auto start = steady_clock::now();
  for (int pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0 &&
           steady_clock::now() - start < std::chrono::seconds(10)) {
      usleep(20000);
    }
    if (waitpid(pid, &status, WNOHANG) == 0) {
      ADD_FAILURE() << "qabox logs on a FIFO still running after 10 s";
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  // A device node and a socket where the log goes (mknod needs a mapped
  // capability the container has; the devices cgroup is irrelevant to
  // what the host opens).
  if (sh("FIFO-1", "rm -f /var/log/qabox/app.log && mknod /var/log/qabox/app.log c 1 3").exitCode ==
      0) {
    expectLogsRefused("FIFO-1", "device");
  }
  ASSERT_EQ(sh("FIFO-1", "rm -f /var/log/qabox/app.log && mkdir /var/log/qabox/app.log").exitCode,
            0);
  expectLogsRefused("FIFO-1", "directory");
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "FIFO-1"}).exitCode, 0);
}

TEST_F(LxcHostile, AppLogHardLinkShowsOnlyTheContainersOwnFile) {
  // A container can hard-link only what it can name: its own files (a
  // lower-layer file is copied up first). Accepted, and it shows just that.
  ASSERT_EQ(host_->cli({"deploy", "HARD-1"}).exitCode, 0);
  ASSERT_EQ(sh("HARD-1",
               "echo the-containers-own > /root/own && "
               "ln -f /root/own /var/log/qabox/app.log")
                .exitCode,
            0);
  CliResult r = host_->cli({"logs", "HARD-1"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "the-containers-own\n");
  // A lower-layer file: the link is to the copy in the upper layer.
  ASSERT_EQ(sh("HARD-1", "ln -f /etc/qabox/app.run /var/log/qabox/app.log").exitCode, 0);
  r = host_->cli({"logs", "HARD-1"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_FALSE(contains(r.out, kSecret));
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "HARD-1"}).exitCode, 0);
}

TEST_F(LxcHostile, LogDirectorySymlinkedToTheHostIsRefused) {
  ASSERT_EQ(host_->cli({"deploy", "LDIR-1"}).exitCode, 0);
  // /var/log/qabox a link to a host directory holding an app.log ...
  ASSERT_EQ(sh("LDIR-1",
               "rm -rf /var/log/qabox && ln -s " + host_->stateDir() + "/host/dir /var/log/qabox")
                .exitCode,
            0);
  expectLogsRefused("LDIR-1", "symlink");
  // ... and to /, and /var itself a link.
  ASSERT_EQ(sh("LDIR-1", "rm -f /var/log/qabox && ln -s / /var/log/qabox").exitCode, 0);
  expectLogsRefused("LDIR-1", "symlink");
  ASSERT_EQ(sh("LDIR-1", "rm -rf /var && ln -s " + host_->stateDir() + "/host /var").exitCode, 0);
  expectLogsRefused("LDIR-1", "symlink");
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "LDIR-1"}).exitCode, 0);
}

TEST_F(LxcHostile, AGitTreeOfLinksStaysInSrvApp) {
  // Links named srv, to the host's files, climbing out, inside etc/qabox:
  // the export writes only below /srv/app, app.env and app.run land in the
  // container's /etc/qabox, and nothing on the host changes.
  CliResult d = deployRepo("TREE-1");
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err;
  auto e = host_->env("TREE-1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state(), v1::Environment::READY);
  EXPECT_EQ(httpGet(e->ip(), 80, "/index.html").body, "tree\n");
  CliResult links = sh("TREE-1", "readlink /srv/app/srv; readlink /srv/app/up; ls /etc/qabox");
  EXPECT_EQ(links.exitCode, 0) << links.err;
  EXPECT_TRUE(contains(links.out, "/\n../../../../../..\n")) << links.out;
  EXPECT_TRUE(contains(links.out, "app.env")) << links.out;
  // Inside the container the links name the container's own paths.
  CliResult through = sh("TREE-1", "cat /srv/app/secret 2>&1; ls /srv/app/hostdir 2>&1");
  EXPECT_FALSE(contains(through.out, kSecret)) << through.out;
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "TREE-1"}).exitCode, 0);
  expectHostUnharmed();  // the delete followed none of them either
}

TEST_F(LxcHostile, AHookPlantsLinksAndAFifoThenARedeployReplacesItAll) {
  CliResult d = deployRepo("PLANT-1", "feature/PLANT-1");
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err;
  auto first = host_->env("PLANT-1");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(sh("PLANT-1", "readlink /srv/app/planted").out, host_->stateDir() + "/host/dir\n");
  // The redeploy writes app.env and app.run into a new container, then
  // destroys the old one with its links and FIFO: nothing on the host moves.
  d = host_->cli({"deploy", "PLANT-1", "--repo", "app", "--source", "feature/PLANT-1", "--target",
                  "develop", "--force"},
                 std::chrono::seconds(120));
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err;
  auto second = host_->env("PLANT-1");
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->container(), first->container());
  EXPECT_EQ(second->state(), v1::Environment::READY) << second->message();
  EXPECT_TRUE(fs::exists(host_->stateDir() + "/host/dir"));
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "PLANT-1"}).exitCode, 0);
  expectHostUnharmed();
}

// fd number -> what it is, from `ls -l /proc/PID/fd`.
std::map<int, std::string> fdsOf(const std::string& listing) {
  std::map<int, std::string> out;
  std::istringstream in(listing);
  std::string line;
  while (std::getline(in, line)) {
    size_t arrow = line.find(" -> ");
    if (arrow == std::string::npos) continue;
    size_t sp = line.rfind(' ', arrow - 1);
    out[std::stoi(line.substr(sp + 1, arrow - sp - 1))] = line.substr(arrow + 4);
  }
  return out;
}

void expectOnlyStdio(const std::string& who, const std::string& listing) {
  auto fds = fdsOf(listing);
  EXPECT_TRUE(fds.count(0) && fds.count(1) && fds.count(2)) << who << ":\n" << listing;
  for (const auto& [fd, what] : fds) {
    if (fd <= 2) continue;
    // A shell's saved copy of its own stdio (the app's stdout is a pipe to
    // the init's log keeper): the same object as fd 0, 1 or 2, no other.
    if (what == fds[0] || what == fds[1] || what == fds[2]) continue;
    EXPECT_FALSE(what.rfind("socket:", 0) == 0 || what.rfind("pipe:", 0) == 0 ||
                 what.rfind("anon_inode:", 0) == 0)
        << who << " holds fd " << fd << " -> " << what << ":\n"
        << listing;
    // What may be there: the container's own files (the shell's script,
    // its saved stdout: the app log) and nothing of the host.
    bool own = false;
    for (const char* dir : {"/etc/qabox/", "/dev/", "/var/log/qabox/", "/srv/app/"}) {
      own = own || what.rfind(dir, 0) == 0;
    }
    EXPECT_TRUE(own) << who << " holds fd " << fd << " -> " << what << ":\n" << listing;
  }
}

TEST_F(LxcHostile, NoAgentDescriptorInAHookTheAppOrExec) {
  CliResult d = deployRepo("FDS-1");
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err;
  CliResult hook = sh("FDS-1", "cat /srv/app/hook-fds.txt");
  ASSERT_EQ(hook.exitCode, 0) << hook.err;
  expectOnlyStdio("the build hook", hook.out);
  CliResult app;
  for (int i = 0; i < 50; ++i) {
    app = sh("FDS-1", "cat /srv/app/app-fds.txt");
    if (app.exitCode == 0 && !app.out.empty()) break;
    usleep(100000);
  }
  ASSERT_EQ(app.exitCode, 0) << app.err;
  expectOnlyStdio("the app", app.out);
  CliResult exec = sh("FDS-1", "ls -l /proc/$$/fd");
  ASSERT_EQ(exec.exitCode, 0) << exec.err;
  expectOnlyStdio("qabox exec", exec.out);
  // The container's init too.
  CliResult init = sh("FDS-1", "ls -l /proc/1/fd");
  ASSERT_EQ(init.exitCode, 0) << init.err;
  for (const auto& [fd, what] : fdsOf(init.out)) {
    EXPECT_NE(what.rfind("socket:", 0), 0u) << "init fd " << fd << " -> " << what;
  }
  // The agent's own side: every descriptor it holds past stdio is
  // close-on-exec (Asio's listeners and accepts, gRPC, SQLite, files).
  const std::string proc = "/proc/" + std::to_string(host_->daemonPid());
  std::vector<std::string> inheritable;
  for (const auto& f : fs::directory_iterator(proc + "/fdinfo")) {
    int fd = std::stoi(f.path().filename());
    if (fd <= 2) continue;
    std::istringstream info(readFile(f.path()));
    std::string key;
    unsigned long flags = 0;
    while (info >> key) {
      if (key == "flags:") {
        info >> std::oct >> flags;
        break;
      }
    }
    if (!(flags & 02000000)) {  // O_CLOEXEC
      std::error_code ec;
      inheritable.push_back(std::to_string(fd) + " -> " +
                            fs::read_symlink(proc + "/fd/" + std::to_string(fd), ec).string());
    }
  }
  EXPECT_TRUE(inheritable.empty()) << ::testing::PrintToString(inheritable);
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "FDS-1"}).exitCode, 0);
}

TEST_F(LxcHostile, AFailedStartSaysWhyAndSuggestsNoCommandThatCannotWork) {
  // The containers' root cannot enter lxc/ (what a 0700 parent does): the
  // start fails, and the message carries liblxc's own reason instead of an
  // lxc-start command for a container the rollback may already have removed.
  const std::string lxc = host_->lxcPath();
  ASSERT_EQ(::chmod(lxc.c_str(), 0700), 0);
  struct Restore {
    std::string p;
    ~Restore() { ::chmod(p.c_str(), 0711); }
  } restore{lxc};
  CliResult d = host_->cli({"deploy", "SF-1"});
  ::chmod(lxc.c_str(), 0711);
  EXPECT_NE(d.exitCode, 0);
  EXPECT_TRUE(contains(d.err, "start failed")) << d.err;
  EXPECT_TRUE(contains(d.err, "Could not access " + lxc)) << d.err;
  EXPECT_FALSE(contains(d.out + d.err, "lxc-start")) << d.err;
  expectHostUnharmed();
  (void)host_->cli({"delete", "SF-1"});
}

TEST_F(LxcHostile, TheStateDirIsNotReadableByOthers) {
  // A deploy with a hook: a mirror, a deploy log, the database, a container.
  CliResult d = deployRepo("PERM-1");
  ASSERT_EQ(d.exitCode, 0) << d.out << d.err;
  const fs::path root = host_->stateDir();
  struct stat st {};
  auto modeOf = [&](const fs::path& p) {
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  // Shared on purpose: the path down to the containers' files (0711: enter
  // only), so an unprivileged container's root reaches its rootfs.
  EXPECT_EQ(modeOf(root), 0711u);
  EXPECT_EQ(modeOf(root / "lxc"), 0711u);
  EXPECT_EQ(modeOf(root / "images"), 0711u);
  for (const char* priv : {"git", "logs", "work", "run"}) EXPECT_EQ(modeOf(root / priv), 0700u);
  EXPECT_EQ(modeOf(root / "qabox.db") & 077, 0u);
  EXPECT_EQ(modeOf(root / "logs/perm-1/deploy.log") & 077, 0u);
  // Everything else the agent made: no other may read or write it. Not
  // inside containers' files (rootfs, overlay, and lower: the image's
  // rootfs mounted idmapped for the clone), nor what the test made.
  std::vector<std::string> open;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    fs::path rel = fs::relative(it->path(), root);
    std::string first = rel.begin()->string();
    std::string name = it->path().filename();
    if (first == "src" || first == "host" || rel == "qaboxd.toml" || rel == "qaboxd.log") {
      if (it->is_directory() && !it->is_symlink()) it.disable_recursion_pending();
      continue;
    }
    auto depth = std::distance(rel.begin(), rel.end());
    if ((first == "lxc" || first == "images") && depth >= 3 &&
        (std::next(rel.begin(), 2)->string() == "rootfs" ||
         std::next(rel.begin(), 2)->string() == "overlay" ||
         std::next(rel.begin(), 2)->string() == "lower")) {
      it.disable_recursion_pending();
      continue;
    }
    mode_t mode = modeOf(it->path());
    if (S_ISLNK(st.st_mode)) continue;
    bool sharedPath = rel == "lxc" || rel == "images" ||
                      ((first == "lxc" || first == "images") && depth == 2 && S_ISDIR(st.st_mode));
    // liblxc's container and image definitions (the config, no secrets).
    bool lxcFile = (first == "lxc" || first == "images") && depth == 3 && S_ISREG(st.st_mode);
    if (mode & S_IWOTH) open.push_back(rel.string() + " is writable by others");
    if ((mode & S_IROTH) && !sharedPath && !lxcFile) {
      open.push_back(rel.string() + " is readable by others");
    }
  }
  EXPECT_TRUE(open.empty()) << ::testing::PrintToString(open);
  expectHostUnharmed();
  EXPECT_EQ(host_->cli({"delete", "PERM-1"}).exitCode, 0);
}

TEST(LxcHostileStart, AStateDirTheContainersCannotReachIsRefusedAtStart) {
  QABOX_REQUIRE_LXC();
  // A mktemp -d parent: 0700, root's.
  std::string parent = "/tmp/qabox-closed-XXXXXX";
  ASSERT_NE(mkdtemp(parent.data()), nullptr);
  const std::string state = parent + "/state";
  const std::string bridge = "qbtclosed" + std::to_string(getpid() % 1000);
  // Also when an agent got further than it should have (the bug this
  // catches): its bridge and firewall tables go too.
  struct Cleanup {
    std::string p, bridge;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
      if (fs::exists("/sys/class/net/" + bridge)) runOrDie({"ip", "link", "del", bridge});
      for (const char* family : {"inet", "bridge"}) {
        (void)runOrDie({"sh", "-c",
                        std::string("nft delete table ") + family + " qabox_" + bridge +
                            " 2>/dev/null; true"});
      }
    }
  } cleanup{parent, bridge};
  {
    std::ofstream cfg(parent + "/qaboxd.toml");
    cfg << "state_dir = \"" << state << "\"\n"
        << "images_dir = \"" << sourceDir() << "/images\"\n"
        << "[api]\nlisten = [\"unix://" << parent << "/qabox.sock\"]\n"
        << "[network]\nbridge = \"" << bridge << "\"\nsubnet = \"10.213.251.0/24\"\n"
        << "[routing]\nlisten = \"127.0.0.1:" << freeTcpPort() << "\"\n";
  }
  // Bounded: an agent that does not refuse would serve until killed.
  ProcessResult r = runOrDie(
      {"timeout", "20", binDir() + "/agent/daemon/qaboxd", "--config=" + parent + "/qaboxd.toml"});
  EXPECT_NE(r.exitCode, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "cannot enter " + parent + " ")) << r.err;
  EXPECT_TRUE(contains(r.err, "chmod o+x " + parent)) << r.err;
  EXPECT_TRUE(contains(r.err, "100000")) << r.err;
  // Nothing was made: no state dir, no bridge, no socket.
  EXPECT_FALSE(fs::exists(state));
  EXPECT_FALSE(fs::exists(parent + "/qabox.sock"));
  EXPECT_FALSE(fs::exists("/sys/class/net/" + bridge));
}

// The state dir itself is the agent's: one made 0700 (as mktemp -d makes
// it) under parents others may enter is opened up to 0711 and works.
TEST(LxcHostileStart, AClosedStateDirOfItsOwnIsOpenedAndWorks) {
  QABOX_REQUIRE_LXC();
  TestHost host;
  ASSERT_EQ(::chmod(host.stateDir().c_str(), 0700), 0);
  host.startWithBusybox();
  ASSERT_EQ(host.cli({"deploy", "OWN-1"}).exitCode, 0) << host.logText();
  struct stat st {};
  ASSERT_EQ(::stat(host.stateDir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  auto e = host.env("OWN-1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(httpGet(e->ip(), 80, "/").status, 200);
}

TEST(LxcHostileStart, PrivilegedContainersShareNothingOfTheStateDir) {
  QABOX_REQUIRE_LXC();
  TestHost::Options o;
  o.extraToml = "[containers]\nunprivileged = false\n";
  TestHost host(o);
  host.startWithBusybox();
  ASSERT_EQ(host.cli({"deploy", "PRIV-2"}).exitCode, 0);
  struct stat st {};
  for (const std::string& dir : {host.stateDir(), host.lxcPath(), host.stateDir() + "/images"}) {
    ASSERT_EQ(::stat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << dir;
  }
  auto e = host.env("PRIV-2");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(httpGet(e->ip(), 80, "/").status, 200);
}

}  // namespace
}  // namespace qabox::testing
