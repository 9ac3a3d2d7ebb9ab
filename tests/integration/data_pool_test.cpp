// Issue 14: block-level dataset volumes. A btrfs pool of the test's own (a
// sparse file on a loop device), a dataset volume made from a directory, and
// busybox clones given writable snapshots of it through LxcRuntime's
// attachData, in the shared and the isolated id mode. Real LXC, the real
// qabox-lxc helper and the containers' real seccomp profile.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fakes/fake_firewall.h"
#include "harness.h"
#include "runtime/data_pool.h"
#include "runtime/lxc_runtime.h"
#include "runtime_exec.h"
#include "store/paths.h"
#include "sys/btrfs.h"
#include "sys/idshift.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

// Makes a subvolume in the directory argv[1], named argv[2], with the btrfs
// ioctl: what code in a container would try.
constexpr char kMakeSubvolume[] = R"(#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
int main(int argc, char** argv) {
  if (argc != 3) return 2;
  int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
  if (fd < 0) { printf("open: %s\n", strerror(errno)); return 3; }
  struct btrfs_ioctl_vol_args args;
  memset(&args, 0, sizeof args);
  strncpy(args.name, argv[2], sizeof args.name - 1);
  if (ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, &args) != 0) {
    printf("subvol: %s\n", strerror(errno));
    return 1;
  }
  printf("subvol: made\n");
  return 0;
}
)";

