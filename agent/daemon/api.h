#pragma once

// The gRPC API as the daemon serves it: unix sockets (plaintext, the
// caller's uid is its identity) and TCP addresses (TLS only), every call
// through the auth interceptor.

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "server/auth.h"
#include "server/unix_listener.h"

namespace qabox {

class Metrics;

class ApiServer {
 public:
  ApiServer() = default;
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds every api.listen address and starts serving `service`. Errors
  // name the key (api.listen, api.tls_cert, ...).
  // `metrics` (may be null) counts every call.
  Status start(const Config::Api& api, grpc::Service& service, Authorizer& auth, Metrics* metrics,
               LocalPeers& peers, std::optional<gid_t> socketGroup);
  // [cluster]: the peer listener on cluster.peer_listen (else
  // advertise_api), mTLS only: a client needs a certificate signed by
  // cluster.ca, and each call is authorized as the caller its host forwards
  // (AuthInterceptorFactory's peer mode), with the API's message limit.
  Status startPeers(const Config::Cluster& cluster, uint32_t maxMessageBytes,
                    grpc::Service& service, Authorizer& auth, Metrics* metrics);
  // Stops accepting on the unix sockets.
  void stopListening();
  // Lets calls in flight finish, for up to `grace`, then stops.
  void shutdown(std::chrono::milliseconds grace);

 private:
  std::vector<std::unique_ptr<UnixListener>> unixListeners_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> peers_;
};

}  // namespace qabox
