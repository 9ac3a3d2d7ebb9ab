#pragma once

// What the agent and qabox-init (PID 1 of a Debian environment) say to each
// other, through files in the container:
//
//   /etc/qabox/supervise.json  written by the agent before the container
//                              starts: the processes to supervise
//   /etc/qabox/app.env         their environment (KEY='value' lines, secrets
//                              among them; written by the agent)
//   /etc/qabox/app.run         appears once the hooks have run: from then on
//                              the app-stage processes run
//   /run/qabox/status.json     written by qabox-init at every change: each
//                              process's state, read by the agent (untrusted:
//                              the app can write it too)
//   /var/log/qabox/NAME.log    each process's output, capped at log_max
//
// Services start at boot, in order, each once the one before is ready; the
// app's processes start, in order, once app.run exists and every service is
// ready. A process that exits is restarted after a backoff; at SIGTERM all
// stop in reverse order.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace qabox::supervise {

inline constexpr const char* kSuperviseFile = "/etc/qabox/supervise.json";
// In a warm pool's container, from its clone until a deploy claims it: while
// it is there qabox-init supervises nothing and reads no supervise.json. The
// claim writes the deploy's files, then removes it.
inline constexpr const char* kPooledFile = "/etc/qabox/pooled";
inline constexpr const char* kStatusFile = "/run/qabox/status.json";
inline constexpr const char* kLogDir = "/var/log/qabox";
// The status file is at most this long; a longer one is not read.
inline constexpr size_t kMaxStatusBytes = 64 * 1024;

enum class Stage { kService, kApp };

struct ProcessDef {
  std::string name;  // [a-z][a-z0-9_-]{0,31}: its log is kLogDir/NAME.log
  Stage stage = Stage::kApp;
  std::string command;  // run by /bin/sh -c
  std::string ready;    // sh -c; exits 0 once the process serves; empty: ready once started
  std::string setup;    // sh -c, as root, after each ready, before it counts as ready
  std::string user;     // runs as this user of the container; empty: root
  std::string cwd;      // empty: / for services, /srv/app for the app's processes
  uint32_t stopTimeoutMs = 10000;  // SIGTERM, then SIGKILL to its process group
};

struct SuperviseFile {
  std::vector<ProcessDef> processes;
  uint64_t logMax = 8 * 1024 * 1024;  // bytes a process's log keeps
};

enum class ProcState {
  kWaiting,   // not started: the ones before it are not ready, or app.run is missing
  kStarting,  // running, its ready check not passed yet
  kReady,     // running and ready
  kBackoff,   // exited; restarts after a delay
  kStopping,
  kStopped,
};

struct ProcessStatus {
  std::string name;
  ProcState state = ProcState::kWaiting;
  int64_t pid = 0;
  uint32_t restarts = 0;
  int32_t lastExit = 0;  // the last exit's code (128+N: killed by signal N)
  int64_t sinceMs = 0;   // unix time in ms when it entered `state`
  std::string message;   // why it is in backoff, e.g. "exited with code 1"
};

struct InitStatus {
  int64_t bootMs = 0;  // unix time in ms when this qabox-init started
  std::vector<ProcessStatus> processes;
};

std::string_view stateName(ProcState s);
// A valid process name: [a-z][a-z0-9_-]{0,31}.
bool validName(std::string_view name);

std::string toJson(const SuperviseFile& f);
// Errors name the field: "supervise.json: processes[2].name: ...".
Result<SuperviseFile> parseSuperviseFile(std::string_view json);

std::string toJson(const InitStatus& s);
// Bounded and strict: anything else than what toJson writes is an error.
Result<InitStatus> parseStatus(std::string_view json);

}  // namespace qabox::supervise
