// Issue 14: a clone's rootfs made of several read-only layers (an image
// built on images), in each id mode (isolated ids, shared unprivileged ids,
// privileged), and the host-side layer mounts an image build runs on. Real
// LXC through LxcRuntime and the real qabox-lxc helper; the layers are made
// by hand as the image builder makes them.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "fakes/fake_firewall.h"
#include "harness.h"
#include "runtime/lxc_runtime.h"
#include "runtime_exec.h"
#include "store/paths.h"
#include "sys/idshift.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

// Every entry under `root`: its path, type, mode, owner, size, content hash
// and xattr names: what must be the same before and after a clone ran on it.
std::string treeState(const fs::path& root) {
  std::ostringstream out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::end(it); it.increment(ec)) {
    struct stat st {};
    if (lstat(it->path().c_str(), &st) != 0) continue;
    out << it->path().lexically_relative(root).string() << " " << st.st_mode << " " << st.st_uid
        << ":" << st.st_gid << " " << st.st_size << " " << st.st_mtime;
    if (S_ISREG(st.st_mode) && st.st_size < 4096) {
      out << " " << std::hash<std::string>{}(readFile(it->path()));
    }
    char names[1024];
    ssize_t n = llistxattr(it->path().c_str(), names, sizeof names);
    if (n > 0) out << " xattrs:" << std::string(names, static_cast<size_t>(n)).size();
    out << "\n";
  }
  return out.str();
}

// Mounts whose mount point or source is under `dir`.
std::vector<std::string> mountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::istringstream in(readFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    if (line.find(dir + "/") != std::string::npos) out.push_back(line);
  }
  return out;
}

// Two layers as an image built on another has them: `bottom` a copy of the
// busybox image's rootfs with three files of its own, `top` adding a file,
// hiding one of bottom's with a whiteout and making /opaque opaque. Owned by
// the image's ids (`base`, when unprivileged); opaque marks are
// user.overlay.* where clones mount in a user namespace, else trusted.*.
struct LayerSet {
  fs::path top, bottom;
};

LayerSet makeLayers(const fs::path& dir, const fs::path& imageRootfs,
                    std::optional<uint32_t> base) {
  LayerSet l{dir / "top", dir / "bottom"};
  fs::create_directories(dir);
  EXPECT_EQ(runOrDie({"cp", "-a", imageRootfs.string(), l.bottom.string()}).exitCode, 0);
  writeText(l.bottom / "bottom.txt", "from bottom\n");
  writeText(l.bottom / "gone.txt", "hidden by top\n");
  writeText(l.bottom / "opaque/hidden.txt", "hidden by top's opaque dir\n");
  writeText(l.top / "top.txt", "from top\n");
  writeText(l.top / "opaque/shown.txt", "top's own\n");
  EXPECT_EQ(mknod((l.top / "gone.txt").c_str(), S_IFCHR | 0000, makedev(0, 0)), 0)
      << std::strerror(errno);
  const char* opaque = base ? "user.overlay.opaque" : "trusted.overlay.opaque";
  EXPECT_EQ(setxattr((l.top / "opaque").c_str(), opaque, "y", 1, 0), 0) << std::strerror(errno);
  fs::permissions(l.top, fs::perms(0755));
  if (base) {
    for (const auto& layer : {l.top, l.bottom}) {
      Status s = shiftOwnership(layer.string(), *base);
      EXPECT_TRUE(s.isOk()) << s.toString();
    }
  }
  return l;
}

