#include "server/unix_listener.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace qabox {
namespace {

std::string errnoText() { return std::strerror(errno); }

PeerCred peerCred(int fd) {
  PeerCred out;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    out.pid = cred.pid;
    out.uid = cred.uid;
    out.gid = cred.gid;
  } else {
    spdlog::warn("api: SO_PEERCRED of a unix connection: {}; it acts as nobody", errnoText());
    // Nobody: never root, never in a group.
    out.uid = static_cast<uid_t>(-1);
    out.gid = static_cast<gid_t>(-1);
  }
  std::vector<gid_t> groups(64);
  len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  int rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  if (rc != 0 && errno == ERANGE) {
    groups.resize(len / sizeof(gid_t));
    len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  }
  if (rc != 0) {
    // No groups, never the zeroed buffer: a failure must not read as gid 0.
    spdlog::warn("api: SO_PEERGROUPS of a unix connection: {}; it has no groups", errnoText());
    len = 0;
  }
  groups.resize(len / sizeof(gid_t));
  out.groups = std::move(groups);
  return out;
}

}  // namespace

std::optional<gid_t> lookupGroup(const std::string& name) {
  std::vector<char> buf(16384);
  group g{};
  group* found = nullptr;
  if (getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found) {
    return std::nullopt;
  }
  return found->gr_gid;
}

UnixListener::UnixListener(std::string path, LocalPeers& peers)
    : path_(std::move(path)), peers_(peers) {}

UnixListener::~UnixListener() {
  stop();
  if (fd_ >= 0) ::close(fd_);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

Status UnixListener::bind(std::optional<gid_t> group) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof addr.sun_path) {
    return invalidArgument("api.listen unix://" + path_ + ": the path is too long for a socket");
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
  if (ec) spdlog::warn("api.listen unix://{}: making its directory: {}", path_, ec.message());
  std::filesystem::remove(path_, ec);  // a stale socket from an earlier run
  if (ec) spdlog::warn("api.listen unix://{}: removing a stale socket: {}", path_, ec.message());
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return internalError("api.listen unix://" + path_ + ": socket: " + errnoText());
  // The socket file is created 0600 and only then opened up to the group,
  // so there is no moment when others may connect.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (rc != 0) return unavailable("api.listen unix://" + path_ + ": bind: " + errnoText());
  if (group && ::chown(path_.c_str(), 0, *group) != 0) {
    spdlog::warn("api.listen unix://{}: chown to group {}: {}", path_, *group, errnoText());
  }
  if (::chmod(path_.c_str(), 0660) != 0) {
    return internalError("api.listen unix://" + path_ + ": chmod: " + errnoText());
  }
  if (::listen(fd_, 128) != 0) {
    return unavailable("api.listen unix://" + path_ + ": listen: " + errnoText());
  }
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) return internalError("eventfd: " + errnoText());
  return Status::ok();
}

void UnixListener::start(grpc::Server* server) {
  thread_ = std::thread([this, server] { acceptLoop(server); });
}

void UnixListener::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  if (::write(wakeFd_, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) {
    spdlog::error("api unix://{}: waking the accept loop to stop it: {}", path_, errnoText());
  }
  thread_.join();
}

void UnixListener::acceptLoop(grpc::Server* server) {
  while (true) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("api unix://{}: poll: {}", path_, errnoText());
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        spdlog::warn("api unix://{}: accept: {}", path_, errnoText());
        // Out of descriptors, say: do not spin.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    PeerCred cred = peerCred(conn);
    spdlog::debug("api unix://{}: connection from pid {} uid {} gid {}", path_, cred.pid, cred.uid,
                  cred.gid);
    // Recorded before gRPC sees the descriptor: no call on it can come
    // first. A descriptor number is only reused after gRPC closed it, which
    // it does once the connection's last call has finished.
    peers_.add(conn, std::move(cred));
    grpc::AddInsecureChannelFromFd(server, conn);
  }
}

}  // namespace qabox
