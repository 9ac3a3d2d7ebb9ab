// Issue 14: cached dependency layers (qabox.toml [deps]) on real LXC, with
// the sample app (scripts/sample-app) on the python image. The test's bare
// repo is the sample plus a requirements.txt naming a tiny package whose
// wheels the test builds into wheels/ (no network, ever: egress is none),
// and a [deps] install that makes a venv and pip-installs from wheels/. One
// agent and one python image build serve every test of this binary.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr const char* kInstall =
    "python3 -m venv --system-site-packages /opt/venv && /opt/venv/bin/pip install --no-index "
    "--no-cache-dir --disable-pip-version-check --find-links wheels -r requirements.txt";

// The sample's qabox.toml with its processes on the venv's python, a probe
// process that imports the package, and [deps].
std::string manifest(const std::string& install) {
  return R"toml([app]
process = "web"
port = 8000
health = "/healthz"

[hooks]
migrate = "python3 migrate.py"
seed = "python3 seed.py"

[services.postgres]
[services.redis]

[processes]
web = "exec /opt/venv/bin/python3 -m gunicorn app:app --bind 0.0.0.0:8000 --workers 1 --preload"
worker = "exec python3 -u worker.py"
probe = "exec /opt/venv/bin/python3 -u -c 'import qaboxdemo, time; print(\"qaboxdemo\", qaboxdemo.VERSION, flush=True); time.sleep(86400)'"

[deps]
files = ["requirements.txt"]
install = ")toml" +
         install + "\"\n";
}

