// Images built on images: the recipe hash the build cache keys on, the
// chain of parents, layers built over an overlay of the parent's, and what
// remove and recover do with them. Real provision scripts, a real store; the
// overlay mount is a fake (tests/fakes/fake_images.h).
#include "deploy/image_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "deploy/image_recipe.h"
#include "fakes/fake_images.h"
#include "store/paths.h"
#include "sys/idshift.h"
#include "unit/deploy/passthrough_runner.h"
#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void writeFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << content;
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

class ImageBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.stateDir = dir_.path() + "/state";
    config_.imagesDir = dir_.path() + "/recipes";
    config_.containers.unprivileged = false;
    fs::create_directories(paths::imagesLxcPath(config_.stateDir));
    auto s = openSqliteStore(dir_.path() + "/qabox.db");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
    init_ = dir_.path() + "/qabox-init";
    writeFile(init_, "#!/bin/sh\n", 0755);
    images_ = std::make_unique<ImageBuilder>(config_, *store_, runner_, layers_, init_);
  }

  // images/<name>/: image.toml with `toml`, and a provision that writes a
  // file named after the image into $ROOTFS.
  void recipe(const std::string& name, const std::string& toml, const std::string& provision = "") {
    std::string d = config_.imagesDir + "/" + name;
    writeFile(d + "/image.toml", "description = \"" + name + "\"\n" + toml);
    writeFile(d + "/provision.sh", provision.empty()
                                       ? "set -e\necho " + name + " > \"$ROOTFS/" + name + "\"\n"
                                       : provision);
  }

  std::string dirOf(const std::string& name, uint32_t v) {
    return paths::imagesLxcPath(config_.stateDir) + "/" + paths::imageContainer(name, v);
  }

  size_t versionsOf(const std::string& name) {
    auto images = store_->listImages();
    EXPECT_TRUE(images.isOk());
    if (!images.isOk()) return 0;
    size_t n = 0;
    for (const auto& im : *images) n += im.name == name;
    return n;
  }

  test::TempDir dir_;
  Config config_;
  std::unique_ptr<Store> store_;
  testing::PassthroughRunner runner_;
  fakes::FakeLayerMounter layers_;
  std::string init_;
  std::unique_ptr<ImageBuilder> images_;
};

// --- the recipe hash ---------------------------------------------------------

class RecipeHashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    in_.dir = dir_.path() + "/r";
    writeFile(in_.dir + "/image.toml", "description = \"x\"\n");
    writeFile(in_.dir + "/provision.sh", "echo hi\n", 0755);
    writeFile(in_.dir + "/files/etc/motd", "hello\n");
  }
  std::string hash() {
    auto h = recipeHash(in_);
    EXPECT_TRUE(h.isOk()) << h.status().toString();
    return h.isOk() ? *h : "";
  }
  test::TempDir dir_;
  RecipeInputs in_;
};

TEST_F(RecipeHashTest, IsStableAndHex) {
  std::string h = hash();
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(hash(), h);
}

TEST_F(RecipeHashTest, ChangesWithContentModeAndNames) {
  std::string h0 = hash();
  writeFile(in_.dir + "/files/etc/motd", "hellO\n");
  std::string h1 = hash();
  EXPECT_NE(h1, h0);
  ASSERT_EQ(chmod((in_.dir + "/files/etc/motd").c_str(), 0600), 0);
  std::string h2 = hash();
  EXPECT_NE(h2, h1);
  fs::rename(in_.dir + "/files/etc/motd", in_.dir + "/files/etc/motd2");
  std::string h3 = hash();
  EXPECT_NE(h3, h2);
  fs::create_directories(in_.dir + "/files/empty");
  EXPECT_NE(hash(), h3);
}

