#include "lifecycle/services.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <thread>

#include "store/paths.h"
#include "sys/process.h"
#include "sys/safe_path.h"

namespace qabox {
namespace {

constexpr std::string_view kPasswordRef = "${password}";
constexpr size_t kPasswordBytes = 24;
// What a log's tail looks back over.
constexpr size_t kTailWindow = 64 * 1024;

std::string hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 0xf];
  }
  return out;
}

constexpr std::chrono::milliseconds kServicesPollEvery{200};
constexpr size_t kServiceLogLines = 10;

Status serviceFailed(Code code, const std::string& upper, const std::string& what,
                     const std::string& name) {
  std::string tail = processLogTail(upper, name, kServiceLogLines);
  return Status(code,
                what + "; last lines of " + name + ".log:\n" + (tail.empty() ? "(nothing)" : tail));
}

}  // namespace

Result<std::string> newServicePassword() {
  std::array<unsigned char, kPasswordBytes> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return internalError("generating a service password: OpenSSL RAND_bytes failed");
  }
  return hex(bytes.data(), bytes.size());
}

std::string passwordSecretName(const std::string& service) { return service + ".password"; }

std::map<std::string, std::string> serviceEnv(const ServiceDef& service,
                                              const std::string& password) {
  std::map<std::string, std::string> env;
  for (const auto& [k, v] : service.env) {
    std::string value;
    size_t from = 0;
    for (size_t at = v.find(kPasswordRef); at != std::string::npos;
         at = v.find(kPasswordRef, from)) {
      value.append(v, from, at - from).append(password);
      from = at + kPasswordRef.size();
    }
    env[k] = value.append(v, from);
  }
  return env;
}

Status addServiceEnv(const ImageManifest& image, const std::vector<std::string>& services,
                     std::map<std::string, std::string>& env,
                     std::map<std::string, std::string>& secrets) {
  for (const std::string& name : services) {
    auto it = image.services.find(name);
    if (it == image.services.end()) {
      return internalError("service " + name + ": not in image " + image.name);
    }
    QABOX_ASSIGN_OR_RETURN(std::string password, newServicePassword());
    for (auto& [k, v] : serviceEnv(it->second, password)) env[k] = std::move(v);
    secrets[passwordSecretName(name)] = std::move(password);
  }
  return Status::ok();
}

supervise::SuperviseFile superviseFileFor(const ImageManifest& image, const AppManifest& app,
                                          uint64_t logMax) {
  supervise::SuperviseFile f;
  f.logMax = logMax;
  // app.services is sorted, and every one is the image's (checkImageFits).
  for (const std::string& name : app.services) {
    auto it = image.services.find(name);
    if (it == image.services.end()) continue;
    const ServiceDef& s = it->second;
    supervise::ProcessDef p;
    p.name = name;
    p.stage = supervise::Stage::kService;
    p.command = s.run;
    p.ready = s.ready;
    p.setup = s.setup;
    p.user = s.user;
    f.processes.push_back(std::move(p));
  }
  const std::string routed = routedProcess(app);
  supervise::ProcessDef first;
  first.name = routed;
  first.command = routedCommand(app);
  f.processes.push_back(std::move(first));
  for (const auto& [name, command] : app.processes) {
    if (name == routed) continue;
    supervise::ProcessDef p;
    p.name = name;
    p.command = command;
    f.processes.push_back(std::move(p));
  }
  return f;
}

std::string processLog(const std::string& name) {
  return std::string(supervise::kLogDir) + "/" + name + ".log";
}

std::string appLogOf(const ImageManifest& image, const AppManifest& app) {
  if (image.init != kSupervisorInit) return paths::kAppLog;
  return processLog(routedProcess(app));
}

Result<supervise::InitStatus> readInitStatus(const std::string& upper) {
  off_t offset = 0;
  // One byte more than allowed tells a file that is too long.
  QABOX_ASSIGN_OR_RETURN(std::string text, readFileBeneath(upper, supervise::kStatusFile, offset,
                                                           supervise::kMaxStatusBytes + 1));
  if (text.size() > supervise::kMaxStatusBytes) {
    return failedPrecondition(std::string(supervise::kStatusFile) + ": longer than " +
                              std::to_string(supervise::kMaxStatusBytes) + " bytes");
  }
  auto status = supervise::parseStatus(text);
  if (!status) {
    return failedPrecondition(std::string(supervise::kStatusFile) +
                              " is not qabox-init's: " + printable(status.status().message(), 200));
  }
  return status;
}

