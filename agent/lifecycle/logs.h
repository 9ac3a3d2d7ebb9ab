#pragma once

// Reading an environment's log, and following it as it grows, by polling.
//
// The app log is in the container's own files: every read goes through
// sys/safe_path.h beneath the directory the agent made, never through a
// link, never opening a FIFO or a device, and never more than a bounded
// number of bytes at once. A log that does not exist (yet) reads as empty.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"
#include "lifecycle/manager.h"

namespace qabox {

inline constexpr size_t kLogTailWindow = 64 << 20;  // what a tail looks back over
inline constexpr size_t kLogChunkMax = 256 << 10;   // the most one chunk holds
inline constexpr std::chrono::milliseconds kLogPollEvery{200};

struct LogQuery {
  std::string ticket;
  bool deployLog = false;  // the last deploy's hook output instead of the app's log
  uint32_t tail = 0;       // begin this many lines before the end; 0: at the start
  bool follow = false;     // at the end, wait for more until stopped or the environment is gone
  std::string process;     // a supervised process's own log; empty: the routed one's
};

// Where a log goes. `write` gets each chunk and answers false once the
// reader is gone, which ends the stream; `cancelled` is asked before every
// read; `gone` (following only) is asked each time the end is reached.
struct LogSink {
  std::function<bool(std::string chunk)> write;
  std::function<bool()> cancelled;
  std::function<bool()> gone;
};

// What `log` has past `offset`, at most `max` bytes; "" while it does not
// exist. `offset` moves past what was read.
Result<std::string> readLog(const EnvironmentManager::LogFile& log, off_t& offset, size_t max);

// Where a read for the last `tail` lines of `log` starts (0 for tail 0).
Result<off_t> tailOffset(const EnvironmentManager::LogFile& log, uint32_t tail);

// Streams `log` from the last `tail` lines on, in chunks of at most
// kLogChunkMax, until its end or, when following, until the sink is
// cancelled or gone. Only a failed read is an error.
Status followLog(const EnvironmentManager::LogFile& log, uint32_t tail, bool follow,
                 const LogSink& sink, std::chrono::milliseconds pollEvery = kLogPollEvery);

// StreamLogs: finds the ticket's log (the app log of a sleeping environment
// wakes it), then followLog, stopping to follow once the environment is
// deleted. A failed read is "logs of <ticket>: ...".
Status streamLogs(EnvironmentManager& envs, const LogQuery& query, const LogSink& sink,
                  std::chrono::milliseconds pollEvery = kLogPollEvery);

}  // namespace qabox
