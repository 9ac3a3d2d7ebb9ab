// Issue 14: images built on images. The real debian recipe built with
// mmdebstrap from the host's apt sources, a child recipe of this test's own
// built as a layer over it, an environment on the child that sees both, and
// the build cache. Real daemon, real LXC, real overlays.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "harness.h"
#include "qabox/v1/qabox.pb.h"

#include <google/protobuf/util/json_util.h>

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A layer over debian: a Debian package of its own (busybox, for an httpd to
// health-check), a file of its own, a file of its parent's deleted (a
// whiteout) and a folder of its parent's replaced (an opaque folder).
constexpr const char* kLayerToml = R"(description = "a test layer over debian"
from = "debian"
packages = ["busybox"]
[app]
start = "exec busybox httpd -f -p 80 -h /srv/app"
port = 80
health = "/"
)";
constexpr const char* kLayerProvision = R"(#!/bin/sh
set -eu
. "$IMAGE_DIR/../lib/apt-layer.sh"
apt_layer_install
apt_layer_clean
echo "from the layer" > "$ROOTFS/etc/qabox-layer"
echo "<h1>layer</h1>" > "$ROOTFS/srv/app/index.html"
rm -f "$ROOTFS/etc/debian_version"
rm -rf "$ROOTFS/etc/skel"
mkdir "$ROOTFS/etc/skel"
echo new > "$ROOTFS/etc/skel/only-the-layer"
)";

void writeText(const std::string& path, const std::string& text, mode_t mode = 0644) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

template <typename M>
M parseJson(const std::string& text) {
  M m;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &m).ok()) << text;
  return m;
}

// The config's images_dir pointed at the test's own copy of images/.
void useImagesDir(TestHost& host, const std::string& dir) {
  std::string path = host.stateDir() + "/qaboxd.toml";
  std::string text = readFile(path);
  std::string line = "images_dir = \"" + sourceDir() + "/images\"";
  auto at = text.find(line);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, line.size(), "images_dir = \"" + dir + "\"");
  std::ofstream(path) << text;
}

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(LxcImages, ALayerOverDebianIsBuiltDeployedAndCached) {
  QABOX_REQUIRE_LXC();
  ASSERT_TRUE(fs::exists("/usr/bin/mmdebstrap")) << "mmdebstrap is not installed "
                                                    "(scripts/install-deps.sh)";
  ASSERT_TRUE(fs::exists(binDir() + "/agent/init/qabox-init"))
      << "qabox-init is not built (target qabox-init): the debian image installs it";
  TestHost host;
  std::string images = host.stateDir() + "/images-src";
  fs::copy(sourceDir() + "/images", images,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  writeText(images + "/layer/image.toml", kLayerToml);
  writeText(images + "/layer/provision.sh", kLayerProvision, 0755);
  host.writeConfig({});
  useImagesDir(host, images);
  host.startDaemon();

  // The parent is built first, from nothing.
  auto start = Clock::now();
  auto built = host.cli({"image", "build", "layer", "-o", "json"}, std::chrono::minutes(20));
  double firstBuild = secondsSince(start);
  ASSERT_EQ(built.exitCode, 0) << built.err << "\n" << host.logText();
  auto layer = parseJson<v1::Image>(built.out);
  EXPECT_EQ(layer.version(), 1u);
  EXPECT_EQ(layer.parent(), "debian");
  EXPECT_EQ(layer.parent_version(), 1u);
  EXPECT_EQ(layer.recipe_hash().size(), 64u);
  EXPECT_FALSE(layer.cached());
  std::cout << "[ figures ] debian + layer built from nothing in " << firstBuild << " s\n";

  // The layer holds only what its recipe added.
  std::string layerRoot = host.stateDir() + "/images/layer-v1/rootfs";
  EXPECT_TRUE(fs::exists(layerRoot + "/etc/qabox-layer"));
  EXPECT_FALSE(fs::exists(layerRoot + "/usr/bin/apt-get"));
  // apt's package indexes are not kept (nor its cache).
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(layerRoot + "/var/lib/apt/lists", ec)) {
    EXPECT_TRUE(e.path().filename() == "lock" || e.path().filename() == "partial") << e.path();
  }
  EXPECT_FALSE(fs::exists(layerRoot + "/var/cache/apt/pkgcache.bin"));
  EXPECT_FALSE(fs::exists(host.stateDir() + "/images/layer-v1/build"));
  EXPECT_TRUE(fs::exists(host.stateDir() + "/images/debian-v1/rootfs/usr/bin/apt-get"));
  EXPECT_EQ(readFile(host.stateDir() + "/images/debian-v1/rootfs/etc/resolv.conf"), "");

  // An environment on the layer sees its parent's files and its own.
  auto deployed = host.cli({"deploy", "IMG-1", "--image", "layer"});
  ASSERT_EQ(deployed.exitCode, 0) << deployed.err << "\n" << host.logText();
  auto e = host.env("IMG-1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->image_version(), 1u);
  auto sh = [&](const std::string& script) {
    return host.cli({"exec", "IMG-1", "--", "/bin/sh", "-c", script});
  };
  auto parent = sh("grep -q bookworm /etc/os-release && test -x /usr/bin/apt-get && echo parent");
  EXPECT_EQ(parent.out, "parent\n") << parent.err;
  auto own = sh("cat /etc/qabox-layer && busybox true && echo own");
  EXPECT_EQ(own.out, "from the layer\nown\n") << own.err;
  auto whiteout = sh("test -e /etc/debian_version && echo present || echo gone");
  EXPECT_EQ(whiteout.out, "gone\n") << whiteout.err;
  auto opaque = sh("ls -A /etc/skel");
  EXPECT_EQ(opaque.out, "only-the-layer\n") << opaque.err;
  auto init = sh("test -x /sbin/init && test -s /sbin/init && echo init");
  EXPECT_EQ(init.out, "init\n") << init.err;
  EXPECT_EQ(httpGet(e->ip(), 80, "/").status, 200);

  // Unchanged: cached, the same version, well under a second.
  start = Clock::now();
  auto again = host.cli({"image", "build", "layer"});
  double cachedBuild = secondsSince(start);
  ASSERT_EQ(again.exitCode, 0) << again.err;
  EXPECT_EQ(again.out, "layer version 1 (current), cached: recipe unchanged\n");
  EXPECT_LT(cachedBuild, 1.0);
  std::cout << "[ figures ] cached build (CLI round trip) in " << cachedBuild << " s\n";

  // The tree: the layer under the debian version it was built on.
  auto ls = host.cli({"image", "ls"});
  ASSERT_EQ(ls.exitCode, 0) << ls.err;
  EXPECT_TRUE(contains(ls.out, "\n`- layer ")) << ls.out;
  auto list = parseJson<v1::ListImagesResponse>(host.cli({"image", "ls", "-o", "json"}).out);
  size_t versions = 0;
  for (const auto& im : list.images()) {
    if (im.name() == "layer" || im.name() == "debian") ++versions;
  }
  EXPECT_EQ(versions, 2u);

  // The parent version the layer stands on cannot go.
  auto rm = host.cli({"image", "rm", "debian", "--version", "1"});
  EXPECT_NE(rm.exitCode, 0);
  EXPECT_TRUE(contains(rm.err, "image layer v1 is built on it")) << rm.err;
  ASSERT_EQ(host.cli({"delete", "IMG-1"}).exitCode, 0);
}

}  // namespace
}  // namespace qabox::testing
