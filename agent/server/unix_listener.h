#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "core/status.h"
#include "server/auth.h"

namespace qabox {

// The API's unix socket. gRPC does not tell a handler who is on the other end
// of a unix socket (its auth context is empty there, and local credentials do
// not check peers), so the daemon listens and accepts itself, reads the
// peer's credentials with SO_PEERCRED and SO_PEERGROUPS, records them in
// LocalPeers under the descriptor, and hands the connection to the server
// with AddInsecureChannelFromFd. gRPC then names the call's peer "fd:<n>".
class UnixListener {
 public:
  UnixListener(std::string path, LocalPeers& peers);
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // Binds the socket (replacing a stale one) with mode 0660, owned by root
  // and `group` when given, and listens.
  Status bind(std::optional<gid_t> group);
  // Accepts connections into `server` (already started) until stop().
  void start(grpc::Server* server);
  void stop();

  const std::string& path() const { return path_; }

 private:
  void acceptLoop(grpc::Server* server);

  std::string path_;
  LocalPeers& peers_;
  int fd_ = -1;
  int wakeFd_ = -1;  // an eventfd that tells the accept loop to return
  std::thread thread_;
};

// The gid of a group by name; nullopt when there is no such group.
std::optional<gid_t> lookupGroup(const std::string& name);

}  // namespace qabox
