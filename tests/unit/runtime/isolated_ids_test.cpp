// Which host ids LxcRuntime gives a new clone when each environment has its
// own: the lowest free slot above id_base, as the clones' configs say.
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

class IsolatedIds : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("qabox-isolated-" + std::to_string(getpid()));
    fs::create_directories(root_ / "images/busybox-v1");
    fs::create_directories(root_ / "lxc");
    config(root_ / "images/busybox-v1", 1000000000);
  }
  void TearDown() override { fs::remove_all(root_); }
  static void config(const fs::path& dir, uint64_t base) {
    std::ofstream(dir / "config") << "lxc.uts.name = x\nlxc.idmap = u 0 " << base
                                  << " 65536\nlxc.idmap = g 0 " << base << " 65536\n";
  }
  // Clones into root_/lxc, with `slots` id slots above 1000000000 (0: off).
  LxcRuntimeOptions options(uint32_t slots) const {
    LxcRuntimeOptions o;
    o.lxcPath = (root_ / "lxc").string();
    o.helperPath = "qabox-lxc";
    if (slots > 0) {
      o.idBase = 1000000000;
      o.idSlots = slots;
    }
    return o;
  }
  // The helper's last argument for a clone of the image.
  std::string bases(LxcRuntime& rt, Status* status = nullptr) {
    Status s = rt.clone((root_ / "images").string(), "busybox-v1", "qabox-new", {},
                        NetSpec{"br", "10.0.0.2/24", "10.0.0.1"}, ResourceLimits{});
    if (status) *status = s;
    const ProcessSpec last = runner_.last("clone");
    return last.argv.empty() ? "" : last.argv.back();
  }
  fs::path root_;
  testing::RecordingRunner runner_;
  fakes::FakeFirewall firewall_;
};

TEST_F(IsolatedIds, TheLowestFreeSlotAboveTheImagesIds) {
  LxcRuntime off(options(0), runner_, firewall_);
  EXPECT_EQ(bases(off), "-") << "off unless set";
  LxcRuntime rt(options(3), runner_, firewall_);
  EXPECT_EQ(bases(rt), "1000000000:1000065536");
  // Slots 1 and 3 held (3 by a sleeping clone, 1 by a running one): 2.
  fs::create_directories(root_ / "lxc/qabox-a");
  config(root_ / "lxc/qabox-a", 1000065536);
  fs::create_directories(root_ / "lxc/qabox-c");
  config(root_ / "lxc/qabox-c", 1000000000 + 3 * 65536);
  EXPECT_EQ(bases(rt), "1000000000:1000131072");
  // All taken: refused, not shared.
  fs::create_directories(root_ / "lxc/qabox-b");
  config(root_ / "lxc/qabox-b", 1000131072);
  runner_.calls.clear();
  Status s;
  bases(rt, &s);
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.toString();
  EXPECT_TRUE(runner_.last("clone").argv.empty());
  // Deleted: its slot is free again.
  fs::remove_all(root_ / "lxc/qabox-a");
  EXPECT_EQ(bases(rt), "1000000000:1000065536");
}

// A clone whose helper is still running holds its slot: a second clone
// started meanwhile (from inside the first one's helper call) gets another.
TEST_F(IsolatedIds, ClonesSideBySideNeverShareASlot) {
  struct Nested : ProcessRunner {
    LxcRuntime* rt = nullptr;
    fs::path images;
    std::vector<std::string> bases;
    Result<ProcessResult> run(const ProcessSpec& spec) override {
      if (spec.argv.size() > 1 && spec.argv[1] == "clone") {
        bases.push_back(spec.argv.back());
        if (bases.size() == 1) {
          EXPECT_TRUE(rt->clone(images.string(), "busybox-v1", "qabox-second", {},
                                NetSpec{"br", "10.0.0.3/24", "10.0.0.1"}, ResourceLimits{})
                          .isOk());
        }
      }
      ProcessResult r;
      r.exitCode = 0;
      return r;
    }
  } runner;
  runner.images = root_ / "images";
  LxcRuntime rt(options(3), runner, firewall_);
  runner.rt = &rt;
  ASSERT_TRUE(rt.clone(runner.images.string(), "busybox-v1", "qabox-first", {},
                       NetSpec{"br", "10.0.0.2/24", "10.0.0.1"}, ResourceLimits{})
                  .isOk());
  ASSERT_EQ(runner.bases.size(), 2u);
  EXPECT_EQ(runner.bases[0], "1000000000:1000065536");
  EXPECT_EQ(runner.bases[1], "1000000000:1000131072");
}

TEST_F(IsolatedIds, APrivilegedImageIsNotIsolated) {
  std::ofstream(root_ / "images/busybox-v1/config") << "lxc.uts.name = x\n";
  LxcRuntime rt(options(3), runner_, firewall_);
  EXPECT_EQ(bases(rt), "-");
}

}  // namespace
}  // namespace qabox
