#include "sys/capped_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "sys/atomic_file.h"
#include "sys/disk_usage.h"

namespace qabox {
namespace {

constexpr size_t kMaxHead = 4096;
constexpr uint64_t kMinCap = 16 << 10;  // room for the head line, the marker and a tail
constexpr int kFileFlags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW;

}  // namespace

CappedLog::~CappedLog() { close(); }

void CappedLog::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status CappedLog::open(const std::string& path, uint64_t cap) {
  close();
  path_ = path;
  cap_ = std::max(cap, kMinCap);
  size_ = prefix_ = dropped_ = 0;
  head_.clear();
  headDone_ = false;
  fd_ = ::open(path.c_str(), kFileFlags, 0600);
  if (fd_ < 0) return writeError("creating " + path, errno);
  ::fchmod(fd_, 0600);
  return Status::ok();
}

Status CappedLog::writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return writeError("writing " + path_, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

std::string CappedLog::marker() const {
  return "[qabox: " + std::to_string(dropped_) +
         " bytes of output dropped here; this log keeps its first line and its last " +
         formatBytes(cap_ / 2) + "]\n";
}

Status CappedLog::write(std::string_view data) {
  if (fd_ < 0) return failedPrecondition("log " + path_ + ": not open");
  if (!headDone_) {
    size_t nl = data.find('\n');
    size_t take =
        std::min(nl == std::string_view::npos ? data.size() : nl + 1, kMaxHead - head_.size());
    head_.append(data.substr(0, take));
    headDone_ = !head_.empty() && (head_.back() == '\n' || head_.size() >= kMaxHead);
  }
  if (size_ + data.size() <= cap_) {
    Status s = writeAll(fd_, data);
    if (s.isOk()) size_ += data.size();
    return s;
  }
  return compact(data);
}

Status CappedLog::compact(std::string_view data) {
  const uint64_t keep = cap_ / 2;
  std::string head = head_;
  if (head.empty() || head.back() != '\n') head += '\n';
  // What the file holds after its head (and the marker, once there is one).
  const uint64_t bodyStart = prefix_ > 0 ? prefix_ : std::min<uint64_t>(head_.size(), size_);
  const uint64_t bodyLen = size_ - bodyStart;
  std::string tail;
  if (data.size() >= keep) {
    tail.assign(data.substr(data.size() - keep));
  } else {
    uint64_t fromFile = std::min<uint64_t>(bodyLen, keep - data.size());
    tail.resize(fromFile);
    int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (rfd < 0) return writeError("reading " + path_, errno);
    ssize_t got = ::pread(rfd, tail.data(), fromFile, static_cast<off_t>(size_ - fromFile));
    int err = errno;
    ::close(rfd);
    if (got < 0) return writeError("reading " + path_, err);
    tail.resize(static_cast<size_t>(got));
    tail.append(data);
  }
  // Start the kept part at a line's start when one is near.
  size_t nl = tail.find('\n');
  if (nl != std::string::npos && nl + 1 < tail.size() && nl < kMaxHead) tail.erase(0, nl + 1);
  dropped_ += bodyLen + data.size() - tail.size();

  std::string mark = marker();
  std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), kFileFlags, 0600);
  if (fd < 0) return writeError("creating " + tmp, errno);
  Status s = writeAll(fd, head);
  if (s.isOk()) s = writeAll(fd, mark);
  if (s.isOk()) s = writeAll(fd, tail);
  if (s.isOk() && ::rename(tmp.c_str(), path_.c_str()) != 0)
    s = writeError("renaming " + tmp, errno);
  if (!s.isOk()) {
    ::close(fd);
    removeTemporaryFile(tmp);
    return s;
  }
  close();
  fd_ = fd;
  prefix_ = head.size() + mark.size();
  size_ = prefix_ + tail.size();
  return Status::ok();
}

}  // namespace qabox