class LxcLayers : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    images_ = busyboxForRuntime(*host_, "layers-lxc");
    imageBase_ = mappedRootOf(readFile(images_ + "/busybox-v1/config"));
    lxcPath_ = host_->stateDir() + "/layers-lxc";
  }
  void TearDown() override {
    if (!host_) return;
    for (const auto& [name, rt] : made_) {
      Status s = rt->destroy(name);
      EXPECT_TRUE(s.isOk()) << s.toString();
    }
    EXPECT_TRUE(mountsUnder(host_->stateDir()).empty());
  }

  // Layers on the busybox image's rootfs, owned by its ids, in `sub`.
  LayerSet imageLayers(const std::string& sub = "layers") {
    return makeLayers(host_->stateDir() + "/" + sub, images_ + "/busybox-v1/rootfs", imageBase_);
  }

  // Layers of host ids (a privileged image's), opaque marks trusted.*.
  LayerSet hostLayers() {
    auto l = makeLayers(host_->stateDir() + "/priv-layers", images_ + "/busybox-v1/rootfs",
                        std::nullopt);
    EXPECT_EQ(runOrDie({"chown", "-R", "0:0", l.top.string(), l.bottom.string()}).exitCode, 0);
    return l;
  }

  LxcRuntime& runtime(uint32_t idSlots) {
    LxcRuntimeOptions o;
    o.lxcPath = lxcPath_;
    o.helperPath = binDir() + "/agent/runtime/qabox-lxc";
    if (idSlots > 0) {
      o.idBase = *imageBase_;
      o.idSlots = idSlots;
    }
    runtimes_.push_back(std::make_unique<LxcRuntime>(o, runner_, firewall_));
    return *runtimes_.back();
  }

  // Clones `name` from `image` in `imagesPath` with lowers {top, bottom}.
  void cloneOn(LxcRuntime& rt, const std::string& imagesPath, const std::string& image,
               const std::string& name, const LayerSet& l, int host) {
    const NetSpec net = bridgeNet(*host_, host);
    Status s = rt.clone(imagesPath, image, name, {l.top.string(), l.bottom.string()}, net,
                        ResourceLimits{});
    ASSERT_TRUE(s.isOk()) << s.toString();
    made_.emplace_back(name, &rt);
  }

  std::string sh(LxcRuntime& rt, const std::string& name, const std::string& script,
                 int* exitCode = nullptr) {
    return shIn(rt, name, script, exitCode);
  }

  // A clone with the image's ids: liblxc mounts its layers, named in order
  // in its rootfs, above its delta.
  void expectLiblxcOverlay(const std::string& name, const LayerSet& l) {
    const std::string config = readFile(lxcPath_ + "/" + name + "/config");
    EXPECT_TRUE(contains(config, "lxc.rootfs.path = overlay:" + l.top.string() + ":" +
                                     l.bottom.string() + ":" + lxcPath_ + "/" + name +
                                     "/overlay/delta"))
        << config;
  }

  // What every mode must show: the union from inside, writes in the delta
  // and never in a layer, nothing mounted after stop and destroy.
  void expectUnion(LxcRuntime& rt, const std::string& name, const LayerSet& l) {
    const std::string before = treeState(l.top) + treeState(l.bottom);
    Status s = rt.start(name);
    ASSERT_TRUE(s.isOk()) << s.toString();
    EXPECT_EQ(sh(rt, name, "cat /top.txt /bottom.txt"), "from top\nfrom bottom\n");
    EXPECT_EQ(sh(rt, name, "ls /opaque; test -e /gone.txt && echo gone-visible; true"),
              "shown.txt\n");
    EXPECT_EQ(sh(rt, name, "stat -c '%u:%g' /top.txt /bottom.txt /bin/busybox"), "0:0\n0:0\n0:0\n")
        << "root inside owns the layers' files";
    EXPECT_EQ(sh(rt, name, "ls /bin/sh >/dev/null && echo busybox"), "busybox\n")
        << "the bottom layer's image files";
    // Root inside writes over every file the layers hold: all of it lands
    // in the clone's delta.
    int rc = -1;
    sh(rt, name,
       "echo mine > /new.txt && echo evil > /top.txt && echo evil >> /bottom.txt && "
       "rm /opaque/shown.txt && echo back > /gone.txt && "
       "echo evil > /opaque/hidden.txt",
       &rc);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(sh(rt, name, "cat /new.txt /top.txt /gone.txt"), "mine\nevil\nback\n");
    const std::string delta = rt.upperDir(name);
    EXPECT_EQ(readFile(delta + "/new.txt"), "mine\n");
    EXPECT_EQ(readFile(delta + "/top.txt"), "evil\n");
    EXPECT_EQ(readFile(delta + "/bottom.txt"), "from bottom\nevil\n");
    EXPECT_EQ(treeState(l.top) + treeState(l.bottom), before) << "a layer changed";
    s = rt.stop(name);
    ASSERT_TRUE(s.isOk()) << s.toString();
    EXPECT_TRUE(mountsUnder(host_->stateDir()).empty());
    // Started again: the delta's files show on the same layers.
    s = rt.start(name);
    ASSERT_TRUE(s.isOk()) << s.toString();
    EXPECT_EQ(sh(rt, name, "cat /new.txt /bottom.txt"), "mine\nfrom bottom\nevil\n");
    s = rt.destroy(name);
    ASSERT_TRUE(s.isOk()) << s.toString();
    made_.clear();
    EXPECT_TRUE(mountsUnder(host_->stateDir()).empty());
    EXPECT_FALSE(fs::exists(lxcPath_ + "/" + name));
    EXPECT_EQ(treeState(l.top) + treeState(l.bottom), before) << "destroy touched a layer";
  }

  std::unique_ptr<TestHost> host_;
  std::string images_, lxcPath_;
  std::optional<uint32_t> imageBase_;
  RealProcessRunner runner_;
  fakes::FakeFirewall firewall_;
  std::vector<std::unique_ptr<LxcRuntime>> runtimes_;
  std::vector<std::pair<std::string, LxcRuntime*>> made_;
};

