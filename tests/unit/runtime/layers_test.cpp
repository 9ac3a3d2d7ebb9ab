// What LxcRuntime asks the helper for a clone's layers and for a layer
// mount on the host, and the paths it refuses before asking.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fakes/fake_firewall.h"
#include "recording_runner.h"
#include "runtime/lxc_runtime.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

class Layers : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("qabox-layers-" + std::to_string(getpid()));
    fs::create_directories(root_ / "images/busybox-v1");
    fs::create_directories(root_ / "lxc");
    options_.lxcPath = (root_ / "lxc").string();
    options_.helperPath = "qabox-lxc";
  }
  void TearDown() override { fs::remove_all(root_); }
  void unprivilegedImage() {
    std::ofstream(root_ / "images/busybox-v1/config")
        << "lxc.idmap = u 0 1000000000 65536\nlxc.idmap = g 0 1000000000 65536\n";
    options_.idBase = 1000000000;
    options_.idSlots = 2;
  }
  Status cloneWith(LxcRuntime& rt, const std::vector<std::string>& lowers) {
    return rt.clone((root_ / "images").string(), "busybox-v1", "qabox-new", lowers,
                    NetSpec{"br0", "10.0.0.2/24", "10.0.0.1"}, ResourceLimits{});
  }
  // The clone's LOWERS argument and the id bases after it (the last one).
  std::pair<std::string, std::string> layerArgs() const {
    const auto argv = runner_.last("clone").argv;
    if (argv.size() < 2) return {};
    return {argv[argv.size() - 2], argv.back()};
  }
  fs::path root_;
  LxcRuntimeOptions options_;
  testing::RecordingRunner runner_;
  fakes::FakeFirewall firewall_;
};

TEST_F(Layers, ACloneGivesTheHelperItsLowersTopmostFirst) {
  LxcRuntime rt(options_, runner_, firewall_);
  ASSERT_TRUE(cloneWith(rt, {}).isOk());
  EXPECT_EQ(runner_.last("clone").argv.size(), 17u) << "the helper, clone and 15 arguments";
  EXPECT_EQ(layerArgs(), (std::pair<std::string, std::string>{"-", "-"}))
      << "no lowers: the image's rootfs alone, as before";
  ASSERT_TRUE(cloneWith(rt, {"/s/images/busybox-v1/rootfs"}).isOk());
  EXPECT_EQ(layerArgs(), (std::pair<std::string, std::string>{"/s/images/busybox-v1/rootfs", "-"}));
  ASSERT_TRUE(cloneWith(rt, {"/s/images/python-v2/rootfs", "/s/images/debian-v1/rootfs"}).isOk());
  EXPECT_EQ(layerArgs(), (std::pair<std::string, std::string>{
                             "/s/images/python-v2/rootfs:/s/images/debian-v1/rootfs", "-"}));
}

TEST_F(Layers, AnIsolatedCloneKeepsItsIdBasesLast) {
  unprivilegedImage();
  LxcRuntime rt(options_, runner_, firewall_);
  ASSERT_TRUE(cloneWith(rt, {"/s/top", "/s/bottom"}).isOk());
  EXPECT_EQ(layerArgs(),
            (std::pair<std::string, std::string>{"/s/top:/s/bottom", "1000000000:1000065536"}));
}

TEST_F(Layers, ALowerOverlayfsCannotParseIsRefusedBeforeTheHelper) {
  LxcRuntime rt(options_, runner_, firewall_);
  for (const std::string bad : {"relative/rootfs", "", "/s/a:b", "/s/a,upperdir=/etc", "/s/a\nb"}) {
    Status s = cloneWith(rt, {"/s/top", bad});
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad << ": " << s.toString();
  }
  EXPECT_TRUE(runner_.calls.empty());
  EXPECT_TRUE(firewall_.appliedRules().empty());
}

TEST_F(Layers, ALayerMountWithAndWithoutAnIdBase) {
  LxcRuntime rt(options_, runner_, firewall_);
  LayerMount m{"/s/build/merged", "/s/build/upper", "/s/build/work", {"/s/top", "/s/bottom"}, {}};
  ASSERT_TRUE(rt.mountLayers(m).isOk());
  EXPECT_EQ(
      runner_.last().argv,
      (std::vector<std::string>{"qabox-lxc", "layer-mount", "/s/build/merged", "/s/build/upper",
                                "/s/build/work", "-", "/s/top", "/s/bottom"}));
  m.idBase = 1000000000;
  m.lowers = {"/s/bottom"};
  ASSERT_TRUE(rt.mountLayers(m).isOk());
  EXPECT_EQ(
      runner_.last().argv,
      (std::vector<std::string>{"qabox-lxc", "layer-mount", "/s/build/merged", "/s/build/upper",
                                "/s/build/work", "1000000000", "/s/bottom"}));
  ASSERT_TRUE(rt.unmountLayers("/s/build/merged").isOk());
  EXPECT_EQ(runner_.last().argv,
            (std::vector<std::string>{"qabox-lxc", "layer-umount", "/s/build/merged"}));
}

TEST_F(Layers, ALayerMountWithABadPathIsRefusedBeforeTheHelper) {
  LxcRuntime rt(options_, runner_, firewall_);
  const LayerMount good{"/s/m", "/s/u", "/s/w", {"/s/l"}, {}};
  std::vector<LayerMount> bad(6, good);
  bad[0].merged = "s/m";
  bad[1].upper = "/s/u,lowerdir=/";
  bad[2].work = "/s/w:x";
  bad[3].lowers = {"/s/l", "/s/l2\n"};
  bad[4].lowers = {};
  bad[5].merged = "";
  for (const auto& m : bad) {
    Status s = rt.mountLayers(m);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.toString();
  }
  EXPECT_EQ(rt.unmountLayers("relative").code(), Code::kInvalidArgument);
  EXPECT_EQ(rt.unmountLayers("/s/m,x").code(), Code::kInvalidArgument);
  EXPECT_TRUE(runner_.calls.empty());
}

TEST_F(Layers, AFailedLayerMountSaysWhatTheHelperSaid) {
  struct Failing : ProcessRunner {
    Result<ProcessResult> run(const ProcessSpec&) override {
      ProcessResult r;
      r.exitCode = 125;
      r.err = "qabox-lxc: layer-mount: /s/m.lower.0 is a symlink\n";
      return r;
    }
  } failing;
  LxcRuntime rt(options_, failing, firewall_);
  Status s = rt.mountLayers({"/s/m", "/s/u", "/s/w", {"/s/l"}, 1000000000});
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("/s/m.lower.0 is a symlink"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace qabox
