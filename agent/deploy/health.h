#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"

namespace qabox {

struct HealthProbe {
  bool healthy = false;  // a 2xx or 3xx answer
  unsigned httpStatus = 0;
  std::string detail;     // "HTTP 500", "connection refused", "timed out"...
  bool timedOut = false;  // the attempt's time ran out, whatever step it was at
};

// One GET, answered or failed within `timeout`.
HealthProbe probeHealth(const std::string& ip, uint16_t port, const std::string& path,
                        std::chrono::milliseconds timeout);

// GETs http://ip:port/path until it answers 2xx or 3xx, with the whole answer
// (head at most 16 KiB, body at most 1 MiB, dropped) in. Attempts are cut at
// ~500 ms and repeated every ~25 ms: a deploy waits for the app to listen and
// should notice the moment it does.
//   INVALID_ARGUMENT   a bad address or path
//   DEADLINE_EXCEEDED  health check GET http://10.44.0.5:80/: no 2xx/3xx answer within 30s
//                      (last: connection refused)
//   CANCELLED          when `cancelled` says so (checked between attempts)
Status waitHealthy(const std::string& ip, uint16_t port, const std::string& path,
                   std::chrono::milliseconds timeout, std::function<bool()> cancelled = {});

}  // namespace qabox
