#include "sys/traverse.h"

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace qabox {

Result<std::optional<std::string>> firstUnsearchableDir(const std::string& path, uid_t uid,
                                                        gid_t gid) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec).lexically_normal();
  if (ec) return internalError(path + ": " + ec.message());
  std::vector<std::string> dirs;
  std::filesystem::path cur;
  for (const auto& part : abs) {
    cur /= part;
    struct stat st {};
    if (::stat(cur.c_str(), &st) != 0) break;
    if (S_ISDIR(st.st_mode)) dirs.push_back(cur.string());
  }
  if (dirs.size() > 200) return invalidArgument(path + ": too deep");
  // Only async-signal-safe calls in the child: the agent may have threads.
  pid_t pid = ::fork();
  if (pid < 0) return internalError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      ::_exit(255);
    }
    for (size_t i = 0; i < dirs.size(); ++i) {
      if (::access(dirs[i].c_str(), X_OK) != 0) ::_exit(static_cast<int>(i + 1));
    }
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return internalError(std::string("waitpid: ") + std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) {
    return internalError("checking access to " + path + " as uid " + std::to_string(uid) +
                         " failed");
  }
  int code = WEXITSTATUS(status);
  if (code == 0) return std::optional<std::string>();
  return std::optional<std::string>(dirs[static_cast<size_t>(code - 1)]);
}

}  // namespace qabox