class LxcDeps : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    if (!lxcAvailable(&setupError_)) return;  // SetUp says why
    setupError_.clear();
    TestHost::Options o;
    o.healthTimeout = "60s";
    // Collection at once: what no environment names goes at its delete.
    o.deployToml = "deps_max_age = \"0\"\n";
    host_ = std::make_unique<TestHost>(o);
    if (!makeRepo()) return;
    o.repos = {{"sample", repo_->bare()}};
    host_->writeConfig(o);
    host_->startDaemon();
    if (!host_->daemonRunning()) {
      setupError_ = "qaboxd did not start:\n" + host_->logText();
      return;
    }
    CliResult built = host_->cli({"image", "build", "python"}, std::chrono::minutes(30));
    if (built.exitCode != 0) setupError_ = "image build python: " + built.err;
  }

  static void TearDownTestSuite() {
    repo_.reset();
    host_.reset();
  }

 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    ASSERT_TRUE(host_ && setupError_.empty()) << setupError_;
  }

  void TearDown() override {
    if (!host_) return;
    for (const auto& t : deployed_) {
      if (host_->env(t)) {
        EXPECT_EQ(host_->cli({"delete", t}).exitCode, 0) << t;
      }
    }
  }

  // develop: the sample with wheels/ (1.0 and 1.1), requirements.txt
  // naming 1.0 and [deps]. Branches off it:
  //   feature/same-a, feature/same-b  other files changed, not the listed one
  //   feature/changed                 requirements.txt names 1.1
  //   feature/bad                     a package no wheel provides
  //   feature/link                    requirements.txt a symlink
  //   feature/evil                    an install that reaches for the host
  static bool makeRepo() {
    repo_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    const std::string work = host_->stateDir() + "/src/work";
    auto copied = runOrDie({"bash", "-c",
                            "tar -C \"$0\" --exclude=./feature --exclude=./make-remote.sh "
                            "--exclude=__pycache__ -cf - . | tar -C \"$1\" -xf -",
                            sourceDir() + "/scripts/sample-app", work});
    if (copied.exitCode != 0) {
      setupError_ = "copying the sample: " + copied.err;
      return false;
    }
    for (const char* ver : {"1.0", "1.1"}) {
      auto w = runOrDie(
          {"python3", sourceDir() + "/tests/integration/make_wheel.py", work + "/wheels", ver});
      if (w.exitCode != 0) {
        setupError_ = std::string("building the wheel: ") + w.err;
        return false;
      }
    }
    repo_->write("requirements.txt", "qaboxdemo==1.0\n");
    repo_->write("qabox.toml", manifest(kInstall));
    repo_->commit("sample with [deps]");
    repo_->push("develop");
    branch("feature/same-a", "NOTES.md", "a\n");
    branch("feature/same-b", "NOTES.md", "b\n");
    branch("feature/changed", "requirements.txt", "qaboxdemo==1.1\n");
    branch("feature/bad", "requirements.txt", "qaboxmissing==9.9\n");
    repo_->checkout("feature/link", true);
    repo_->write("real-requirements.txt", "qaboxdemo==1.0\n");
    repo_->git({"rm", "-q", "requirements.txt"});
    fs::create_symlink("real-requirements.txt", work + "/requirements.txt");
    repo_->commit("requirements.txt a link");
    repo_->push("feature/link");
    repo_->checkout("develop");
    // Writes where the host's files would be if anything were not contained:
    // /tmp, a link to / under /var/log (dropped), /opt/evil/hostroot -> /.
    const std::string evil = std::string(kInstall) + " && echo escaped > /tmp/" + marker() +
                             " && echo escaped > /" + marker() +
                             " && mkdir -p /opt/evil && ln -s / /opt/evil/hostroot"
                             " && rm -rf /var/log && ln -s /etc /var/log"
                             " && mkdir -p /etc/qabox && ln -s / /etc/qabox/root"
                             " && ln -s / /srv/app/hostroot";
    // An install still running when the agent is killed.
    repo_->checkout("feature/slow", true);
    repo_->write("qabox.toml", manifest(std::string(kInstall) + " && sleep 120"));
    repo_->commit("a slow install");
    repo_->push("feature/slow");
    repo_->checkout("develop");
    repo_->checkout("feature/evil", true);
    repo_->write("qabox.toml", manifest(evil));
    repo_->commit("an install that reaches for the host");
    repo_->push("feature/evil");
    repo_->checkout("develop");
    return true;
  }

  static void branch(const std::string& name, const std::string& path, const std::string& content) {
    repo_->checkout(name, true);
    repo_->write(path, content);
    repo_->commit(name);
    repo_->push(name);
    repo_->checkout("develop");
  }

  static std::string marker() { return "qabox-deps-escape-" + std::to_string(getpid()); }

  CliResult deploy(const std::string& ticket, const std::string& source) {
    deployed_.push_back(ticket);
    return host_->cli({"deploy", ticket, "--repo", "sample", "--source", source, "--target",
                       "develop", "--image", "python"},
                      std::chrono::minutes(5));
  }

  void deployReady(const std::string& ticket, const std::string& source, CliResult& r) {
    r = deploy(ticket, source);
    ASSERT_EQ(r.exitCode, 0) << r.err << "\n"
                             << host_->cli({"logs", ticket, "--deploy"}).out << host_->logText();
    auto env = host_->env(ticket);
    ASSERT_TRUE(env);
    ASSERT_EQ(env->state(), v1::Environment::READY) << env->message();
  }

  // The hash12 of "deps  built <hash12> in N s" or "cached <hash12>".
  static std::string depsPhase(const std::string& err, const std::string& how) {
    std::smatch m;
    if (!std::regex_search(err, m, std::regex("deps +[0-9.a-z]+ +" + how + " ([0-9a-f]{12})"))) {
      return "";
    }
    return m[1];
  }

  static std::set<std::string> layers() {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(host_->stateDir() + "/layers", ec)) {
      out.insert(e.path().filename());
    }
    return out;
  }

  static std::string layerOf(const std::string& hash12) {
    for (const auto& l : layers()) {
      if (l.rfind("deps-" + hash12, 0) == 0) return host_->stateDir() + "/layers/" + l;
    }
    return "";
  }

  static std::vector<std::string> buildContainers() {
    std::vector<std::string> out;
    for (const auto& c : host_->containers()) {
      // qabox-deps-<16 hex>; a ticket DEPS-1's container is qabox-deps-1.
      if (std::regex_match(c, std::regex("qabox-deps-[0-9a-f]{16}"))) out.push_back(c);
    }
    return out;
  }

  std::string probeLog(const std::string& ticket) {
    std::string log;
    for (int i = 0; i < 80; ++i) {
      log = host_->cli({"logs", ticket, "--process", "probe"}).out;
      if (contains(log, "qaboxdemo ")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return log;
  }

  static std::unique_ptr<TestHost> host_;
  static std::unique_ptr<GitFixture> repo_;
  static std::string setupError_;
  std::vector<std::string> deployed_;
};

std::unique_ptr<TestHost> LxcDeps::host_;
std::unique_ptr<GitFixture> LxcDeps::repo_;
std::string LxcDeps::setupError_;

TEST_F(LxcDeps, BuiltOnceSharedByTheSameFilesNewForAChangeImportableAndCollected) {
  CliResult a, b, c, d;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(deployReady("DEPS-1", "feature/same-a", a));
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(deployReady("DEPS-2", "feature/same-b", b));
  auto t2 = std::chrono::steady_clock::now();
  const std::string built = depsPhase(a.err, "built");
  ASSERT_FALSE(built.empty()) << a.err;
  EXPECT_EQ(depsPhase(b.err, "cached"), built) << b.err;
  const double first = std::chrono::duration<double>(t1 - t0).count();
  const double second = std::chrono::duration<double>(t2 - t1).count();
  std::cerr << "[ deps ] first deploy (layer built) " << first << " s, second (cached) " << second
            << " s, ratio " << (second > 0 ? first / second : 0) << "\n";
  ASSERT_EQ(layers().size(), 1u);
  EXPECT_TRUE(buildContainers().empty());
  // qabox image ls lists it, with the two environments on it.
  auto ls = host_->cli({"image", "ls"});
  ASSERT_EQ(ls.exitCode, 0) << ls.err;
  EXPECT_TRUE(std::regex_search(ls.out, std::regex(built + " +deps +- +python v[0-9]+ .* 2\\n")))
      << ls.out;

  // In the app's processes: the probe imports it with the venv's python,
  // and web runs on that python (health passed).
  EXPECT_TRUE(contains(probeLog("DEPS-1"), "qaboxdemo 1.0")) << probeLog("DEPS-1");
  EXPECT_TRUE(contains(probeLog("DEPS-2"), "qaboxdemo 1.0")) << probeLog("DEPS-2");

  // The layer holds the install's files as the image's ids, and not the
  // app's tree or the agent's files.
  const std::string layer = layerOf(built);
  ASSERT_FALSE(layer.empty());
  EXPECT_TRUE(fs::exists(fs::symlink_status(layer + "/opt/venv/bin/python3")));
  for (const char* gone : {"srv/app", "etc/qabox", "run", "tmp", "var/log"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(layer + "/" + gone))) << gone;
  }
  struct stat st {};
  ASSERT_EQ(lstat((layer + "/opt/venv").c_str(), &st), 0);
  std::smatch m;
  std::string imageConfig;
  for (const auto& e : fs::directory_iterator(host_->stateDir() + "/images")) {
    if (e.path().filename().string().rfind("python-v", 0) == 0) {
      imageConfig = readFile(e.path() / "config");
    }
  }
  if (std::regex_search(imageConfig, m, std::regex("lxc.idmap = u 0 ([0-9]+)"))) {
    EXPECT_EQ(st.st_uid, std::stoul(m[1])) << "the layer is owned by the image's ids";
  }

  // A change to requirements.txt: a new layer, built once.
  ASSERT_NO_FATAL_FAILURE(deployReady("DEPS-3", "feature/changed", c));
  ASSERT_NO_FATAL_FAILURE(deployReady("DEPS-4", "feature/changed", d));
  const std::string changed = depsPhase(c.err, "built");
  ASSERT_FALSE(changed.empty()) << c.err;
  EXPECT_NE(changed, built);
  EXPECT_EQ(depsPhase(d.err, "cached"), changed) << d.err;
  EXPECT_EQ(layers().size(), 2u);
  EXPECT_TRUE(contains(probeLog("DEPS-3"), "qaboxdemo 1.1")) << probeLog("DEPS-3");

  // Delete: a layer still named stays; the last one's delete collects it.
  ASSERT_EQ(host_->cli({"delete", "DEPS-1"}).exitCode, 0);
  EXPECT_FALSE(layerOf(built).empty());
  ASSERT_EQ(host_->cli({"delete", "DEPS-2"}).exitCode, 0);
  EXPECT_TRUE(layerOf(built).empty());
  ASSERT_EQ(host_->cli({"delete", "DEPS-3"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"delete", "DEPS-4"}).exitCode, 0);
  EXPECT_TRUE(layers().empty());
  EXPECT_TRUE(buildContainers().empty());
}

