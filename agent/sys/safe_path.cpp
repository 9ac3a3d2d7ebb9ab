#include "sys/safe_path.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "sys/atomic_file.h"

namespace qabox {
namespace {

constexpr uint64_t kResolve =
    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV;

std::string trimLeading(std::string_view p) {
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  return std::string(p);
}

std::vector<std::string> components(std::string_view p) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view c = p.substr(i, j - i);
    if (!c.empty() && c != ".") out.emplace_back(c);
    i = j + 1;
  }
  return out;
}

const char* typeName(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symlink";
  return "not a regular file";
}

Status openError(int err, const std::string& shownAs) {
  switch (err) {
    case ENOENT: return notFound(shownAs + ": no such file");
    case ELOOP:
      return failedPrecondition(shownAs +
                                ": a symlink is in the way (the agent follows no links inside "
                                "a container's files)");
    case EXDEV:
      return failedPrecondition(shownAs +
                                ": the path leaves the container's files (a '..' above its root "
                                "or a mount point)");
    case ENOTDIR: return failedPrecondition(shownAs + ": a part of the path is not a directory");
    case ENXIO: return failedPrecondition(shownAs + ": not a regular file (a socket or a device)");
    case ENOSPC:
    case EDQUOT:
      return resourceExhausted(shownAs + ": the disk is full (" + std::strerror(err) + ")");
    default: return internalError(shownAs + ": " + std::strerror(err));
  }
}

long openat2Call(int dirfd, const char* path, open_how* how) {
  return ::syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

}  // namespace

Result<UniqueFd> openRootDir(const std::string& root) {
  int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return openError(errno, root);
  return UniqueFd(fd);
}

Result<UniqueFd> openBeneath(int rootFd, std::string_view relative, int flags,
                             const std::string& shownAs, mode_t mode) {
  std::string rel = trimLeading(relative);
  if (rel.empty()) rel = ".";
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = kResolve;
  for (int attempt = 0;; ++attempt) {
    long fd = openat2Call(rootFd, rel.c_str(), &how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    // EAGAIN: a rename raced the lookup; bounded retries.
    if ((errno == EAGAIN || errno == EINTR) && attempt < 16) continue;
    int err = errno;
    // O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR: name the link.
    struct stat st {};
    if (err == ENOTDIR && ::fstatat(rootFd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)) {
      err = ELOOP;
    }
    return openError(err, shownAs);
  }
}

Result<UniqueFd> openRegularFileBeneath(const std::string& root, std::string_view relative) {
  const std::string shownAs = root + "/" + trimLeading(relative);
  QABOX_ASSIGN_OR_RETURN(UniqueFd dir, openRootDir(root));
  // O_PATH first: nothing is opened for real before we know what it is.
  QABOX_ASSIGN_OR_RETURN(UniqueFd path, openBeneath(dir.get(), relative, O_PATH, shownAs));
  struct stat st {};
  if (::fstat(path.get(), &st) != 0) return openError(errno, shownAs);
  if (!S_ISREG(st.st_mode)) {
    return failedPrecondition(shownAs + ": " + typeName(st.st_mode) +
                              ", not a regular file; the agent reads only regular files there");
  }
  // Reopen that very inode, not the name, which may have changed since.
  std::string self = "/proc/self/fd/" + std::to_string(path.get());
  int fd = ::open(self.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return openError(errno, shownAs);
  UniqueFd file(fd);
  struct stat again {};
  if (::fstat(file.get(), &again) != 0) return openError(errno, shownAs);
  if (!S_ISREG(again.st_mode) || again.st_ino != st.st_ino || again.st_dev != st.st_dev) {
    return failedPrecondition(shownAs + ": changed while being opened");
  }
  return file;
}

Result<std::string> readFileBeneath(const std::string& root, std::string_view relative,
                                    off_t& offset, size_t max) {
  QABOX_ASSIGN_OR_RETURN(UniqueFd file, openRegularFileBeneath(root, relative));
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) return internalError(std::strerror(errno));
  if (st.st_size < offset) offset = 0;  // truncated: start over
  size_t want = static_cast<size_t>(std::min<off_t>(st.st_size - offset, static_cast<off_t>(max)));
  std::string buf(want, '\0');
  size_t done = 0;
  while (done < want) {
    ssize_t n =
        ::pread(file.get(), buf.data() + done, want - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return internalError(root + "/" + trimLeading(relative) + ": " + strerror(errno));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  buf.resize(done);
  offset += static_cast<off_t>(done);
  return buf;
}

Result<UniqueFd> makeDirsBeneath(const std::string& root, std::string_view relative, mode_t mode) {
  QABOX_ASSIGN_OR_RETURN(UniqueFd cur, openRootDir(root));
  std::string shown = root;
  for (const auto& c : components(relative)) {
    shown += "/" + c;
    if (c == "..") return failedPrecondition(shown + ": '..' is not allowed here");
    bool made = ::mkdirat(cur.get(), c.c_str(), mode) == 0;
    if (!made && errno != EEXIST) return openError(errno, shown);
    QABOX_ASSIGN_OR_RETURN(UniqueFd next, openBeneath(cur.get(), c, O_RDONLY | O_DIRECTORY, shown));
    // mkdirat's mode went through the umask.
    if (made && ::fchmod(next.get(), mode) != 0) return openError(errno, shown);
    cur = std::move(next);
  }
  return cur;
}

Status writeFileBeneath(const std::string& root, std::string_view relative,
                        std::string_view content, mode_t mode) {
  std::string rel = trimLeading(relative);
  size_t slash = rel.rfind('/');
  std::string parent = slash == std::string::npos ? "" : rel.substr(0, slash);
  std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return invalidArgument(root + "/" + rel + ": not a file name");
  }
  QABOX_ASSIGN_OR_RETURN(UniqueFd dir, makeDirsBeneath(root, parent, 0755));
  return writeFileAtomicallyAt(dir.get(), name, content, mode, root + "/" + rel);
}

Status setDirXattrBeneath(const std::string& root, std::string_view relative,
                          const std::string& name, std::string_view value) {
  const std::string shown = root + "/" + trimLeading(relative);
  QABOX_ASSIGN_OR_RETURN(UniqueFd dir, openRootDir(root));
  QABOX_ASSIGN_OR_RETURN(UniqueFd d,
                         openBeneath(dir.get(), relative, O_RDONLY | O_DIRECTORY, shown));
  if (::fsetxattr(d.get(), name.c_str(), value.data(), value.size(), 0) != 0) {
    return internalError("setting " + name + " on " + shown + ": " + std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace qabox
