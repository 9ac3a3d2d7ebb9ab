#include "init/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace qabox::init {
namespace {

Status errnoStatus(const std::string& what, int err) {
  return internalError(what + ": " + std::strerror(err));
}

}  // namespace

Result<std::string> readBounded(const std::string& path, size_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    if (errno == ENOENT) return notFound(path + ": missing");
    return errnoStatus(path, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errnoStatus(path, errno);
  if (!S_ISREG(st.st_mode)) return invalidArgument(path + ": not a regular file");
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoStatus(path, errno);
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > max) {
      return resourceExhausted(path + ": larger than " + std::to_string(max) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

Result<UniqueFd> openDir(const std::string& path) {
  for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1)) {
    ::mkdir(path.substr(0, at).c_str(), 0755);  // exists mostly; the open below says if not
  }
  ::mkdir(path.c_str(), 0755);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errnoStatus("opening " + path, errno);
  return fd;
}

Status writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoStatus("writing", errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

Status replaceFile(int dirFd, const std::string& name, std::string_view content, int mode) {
  const std::string tmp = name + ".tmp";
  ::unlinkat(dirFd, tmp.c_str(), 0);  // a stale one (or a planted link): ENOENT mostly
  UniqueFd fd(
      ::openat(dirFd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return errnoStatus("creating " + tmp, errno);
  ::fchmod(fd.get(), static_cast<mode_t>(mode));  // whatever the umask
  Status s = writeAll(fd.get(), content);
  if (s.isOk() && ::renameat(dirFd, tmp.c_str(), dirFd, name.c_str()) != 0) {
    s = errnoStatus("renaming " + tmp, errno);
  }
  if (!s.isOk()) ::unlinkat(dirFd, tmp.c_str(), 0);
  return s;
}

}  // namespace qabox::init
