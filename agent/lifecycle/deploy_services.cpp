// The deploy's services: each service's password and env at the merge, and
// the step that waits until qabox-init reports every one ready.
#include <spdlog/spdlog.h>

#include <thread>

#include "lifecycle/deploy_steps.h"
#include "lifecycle/services.h"

namespace qabox {
namespace {

constexpr milliseconds kServicesPollEvery{200};
constexpr size_t kServiceLogLines = 10;

}  // namespace

Status DeployRun::addServices() {
  for (const std::string& name : ctx_.app.services) {
    auto it = ctx_.imageManifest.services.find(name);
    if (it == ctx_.imageManifest.services.end()) {
      return internalError("service " + name + ": not in image " + ctx_.image);
    }
    // A new one each deploy: a redeploy's services start from the image.
    QABOX_ASSIGN_OR_RETURN(std::string password, newServicePassword());
    for (auto& [k, v] : serviceEnv(it->second, password)) ctx_.appEnv[k] = std::move(v);
    ctx_.secrets[passwordSecretName(name)] = std::move(password);
  }
  redactor_ = Redactor(ctx_.secrets);
  return Status::ok();
}

Status DeployRun::waitForServices() {
  const auto timeout = m_.config_.deploy.hookTimeout;
  const auto deadline = steady_clock::now() + timeout;
  const std::vector<std::string>& services = ctx_.app.services;
  std::string waiting = "qabox-init wrote no " + std::string(supervise::kStatusFile);
  std::string waitingName = services.front();
  for (;;) {
    auto status = readInitStatus(ctx_.upper);
    if (!status && status.status().code() != Code::kNotFound) {
      // Forged or garbled: qabox-init writes it whole (rename), so it will
      // not get better.
      return failedPrecondition(status.status().message());
    }
    if (status) {
      ServicesState st = servicesState(*status, services);
      if (!st.failed.empty()) {
        return servicesFailed(Code::kFailedPrecondition, st.failed, st.failedName);
      }
      if (st.waiting.empty()) break;
      waiting = st.waiting;
      waitingName = st.waitingName;
    }
    if (std::string b = watch_.breach(); !b.empty()) return resourceExhausted(b);
    if (steady_clock::now() >= deadline) {
      return servicesFailed(
          Code::kDeadlineExceeded,
          waiting + ", not ready within " + std::to_string(timeout.count() / 1000) + "s",
          waitingName);
    }
    std::this_thread::sleep_for(kServicesPollEvery);
  }
  std::string names;
  for (const std::string& s : services) names += (names.empty() ? "" : ", ") + s;
  phase("services", names + " ready");
  return Status::ok();
}

Status DeployRun::servicesFailed(Code code, const std::string& what, const std::string& name) {
  std::string tail = processLogTail(ctx_.upper, name, kServiceLogLines);
  return Status(code, redactor_.redact(what + "; last lines of " + name + ".log:\n" +
                                       (tail.empty() ? "(nothing)" : tail)));
}

}  // namespace qabox
