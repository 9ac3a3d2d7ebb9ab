#pragma once

// For tests that drive a ContainerRuntime directly (not through the agent):
// an address on the test host's bridge, a shell command in a container, and
// files made by hand as the image builder would.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "harness.h"
#include "runtime/runtime.h"
#include "store/paths.h"

namespace qabox::testing {

// The agent builds the busybox image and makes the bridge, then stops: what
// follows is the runtime's alone, in `<state dir>/<lxcDir>`, an lxcpath the
// agent does not look after. Returns the images' lxcpath.
inline std::string busyboxForRuntime(TestHost& host, const std::string& lxcDir) {
  host.startWithBusybox();
  EXPECT_EQ(host.stopDaemon(), 0);
  std::filesystem::create_directories(host.stateDir() + "/" + lxcDir);
  return paths::imagesLxcPath(host.stateDir());
}

// Writes `text` to `path`, its parent directories made.
inline void writeText(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// Address .`hostPart` of the test host's subnet on its bridge.
inline NetSpec bridgeNet(const TestHost& host, int hostPart) {
  const std::string subnet = host.subnet();
  const std::string prefix = subnet.substr(0, subnet.rfind('.') + 1);
  return NetSpec{host.bridge(), prefix + std::to_string(hostPart) + "/24", prefix + "1"};
}

// `sh -c script` in the running container `name`: its stdout and stderr.
inline std::string shIn(ContainerRuntime& rt, const std::string& name, const std::string& script,
                        int* exitCode = nullptr,
                        std::chrono::seconds timeout = std::chrono::seconds(20)) {
  ExecSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {{"PATH", "/bin:/sbin:/usr/bin:/usr/sbin"}};
  spec.timeout = timeout;
  auto r = rt.exec(name, spec);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  if (!r.isOk()) return "";
  if (exitCode) *exitCode = r->exitCode;
  return r->out + r->err;
}

}  // namespace qabox::testing
