#pragma once

// Calls to the other hosts of a cluster, on their peer listeners: mTLS with
// this host's certificate, the peer's checked against cluster.ca and its
// [cluster] name (peers are dialled by address, their certificates name
// them). A forwarded call carries who asked (kPeerCaller, kPeerRole) and
// from where (kPeerVia); the owner answers it itself, never forwarding it
// again.

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/config.h"
#include "core/status.h"
#include "qabox/v1/qabox.grpc.pb.h"
#include "server/auth.h"

namespace qabox {

class PeerClients {
 public:
  // Reads cluster.ca, cluster.cert and cluster.key.
  static Result<std::unique_ptr<PeerClients>> make(const Config::Cluster& cluster,
                                                   std::string self);

  // The stub for host `name` reached at `address` (host:port); one channel
  // per host, dialled again when its address changes.
  std::shared_ptr<v1::Qabox::Stub> stub(const std::string& name, const std::string& address);

  // The context of a call forwarded for `caller`: the server call's deadline
  // and cancellation, and who asked.
  std::unique_ptr<grpc::ClientContext> context(const grpc::ServerContextBase& from,
                                               const Caller& caller) const;
  // A call of this host's own (a cluster-wide list): `deadline` from now.
  std::unique_ptr<grpc::ClientContext> context(const Caller& caller,
                                               std::chrono::milliseconds deadline) const;

  const std::string& self() const { return self_; }

 private:
  PeerClients(std::shared_ptr<grpc::ChannelCredentials> creds, std::string self)
      : creds_(std::move(creds)), self_(std::move(self)) {}
  void addCaller(grpc::ClientContext& ctx, const Caller& caller) const;

  struct Peer {
    std::string address;
    std::shared_ptr<v1::Qabox::Stub> stub;
  };
  const std::shared_ptr<grpc::ChannelCredentials> creds_;
  const std::string self_;
  std::mutex mu_;
  std::map<std::string, Peer> peers_;
};

}  // namespace qabox
