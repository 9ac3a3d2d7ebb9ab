#include "init/log_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "init/files.h"

namespace qabox::init {
namespace {

constexpr uint64_t kMinCap = 4096;
constexpr int kFlags = O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

Status refused(const std::string& what) { return {Code::kPermissionDenied, what + ": refused"}; }

}  // namespace

Status LogSink::open(int dirFd, const std::string& name, uint64_t cap) {
  dirFd_ = dirFd;
  name_ = name;
  cap_ = std::max(cap, kMinCap);
  UniqueFd fd(::openat(dirFd, name.c_str(), kFlags, 0640));
  if (!fd) {
    if (errno == ELOOP) return refused(name + " is a symlink");
    return internalError("opening " + name + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return internalError("fstat " + name + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return refused(name + " is not a regular file");
  if (st.st_nlink != 1) return refused(name + " has other hard links");
  if (::fchmod(fd.get(), 0640) != 0) {
    return internalError("chmod " + name + ": " + std::strerror(errno));
  }
  fd_ = std::move(fd);
  size_ = static_cast<uint64_t>(st.st_size);
  return Status::ok();
}

Status LogSink::write(std::string_view data) {
  if (!fd_) return failedPrecondition(name_ + ": not open");
  if (size_ + data.size() <= cap_) {
    Status s = writeAll(fd_.get(), data);
    if (s.isOk()) size_ += data.size();
    return s;
  }
  return compact(data);
}

Status LogSink::compact(std::string_view data) {
  const uint64_t keep = cap_ / 2;
  std::string tail;
  if (data.size() >= keep) {
    tail.assign(data.substr(data.size() - keep));
  } else {
    uint64_t fromFile = std::min<uint64_t>(size_, keep - data.size());
    tail.resize(fromFile);
    ssize_t got = ::pread(fd_.get(), tail.data(), fromFile, static_cast<off_t>(size_ - fromFile));
    if (got < 0) return internalError("reading " + name_ + ": " + std::strerror(errno));
    tail.resize(static_cast<size_t>(got));
    tail.append(data);
  }
  // Start at a line's start when one is near.
  size_t nl = tail.find('\n');
  if (nl != std::string::npos && nl + 1 < tail.size() && nl < 4096) tail.erase(0, nl + 1);
  dropped_ += size_ - std::min(size_, markerLen_) + data.size() - tail.size();
  std::string marker = "[qabox: " + std::to_string(dropped_) + " bytes of output dropped here; " +
                       name_ + " keeps its last " + std::to_string(keep) + " bytes]\n";
  const std::string tmp = name_ + ".tmp";
  ::unlinkat(dirFd_, tmp.c_str(), 0);  // a stale one or a planted link; ENOENT mostly
  UniqueFd fd(::openat(dirFd_, tmp.c_str(),
                       O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (!fd) return internalError("creating " + tmp + ": " + std::strerror(errno));
  Status s = writeAll(fd.get(), marker);
  if (s.isOk()) s = writeAll(fd.get(), tail);
  if (s.isOk() && ::renameat(dirFd_, tmp.c_str(), dirFd_, name_.c_str()) != 0) {
    s = internalError("renaming " + tmp + ": " + std::strerror(errno));
  }
  if (!s.isOk()) {
    ::unlinkat(dirFd_, tmp.c_str(), 0);
    return s;
  }
  ::fchmod(fd.get(), 0640);  // created so; the umask may have taken bits away
  fd_ = std::move(fd);
  markerLen_ = marker.size();
  size_ = markerLen_ + tail.size();
  return Status::ok();
}

}  // namespace qabox::init