TEST_F(LxcDeps, AFailingInstallFailsAtDepsWithItsLastLinesAndLeavesNothing) {
  const int leases = host_->leaseCount();
  const auto before = layers();
  auto r = deploy("DEPS-BAD", "feature/bad");
  EXPECT_NE(r.exitCode, 0);
  EXPECT_TRUE(contains(r.err, "deps failed")) << r.err;
  EXPECT_TRUE(contains(r.err, "[deps] install failed")) << r.err;
  EXPECT_TRUE(contains(r.err, "qaboxmissing")) << r.err;
  EXPECT_FALSE(host_->env("DEPS-BAD")) << "rolled back whole";
  EXPECT_EQ(layers(), before);
  EXPECT_TRUE(buildContainers().empty());
  EXPECT_EQ(host_->leaseCount(), leases);
  for (const auto& c : host_->containers()) EXPECT_EQ(c.find("deps-bad"), std::string::npos) << c;
}

TEST_F(LxcDeps, ASymlinkedFilesEntryIsRefused) {
  const auto before = layers();
  auto r = deploy("DEPS-LINK", "feature/link");
  EXPECT_NE(r.exitCode, 0);
  EXPECT_TRUE(contains(r.err, "requirements.txt")) << r.err;
  EXPECT_TRUE(contains(r.err, "link")) << r.err;
  std::cerr << "[ deps ] the symlinked entry: " << r.err << "\n";
  EXPECT_EQ(layers(), before);
  EXPECT_TRUE(buildContainers().empty());
}