class LxcDataPool : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    images_ = busyboxForRuntime(*host_, "data-lxc");
    ASSERT_FALSE(HasFatalFailure());
    imageBase_ = mappedRootOf(readFile(images_ + "/busybox-v1/config"));
    ASSERT_TRUE(imageBase_) << "the harness builds unprivileged images";
    lxcPath_ = host_->stateDir() + "/data-lxc";
    seccomp_ = host_->stateDir() + "/data.seccomp";
    writeText(seccomp_, seccompProfile(false));
    loop_ = std::make_unique<LoopBtrfs>(host_->stateDir() + "/btrfs");
    ASSERT_TRUE(loop_->ok()) << "cannot make the loop btrfs pool";
    pool_ = loop_->mnt();
    Status s = preparePool(pool_);
    ASSERT_TRUE(s.isOk()) << s.toString();
    // The dataset's source, as a stopped build container leaves it: its
    // files owned by the image's ids.
    src_ = host_->stateDir() + "/build";
    writeText(src_ + "/var/lib/data/a.txt", "hello\n");
    writeText(src_ + "/var/lib/data/sub/b.txt", "deep\n");
    writeText(src_ + "/var/lib/data/mksub.c", kMakeSubvolume);
    ASSERT_EQ(runOrDie({"cc", "-static", "-O", "-o", src_ + "/var/lib/data/mksub",
                        src_ + "/var/lib/data/mksub.c"})
                  .exitCode,
              0);
    fs::create_symlink("a.txt", src_ + "/var/lib/data/link");
    writeText(src_ + "/var/lib/other/c.txt", "other\n");
    fs::permissions(src_ + "/var/lib/data", fs::perms(0750));
    ASSERT_TRUE(shiftOwnership(src_, *imageBase_).isOk());
    ASSERT_EQ(
        ::lchown((src_ + "/var/lib/data/sub/b.txt").c_str(), *imageBase_ + 70, *imageBase_ + 71),
        0);
  }
  void TearDown() override {
    if (!host_) return;
    for (const auto& [name, rt] : made_) {
      Status s = rt->destroy(name);
      EXPECT_TRUE(s.isOk()) << s.toString();
    }
    loop_.reset();  // before the state dir it is in goes
  }

  LxcRuntime& runtime(uint32_t idSlots, bool seccomp = true) {
    LxcRuntimeOptions o;
    o.lxcPath = lxcPath_;
    o.helperPath = binDir() + "/agent/runtime/qabox-lxc";
    o.seccompProfile = seccomp ? seccomp_ : "";
    o.dataPool = pool_;
    if (idSlots > 0) {
      o.idBase = *imageBase_;
      o.idSlots = idSlots;
    }
    runtimes_.push_back(std::make_unique<LxcRuntime>(o, runner_, firewall_));
    return *runtimes_.back();
  }

  void cloneOn(LxcRuntime& rt, const std::string& name, int host) {
    const NetSpec net = bridgeNet(*host_, host);
    Status s = rt.clone(cloneImages_.empty() ? images_ : cloneImages_, cloneImage_, name, {}, net,
                        ResourceLimits{});
    ASSERT_TRUE(s.isOk()) << s.toString();
    made_.emplace_back(name, &rt);
  }

  // The dataset's volumes, made once per test.
  std::vector<std::string> dataset() {
    if (volumes_.empty()) {
      auto v = makeDatasetVolume(pool_, "h1", src_, {"var/lib/data", "var/lib/other"}, *imageBase_);
      EXPECT_TRUE(v.isOk()) << v.status().toString();
      if (v) volumes_ = *v;
    }
    return volumes_;
  }

  // A target directory in the clone, made in its upper dir as the
  // container's root would own it.
  void makeTarget(LxcRuntime& rt, const std::string& name, const std::string& target) {
    const std::string dir = rt.upperDir(name) + target;
    fs::create_directories(dir);
    uint32_t owner = rt.mappedRoot(name).value_or(0);
    for (fs::path p = dir; p != rt.upperDir(name); p = p.parent_path()) {
      ASSERT_EQ(::chown(p.c_str(), owner, owner), 0) << p;
    }
  }

  std::string sh(LxcRuntime& rt, const std::string& name, const std::string& script,
                 int* exitCode = nullptr) {
    return shIn(rt, name, script, exitCode, std::chrono::seconds(60));
  }

  // What every id mode must show.
  void expectData(LxcRuntime& rt) {
    auto v = dataset();
    ASSERT_EQ(v.size(), 2u);
    constexpr uint64_t kMax = 16 << 20;
    for (const std::string name : {"qabox-d1", "qabox-d2"}) {
      cloneOn(rt, name, name == std::string("qabox-d1") ? 201 : 202);
      makeTarget(rt, name, "/srv/data");
      makeTarget(rt, name, "/srv/other");
      Status s = rt.attachData(name, {{v[0], "/srv/data"}, {v[1], "/srv/other"}}, kMax);
      ASSERT_TRUE(s.isOk()) << s.toString();
      EXPECT_TRUE(contains(readFile(lxcPath_ + "/" + name + "/config"),
                           "lxc.mount.entry = " + envDataDir(pool_, name) + "/0 srv/data"));
      EXPECT_EQ(contains(readFile(lxcPath_ + "/" + name + "/config"), "idmap=container"),
                rt.mappedRoot(name).has_value())
          << "idmapped exactly when unprivileged";
      s = rt.start(name);
      ASSERT_TRUE(s.isOk()) << s.toString();
    }
    const std::string d1 = "qabox-d1", d2 = "qabox-d2";
    EXPECT_EQ(sh(rt, d1, "cat /srv/data/a.txt /srv/data/link /srv/data/sub/b.txt /srv/other/c.txt"),
              "hello\nhello\ndeep\nother\n");
    EXPECT_EQ(sh(rt, d1, "stat -c '%u:%g %a' /srv/data /srv/data/a.txt /srv/data/sub/b.txt"),
              "0:0 750\n0:0 644\n70:71 644\n")
        << "the container's root owns the dataset's files, ids as they were";
    int rc = -1;
    sh(rt, d1, "echo mine > /srv/data/new.txt && echo changed > /srv/data/a.txt", &rc);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(sh(rt, d1, "cat /srv/data/new.txt /srv/data/a.txt"), "mine\nchanged\n");
    EXPECT_FALSE(fs::exists(v[0] + "/new.txt")) << "a write reached the dataset";
    EXPECT_EQ(readFile(v[0] + "/a.txt"), "hello\n");
    EXPECT_EQ(sh(rt, d2, "cat /srv/data/a.txt; test -e /srv/data/new.txt && echo seen; true"),
              "hello\n")
        << "one environment's write showed in another's";
    // Beyond the limit: the write fails inside, the host goes on.
    std::string out =
        sh(rt, d1, "dd if=/dev/zero of=/srv/data/big bs=1M count=64 conv=fsync 2>&1; sync", &rc);
    EXPECT_TRUE(contains(out, "quota")) << out;
    EXPECT_LT(fs::file_size(envDataDir(pool_, d1) + "/0/big"), 32u << 20);
    EXPECT_TRUE(contains(
        sh(rt, d2, "dd if=/dev/zero of=/srv/data/small bs=1M count=4 2>&1 && echo ok"), "ok\n"))
        << "one environment's limit held another";
    // No subvolume of its own in its data, whatever the path.
    for (const std::string dir : {"/srv/data", "/srv/data/sub", "/tmp"}) {
      EXPECT_EQ(sh(rt, d1, "/srv/data/mksub " + dir + " nested", &rc),
                "subvol: Operation not permitted\n")
          << dir;
      EXPECT_EQ(rc, 1);
    }
    for (const std::string& name : {d1, d2}) {
      Status s = rt.destroy(name);
      ASSERT_TRUE(s.isOk()) << s.toString();
      EXPECT_FALSE(fs::exists(envDataDir(pool_, name)));
    }
    made_.clear();
    auto left = listEnvData(pool_);
    ASSERT_TRUE(left.isOk());
    EXPECT_TRUE(left->empty()) << ::testing::PrintToString(*left);
    EXPECT_EQ(readFile(v[0] + "/a.txt"), "hello\n");
  }

  // A target whose parent is a symlink: refused at attach, and liblxc does
  // not mount through one planted in the upper dir after it.
  void expectSymlinkRefused(LxcRuntime& rt) {
    auto v = dataset();
    ASSERT_EQ(v.size(), 2u);
    const std::string name = "qabox-s" + std::to_string(made_.size() + runtimes_.size());
    cloneOn(rt, name, 203 + static_cast<int>(runtimes_.size()));
    const std::string escape = host_->stateDir() + "/escape-" + name;
    fs::create_directories(escape + "/data");
    // At attach: a symlink in the target's way is refused.
    fs::create_symlink(escape, rt.upperDir(name) + "/srv");
    Status s = rt.attachData(name, {{v[0], "/srv/data"}}, 0);
    EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.toString();
    EXPECT_FALSE(fs::exists(envDataDir(pool_, name)));
    // Planted after the attach (what a container leaves in its upper dir for
    // its next start): liblxc refuses to mount through it.
    fs::remove(rt.upperDir(name) + "/srv");
    makeTarget(rt, name, "/srv/data");
    s = rt.attachData(name, {{v[0], "/srv/data"}}, 0);
    ASSERT_TRUE(s.isOk()) << s.toString();
    fs::remove_all(rt.upperDir(name) + "/srv");
    fs::create_symlink(escape, rt.upperDir(name) + "/srv");
    s = rt.start(name);
    if (s.isOk()) {
      EXPECT_FALSE(contains(sh(rt, name, "cat /srv/data/a.txt 2>&1"), "hello"))
          << "mounted through the symlink";
    }
    EXPECT_TRUE(fs::is_empty(escape + "/data")) << "the mount landed outside the rootfs";
    std::string mounts = readFile("/proc/self/mountinfo");
    EXPECT_FALSE(contains(mounts, escape)) << mounts;
    // Nested subvolumes (made from the host: containers cannot) go with destroy.
    ASSERT_TRUE(createSubvolume(envDataDir(pool_, name) + "/0/nested").isOk());
    ASSERT_TRUE(createSubvolume(envDataDir(pool_, name) + "/0/nested/deeper").isOk());
    s = rt.destroy(name);
    ASSERT_TRUE(s.isOk()) << s.toString();
    made_.clear();
    EXPECT_FALSE(fs::exists(envDataDir(pool_, name)));
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<LoopBtrfs> loop_;
  std::string images_, lxcPath_, seccomp_, pool_, src_;
  std::string cloneImages_, cloneImage_ = "busybox-v1";  // what cloneOn clones
  std::optional<uint32_t> imageBase_;
  std::vector<std::string> volumes_;
  RealProcessRunner runner_;
  fakes::FakeFirewall firewall_;
  std::vector<std::unique_ptr<LxcRuntime>> runtimes_;
  std::vector<std::pair<std::string, LxcRuntime*>> made_;
};

