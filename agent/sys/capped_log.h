#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox {

// A log file fed by output the agent does not control (a hook's), that never
// holds more than `cap` bytes. Past the cap it keeps its first line (what
// ran) and the most recent output, with one line between them saying how
// much was dropped: the end of the output is what explains a failure.
class CappedLog {
 public:
  CappedLog() = default;
  ~CappedLog();
  CappedLog(const CappedLog&) = delete;
  CappedLog& operator=(const CappedLog&) = delete;

  // Creates or truncates `path` (mode 0600, close-on-exec).
  Status open(const std::string& path, uint64_t cap);
  // Appends; a write the disk refuses is RESOURCE_EXHAUSTED and the data is lost.
  Status write(std::string_view data);
  void close();

  uint64_t size() const { return size_; }
  uint64_t dropped() const { return dropped_; }
  const std::string& path() const { return path_; }

 private:
  Status writeAll(int fd, std::string_view data);
  Status compact(std::string_view data);
  std::string marker() const;

  std::string path_;
  int fd_ = -1;
  uint64_t cap_ = 0;
  uint64_t size_ = 0;
  uint64_t prefix_ = 0;  // bytes of head line and marker at the file's start
  uint64_t dropped_ = 0;
  std::string head_;
  bool headDone_ = false;
};

}  // namespace qabox
