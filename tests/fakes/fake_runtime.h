#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace qabox::fakes {

// Containers as a map: what unit tests of the lifecycle and recovery use in
// place of liblxc. Failures can be injected per operation and container.
class FakeRuntime : public ContainerRuntime {
 public:
  struct Container {
    ContainerState state = ContainerState::kStopped;
    std::string image;
    NetSpec net;
  };

  Status clone(const std::string&, const std::string& image, const std::string& name,
               const std::vector<std::string>& layers, const NetSpec& net,
               const ResourceLimits&) override {
    std::lock_guard l(mu_);
    calls.push_back("clone " + name);
    lowers[name] = layers;
    if (failOn.count("clone " + name)) return internalError("clone " + name + ": injected");
    if (containers.count(name)) return internalError("clone " + name + ": already exists");
    if (idRanges > 0 && containers.size() >= idRanges) {
      return resourceExhausted("clone " + name + ": all id ranges are taken");
    }
    containers[name] = {ContainerState::kStopped, image, net};
    // A real clone makes its overlay's upper dir; the agent writes beneath it.
    if (!upperRoot.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(upperDir(name), ec);
    }
    return Status::ok();
  }
  Status start(const std::string& name) override {
    std::lock_guard l(mu_);
    calls.push_back("start " + name);
    if (failOn.count("start " + name)) return internalError("start " + name + ": injected");
    auto it = containers.find(name);
    if (it == containers.end()) return internalError("start " + name + ": no such container");
    it->second.state = ContainerState::kRunning;
    return Status::ok();
  }
  Status stop(const std::string& name) override {
    std::lock_guard l(mu_);
    calls.push_back("stop " + name);
    auto it = containers.find(name);
    if (it != containers.end()) it->second.state = ContainerState::kStopped;
    return Status::ok();
  }
  Status destroy(const std::string& name) override {
    std::lock_guard l(mu_);
    calls.push_back("destroy " + name);
    if (failOn.count("destroy " + name)) return internalError("destroy " + name + ": injected");
    containers.erase(name);
    data.erase(name);
    return Status::ok();
  }
  Result<std::vector<std::string>> list() override {
    std::lock_guard l(mu_);
    std::vector<std::string> out;
    for (const auto& [name, c] : containers) out.push_back(name);
    return out;
  }
  Result<ContainerState> state(const std::string& name) override {
    std::lock_guard l(mu_);
    if (failOn.count("state " + name)) return internalError("state " + name + ": injected");
    auto it = containers.find(name);
    return it == containers.end() ? ContainerState::kMissing : it->second.state;
  }
  Result<ProcessResult> exec(const std::string& name, const ExecSpec& spec) override {
    if (duringExec) duringExec();  // what happens while the command runs
    std::lock_guard l(mu_);
    calls.push_back("exec " + name + " " + (spec.argv.empty() ? "" : spec.argv.back()));
    ProcessResult r;
    r.exitCode = execExitCode;
    r.out = execOutput;
    return r;
  }
  Status place(const std::string& name, const std::vector<PlacedFile>& files,
               const std::vector<std::string>& remove) override {
    std::lock_guard l(mu_);
    std::string call = "place " + name;
    for (const auto& f : files) call += " " + f.path;
    for (const auto& r : remove) call += " -" + r;
    calls.push_back(call);
    if (failOn.count("place " + name)) return internalError("place " + name + ": injected");
    auto it = containers.find(name);
    if (it == containers.end() || it->second.state != ContainerState::kRunning) {
      return failedPrecondition("container " + name + " is not running");
    }
    for (const auto& f : files) placed[name][f.path] = f.content;
    for (const auto& r : remove) placed[name].erase(r);
    return Status::ok();
  }
  Status attachData(const std::string& name, const std::vector<DataSnapshot>& snaps,
                    uint64_t maxBytes) override {
    std::lock_guard l(mu_);
    std::string call = "attachData " + name + " " + std::to_string(maxBytes);
    for (const auto& s : snaps) call += " " + s.source + ":" + s.target;
    calls.push_back(call);
    if (failOn.count("attachData " + name)) {
      return internalError("attachData " + name + ": injected");
    }
    if (!containers.count(name)) return notFound("attachData " + name + ": no such container");
    data[name] = snaps;
    return Status::ok();
  }
  std::string upperDir(const std::string& name) const override { return upperRoot + "/" + name; }
  std::optional<uint32_t> mappedRoot(const std::string&) const override { return std::nullopt; }

  std::map<std::string, Container> containers;
  std::map<std::string, std::vector<std::string>> lowers;            // each clone's, as asked
  std::map<std::string, std::vector<DataSnapshot>> data;             // each clone's attachData
  std::map<std::string, std::map<std::string, std::string>> placed;  // place(): path -> content
  std::vector<std::string> calls;
  std::set<std::string> failOn;
  size_t idRanges = 0;  // else a clone past this many containers finds every id range taken
  int execExitCode = 0;
  std::function<void()> duringExec;
  std::string execOutput;
  std::string upperRoot = "/nonexistent";

 private:
  std::mutex mu_;
};

class FakeBridge : public Bridge {
 public:
  Status ensure(const std::string& name, const std::string& cidr) override {
    ensured = name + " " + cidr;
    return Status::ok();
  }
  Status guard(const std::string& name, const BridgeGuard& g) override {
    guarded = name;
    guardSpec = g;
    return Status::ok();
  }
  Status forgetNeighbor(const std::string&, const std::string&) override { return Status::ok(); }
  Status remove(const std::string&) override { return Status::ok(); }
  Result<std::vector<std::string>> ports(const std::string&) override {
    return std::vector<std::string>{};
  }
  std::string ensured;
  std::string guarded;
  BridgeGuard guardSpec;
};

}  // namespace qabox::fakes