TEST_F(LxcDataPool, ADatasetVolumeIsAReadOnlyCopyWithZeroBasedIds) {
  auto v = dataset();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], datasetVolume(pool_, "h1", 0));
  auto sub = isSubvolume(v[0]);
  ASSERT_TRUE(sub.isOk() && *sub);
  EXPECT_EQ(readFile(v[0] + "/a.txt"), "hello\n");
  EXPECT_EQ(fs::read_symlink(v[0] + "/link"), "a.txt");
  struct stat st {};
  ASSERT_EQ(::lstat((v[0] + "/sub/b.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 70u);
  EXPECT_EQ(st.st_gid, 71u);
  ASSERT_EQ(::lstat(v[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  std::ofstream(v[0] + "/x.txt") << "x";
  EXPECT_FALSE(fs::exists(v[0] + "/x.txt")) << "a dataset volume is writable";
  auto listed = listDatasetVolumes(pool_);
  ASSERT_TRUE(listed.isOk());
  EXPECT_EQ(*listed, std::vector<std::string>{"h1"});
  auto again = makeDatasetVolume(pool_, "h1", src_, {"var/lib/data"}, *imageBase_);
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  // Refused: a symlink on the way to a kept path, a FIFO in it, an owner
  // outside the container's ids. Nothing is left under the final name.
  fs::create_symlink("/etc", src_ + "/var/lib/evil");
  auto bad = makeDatasetVolume(pool_, "h2", src_, {"var/lib/evil"}, *imageBase_);
  EXPECT_EQ(bad.status().code(), Code::kFailedPrecondition) << bad.status().toString();
  ASSERT_EQ(::mkfifo((src_ + "/var/lib/other/fifo").c_str(), 0600), 0);
  bad = makeDatasetVolume(pool_, "h3", src_, {"var/lib/other"}, *imageBase_);
  EXPECT_EQ(bad.status().code(), Code::kFailedPrecondition) << bad.status().toString();
  ASSERT_EQ(::unlink((src_ + "/var/lib/other/fifo").c_str()), 0);
  bad = makeDatasetVolume(pool_, "h4", src_, {"var/lib/other"}, *imageBase_ + kMappedIds);
  EXPECT_EQ(bad.status().code(), Code::kFailedPrecondition) << bad.status().toString();
  listed = listDatasetVolumes(pool_);
  ASSERT_TRUE(listed.isOk());
  EXPECT_EQ(*listed, std::vector<std::string>{"h1"});
  EXPECT_FALSE(fs::exists(datasetVolumeDir(pool_, "h4") + ".part"));
  // A crash's leftover .part goes at recovery.
  fs::create_directories(datasetVolumeDir(pool_, "h5") + ".part");
  ASSERT_TRUE(createSubvolume(datasetVolumeDir(pool_, "h5") + ".part/0").isOk());
  auto removed = removePartialDatasets(pool_);
  ASSERT_TRUE(removed.isOk()) << removed.status().toString();
  EXPECT_EQ(*removed, std::vector<std::string>{"h5"});
  EXPECT_FALSE(fs::exists(datasetVolumeDir(pool_, "h5") + ".part"));
  ASSERT_TRUE(deleteDatasetVolume(pool_, "h1").isOk());
  EXPECT_FALSE(fs::exists(datasetVolumeDir(pool_, "h1")));
}

// How a dataset is made from a build: its upper dir (here `top`, hiding a
// file with a whiteout) over the image's layers (`src_`), merged by a layer
// mount that shows the image's ids as 0..; the copy takes the merged view.
TEST_F(LxcDataPool, ADatasetIsMadeFromALayerMountsMergedView) {
  const std::string top = host_->stateDir() + "/top", merged = host_->stateDir() + "/merged";
  writeText(top + "/var/lib/data/seeded.txt", "seeded\n");
  ASSERT_EQ(::mknod((top + "/var/lib/data/a.txt").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0);
  ASSERT_TRUE(shiftOwnership(top, *imageBase_).isOk());
  fs::create_directories(merged);
  fs::create_directories(host_->stateDir() + "/upper");
  fs::create_directories(host_->stateDir() + "/work");
  auto& rt = runtime(0);
  LayerMount m{
      merged, host_->stateDir() + "/upper", host_->stateDir() + "/work", {top, src_}, *imageBase_};
  Status s = rt.mountLayers(m);
  ASSERT_TRUE(s.isOk()) << s.toString();
  auto v = makeDatasetVolume(pool_, "hm", merged, {"var/lib/data"}, 0);
  EXPECT_TRUE(rt.unmountLayers(merged).isOk());
  ASSERT_TRUE(v.isOk()) << v.status().toString();
  EXPECT_EQ(readFile((*v)[0] + "/seeded.txt"), "seeded\n");
  EXPECT_FALSE(fs::exists((*v)[0] + "/a.txt")) << "the whiteout's file came back";
  EXPECT_EQ(readFile((*v)[0] + "/sub/b.txt"), "deep\n");
  struct stat st {};
  ASSERT_EQ(::lstat(((*v)[0] + "/sub/b.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 70u);
  ASSERT_EQ(::lstat(((*v)[0] + "/seeded.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(LxcDataPool, SharedIdsGetWritableLimitedSnapshots) { expectData(runtime(0)); }

TEST_F(LxcDataPool, IsolatedIdsGetWritableLimitedSnapshots) { expectData(runtime(3)); }

// A privileged image (the busybox image's config without its id map, on a
// rootfs of host ids): a plain bind, the dataset's ids as they are.
TEST_F(LxcDataPool, PrivilegedClonesGetWritableLimitedSnapshots) {
  cloneImages_ = host_->stateDir() + "/priv-images";
  cloneImage_ = "priv-v1";
  const std::string dir = cloneImages_ + "/priv-v1";
  fs::create_directories(dir);
  ASSERT_EQ(runOrDie({"cp", "-a", images_ + "/busybox-v1/rootfs", dir + "/rootfs"}).exitCode, 0);
  ASSERT_EQ(runOrDie({"chown", "-R", "0:0", dir + "/rootfs"}).exitCode, 0);
  std::istringstream in(readFile(images_ + "/busybox-v1/config"));
  std::ofstream out(dir + "/config");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("lxc.idmap", 0) == 0 || line.rfind("lxc.rootfs.options", 0) == 0) continue;
    if (line.rfind("lxc.rootfs.path", 0) == 0) line = "lxc.rootfs.path = dir:" + dir + "/rootfs";
    out << line << "\n";
  }
  out.close();
  auto& rt = runtime(0);
  expectData(rt);
  expectSymlinkRefused(rt);
}

// What the profile's ioctl rule stops: without it, root in an isolated
// container makes a subvolume in its data, outside its snapshot's qgroup;
// destroy still deletes it.
TEST_F(LxcDataPool, WithoutTheSeccompProfileAContainerCouldMakeASubvolume) {
  auto v = dataset();
  ASSERT_EQ(v.size(), 2u);
  auto& rt = runtime(3, false);
  cloneOn(rt, "qabox-n1", 205);
  makeTarget(rt, "qabox-n1", "/srv/data");
  ASSERT_TRUE(rt.attachData("qabox-n1", {{v[0], "/srv/data"}}, 0).isOk());
  ASSERT_TRUE(rt.start("qabox-n1").isOk());
  EXPECT_EQ(sh(rt, "qabox-n1", "/srv/data/mksub /srv/data nested"), "subvol: made\n");
  auto sub = isSubvolume(envDataDir(pool_, "qabox-n1") + "/0/nested");
  EXPECT_TRUE(sub.isOk() && *sub);
  Status s = rt.destroy("qabox-n1");
  ASSERT_TRUE(s.isOk()) << s.toString();
  made_.clear();
  EXPECT_FALSE(fs::exists(envDataDir(pool_, "qabox-n1")));
}

TEST_F(LxcDataPool, ASymlinkedTargetIsRefusedAndNeverMountedOutside) {
  for (uint32_t slots : {0u, 3u}) {
    SCOPED_TRACE(slots ? "isolated ids" : "shared ids");
    expectSymlinkRefused(runtime(slots));
  }
}

TEST_F(LxcDataPool, TheAgentChecksItsDataPoolAtStart) {
  TestHost::Options o;
  const std::string plain = host_->stateDir() + "/plain-dir";
  fs::create_directories(plain);
  o.extraToml = "[storage]\ndata_pool = \"" + plain + "\"\n";
  host_->writeConfig(o);
  ProcessResult r = runOrDie(
      {binDir() + "/agent/daemon/qaboxd", "--config=" + host_->stateDir() + "/qaboxd.toml"});
  EXPECT_NE(r.exitCode, 0);
  EXPECT_TRUE(contains(r.out + r.err, "storage.data_pool \"" + plain + "\": not on btrfs"))
      << r.out << r.err;
  EXPECT_TRUE(contains(r.out + r.err, "mkfs.btrfs a volume and mount it there")) << r.err;
  fs::remove_all(pool_ + "/envs");
  o.extraToml = "[storage]\ndata_pool = \"" + pool_ + "\"\n";
  host_->writeConfig(o);
  host_->startDaemon();
  EXPECT_TRUE(fs::is_directory(pool_ + "/envs"));
  EXPECT_EQ(fs::status(pool_ + "/datasets").permissions(), fs::perms(0711));
  EXPECT_TRUE(contains(host_->logText(), "data pool " + pool_ + ": btrfs, quota on"));
  EXPECT_EQ(host_->stopDaemon(), 0);
}

TEST_F(LxcDataPool, AttachDataNeedsAPoolAndAStoppedClone) {
  auto v = dataset();
  ASSERT_EQ(v.size(), 2u);
  auto& rt = runtime(0);
  cloneOn(rt, "qabox-a1", 204);
  makeTarget(rt, "qabox-a1", "/srv/data");
  Status s = rt.attachData("qabox-a1", {{"/etc", "/srv/data"}}, 0);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  s = rt.attachData("qabox-a1", {{poolDatasetsDir(pool_) + "/../../..", "/srv/data"}}, 0);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  s = rt.attachData("qabox-a1", {{v[0], "/srv/../etc"}}, 0);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  s = rt.attachData("qabox-a1", {{v[0], "/srv/da ta"}}, 0);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  s = rt.attachData("qabox-a1", {{v[0], "/nowhere"}}, 0);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.toString();
  ASSERT_TRUE(rt.start("qabox-a1").isOk());
  s = rt.attachData("qabox-a1", {{v[0], "/srv/data"}}, 0);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.toString();
  s = rt.attachData("qabox-missing", {{v[0], "/srv/data"}}, 0);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.toString();
}

}  // namespace
}  // namespace qabox::testing
