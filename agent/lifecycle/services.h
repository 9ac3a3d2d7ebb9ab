#pragma once

// An environment's services and processes as the agent sees them: the
// passwords a deploy generates, the supervise.json it writes, and what it
// reads back from qabox-init's status.json (agent/init/contract.h).
//
// status.json and the logs are the app's to write: they are read on the host
// beneath the container's upper dir through sys/safe_path.h (no link
// followed, regular files only, at most kMaxStatusBytes), and a forged or
// garbled one is an error for this environment only.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "deploy/manifest.h"
#include "init/contract.h"

namespace qabox {

// A service's password for one deploy: 24 random bytes (OpenSSL), hex.
Result<std::string> newServicePassword();

// The name a service's password is redacted under ("[secret postgres.password]").
std::string passwordSecretName(const std::string& service);

// The service's env with "${password}" expanded to `password`.
std::map<std::string, std::string> serviceEnv(const ServiceDef& service,
                                              const std::string& password);

// For each of `services` (the image's): a fresh password, its env expanded
// with it into `env`, the password into `secrets` (passwordSecretName).
Status addServiceEnv(const ImageManifest& image, const std::vector<std::string>& services,
                     std::map<std::string, std::string>& env,
                     std::map<std::string, std::string>& secrets);

// What qabox-init supervises: the app's services (in name order), then the
// routed process, then the app's other processes (in name order).
supervise::SuperviseFile superviseFileFor(const ImageManifest& image, const AppManifest& app,
                                          uint64_t logMax);

// The routed process's log, or app.log for an image without qabox-init.
std::string appLogOf(const ImageManifest& image, const AppManifest& app);
// kLogDir/NAME.log, relative to the root.
std::string processLog(const std::string& name);

// status.json beneath `upper`: kNotFound while qabox-init has not written it.
Result<supervise::InitStatus> readInitStatus(const std::string& upper);

// The last `lines` lines of process `name`'s log beneath `upper` ("" when
// it has none or cannot be read).
std::string processLogTail(const std::string& upper, const std::string& name, size_t lines);

// Text from the environment made fit for a message: at most `max` bytes,
// control characters but newlines shown as '?'.
std::string printable(std::string_view text, size_t max);

// Where the services stand in `status`: all ready (empty `failed` and
// `waiting`), some not yet (`waiting` names the first and its state), or
// one failed (`failed` names it, its state and message).
struct ServicesState {
  std::string failed;  // e.g. "postgres is backoff (exited with code 1)"
  std::string failedName;
  std::string waiting;  // e.g. "postgres is starting"
  std::string waitingName;
};
ServicesState servicesState(const supervise::InitStatus& status,
                            const std::vector<std::string>& services);

// Polls status.json beneath `upper` until every one of `services` is
// ready. An error names the service and what it is at, with the last
// lines of its log: FAILED_PRECONDITION when one failed (or status.json is
// forged), DEADLINE_EXCEEDED after `timeout`, RESOURCE_EXHAUSTED when
// `breach` (may be empty) says why to stop.
Status awaitServices(const std::string& upper, const std::vector<std::string>& services,
                     std::chrono::milliseconds timeout, const std::function<std::string()>& breach);

}  // namespace qabox
