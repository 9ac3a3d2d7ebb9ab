// A clone's port binding in the bridge's firewall: put in at clone, taken
// out at destroy, and a clone whose binding fails is not kept.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fakes/fake_firewall.h"
#include "recording_runner.h"
#include "runtime/bridge_rules.h"
#include "runtime/lxc_runtime.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;

class LxcFirewall : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("qabox-lxcfw-" + std::to_string(getpid()));
    fs::create_directories(root_ / "lxc");
    options_.lxcPath = (root_ / "lxc").string();
    options_.helperPath = "qabox-lxc";
  }
  void TearDown() override { fs::remove_all(root_); }
  Status cloneNew(LxcRuntime& rt) {
    return rt.clone((root_ / "images").string(), "busybox-v1", "qabox-new", {},
                    NetSpec{"br0", "10.0.0.2/24", "10.0.0.1"}, ResourceLimits{});
  }
  PortBinding binding() const {
    return {vethName("br0", options_.lxcPath, "qabox-new"), "02:71:0a:00:00:02", "10.0.0.2"};
  }
  fs::path root_;
  LxcRuntimeOptions options_;
  testing::RecordingRunner runner_;
  fakes::FakeFirewall firewall_;
};

TEST_F(LxcFirewall, ACloneBindsItsPortAfterTheHelperMadeIt) {
  LxcRuntime rt(options_, runner_, firewall_);
  ASSERT_TRUE(cloneNew(rt).isOk());
  EXPECT_EQ(runner_.commands(), std::vector<std::string>{"clone"});
  EXPECT_EQ(firewall_.appliedRules(),
            std::vector<std::string>{bindingUpdate("br0", binding(), true)});
}

TEST_F(LxcFirewall, ACloneWhosePortCannotBeBoundIsDestroyed) {
  firewall_.failWith = internalError("nft: Error: No such file or directory");
  LxcRuntime rt(options_, runner_, firewall_);
  Status s = cloneNew(rt);
  EXPECT_EQ(s.code(), Code::kInternal) << s.toString();
  EXPECT_NE(s.message().find("binding its port " + binding().port), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
  EXPECT_EQ(runner_.commands(), (std::vector<std::string>{"clone", "destroy"}));
}

TEST_F(LxcFirewall, DestroyUnbindsThePortItsConfigNames) {
  fs::create_directories(root_ / "lxc/qabox-new");
  const PortBinding b = binding();
  std::ofstream(root_ / "lxc/qabox-new/config")
      << "lxc.net.0.link = br0\nlxc.net.0.veth.pair = " << b.port
      << "\nlxc.net.0.hwaddr = " << b.mac << "\nlxc.net.0.ipv4.address = " << b.ip << "/24\n";
  LxcRuntime rt(options_, runner_, firewall_);
  ASSERT_TRUE(rt.destroy("qabox-new").isOk());
  EXPECT_EQ(runner_.commands(), std::vector<std::string>{"destroy"});
  EXPECT_EQ(firewall_.appliedRules(), std::vector<std::string>{bindingUpdate("br0", b, false)});
  // A binding that cannot be removed does not fail the destroy (the set is
  // rebuilt from the store at every start).
  firewall_.failWith = internalError("nft: refused");
  EXPECT_TRUE(rt.destroy("qabox-new").isOk());
}

}  // namespace
}  // namespace qabox
