#include <gtest/gtest.h>

#include <sstream>

#include "runtime/lxc_runtime.h"

namespace qabox {
namespace {

bool hasLine(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

TEST(SeccompProfile, IsLxcsDenyListWithWhatContainerEnginesAdd) {
  std::string p = seccompProfile(false);
  EXPECT_EQ(p.rfind("2\ndenylist\n", 0), 0u) << p;
  for (const char* line :
       {"reject_force_umount", "[all]", "kexec_load errno 1", "open_by_handle_at errno 1",
        "init_module errno 1", "finit_module errno 1", "delete_module errno 1", "keyctl errno 1",
        "add_key errno 1", "request_key errno 1", "bpf errno 1", "userfaultfd errno 1",
        "perf_event_open errno 1", "io_uring_setup errno 1"}) {
    EXPECT_TRUE(hasLine(p, line)) << line << " in\n" << p;
  }
  // Every btrfs ioctl (type 0x94 in bits 8-15): no subvolume of a
  // container's own inside its data snapshot, outside the snapshot's qgroup.
  EXPECT_TRUE(hasLine(p, "ioctl errno 1 [1,37888,SCMP_CMP_MASKED_EQ,65280]")) << p;
  EXPECT_TRUE(hasLine(seccompProfile(true), "ioctl errno 1 [1,37888,SCMP_CMP_MASKED_EQ,65280]"));
  // ptrace stays: it reaches only the container's own processes, and
  // debugging an app in its environment is what QA does.
  EXPECT_EQ(p.find("ptrace"), std::string::npos);
}

TEST(SeccompProfile, DeniesNewUserNamespacesUnlessAllowed) {
  const char* userns[] = {"unshare errno 1 [0,268435456,SCMP_CMP_MASKED_EQ,268435456]",
                          "clone errno 1 [0,268435456,SCMP_CMP_MASKED_EQ,268435456]",
                          "clone3 errno 38"};
  std::string denied = seccompProfile(false), allowed = seccompProfile(true);
  for (const char* line : userns) {
    EXPECT_TRUE(hasLine(denied, line)) << line;
    EXPECT_FALSE(hasLine(allowed, line)) << line;
  }
  EXPECT_TRUE(hasLine(allowed, "keyctl errno 1"));
}

}  // namespace
}  // namespace qabox