TEST_F(RecipeHashTest, ChangesWithParentPackagesAndInit) {
  in_.parent = "debian";
  in_.parentVersion = 1;
  std::string h1 = hash();
  in_.parentVersion = 2;
  std::string h2 = hash();
  EXPECT_NE(h1, h2);
  in_.parent = "other";
  EXPECT_NE(hash(), h2);
  in_.parent = "debian";
  in_.packages = {"procps"};
  std::string p1 = hash();
  EXPECT_NE(p1, h2);
  in_.packages = {"procps", "curl"};
  std::string p2 = hash();
  EXPECT_NE(p2, p1);
  // Fields are length-prefixed: moving a boundary changes the hash.
  in_.packages = {"procpscurl"};
  EXPECT_NE(hash(), p2);
  in_.packages = {"procps", "curl"};
  writeFile(dir_.path() + "/init", "v1");
  in_.initBinary = dir_.path() + "/init";
  std::string i1 = hash();
  EXPECT_NE(i1, p2);
  writeFile(dir_.path() + "/init", "v2");
  EXPECT_NE(hash(), i1);
}

TEST_F(RecipeHashTest, ChangesWithTheSharedShell) {
  std::string lib = dir_.path() + "/lib";
  writeFile(lib + "/apt-layer.sh", "apt_layer_install() { :; }\n");
  std::string alone = hash();
  in_.shared = {lib};
  std::string with = hash();
  EXPECT_NE(with, alone);
  EXPECT_EQ(hash(), with);
  writeFile(lib + "/apt-layer.sh", "apt_layer_install() { false; }\n");
  EXPECT_NE(hash(), with);
}

TEST_F(ImageBuilderTest, TheSharedLibIsPartOfEveryRecipe) {
  recipe("base", "");
  writeFile(config_.imagesDir + "/lib/apt-layer.sh", "# v1\n");
  ASSERT_TRUE(images_->build("base", "ops", false).isOk());
  EXPECT_TRUE(images_->build("base", "ops", false)->cached);
  writeFile(config_.imagesDir + "/lib/apt-layer.sh", "# v2\n");
  auto v2 = images_->build("base", "ops", false);
  ASSERT_TRUE(v2.isOk()) << v2.status().toString();
  EXPECT_FALSE(v2->cached);
  EXPECT_EQ(v2->version, 2u);
  EXPECT_EQ(images_->recipes(), std::vector<std::string>{"base"});  // lib is no recipe
}

TEST_F(RecipeHashTest, RefusesASymlinkAndAnythingButFilesAndFolders) {
  fs::create_symlink("/etc/passwd", in_.dir + "/files/passwd");
  auto h = recipeHash(in_);
  ASSERT_FALSE(h.isOk());
  EXPECT_THAT(h.status().message(), HasSubstr("files/passwd is a symbolic link"));
  fs::remove(in_.dir + "/files/passwd");
  ASSERT_EQ(mkfifo((in_.dir + "/fifo").c_str(), 0600), 0);
  h = recipeHash(in_);
  ASSERT_FALSE(h.isOk());
  EXPECT_THAT(h.status().message(), HasSubstr("fifo is not a file or folder"));
}

TEST_F(RecipeHashTest, RefusesARecipeOverItsBound) {
  writeFile(in_.dir + "/big", std::string(3 << 20, 'x'));
  auto h = recipeHash(in_, uint64_t{2} << 20);
  ASSERT_FALSE(h.isOk());
  EXPECT_THAT(h.status().message(), HasSubstr("the recipe is over 2 MiB"));
  EXPECT_TRUE(recipeHash(in_, uint64_t{4} << 20).isOk());
}

TEST_F(RecipeHashTest, AMissingInitIsAnError) {
  in_.initBinary = dir_.path() + "/nope";
  auto h = recipeHash(in_);
  ASSERT_FALSE(h.isOk());
  EXPECT_THAT(h.status().message(), HasSubstr("qabox-init"));
}

// --- the cache -----------------------------------------------------------------

TEST_F(ImageBuilderTest, AnUnchangedRecipeIsCachedAndMakesNoVersion) {
  recipe("base", "");
  auto v1 = images_->build("base", "ops", false);
  ASSERT_TRUE(v1.isOk()) << v1.status().toString();
  EXPECT_FALSE(v1->cached);
  EXPECT_EQ(v1->recipeHash.size(), 64u);
  EXPECT_TRUE(fs::exists(dirOf("base", 1) + "/rootfs/base"));

  auto start = std::chrono::steady_clock::now();
  auto again = images_->build("base", "ops", false);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_TRUE(again->cached);
  EXPECT_EQ(again->version, 1u);
  EXPECT_EQ(again->recipeHash, v1->recipeHash);
  EXPECT_LT(took, std::chrono::milliseconds(500));
  EXPECT_EQ(versionsOf("base"), 1u);
  EXPECT_EQ(runner_.calls().size(), 1u);  // provision ran once
}

