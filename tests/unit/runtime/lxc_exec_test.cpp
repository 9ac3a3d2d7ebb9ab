// How LxcRuntime hands a command to the qabox-lxc helper: the command's
// variables, secrets among them, never in the helper's argument vector
// (readable by anyone in /proc/PID/cmdline), and renamed in its environment.
#include <gtest/gtest.h>

#include "fakes/fake_firewall.h"
#include "recording_runner.h"
#include "runtime/helper_protocol.h"
#include "runtime/lxc_runtime.h"

namespace qabox {
namespace {

TEST(LxcExec, VariablesReachTheHelperOnlyThroughItsEnvironment) {
  testing::RecordingRunner runner;
  fakes::FakeFirewall firewall;
  LxcRuntimeOptions options;
  options.lxcPath = "/var/lib/qabox/lxc";
  options.helperPath = "/usr/lib/qabox/qabox-lxc";
  LxcRuntime rt(options, runner, firewall);
  ExecSpec ex;
  ex.argv = {"/bin/sh", "-c", "echo $API_KEY"};
  ex.env = {{"API_KEY", "s3cr3t-value"}, {"LD_PRELOAD", "/tmp/evil.so"}};
  ex.cwd = "/srv/app";
  ASSERT_TRUE(rt.exec("qabox-exmp-1", ex).isOk());

  const std::vector<std::string> want = {"/usr/lib/qabox/qabox-lxc",
                                         "attach",
                                         "/var/lib/qabox/lxc",
                                         "qabox-exmp-1",
                                         "/srv/app",
                                         "--",
                                         "/bin/sh",
                                         "-c",
                                         "echo $API_KEY"};
  const ProcessSpec last = runner.last();
  EXPECT_EQ(last.argv, want);
  ASSERT_TRUE(last.env);
  const auto& env = *last.env;
  // Renamed: the helper, root on the host, is never preloaded by a deploy.
  EXPECT_EQ(env.count("LD_PRELOAD"), 0u);
  EXPECT_EQ(env.count("API_KEY"), 0u);
  std::vector<std::string> passed;
  for (const auto& [k, v] : env) {
    if (k.rfind(kAttachEnvPrefix, 0) == 0) passed.push_back(v);
  }
  std::sort(passed.begin(), passed.end());
  EXPECT_EQ(passed, (std::vector<std::string>{"API_KEY=s3cr3t-value", "LD_PRELOAD=/tmp/evil.so"}));
}

}  // namespace
}  // namespace qabox