TEST_F(LxcDeps, TheInstallCannotWriteOutsideItsContainerNorItsLayerHoldAPathOutside) {
  CliResult r;
  ASSERT_NO_FATAL_FAILURE(deployReady("DEPS-EVIL", "feature/evil", r));
  const std::string hash12 = depsPhase(r.err, "built");
  ASSERT_FALSE(hash12.empty()) << r.err;
  // Nothing on the host.
  EXPECT_FALSE(fs::exists("/tmp/" + marker()));
  EXPECT_FALSE(fs::exists("/" + marker()));
  EXPECT_TRUE(fs::is_directory("/etc")) << "the host's /etc is whole";
  EXPECT_TRUE(fs::exists("/etc/passwd"));
  const std::string layer = layerOf(hash12);
  ASSERT_FALSE(layer.empty());
  // The links it made are links inside it (a clone resolves them in its
  // own root); the dropped paths are gone even as links, and with them
  // the link under /etc/qabox.
  EXPECT_TRUE(fs::is_symlink(layer + "/opt/evil/hostroot"));
  for (const char* gone : {"var/log", "etc/qabox", "tmp", "srv/app"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(layer + "/" + gone))) << gone;
  }
  // Every entry lies beneath the layer, none a device but a whiteout.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(layer, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string p = it->path().lexically_normal().string();
    EXPECT_EQ(p.rfind(layer + "/", 0), 0u) << p;
    struct stat st {};
    ASSERT_EQ(lstat(p.c_str(), &st), 0) << p;
    if (S_ISCHR(st.st_mode)) {
      EXPECT_EQ(st.st_rdev, makedev(0, 0)) << p;
    }
    EXPECT_FALSE(S_ISBLK(st.st_mode)) << p;
  }
  // In the environment, its own root's files are where the install put them.
  auto inside = host_->cli({"exec", "DEPS-EVIL", "--", "cat", "/" + marker()});
  EXPECT_EQ(inside.exitCode, 0) << inside.err;
  EXPECT_TRUE(contains(inside.out, "escaped"));
}

TEST_F(LxcDeps, AnAgentKilledMidBuildLeavesNoHalfMadeLayerNorBuildContainer) {
  const auto before = layers();
  const int leases = host_->leaseCount();
  int pid = host_->cliAsync({"deploy", "DEPS-SLOW", "--repo", "sample", "--source", "feature/slow",
                             "--target", "develop", "--image", "python"});
  // Until the build container is up and its install runs.
  bool building = false;
  for (int i = 0; i < 240 && !building; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    for (const auto& c : buildContainers()) {
      building = building || fs::exists(host_->lxcPath() + "/" + c + "/overlay/delta/opt/venv");
    }
  }
  ASSERT_TRUE(building) << host_->logText();
  host_->killDaemon();
  int status = 0;
  waitpid(pid, &status, 0);
  host_->startDaemon();
  ASSERT_TRUE(host_->daemonRunning()) << host_->logText();
  EXPECT_TRUE(buildContainers().empty());
  EXPECT_EQ(layers(), before);
  EXPECT_FALSE(host_->env("DEPS-SLOW"));
  EXPECT_EQ(host_->leaseCount(), leases);
  for (const auto& c : host_->containers()) EXPECT_EQ(c.find("deps-slow"), std::string::npos) << c;
}

}  // namespace
}  // namespace qabox::testing