TEST_F(ImageBuilderTest, ForceAndAChangedRecipeMakeANewVersion) {
  recipe("base", "");
  ASSERT_TRUE(images_->build("base", "ops", false).isOk());
  auto forced = images_->build("base", "ops", true);
  ASSERT_TRUE(forced.isOk()) << forced.status().toString();
  EXPECT_FALSE(forced->cached);
  EXPECT_EQ(forced->version, 2u);
  writeFile(config_.imagesDir + "/base/extra.conf", "x=1\n");
  auto changed = images_->build("base", "ops", false);
  ASSERT_TRUE(changed.isOk()) << changed.status().toString();
  EXPECT_FALSE(changed->cached);
  EXPECT_EQ(changed->version, 3u);
  EXPECT_NE(changed->recipeHash, forced->recipeHash);
  EXPECT_EQ(versionsOf("base"), 3u);
}

// --- parents and layers ------------------------------------------------------

TEST_F(ImageBuilderTest, AParentWithoutAVersionIsBuiltFirst) {
  recipe("base", "");
  recipe("child", "from = \"base\"\npackages = [\"procps\", \"curl\"]\n");
  auto child = images_->build("child", "ops", false);
  ASSERT_TRUE(child.isOk()) << child.status().toString();
  EXPECT_EQ(child->parent, "base");
  EXPECT_EQ(child->parentVersion, 1u);
  auto base = store_->currentImage("base");
  ASSERT_TRUE(base.isOk() && base->has_value());
  EXPECT_EQ((*base)->version, 1u);
  ASSERT_EQ(runner_.calls().size(), 2u);
  EXPECT_EQ(runner_.env(0, "IMAGE_NAME"), "base");
  EXPECT_EQ(runner_.env(0, "ROOTFS"), dirOf("base", 1) + "/rootfs");
  // The child's provision wrote through the overlay of the parent's layers.
  std::string dir = dirOf("child", 1);
  EXPECT_EQ(runner_.env(1, "ROOTFS"), dir + "/build");
  EXPECT_EQ(runner_.env(1, "QABOX_PACKAGES"), "procps curl");
  EXPECT_EQ(runner_.env(1, "QABOX_INIT"), init_);
  ASSERT_EQ(layers_.mounts.size(), 1u);
  const LayerMount& m = layers_.mounts[0];
  EXPECT_EQ(m.merged, dir + "/build");
  EXPECT_EQ(m.upper, dir + "/rootfs");
  EXPECT_EQ(m.work, dir + "/work");
  EXPECT_EQ(m.lowers, std::vector<std::string>{dirOf("base", 1) + "/rootfs"});
  EXPECT_FALSE(m.idBase.has_value());
  // Unmounted, and the build's dirs gone: the version is its layer and config.
  EXPECT_TRUE(layers_.mounted.empty());
  EXPECT_FALSE(fs::exists(dir + "/build"));
  EXPECT_FALSE(fs::exists(dir + "/work"));
  EXPECT_TRUE(fs::exists(dir + "/rootfs"));
  EXPECT_TRUE(fs::exists(dir + "/config"));

  // The parent's version is in the child's hash: a new parent, a new child.
  auto cached = images_->build("child", "ops", false);
  ASSERT_TRUE(cached.isOk());
  EXPECT_TRUE(cached->cached);
  ASSERT_TRUE(images_->build("base", "ops", true).isOk());
  auto rebuilt = images_->build("child", "ops", false);
  ASSERT_TRUE(rebuilt.isOk()) << rebuilt.status().toString();
  EXPECT_FALSE(rebuilt->cached);
  EXPECT_EQ(rebuilt->version, 2u);
  EXPECT_EQ(rebuilt->parentVersion, 2u);
}