std::string processLogTail(const std::string& upper, const std::string& name, size_t lines) {
  const std::string relative = processLog(name);
  auto file = openRegularFileBeneath(upper, relative);
  if (!file) {
    // The message says "(nothing)"; why is for the agent's log.
    if (file.status().code() != Code::kNotFound) {
      spdlog::warn("the tail of {}: {}", relative, file.status().toString());
    }
    return "";
  }
  struct stat st {};
  if (::fstat(file->get(), &st) != 0) {
    spdlog::warn("the tail of {}: fstat: {}", relative, std::strerror(errno));
    return "";
  }
  off_t offset = st.st_size > static_cast<off_t>(kTailWindow) ? st.st_size - kTailWindow : 0;
  auto text = readFileBeneath(upper, relative, offset, kTailWindow);
  if (!text) {
    spdlog::warn("the tail of {}: {}", relative, text.status().toString());
    return "";
  }
  return printable(lastLines(*text, lines), kTailWindow);
}

std::string printable(std::string_view text, size_t max) {
  std::string out;
  for (char c : text.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 && c != '\n' && c != '\t') || u == 0x7f ? '?' : c;
  }
  if (text.size() > max) out += "...";
  return out;
}

ServicesState servicesState(const supervise::InitStatus& status,
                            const std::vector<std::string>& services) {
  ServicesState out;
  for (const std::string& name : services) {
    auto it = std::find_if(status.processes.begin(), status.processes.end(),
                           [&](const supervise::ProcessStatus& p) { return p.name == name; });
    if (it == status.processes.end()) {
      if (out.waiting.empty()) {
        out.waiting = name + " is not started yet";
        out.waitingName = name;
      }
      continue;
    }
    const auto state = it->state;
    std::string what = name + " is " + std::string(supervise::stateName(state));
    if (!it->message.empty()) what += " (" + printable(it->message, 200) + ")";
    if (state == supervise::ProcState::kBackoff || state == supervise::ProcState::kStopping ||
        state == supervise::ProcState::kStopped) {
      out.failed = what;
      out.failedName = name;
      return out;
    }
    if (state != supervise::ProcState::kReady && out.waiting.empty()) {
      out.waiting = what;
      out.waitingName = name;
    }
  }
  return out;
}

Status awaitServices(const std::string& upper, const std::vector<std::string>& services,
                     std::chrono::milliseconds timeout,
                     const std::function<std::string()>& breach) {
  if (services.empty()) return Status::ok();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string waiting = "qabox-init wrote no " + std::string(supervise::kStatusFile);
  std::string waitingName = services.front();
  // Ready on two looks in a row, a poll apart: a service without a ready
  // check is ready the moment it starts, and one that exits at once would
  // pass on a first look taken before it died.
  bool readyOnce = false;
  for (;;) {
    auto status = readInitStatus(upper);
    if (!status && status.status().code() != Code::kNotFound) {
      // Forged or garbled: qabox-init writes it whole (rename), so it will
      // not get better.
      return failedPrecondition(status.status().message());
    }
    if (status) {
      ServicesState st = servicesState(*status, services);
      if (!st.failed.empty()) {
        return serviceFailed(Code::kFailedPrecondition, upper, st.failed, st.failedName);
      }
      if (st.waiting.empty() && readyOnce) return Status::ok();
      readyOnce = st.waiting.empty();
      if (!readyOnce) {
        waiting = st.waiting;
        waitingName = st.waitingName;
      }
    }
    if (breach) {
      if (std::string b = breach(); !b.empty()) return resourceExhausted(b);
    }
    if (std::chrono::steady_clock::now() >= deadline && !readyOnce) {
      return serviceFailed(
          Code::kDeadlineExceeded, upper,
          waiting + ", not ready within " + std::to_string(timeout.count() / 1000) + "s",
          waitingName);
    }
    std::this_thread::sleep_for(kServicesPollEvery);
  }
}

}  // namespace qabox
