// Cached dependency layers ([deps]): the hash rules, the pieces that take a
// build container's delta as a layer (drop, ownership, the files' check),
// collection's rule, and the deps step in deploys with the fakes: built
// once, cached after, a failure that leaves nothing, recovery, collection.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <thread>

#include "lifecycle/deps.h"
#include "sys/idshift.h"
#include "unit/contains.h"
#include "unit/lifecycle/deploy_fixture.h"

namespace qabox::deploy_test {
namespace {

using std::chrono::hours;

DepsInputs inputs() {
  return {"python", 3, "pip install -r requirements.txt", {{"requirements.txt", "flask==3\n"}}};
}

TEST(DepsHash, EveryInputCountsAndNothingElse) {
  const std::string base = depsHash(inputs());
  EXPECT_EQ(base.size(), 64u);
  EXPECT_EQ(depsHash(inputs()), base) << "the same inputs, the same hash";
  std::vector<DepsInputs> changed(7, inputs());
  changed[0].image = "node";
  changed[1].imageVersion = 4;
  changed[2].install = "pip install -r requirements.txt -q";
  changed[3].files[0].second = "flask==3.1\n";
  changed[4].files[0].first = "reqs.txt";
  changed[5].files.push_back({"constraints.txt", ""});
  changed[6].files.clear();
  std::set<std::string> seen = {base};
  for (const auto& c : changed) EXPECT_TRUE(seen.insert(depsHash(c)).second);
  // Order is the listed order, and bytes cannot move between fields.
  DepsInputs ab = inputs(), ba = inputs();
  ab.files = {{"a", "1"}, {"b", "2"}};
  ba.files = {{"b", "2"}, {"a", "1"}};
  EXPECT_NE(depsHash(ab), depsHash(ba));
  DepsInputs split1 = inputs(), split2 = inputs();
  split1.files = {{"ab", "c"}};
  split2.files = {{"a", "bc"}};
  EXPECT_NE(depsHash(split1), depsHash(split2));
  DepsInputs img1 = inputs(), img2 = inputs();
  img1.image = "python1";
  img1.imageVersion = 2;
  img2.image = "python";
  img2.imageVersion = 12;
  EXPECT_NE(depsHash(img1), depsHash(img2));
}

class DepsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qabox-deps-XXXXXX";
    dir_ = mkdtemp(tmpl);
    fs::create_directories(dir_ + "/layer/srv/app/x");
    fs::create_directories(dir_ + "/outside/keep");
    std::ofstream(dir_ + "/outside/keep/file") << "host";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DepsFiles, DropRemovesThePathAndNeverWhatALinkPointsAt) {
  const std::string layer = dir_ + "/layer";
  ASSERT_TRUE(dropBeneath(layer, "srv/app").isOk());
  EXPECT_FALSE(fs::exists(layer + "/srv/app"));
  EXPECT_TRUE(fs::is_directory(layer + "/srv"));
  // A link as the last part: the link goes, not its target.
  fs::create_directories(layer + "/var");
  fs::create_directory_symlink(dir_ + "/outside", layer + "/var/log");
  ASSERT_TRUE(dropBeneath(layer, "var/log").isOk());
  EXPECT_FALSE(fs::exists(fs::symlink_status(layer + "/var/log")));
  EXPECT_TRUE(fs::exists(dir_ + "/outside/keep/file"));
  // A link on the way: the link itself is dropped, nothing beyond it.
  fs::create_directory_symlink(dir_ + "/outside", layer + "/etc");
  ASSERT_TRUE(dropBeneath(layer, "etc/keep").isOk());
  EXPECT_FALSE(fs::exists(fs::symlink_status(layer + "/etc")));
  EXPECT_TRUE(fs::exists(dir_ + "/outside/keep/file"));
  // A file where a directory would be, and nothing there at all.
  std::ofstream(layer + "/run") << "x";
  ASSERT_TRUE(dropBeneath(layer, "run/qabox").isOk());
  EXPECT_FALSE(fs::exists(layer + "/run"));
  EXPECT_TRUE(dropBeneath(layer, "tmp").isOk());
  EXPECT_EQ(dropBeneath(layer, "../outside").code(), Code::kInvalidArgument);
  EXPECT_EQ(dropBeneath(layer, "a//b").code(), Code::kInvalidArgument);
  EXPECT_TRUE(fs::exists(dir_ + "/outside/keep/file"));
}

// A data layer keeps only the services' data dirs: everything else goes,
// links on the way go without being followed, and the directories on the
// way lose an opaque mark (which would hide the image's /var/lib).
TEST_F(DepsFiles, KeepOnlyLeavesTheKeptPathsAndNeverFollowsALink) {
  const std::string layer = dir_ + "/layer";
  fs::create_directories(layer + "/var/lib/postgresql/15/main/base");
  std::ofstream(layer + "/var/lib/postgresql/15/main/base/1") << "table";
  fs::create_directories(layer + "/var/lib/postgresql/16");
  fs::create_directories(layer + "/var/lib/dpkg");
  std::ofstream(layer + "/var/lib/postgresql/notes") << "x";
  fs::create_directories(layer + "/root/.cache");
  fs::create_directory_symlink(dir_ + "/outside", layer + "/var/lib/redis");
  ASSERT_EQ(::setxattr((layer + "/var/lib").c_str(), "user.overlay.opaque", "y", 1, 0), 0);
  ASSERT_TRUE(keepOnlyBeneath(layer, {"var/lib/postgresql/15/main", "var/lib/redis/data"}).isOk());
  EXPECT_TRUE(fs::exists(layer + "/var/lib/postgresql/15/main/base/1"));
  EXPECT_FALSE(fs::exists(layer + "/var/lib/postgresql/16"));
  EXPECT_FALSE(fs::exists(layer + "/var/lib/postgresql/notes"));
  EXPECT_FALSE(fs::exists(layer + "/var/lib/dpkg"));
  EXPECT_FALSE(fs::exists(layer + "/root"));
  EXPECT_FALSE(fs::exists(layer + "/srv"));
  // The link where a directory on the way should be went; its target stays.
  EXPECT_FALSE(fs::exists(fs::symlink_status(layer + "/var/lib/redis")));
  EXPECT_TRUE(fs::exists(dir_ + "/outside/keep/file"));
  char value[4];
  EXPECT_LT(::getxattr((layer + "/var/lib").c_str(), "user.overlay.opaque", value, sizeof value),
            0);
  EXPECT_EQ(keepOnlyBeneath(layer, {"../outside"}).code(), Code::kInvalidArgument);
  EXPECT_EQ(keepOnlyBeneath(layer, {}).code(), Code::kInvalidArgument);
  EXPECT_TRUE(fs::exists(dir_ + "/outside/keep/file"));
}

TEST_F(DepsFiles, EveryListedFileMustBeARegularFileReachedWithoutLinks) {
  const std::string app = dir_ + "/layer/srv/app";
  std::ofstream(app + "/requirements.txt") << "flask\n";
  std::ofstream(app + "/x/nested.txt") << "x\n";
  EXPECT_TRUE(checkDepsFiles(app, {"requirements.txt", "x/nested.txt"}).isOk());
  fs::create_symlink("requirements.txt", app + "/link.txt");
  fs::create_directory_symlink(dir_ + "/outside", app + "/out");
  fs::create_directory(app + "/dir.txt");
  for (const char* bad : {"link.txt", "out/keep/file", "dir.txt", "missing.txt"}) {
    Status s = checkDepsFiles(app, {"requirements.txt", bad});
    EXPECT_EQ(s.code(), Code::kFailedPrecondition) << bad;
    EXPECT_EQ(s.message().rfind(std::string("[deps] files: ") + bad + ": ", 0), 0u) << s.message();
  }
}

TEST_F(DepsFiles, OwnershipMovesFromTheBuildsIdsToTheImagesLinksNotFollowed) {
  if (geteuid() != 0) GTEST_FAIL() << "needs root (chown)";
  const std::string layer = dir_ + "/layer";
  const uint32_t from = 2'000'000'000u, to = 1'000'000'000u;
  std::ofstream(layer + "/srv/file") << "x";
  ASSERT_EQ(lchown((layer + "/srv/file").c_str(), from + 33, from + 34), 0);
  ASSERT_EQ(chmod((layer + "/srv/file").c_str(), 04755), 0);
  fs::create_symlink(dir_ + "/outside/keep/file", layer + "/srv/link");
  ASSERT_EQ(lchown((layer + "/srv/link").c_str(), from, from), 0);
  ASSERT_EQ(lchown((dir_ + "/outside/keep/file").c_str(), from + 7, from + 7), 0);
  ASSERT_EQ(lchown(layer.c_str(), 0, 0), 0);  // not the build's: its image root
  ASSERT_TRUE(moveOwnership(layer, from, to).isOk());
  struct stat st {};
  ASSERT_EQ(lstat((layer + "/srv/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, to + 33);
  EXPECT_EQ(st.st_gid, to + 34);
  EXPECT_EQ(st.st_mode & 07777, 04755u) << "setuid kept";
  ASSERT_EQ(lstat((layer + "/srv/link").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, to);
  ASSERT_EQ(lstat(layer.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, to);
  ASSERT_EQ(lstat((dir_ + "/outside/keep/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, from + 7) << "a link's target is not the layer's";
}

TEST(DepsCollect, NamedOrPinnedStayElseByAgeOrAGoneImage) {
  CachedLayer l;
  const TimePoint now = TimePoint(hours(1000));
  l.lastUsedAt = now - hours(2);
  struct Case {
    bool named, pinned, imageExists;
    std::chrono::milliseconds maxAge;
    bool collect;
  };
  const Case cases[] = {
      {true, false, true, hours(1), false},  {false, true, true, hours(1), false},
      {true, false, false, hours(1), false}, {false, true, false, hours(0), false},
      {false, false, true, hours(1), true},  {false, false, true, hours(2), true},
      {false, false, true, hours(3), false}, {false, false, false, hours(3), true},
      {false, false, true, hours(0), true},
  };
  for (const auto& c : cases) {
    LayerUse use{c.named, c.pinned, c.imageExists, false};
    EXPECT_EQ(collectable(l, use, now, c.maxAge), c.collect)
        << c.named << c.pinned << c.imageExists << " " << c.maxAge.count();
  }
}

// ---------------------------------------------------------------------------
// The deps step in deploys, with the fakes.

constexpr const char* kInstall = "pip install -r requirements.txt";

class DepsDeployTest : public DeployTest {
 protected:
  void SetUp() override {
    DeployTest::SetUp();
    git_.files["qabox.toml"] =
        std::string("[deps]\nfiles = [\"requirements.txt\"]\ninstall = \"") + kInstall + "\"\n";
    git_.files["requirements.txt"] = "flask==3\n";
    // The install writes its files, and some a layer must not keep.
    runtime_.onExec = [this](const std::string& name,
                             const ExecSpec& spec) -> Result<ProcessResult> {
      if (name.rfind("qabox-deps-", 0) != 0) return exited(0);
      execs_.push_back(spec);
      if (installFails_)
        return exited(1, "Collecting flask\n", "ERROR: No matching distribution\n");
      fs::create_directories(upper(name) + "/opt/venv");
      std::ofstream(upper(name) + "/opt/venv/marker") << "installed\n";
      fs::create_directories(upper(name) + "/tmp");
      std::ofstream(upper(name) + "/tmp/scratch") << "x";
      std::ofstream(upper(name) + "/srv/app/build.out") << "x";
      return exited(0, "Successfully installed flask\n");
    };
  }

  std::string layersDir() const { return dir_ + "/layers"; }
  std::vector<std::string> layerDirs() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(layersDir(), ec))
      out.push_back(e.path().filename());
    return out;
  }
  std::string phaseDetail(const std::string& name) const {
    for (const auto& p : phases_) {
      if (p.phase == name) return p.detail;
    }
    return "";
  }
  size_t buildClones() const {
    return std::count_if(runtime_.calls.begin(), runtime_.calls.end(),
                         [](const std::string& c) { return c.rfind("clone qabox-deps-", 0) == 0; });
  }

  std::vector<ExecSpec> execs_;
  bool installFails_ = false;
};

TEST_F(DepsDeployTest, BuiltOnceInAContainerOfItsOwnThenCachedForTheSameFiles) {
  auto a = deploy(fromRepo("SHOP-1"));
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ASSERT_EQ(a->depsLayer.size(), 64u);
  const std::string hash12 = a->depsLayer.substr(0, 12);
  EXPECT_EQ(phaseDetail("deps"), "built " + hash12 + " in 0 s");
  // deps runs before the clone, which lies over the layer.
  auto names = phaseNames();
  EXPECT_LT(std::find(names.begin(), names.end(), "deps"),
            std::find(names.begin(), names.end(), "clone"));
  const std::string layer = layersDir() + "/deps-" + a->depsLayer;
  ASSERT_EQ(runtime_.lowers["qabox-shop-1"].size(), 1u);
  EXPECT_EQ(runtime_.lowers["qabox-shop-1"][0], layer);
  // The install ran once, in /srv/app of its build container, which is gone.
  ASSERT_EQ(execs_.size(), 1u);
  EXPECT_EQ(execs_[0].argv, (std::vector<std::string>{"/bin/sh", "-c", kInstall}));
  EXPECT_EQ(execs_[0].cwd, "/srv/app");
  const std::string build = LayerCache::buildContainer(LayerKind::kDeps, a->depsLayer);
  EXPECT_EQ(countCalls("start " + build), 1u);
  EXPECT_EQ(countCalls("stop " + build), 1u);
  EXPECT_FALSE(runtime_.containers.count(build));
  ASSERT_EQ(store_->listLeases()->size(), 1u);
  EXPECT_EQ(store_->listLeases()->at(0).owner, "qabox-shop-1");
  // The layer: the install's files, not the tree or its scratch.
  EXPECT_EQ(readAll(layer + "/opt/venv/marker"), "installed\n");
  EXPECT_FALSE(fs::exists(layer + "/srv/app"));
  EXPECT_FALSE(fs::exists(layer + "/tmp"));
  EXPECT_FALSE(fs::exists(layer + ".part"));
  auto row = store_->getLayer(a->depsLayer);
  ASSERT_TRUE(row.isOk() && row->has_value());
  EXPECT_EQ((*row)->image, "busybox");
  EXPECT_EQ((*row)->imageVersion, 1u);
  EXPECT_GT((*row)->sizeBytes, 0u);
  // The build's journal entry closed ok; its output in the deploy log.
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  EXPECT_TRUE(
      contains(readAll(paths::deployLog(dir_, "shop-1")), std::string("==> deps: ") + kInstall));
  // The app's own tree still comes from the export.
  EXPECT_EQ(readAll(upper("qabox-shop-1") + "/srv/app/requirements.txt"), "flask==3\n");

  // The same files for another ticket: the same layer, no build.
  time_.advance(hours(1));
  auto b = deploy(fromRepo("SHOP-2"));
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ(b->depsLayer, a->depsLayer);
  EXPECT_EQ(phaseDetail("deps"), "cached " + hash12);
  EXPECT_EQ(buildClones(), 1u);
  EXPECT_EQ(runtime_.lowers["qabox-shop-2"][0], layer);
  EXPECT_EQ((*store_->getLayer(a->depsLayer))->lastUsedAt, time_.now());

  // Changed files: a layer of their own, built once.
  git_.files["requirements.txt"] = "flask==3.1\n";
  git_.nextMerge.commit = std::string(40, 'd');
  auto c = deploy(fromRepo("SHOP-3"));
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_NE(c->depsLayer, a->depsLayer);
  EXPECT_EQ(phaseDetail("deps").rfind("built " + c->depsLayer.substr(0, 12), 0), 0u);
  EXPECT_EQ(buildClones(), 2u);
  EXPECT_EQ(layerDirs().size(), 2u);
}

TEST_F(DepsDeployTest, ConcurrentDeploysOfOneHashWaitForOneBuild) {
  auto install = runtime_.onExec;
  runtime_.onExec = [&](const std::string& name, const ExecSpec& spec) {
    if (name.rfind("qabox-deps-", 0) == 0) std::this_thread::sleep_for(milliseconds(300));
    return install(name, spec);
  };
  std::mutex mu;
  std::vector<std::string> details;
  auto run = [&](const std::string& ticket) {
    DeployInput in = fromRepo(ticket);
    in.actor = "alice";
    auto r = envs_->deploy(in, [&](const Progress& p) {
      std::lock_guard l(mu);
      if (p.phase == "deps") details.push_back(p.detail.substr(0, p.detail.find(' ')));
    });
    EXPECT_TRUE(r.isOk()) << r.status().toString();
  };
  std::thread a(run, "SHOP-1"), b(run, "SHOP-2");
  a.join();
  b.join();
  EXPECT_EQ(buildClones(), 1u);
  std::sort(details.begin(), details.end());
  EXPECT_EQ(details, (std::vector<std::string>{"built", "cached"}));
  EXPECT_EQ(layerDirs().size(), 1u);
}

TEST_F(DepsDeployTest, AFailedInstallFailsAtDepsWithItsLastLinesAndLeavesNothing) {
  installFails_ = true;
  auto r = deploy(fromRepo("SHOP-1"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE(contains(r.status().message(), "deps failed: [deps] install failed with exit code 1"))
      << r.status().message();
  EXPECT_TRUE(contains(r.status().message(), "ERROR: No matching distribution"));
  expectNothingLeft("shop-1", "qabox-shop-1");
  EXPECT_TRUE(runtime_.containers.empty());
  EXPECT_TRUE(layerDirs().empty());
  EXPECT_TRUE(store_->listLayers()->empty());
  // The build's own journal entry ended "error".
  bool buildError = false;
  for (const auto& f : store_->finished) {
    buildError = buildError || (f.outcome == "error" && contains(f.detail, "[deps] install"));
  }
  EXPECT_TRUE(buildError);
}

TEST_F(DepsDeployTest, ALayerOverTheDiskLimitFailsAtDepsAndLeavesNothing) {
  config_.limits.maxDisk = "1K";
  makeManager();
  runtime_.onExec = [this](const std::string& name, const ExecSpec&) -> Result<ProcessResult> {
    if (name.rfind("qabox-deps-", 0) != 0) return exited(0);
    fs::create_directories(upper(name) + "/opt");
    std::ofstream(upper(name) + "/opt/big") << std::string(64 * 1024, 'x');
    return exited(0);
  };
  auto r = deploy(fromRepo("SHOP-1"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_TRUE(contains(r.status().message(), "deps failed: [deps] install wrote "))
      << r.status().message();
  EXPECT_TRUE(contains(r.status().message(), "above limits.max_disk 1K"));
  expectNothingLeft("shop-1", "qabox-shop-1");
  EXPECT_TRUE(runtime_.containers.empty());
  EXPECT_TRUE(layerDirs().empty());
}

TEST_F(DepsDeployTest, ARedeployWhoseDepsFailKeepsTheOldOne) {
  auto a = deploy(fromRepo("SHOP-1"));
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  git_.files["requirements.txt"] = "nope\n";
  git_.nextMerge.commit = std::string(40, 'e');
  installFails_ = true;
  auto r = deploy(fromRepo("SHOP-1"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->container, a->container);
  EXPECT_EQ(r->depsLayer, a->depsLayer);
  EXPECT_EQ(r->message.rfind("redeploy failed: deps failed: ", 0), 0u) << r->message;
  EXPECT_EQ(layerDirs().size(), 1u);
}

TEST_F(DepsDeployTest, AListedFileMissingAtTheCommitIsRefusedBeforeAnythingIsMade) {
  git_.files.erase("requirements.txt");
  auto r = deploy(fromRepo("SHOP-1"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE(contains(r.status().message(), "deps.files \"requirements.txt\": no such file"))
      << r.status().message();
  EXPECT_TRUE(runtime_.calls.empty());
  EXPECT_TRUE(store_->listLeases()->empty());
}

TEST_F(DepsDeployTest, DeleteCollectsTheLayerTheLastEnvironmentNamed) {
  config_.deploy.depsMaxAge = milliseconds(0);
  makeManager();
  auto a = deploy(fromRepo("SHOP-1"));
  auto b = deploy(fromRepo("SHOP-2"));
  ASSERT_TRUE(a.isOk() && b.isOk());
  ASSERT_TRUE(envs_->remove("SHOP-1", "alice").isOk());
  EXPECT_EQ(layerDirs().size(), 1u) << "SHOP-2 still names it";
  ASSERT_TRUE(envs_->remove("SHOP-2", "alice").isOk());
  EXPECT_TRUE(layerDirs().empty());
  EXPECT_TRUE(store_->listLayers()->empty());
}

TEST_F(DepsDeployTest, CollectionWaitsForTheAgeUnlessItsImageVersionIsGone) {
  config_.deploy.depsMaxAge = hours(24);
  makeManager();
  auto a = deploy(fromRepo("SHOP-1"));
  ASSERT_TRUE(a.isOk());
  ASSERT_TRUE(envs_->remove("SHOP-1", "alice").isOk());
  EXPECT_EQ(layerDirs().size(), 1u) << "unused, but not for long";
  time_.advance(hours(23));
  EXPECT_TRUE(envs_->collectLayers("test")->empty());
  time_.advance(hours(2));
  auto removed = envs_->collectLayers("test");
  ASSERT_TRUE(removed.isOk());
  EXPECT_EQ(*removed, (std::vector<std::string>{a->depsLayer}));
  EXPECT_TRUE(layerDirs().empty());

  // A fresh one whose image version was deleted goes at once.
  git_.nextMerge.commit = std::string(40, 'f');
  auto b = deploy(fromRepo("SHOP-2"));
  ASSERT_TRUE(b.isOk());
  ASSERT_TRUE(envs_->remove("SHOP-2", "alice").isOk());
  ASSERT_TRUE(store_->deleteImage("busybox", 1).isOk());
  EXPECT_EQ(envs_->collectLayers("test")->size(), 1u);
  EXPECT_TRUE(layerDirs().empty());
}

TEST_F(DepsDeployTest, RecoveryRemovesAHalfMadeLayerAndItsBuildContainer) {
  const std::string hash(64, 'a'), kept(64, 'b');
  const std::string build = LayerCache::buildContainer(LayerKind::kDeps, hash);
  ASSERT_TRUE(runtime_.clone("", "busybox-v1", build, {}, {}, {}).isOk());
  auto ip = store_->leaseAddress(config_.network.subnet, build);
  ASSERT_TRUE(ip.isOk());
  Operation op{0,           "", JournalKind::kDepsBuild,     build, *ip,
               time_.now(), {}, JournalOutcome::kUnfinished, ""};
  ASSERT_TRUE(store_->beginOperation(op).isOk());
  fs::create_directories(layersDir() + "/deps-" + hash + ".part/opt");
  fs::create_directories(layersDir() + "/deps-" + kept + "/opt");
  fs::create_directories(layersDir() + "/deps-" + std::string(64, 'c'));  // no row
  ASSERT_TRUE(
      store_->putLayer({kept, LayerKind::kDeps, "", "busybox", 1, 10, time_.now(), time_.now()})
          .isOk());
  ASSERT_TRUE(store_
                  ->putLayer({std::string(64, 'd'), LayerKind::kDeps, "", "busybox", 1, 10,
                              time_.now(), time_.now()})
                  .isOk());
  makeManager();
  ASSERT_TRUE(envs_->recover().isOk());
  EXPECT_FALSE(runtime_.containers.count(build));
  EXPECT_TRUE(store_->listLeases()->empty());
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  EXPECT_EQ(layerDirs(), (std::vector<std::string>{"deps-" + kept}));
  auto rows = store_->listLayers();
  ASSERT_EQ(rows->size(), 1u) << "a row whose directory is gone goes";
  EXPECT_EQ(rows->at(0).hash, kept);
}

// A build's journal entry names its build container; one that names an
// environment's container is closed, and the container stays.
TEST_F(DepsDeployTest, RecoveryOfABuildEntryNeverDestroysAnEnvironmentsContainer) {
  auto a = deploy(fromRepo("SHOP-1"));
  ASSERT_TRUE(a.isOk() && a->state == EnvState::kReady) << a.status().toString();
  Operation op{0,
               "",
               JournalKind::kDepsBuild,
               a->container,
               "",
               time_.now(),
               {},
               JournalOutcome::kUnfinished,
               ""};
  ASSERT_TRUE(store_->beginOperation(op).isOk());
  makeManager();
  ASSERT_TRUE(envs_->recover().isOk());
  EXPECT_TRUE(runtime_.containers.count(a->container));
  EXPECT_EQ(store_->getEnvironment("shop-1")->value().state, EnvState::kReady);
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
}

}  // namespace
}  // namespace qabox::deploy_test
