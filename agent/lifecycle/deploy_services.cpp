// The deploy's services: each service's password and env at the merge, and
// the step that waits until qabox-init reports every one ready
// (awaitServices).
#include "lifecycle/deploy_steps.h"
#include "lifecycle/services.h"

namespace qabox {

Status DeployRun::addServices() {
  // New ones each deploy: a redeploy's services start from the image.
  QABOX_RETURN_IF_ERROR(
      addServiceEnv(ctx_.imageManifest, ctx_.app.services, ctx_.appEnv, ctx_.secrets));
  redactor_ = Redactor(ctx_.secrets);
  return Status::ok();
}

Status DeployRun::waitForServices() {
  Status s = awaitServices(ctx_.upper, ctx_.app.services, m_.config_.deploy.hookTimeout,
                           [this] { return watch_.breach(); });
  if (!s.isOk()) return Status(s.code(), redactor_.redact(s.message()));
  std::string names;
  for (const std::string& s : ctx_.app.services) names += (names.empty() ? "" : ", ") + s;
  phase("services", names + " ready");
  return Status::ok();
}

}  // namespace qabox