TEST_F(ImageBuilderTest, UnprivilegedLayersAreMountedWithTheIdBase) {
  config_.containers.unprivileged = true;
  config_.containers.idBase = 1'000'000'000;
  recipe("base", "");
  recipe("child", "from = \"base\"\n");
  auto child = images_->build("child", "ops", false);
  ASSERT_TRUE(child.isOk()) << child.status().toString();
  ASSERT_EQ(layers_.mounts.size(), 1u);
  EXPECT_EQ(layers_.mounts[0].idBase, std::optional<uint32_t>(1'000'000'000));
  struct stat st {};
  ASSERT_EQ(lstat((dirOf("child", 1) + "/rootfs").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1'000'000'000u);  // the layer is given to the container's ids
}

TEST_F(ImageBuilderTest, AFailedLayerProvisionIsUnmountedAndRemoved) {
  recipe("base", "");
  recipe("child", "from = \"base\"\n", "echo broken >&2\nexit 3\n");
  auto child = images_->build("child", "ops", false);
  ASSERT_FALSE(child.isOk());
  EXPECT_THAT(child.status().message(), HasSubstr("provision.sh failed (exit 3)"));
  EXPECT_THAT(child.status().message(), HasSubstr("broken"));
  EXPECT_TRUE(layers_.mounted.empty());
  EXPECT_FALSE(fs::exists(dirOf("child", 1)));
  EXPECT_EQ(versionsOf("child"), 0u);
  EXPECT_EQ(versionsOf("base"), 1u);  // the parent it built stays
}

TEST_F(ImageBuilderTest, AFailedMountLeavesNothing) {
  recipe("base", "");
  recipe("child", "from = \"base\"\n");
  layers_.fail["mount"] = internalError("overlay: no");
  auto child = images_->build("child", "ops", false);
  ASSERT_FALSE(child.isOk());
  EXPECT_THAT(child.status().message(), HasSubstr("overlay: no"));
  EXPECT_FALSE(fs::exists(dirOf("child", 1)));
  EXPECT_EQ(runner_.calls().size(), 1u);  // only the parent's provision ran
}

TEST_F(ImageBuilderTest, ACycleIsRefusedNamingTheChain) {
  recipe("a", "from = \"b\"\n");
  recipe("b", "from = \"a\"\n");
  auto r = images_->build("a", "ops", false);
  ASSERT_FALSE(r.isOk());
  EXPECT_THAT(r.status().message(), HasSubstr("image a: from b from a: a cycle"));
  EXPECT_TRUE(runner_.calls().empty());
  auto m = images_->manifest("b");
  ASSERT_FALSE(m.isOk());
  EXPECT_THAT(m.status().message(), HasSubstr("image b: from a from b: a cycle"));
}

TEST_F(ImageBuilderTest, AMissingParentIsRefusedNamingTheChain) {
  recipe("python", "from = \"services\"\n");
  recipe("services", "from = \"debian\"\n");
  auto r = images_->build("python", "ops", false);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_THAT(r.status().message(),
              HasSubstr("image python: from services from debian: image debian: no recipe"));
  EXPECT_TRUE(runner_.calls().empty());
}

TEST_F(ImageBuilderTest, LowerDirsAreTheChainTopmostFirst) {
  recipe("a", "");
  recipe("b", "from = \"a\"\n");
  recipe("c", "from = \"b\"\n");
  ASSERT_TRUE(images_->build("c", "ops", false).isOk());
  auto lowers = images_->lowerDirs("c", 1);
  ASSERT_TRUE(lowers.isOk()) << lowers.status().toString();
  EXPECT_EQ(*lowers, (std::vector<std::string>{dirOf("c", 1) + "/rootfs", dirOf("b", 1) + "/rootfs",
                                               dirOf("a", 1) + "/rootfs"}));
  // c's build was mounted over b's layers.
  ASSERT_EQ(layers_.mounts.size(), 2u);
  EXPECT_EQ(layers_.mounts[1].lowers,
            (std::vector<std::string>{dirOf("b", 1) + "/rootfs", dirOf("a", 1) + "/rootfs"}));
  auto base = images_->lowerDirs("a", 1);
  ASSERT_TRUE(base.isOk());
  EXPECT_EQ(*base, std::vector<std::string>{dirOf("a", 1) + "/rootfs"});
  auto missing = images_->lowerDirs("c", 9);
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

TEST_F(ImageBuilderTest, RemoveRefusesAVersionAnotherIsBuiltOn) {
  recipe("base", "");
  recipe("child", "from = \"base\"\n");
  ASSERT_TRUE(images_->build("child", "ops", false).isOk());
  ASSERT_TRUE(images_->build("base", "ops", true).isOk());  // base v2 current
  auto r = images_->remove("base", 1, "ops");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("image child v1 is built on it"));
  // Collecting every unused version leaves it too.
  auto all = images_->remove("base", 0, "ops");
  ASSERT_TRUE(all.isOk()) << all.status().toString();
  EXPECT_TRUE(all->empty());
  EXPECT_TRUE(fs::exists(dirOf("base", 1)));
  // Once the child goes, so may its parent.
  ASSERT_TRUE(images_->remove("child", 1, "ops").isOk());
  auto now = images_->remove("base", 1, "ops");
  ASSERT_TRUE(now.isOk()) << now.status().toString();
  EXPECT_EQ(now->size(), 1u);
  EXPECT_FALSE(fs::exists(dirOf("base", 1)));
}

TEST_F(ImageBuilderTest, RecoverUnmountsACrashedBuildBeforeRemovingIt) {
  std::string dir = dirOf("child", 4);
  fs::create_directories(dir + "/build");
  fs::create_directories(dir + "/rootfs");
  Operation op;
  op.kind = JournalKind::kImageBuild;
  op.container = paths::imageContainer("child", 4);
  op.startedAt = Clock::now();
  ASSERT_TRUE(store_->beginOperation(op).isOk());
  // And a leftover no journal entry names, mid-build too.
  std::string stray = dirOf("stray", 1);
  fs::create_directories(stray + "/build");

  ASSERT_TRUE(images_->recover().isOk());
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(stray));
  ASSERT_EQ(layers_.calls.size(), 2u);
  EXPECT_EQ(layers_.calls[0], "unmount " + dir + "/build");
  EXPECT_EQ(layers_.calls[1], "unmount " + stray + "/build");
  auto open = store_->unfinishedOperations();
  ASSERT_TRUE(open.isOk());
  EXPECT_TRUE(open->empty());
}

TEST_F(ImageBuilderTest, RecoverNeverRemovesTheImagesLxcpathForABadRow) {
  recipe("base", "");
  ASSERT_TRUE(images_->build("base", "ops", false).isOk());
  for (const char* bad : {"", "..", "../state"}) {
    Operation op;
    op.kind = JournalKind::kImageBuild;
    op.container = bad;
    op.startedAt = Clock::now();
    ASSERT_TRUE(store_->beginOperation(op).isOk());
  }
  ASSERT_TRUE(images_->recover().isOk());
  EXPECT_TRUE(fs::exists(dirOf("base", 1) + "/rootfs/base"));
  auto open = store_->unfinishedOperations();
  ASSERT_TRUE(open.isOk());
  EXPECT_TRUE(open->empty());
}

TEST_F(ImageBuilderTest, RecoverKeepsADirectoryItCannotUnmount) {
  std::string stray = dirOf("stray", 1);
  fs::create_directories(stray + "/build");
  layers_.fail["unmount"] = internalError("busy");
  ASSERT_TRUE(images_->recover().isOk());
  EXPECT_TRUE(fs::exists(stray + "/build"));  // never removed through a mount
}

// --- manifests and init ------------------------------------------------------

TEST_F(ImageBuilderTest, AChildsManifestInheritsItsParents) {
  recipe("base",
         "init = \"qabox-init\"\n[app]\nstart = \"exec base\"\nport = 80\n[hooks]\nmigrate = "
         "\"m\"\n[limits]\nmemory = \"256M\"\npids = 100\n");
  recipe("child",
         "from = \"base\"\npackages = [\"procps\"]\n[app]\nport = 8000\n[limits]\npids = 50\n");
  auto m = images_->manifest("child");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->name, "child");
  EXPECT_EQ(m->description, "child");
  EXPECT_EQ(m->from, "base");
  EXPECT_EQ(m->init, "qabox-init");
  EXPECT_EQ(m->defaults.start, "exec base");
  EXPECT_EQ(m->defaults.port, 8000u);
  EXPECT_EQ(m->defaults.migrate, "m");
  EXPECT_EQ(m->memory, "256M");
  EXPECT_EQ(m->pids, 50u);
  EXPECT_EQ(m->packages, std::vector<std::string>{"procps"});
}

TEST(InheritManifest, ServicesMergeByNameTheChildWinning) {
  ImageManifest parent, child;
  parent.services["postgres"] =
      ServiceDef{"postgres", "run pg", "ready pg", "", "postgres", {}, ""};
  parent.services["redis"] = ServiceDef{"redis", "run redis", "", "", "redis", {}, ""};
  child.services["redis"] = ServiceDef{"redis", "run my redis", "", "", "redis", {}, ""};
  child.services["memcached"] = ServiceDef{"memcached", "run mc", "", "", "", {}, ""};
  parent.packages = {"postgresql-15"};
  parent.provision = "base.sh";
  auto m = inheritManifest(child, parent);
  ASSERT_EQ(m.services.size(), 3u);
  EXPECT_EQ(m.services["postgres"].run, "run pg");
  EXPECT_EQ(m.services["redis"].run, "run my redis");
  EXPECT_EQ(m.services["memcached"].run, "run mc");
  EXPECT_TRUE(m.packages.empty());  // packages and provision are the child's own
  EXPECT_EQ(m.provision, "provision.sh");
}

TEST_F(ImageBuilderTest, InitIsHashedWhenTheRecipeInstallsIt) {
  recipe("base", "init = \"qabox-init\"\n");
  auto v1 = images_->build("base", "ops", false);
  ASSERT_TRUE(v1.isOk()) << v1.status().toString();
  EXPECT_EQ(runner_.env(0, "QABOX_INIT"), init_);
  EXPECT_TRUE(images_->build("base", "ops", false)->cached);
  writeFile(init_, "#!/bin/sh\n# a new qabox-init\n", 0755);
  auto v2 = images_->build("base", "ops", false);
  ASSERT_TRUE(v2.isOk());
  EXPECT_FALSE(v2->cached);
  EXPECT_EQ(v2->version, 2u);

  ImageBuilder without(config_, *store_, runner_, layers_, "");
  auto r = without.build("base", "ops", true);
  ASSERT_FALSE(r.isOk());
  EXPECT_THAT(r.status().message(), HasSubstr("qabox-init is not installed beside qaboxd"));
}

// A layer's whiteouts (0:0 character devices) and opaque folders (overlay
// xattrs) are what make a child's deletions stick: giving the layer to the
// container's ids must keep them.
TEST(LayerOwnership, ShiftingKeepsWhiteoutsAndOpaqueFolders) {
  if (geteuid() != 0) FAIL() << "needs root (mknod, trusted.* xattrs)";
  test::TempDir dir;
  std::string layer = dir.path() + "/layer";
  fs::create_directories(layer + "/etc/opaque");
  std::string whiteout = layer + "/etc/gone";
  ASSERT_EQ(mknod(whiteout.c_str(), S_IFCHR | 0000, makedev(0, 0)), 0) << std::strerror(errno);
  std::string opaque = layer + "/etc/opaque";
  ASSERT_EQ(setxattr(opaque.c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  ASSERT_EQ(setxattr(opaque.c_str(), "user.overlay.opaque", "y", 1, 0), 0);
  const uint32_t base = 1'000'000'000;
  ASSERT_TRUE(shiftOwnership(layer, base).isOk());

  struct stat st {};
  ASSERT_EQ(lstat(whiteout.c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(st.st_uid, base);
  EXPECT_EQ(st.st_gid, base);
  char v[8] = {};
  EXPECT_EQ(getxattr(opaque.c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(getxattr(opaque.c_str(), "user.overlay.opaque", v, sizeof v), 1);
  ASSERT_EQ(lstat(opaque.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, base);
}

}  // namespace
}  // namespace qabox
