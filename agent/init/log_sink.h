#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "sys/fd.h"

namespace qabox::init {

// /var/log/qabox/NAME.log, fed by a process the app controls. Never more
// than `cap` bytes: past it, the file keeps one line saying how much was
// dropped, then the most recent half of the cap. Opened without following
// a symlink, and only if it is a regular file with one link (the app may
// plant either there to have root write elsewhere); created 0640; appended
// to, so a restarted container keeps what its processes said before.
class LogSink {
 public:
  Status open(int dirFd, const std::string& name, uint64_t cap);
  bool isOpen() const { return static_cast<bool>(fd_); }
  // Data a full disk refuses is lost (the error says so once per episode).
  Status write(std::string_view data);
  uint64_t size() const { return size_; }
  uint64_t dropped() const { return dropped_; }

 private:
  Status compact(std::string_view data);

  int dirFd_ = -1;
  std::string name_;
  UniqueFd fd_;
  uint64_t cap_ = 0;
  uint64_t size_ = 0;
  uint64_t markerLen_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace qabox::init
