// Issue 17, a full disk: the state dir on a small ext4 filesystem of the
// test's own (a loop mount, no reserved blocks), filled with one fallocated
// file. A deploy, an image build and a pin (a row and an event) each fail
// with RESOURCE_EXHAUSTED naming the state dir and the space left; nothing
// is half-made; the environment deployed before keeps being routed and
// reads keep answering; once the space is freed the same operations work
// again, with no restart.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>

#include "harness.h"
#include "qabox/v1/qabox.grpc.pb.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

class LxcFullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    loop_ = std::make_unique<LoopExt4>("/tmp/qabox-full-");
    ASSERT_TRUE(loop_->ok()) << "cannot make the loop filesystem";
    TestHost::Options o;
    o.stateDirParent = loop_->mnt();
    o.healthTimeout = "10s";
    host_ = std::make_unique<TestHost>(o);
    ASSERT_NO_FATAL_FAILURE(host_->startWithBusybox());
    stub_ = v1::Qabox::NewStub(
        grpc::CreateChannel("unix://" + host_->socket(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    host_.reset();
    loop_.reset();
  }

  // Leaves `left` bytes free on the loop filesystem.
  void fill(uint64_t left) {
    const std::string path = loop_->mnt() + "/fill";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    const uint64_t avail = loop_->available();
    ASSERT_GT(avail, left);
    ASSERT_EQ(::fallocate(fd, 0, 0, static_cast<off_t>(avail - left)), 0);
    ::close(fd);
  }
  void unfill() { fs::remove(loop_->mnt() + "/fill"); }

  grpc::Status deploy(const std::string& ticket) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::DeployRequest req;
    req.set_ticket(ticket);
    req.set_image("busybox");
    return drain(stub_->Deploy(&ctx, req));
  }
  grpc::Status build() {
    grpc::ClientContext ctx;
    v1::BuildImageRequest req;
    req.set_name("busybox");
    req.set_force(true);
    v1::Image out;
    return stub_->BuildImage(&ctx, req, &out);
  }
  grpc::Status pin(const std::string& ticket) {
    grpc::ClientContext ctx;
    v1::SetPinnedRequest req;
    req.set_ticket(ticket);
    req.set_pinned(true);
    v1::Environment out;
    return stub_->SetPinned(&ctx, req, &out);
  }

  void expectFull(const grpc::Status& s, const std::string& what) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << what << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(host_->stateDir()), std::string::npos)
        << what << " names the state dir: " << s.error_message();
    EXPECT_NE(s.error_message().find(" left of "), std::string::npos)
        << what << " says the space left: " << s.error_message();
  }

  HttpReply viaRouter(const std::string& slug) {
    return httpGet("127.0.0.1", host_->routerPort(), "/", slug + "." + host_->domain());
  }

  std::unique_ptr<LoopExt4> loop_;
  std::unique_ptr<TestHost> host_;
  std::unique_ptr<v1::Qabox::Stub> stub_;
};

TEST_F(LxcFullDisk, WritesFailCleanlyWhileFullAndWorkOnceSpaceIsFreed) {
  ASSERT_TRUE(deploy("KEEP-1").ok());
  ASSERT_EQ(viaRouter("keep-1").status, 200);
  const auto containers = host_->containers();
  const int leases = host_->leaseCount();
  const auto images = host_->cli({"image", "ls", "-o", "json"}).out;

  ASSERT_NO_FATAL_FAILURE(fill(2u << 20));
  expectFull(deploy("FULL-1"), "deploy");
  expectFull(build(), "image build");
  expectFull(pin("KEEP-1"), "pin");

  // Nothing half-made: no container, lease, row or image version.
  EXPECT_EQ(host_->containers(), containers);
  EXPECT_EQ(host_->leaseCount(), leases);
  EXPECT_FALSE(host_->env("FULL-1").has_value());
  EXPECT_FALSE(host_->env("KEEP-1")->pinned());
  EXPECT_EQ(host_->cli({"image", "ls", "-o", "json"}).out, images);
  // Routes and reads keep working.
  EXPECT_EQ(viaRouter("keep-1").status, 200);
  EXPECT_EQ(host_->cli({"list"}).exitCode, 0);
  EXPECT_EQ(host_->cli({"get", "KEEP-1"}).exitCode, 0);
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});

  unfill();
  EXPECT_TRUE(deploy("FULL-1").ok());
  EXPECT_EQ(viaRouter("full-1").status, 200);
  grpc::Status built = build();
  EXPECT_TRUE(built.ok()) << built.error_message();
  EXPECT_TRUE(pin("KEEP-1").ok());
  EXPECT_TRUE(host_->env("KEEP-1")->pinned());
  EXPECT_EQ(host_->violations(), std::vector<std::string>{});
}

}  // namespace
}  // namespace qabox::testing