TEST_F(LxcLayers, AnIsolatedCloneSeesItsLayersIdmappedAndWritesOnlyItsDelta) {
  ASSERT_TRUE(imageBase_) << "the harness builds unprivileged images";
  auto l = imageLayers();
  auto& rt = runtime(3);
  cloneOn(rt, images_, "busybox-v1", "qabox-iso", l, 201);
  const std::string dir = lxcPath_ + "/qabox-iso";
  EXPECT_EQ(readFile(dir + "/idmap"), l.top.string() + " " + std::to_string(*imageBase_) + " " +
                                          std::to_string(*imageBase_ + kMappedIds) + "\n" +
                                          l.bottom.string() + "\n");
  ASSERT_TRUE(rt.start("qabox-iso").isOk());
  // Each layer at its own mount point, idmapped and read-only.
  auto mounts = mountsUnder(dir);
  ASSERT_EQ(mounts.size(), 3u) << ::testing::PrintToString(mounts);
  for (const std::string& point : {dir + "/lower ", dir + "/lower.1 "}) {
    bool found = false;
    for (const auto& m : mounts) {
      if (m.find(point) == std::string::npos) continue;
      found = true;
      EXPECT_NE(m.find("ro,"), std::string::npos) << m;
      EXPECT_NE(m.find("idmapped"), std::string::npos) << m;
    }
    EXPECT_TRUE(found) << point;
  }
  ASSERT_TRUE(rt.stop("qabox-iso").isOk());
  expectUnion(rt, "qabox-iso", l);
}

TEST_F(LxcLayers, ACloneWithTheImagesIdsGetsAnOverlayOfItsLayersFromLiblxc) {
  ASSERT_TRUE(imageBase_);
  auto l = imageLayers();
  auto& rt = runtime(0);
  cloneOn(rt, images_, "busybox-v1", "qabox-shared", l, 202);
  expectLiblxcOverlay("qabox-shared", l);
  expectUnion(rt, "qabox-shared", l);
}

TEST_F(LxcLayers, APrivilegedCloneGetsAnOverlayOfItsLayersFromLiblxc) {
  // A privileged image: the busybox image's config without its id map, on a
  // rootfs of host ids, its opaque marks trusted.overlay.*.
  const std::string privImages = host_->stateDir() + "/priv-images";
  auto l = hostLayers();
  fs::create_directories(privImages + "/priv-v1");
  // liblxc clones only an image whose rootfs is in its own directory.
  fs::rename(l.bottom, privImages + "/priv-v1/rootfs");
  l.bottom = privImages + "/priv-v1/rootfs";
  std::istringstream in(readFile(images_ + "/busybox-v1/config"));
  std::ofstream out(privImages + "/priv-v1/config");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("lxc.idmap", 0) == 0 || line.rfind("lxc.rootfs.options", 0) == 0) continue;
    if (line.rfind("lxc.rootfs.path", 0) == 0) line = "lxc.rootfs.path = dir:" + l.bottom.string();
    out << line << "\n";
  }
  out.close();
  auto& rt = runtime(0);
  cloneOn(rt, privImages, "priv-v1", "qabox-priv", l, 203);
  expectLiblxcOverlay("qabox-priv", l);
  expectUnion(rt, "qabox-priv", l);
}

