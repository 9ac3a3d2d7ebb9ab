#pragma once

// What the lifecycle's own files share and nobody else needs.

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/environment.h"
#include "core/status.h"
#include "lifecycle/options.h"
#include "runtime/runtime.h"
#include "store/ipam.h"
#include "store/paths.h"
#include "sys/process.h"

namespace qabox {
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace lifecycle_detail {

inline constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

inline milliseconds since(steady_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - t);
}
inline milliseconds since(const TimeSource& time, steady_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(time.steadyNow() - t);
}

// The error of a command run in a container (a hook, an install, a seed)
// that did not exit 0: `what` ("hook migrate", "[deps] install") and its
// last output lines.
inline Status commandFailed(const std::string& what, const ProcessResult& r, milliseconds timeout) {
  std::string tail = lastLines(r.out + r.err, 10);
  if (r.timedOut) {
    return deadlineExceeded(what + " did not finish within " +
                            std::to_string(timeout.count() / 1000) + "s; last output:\n" + tail);
  }
  return failedPrecondition(what + " failed with exit code " + std::to_string(r.exitCode) +
                            "; last output:\n" + tail);
}

inline bool sameSource(const DeploySpec& a, const DeploySpec& b) {
  return a.image == b.image && a.repo == b.repo && a.sourceBranch == b.sourceBranch &&
         a.targetBranch == b.targetBranch;
}

// Measures a deploy's container all along its hooks: a breach stops the
// container at once (which ends the hook) instead of at the hook's end.
class DiskWatch {
 public:
  DiskWatch(std::function<std::string()> check, std::function<void()> onBreach)
      : check_(std::move(check)), onBreach_(std::move(onBreach)) {}
  ~DiskWatch() { stop(); }

  void start(milliseconds every) {
    thread_ = std::thread([this, every] {
      std::unique_lock l(mu_);
      milliseconds wait = every;
      while (!cv_.wait_for(l, wait, [&] { return stopping_; })) {
        l.unlock();
        auto began = steady_clock::now();
        std::string breach = check_();
        // A big tree costs time to walk: at most a third of it goes to that.
        wait = std::max(every, 2 * since(began));
        l.lock();
        if (!breach.empty()) {
          breach_ = breach;
          l.unlock();
          onBreach_();
          return;
        }
      }
    });
  }
  void stop() {
    {
      std::lock_guard l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // Measures now, on the caller's thread: the last word before a switch.
  std::string checkNow() {
    std::string breach = check_();
    std::lock_guard l(mu_);
    if (!breach.empty() && breach_.empty()) breach_ = breach;
    return breach_;
  }
  std::string breach() {
    std::lock_guard l(mu_);
    return breach_;
  }

 private:
  std::function<std::string()> check_;
  std::function<void()> onBreach_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::string breach_;
};

// A clone of `image` at `version` named `name`, on the agent's bridge at
// `ip` of `subnet`: a deploy's, a pooled container's, a layer build's.
// `lowers` are its read-only layers, topmost first.
inline Status cloneImage(ContainerRuntime& runtime, const LifecycleOptions& config,
                         const Subnet& subnet, const std::string& image, uint32_t version,
                         const std::string& name, const std::string& ip,
                         const std::vector<std::string>& lowers, const ResourceLimits& limits) {
  NetSpec net{config.network.bridge, cidrOf(subnet, ip), gatewayOf(subnet)};
  return runtime.clone(paths::imagesLxcPath(config.stateDir), paths::imageContainer(image, version),
                       name, lowers, net, limits);
}

inline std::string describeSource(const DeploySpec& s) {
  if (s.repo.empty()) return "image " + s.image;
  return s.repo + " " + s.sourceBranch + " into " + s.targetBranch + " on image " + s.image;
}

}  // namespace lifecycle_detail

using namespace lifecycle_detail;  // NOLINT: the lifecycle's files only

}  // namespace qabox