// A link where the helper makes a mount point: the start is refused and
// nothing is mounted where the link points.
TEST_F(LxcLayers, ASymlinkAtALowerMountPointIsRefused) {
  ASSERT_TRUE(imageBase_);
  auto l = imageLayers();
  auto& rt = runtime(3);
  cloneOn(rt, images_, "busybox-v1", "qabox-link", l, 204);
  const std::string point = lxcPath_ + "/qabox-link/lower.1";
  const std::string target = host_->stateDir() + "/elsewhere";
  fs::create_directories(target);
  fs::remove(point);
  fs::create_symlink(target, point);
  Status s = rt.start("qabox-link");
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(contains(s.message(), point + " is a symlink")) << s.toString();
  EXPECT_TRUE(mountsUnder(target).empty());
  EXPECT_TRUE(fs::is_empty(target));
  EXPECT_TRUE(mountsUnder(lxcPath_).empty()) << "what was mounted before is undone at stop";
  fs::remove(point);
  fs::create_directory(point);
}

class LxcLayerMount : public LxcLayers {
 protected:
  // A test stopped half-way leaves nothing mounted for the state dir's
  // removal to descend into.
  void TearDown() override {
    if (host_ && !runtimes_.empty()) {
      Status s = runtimes_.front()->unmountLayers(host_->stateDir() + "/build/merged");
      EXPECT_TRUE(s.isOk()) << s.toString();
    }
    LxcLayers::TearDown();
  }
  LayerMount mountOf(const LayerSet& l, std::optional<uint32_t> base) {
    const fs::path build = host_->stateDir() + "/build";
    for (const char* d : {"merged", "upper", "work"}) fs::create_directories(build / d);
    return {(build / "merged").string(),
            (build / "upper").string(),
            (build / "work").string(),
            {l.top.string(), l.bottom.string()},
            base};
  }
  void expectMounted(LxcRuntime& rt, const LayerMount& m, const LayerSet& l, uint32_t owner) {
    const std::string before = treeState(l.top) + treeState(l.bottom);
    Status s = rt.mountLayers(m);
    ASSERT_TRUE(s.isOk()) << s.toString();
    struct stat st {};
    ASSERT_EQ(stat((m.merged + "/top.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, owner);
    ASSERT_EQ(stat((m.merged + "/bin/busybox").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, owner);
    EXPECT_EQ(readFile(m.merged + "/bottom.txt"), "from bottom\n");
    EXPECT_FALSE(fs::exists(m.merged + "/gone.txt"));
    EXPECT_FALSE(fs::exists(m.merged + "/opaque/hidden.txt"));
    EXPECT_TRUE(fs::exists(m.merged + "/opaque/shown.txt"));
    writeText(m.merged + "/etc/built.txt", "built\n");
    fs::remove(m.merged + "/bottom.txt");
    EXPECT_EQ(readFile(m.upper + "/etc/built.txt"), "built\n");
    struct stat wh {};
    ASSERT_EQ(lstat((m.upper + "/bottom.txt").c_str(), &wh), 0);
    EXPECT_TRUE(S_ISCHR(wh.st_mode) && wh.st_rdev == makedev(0, 0)) << "a whiteout in upper";
    EXPECT_FALSE(mountsUnder(m.merged).empty() && mountsUnder(host_->stateDir()).empty());
    s = rt.unmountLayers(m.merged);
    ASSERT_TRUE(s.isOk()) << s.toString();
    EXPECT_TRUE(mountsUnder(host_->stateDir()).empty());
    EXPECT_FALSE(fs::exists(m.merged + ".lower.0"));
    EXPECT_TRUE(rt.unmountLayers(m.merged).isOk()) << "nothing mounted is fine";
    EXPECT_EQ(treeState(l.top) + treeState(l.bottom), before) << "a layer changed";
  }
};

TEST_F(LxcLayerMount, WithAnIdBaseTheLayersShowAsRootsAndWritesLandInUpper) {
  ASSERT_TRUE(imageBase_);
  auto l = imageLayers();
  auto& rt = runtime(0);
  LayerMount m = mountOf(l, *imageBase_);
  expectMounted(rt, m, l, 0);
  // An opaque directory made in the build: marked where a clone's overlay
  // (in its user namespace) reads it.
  ASSERT_TRUE(rt.mountLayers(m).isOk());
  fs::remove_all(m.merged + "/opaque");
  fs::create_directories(m.merged + "/opaque");
  ASSERT_TRUE(rt.unmountLayers(m.merged).isOk());
  char v[8] = {0};
  EXPECT_EQ(getxattr((m.upper + "/opaque").c_str(), "user.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
}

TEST_F(LxcLayerMount, WithoutAnIdBaseTheLayersShowAsTheyAre) {
  auto l = hostLayers();
  auto& rt = runtime(0);
  expectMounted(rt, mountOf(l, std::nullopt), l, 0);
  // Layers of container ids without an id base show those ids.
  auto shifted = imageLayers("shifted");
  LayerMount m = mountOf(shifted, std::nullopt);
  fs::remove_all(m.upper);
  fs::remove_all(m.work);
  fs::create_directories(m.upper);
  fs::create_directories(m.work);
  ASSERT_TRUE(rt.mountLayers(m).isOk());
  struct stat st {};
  EXPECT_EQ(stat((m.merged + "/top.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, *imageBase_);
  ASSERT_TRUE(rt.unmountLayers(m.merged).isOk());
}

// Links where the helper mounts (MERGED itself, a lower's mount point
// beside it) and paths overlayfs would parse as more options are refused;
// nothing is mounted anywhere.
TEST_F(LxcLayerMount, LinksAndBadPathsAreRefusedAndNothingIsMounted) {
  ASSERT_TRUE(imageBase_);
  auto l = imageLayers();
  auto& rt = runtime(0);
  LayerMount m = mountOf(l, *imageBase_);
  const std::string target = host_->stateDir() + "/elsewhere";
  fs::create_directories(target);
  const std::string helper = binDir() + "/agent/runtime/qabox-lxc";
  for (const std::string& link : {m.merged + ".lower.1", m.merged + ".lower.0", m.merged}) {
    if (link == m.merged) fs::remove_all(m.merged);
    fs::create_symlink(target, link);
    Status s = rt.mountLayers(m);
    EXPECT_FALSE(s.isOk()) << link;
    EXPECT_TRUE(contains(s.message(), link + " is a symlink")) << s.toString();
    EXPECT_TRUE(mountsUnder(host_->stateDir()).empty()) << link;
    EXPECT_TRUE(fs::is_empty(target));
    fs::remove(link);
  }
  fs::create_directories(m.merged);
  // The helper refuses what LxcRuntime would, when called directly.
  for (const auto& bad : std::vector<std::vector<std::string>>{
           {m.merged, m.upper, m.work, "-", l.top.string() + ":/etc"},
           {m.merged, m.upper + ",lowerdir=/etc", m.work, "-", l.top.string()},
           {"relative", m.upper, m.work, "-", l.top.string()}}) {
    std::vector<std::string> argv{helper, "layer-mount"};
    argv.insert(argv.end(), bad.begin(), bad.end());
    auto r = runOrDie(argv);
    EXPECT_EQ(r.exitCode, 125) << r.err;
    EXPECT_TRUE(contains(r.err, "layer path") || contains(r.err, "absolute")) << r.err;
  }
  EXPECT_TRUE(mountsUnder(host_->stateDir()).empty());
}

}  // namespace
}  // namespace qabox::testing
