#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>

#include "cluster/cluster.h"
#include "core/clock.h"
#include "lifecycle/audit.h"
#include "lifecycle/manager.h"
#include "qabox/v1/qabox.grpc.pb.h"
#include "server/auth.h"
#include "server/peers.h"
#include "server/sessions.h"

namespace qabox {

class Metrics;
class Reaper;

// Facts about the host that GetHostStatus reports beside the store's.
struct HostInfo {
  std::chrono::steady_clock::time_point startedAt = std::chrono::steady_clock::now();
  std::function<uint64_t()> requestsRouted;  // from the router, when it runs
};

grpc::Status toGrpc(const Status& s);
void toProto(const Environment& e, const Config& config, v1::Environment* out);

// The v1 API over the environment manager: transport only. Every handler
// first asks for the caller the auth interceptor let through, then checks
// its input (server/validate.h), turns the request into the lifecycle's
// terms, calls it, and maps its answer back to proto, with the lifecycle's
// status code (toGrpc) and a message a person can act on. What is done,
// and what the audit log says about it, is the lifecycle's (agent/lifecycle/);
// tokens are server/auth's.
class QaboxService final : public v1::Qabox::Service {
 public:
  QaboxService(const Config& config, EnvironmentManager& envs, ImageBuilder& images, Store& store,
               Authorizer& auth, HostInfo host, const TimeSource& time = systemTime());

  grpc::Status Deploy(grpc::ServerContext* ctx, const v1::DeployRequest* req,
                      grpc::ServerWriter<v1::DeployEvent>* writer) override;
  grpc::Status RedeployEnvironment(grpc::ServerContext* ctx,
                                   const v1::RedeployEnvironmentRequest* req,
                                   grpc::ServerWriter<v1::DeployEvent>* writer) override;
  grpc::Status GetEnvironment(grpc::ServerContext* ctx, const v1::GetEnvironmentRequest* req,
                              v1::Environment* resp) override;
  grpc::Status ListEnvironments(grpc::ServerContext* ctx, const v1::ListEnvironmentsRequest* req,
                                v1::ListEnvironmentsResponse* resp) override;
  grpc::Status DeleteEnvironment(grpc::ServerContext* ctx, const v1::DeleteEnvironmentRequest* req,
                                 v1::DeleteEnvironmentResponse* resp) override;
  grpc::Status StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                          grpc::ServerWriter<v1::LogChunk>* writer) override;
  grpc::Status Exec(grpc::ServerContext* ctx, const v1::ExecRequest* req,
                    grpc::ServerWriter<v1::ExecOutput>* writer) override;
  grpc::Status Reap(grpc::ServerContext* ctx, const v1::ReapRequest* req,
                    v1::ReapResponse* resp) override;
  grpc::Status SetPinned(grpc::ServerContext* ctx, const v1::SetPinnedRequest* req,
                         v1::Environment* resp) override;
  grpc::Status SleepEnvironment(grpc::ServerContext* ctx, const v1::SleepEnvironmentRequest* req,
                                v1::Environment* resp) override;
  grpc::Status WakeEnvironment(grpc::ServerContext* ctx, const v1::WakeEnvironmentRequest* req,
                               v1::Environment* resp) override;
  grpc::Status ListImages(grpc::ServerContext* ctx, const v1::ListImagesRequest* req,
                          v1::ListImagesResponse* resp) override;
  grpc::Status BuildImage(grpc::ServerContext* ctx, const v1::BuildImageRequest* req,
                          v1::Image* resp) override;
  grpc::Status DeleteImage(grpc::ServerContext* ctx, const v1::DeleteImageRequest* req,
                           v1::DeleteImageResponse* resp) override;
  grpc::Status GetHostStatus(grpc::ServerContext* ctx, const v1::GetHostStatusRequest* req,
                             v1::HostStatus* resp) override;
  grpc::Status ListEvents(grpc::ServerContext* ctx, const v1::ListEventsRequest* req,
                          v1::ListEventsResponse* resp) override;
  grpc::Status CreateToken(grpc::ServerContext* ctx, const v1::CreateTokenRequest* req,
                           v1::CreateTokenResponse* resp) override;
  grpc::Status ListTokens(grpc::ServerContext* ctx, const v1::ListTokensRequest* req,
                          v1::ListTokensResponse* resp) override;
  grpc::Status RevokeToken(grpc::ServerContext* ctx, const v1::RevokeTokenRequest* req,
                           v1::RevokeTokenResponse* resp) override;
  grpc::Status CheckInvariants(grpc::ServerContext* ctx, const v1::CheckInvariantsRequest* req,
                               v1::CheckInvariantsResponse* resp) override;
  grpc::Status ListHosts(grpc::ServerContext* ctx, const v1::ListHostsRequest* req,
                         v1::ListHostsResponse* resp) override;
  grpc::Status DrainHost(grpc::ServerContext* ctx, const v1::DrainHostRequest* req,
                         v1::Host* resp) override;

  void setReaper(Reaper* reaper) { reaper_ = reaper; }
  // Image builds are counted there; may be null.
  void setMetrics(Metrics* metrics) { metrics_ = metrics; }
  // Told of every token made or revoked, so sessions signed with a revoked
  // token end at once.
  void setTokenDirectory(TokenDirectory* tokens) { tokens_ = tokens; }
  // The cluster this host is a member of ([cluster] etcd); null: a host of
  // its own.
  // With `peers`, a call about a ticket another host owns is forwarded
  // there (its stream too); without, it is refused naming the owner.
  void setCluster(cluster::Cluster* cluster, PeerClients* peers = nullptr) {
    cluster_ = cluster;
    peers_ = peers;
  }

 private:
  // The caller of this call, or the status to end it with.
  Result<Caller> authorized(grpc::ServerContext* ctx) const;
  void reloadTokens();
  // A deploy's progress streamed to `writer`, then its last event.
  grpc::Status streamDeploy(grpc::ServerWriter<v1::DeployEvent>* writer,
                            const std::function<Result<Environment>(const ProgressFn&)>& run);
  // An environment of this host, as the API shows it (its host named in a
  // cluster).
  void describe(const Environment& e, v1::Environment* out) const;
  // The end of a handler that answers with one environment.
  grpc::Status answer(const Result<Environment>& e, v1::Environment* resp) const;

  // In a cluster: the host that owns `ticket` when it is another one and
  // this call may go there (not one a peer forwarded). Nullopt: answer it
  // here. An error when the owner is down (the ticket is LOST).
  struct Remote {
    std::string host;
    std::shared_ptr<v1::Qabox::Stub> stub;
  };
  Result<std::optional<Remote>> remoteOwner(const Caller& caller, const std::string& ticket) const;
  Result<Remote> remoteHost(const std::string& host) const;
  // The map's entry for `ticket` when its owner is another host that is
  // down (the ticket is LOST), for a call made here (not forwarded).
  std::optional<cluster::Owner> lostOwner(const Caller& caller, const std::string& ticket) const;
  // A LOST ticket as the API shows it: from the map, with the reason.
  void describeLost(const cluster::Owner& o, v1::Environment* out) const;
  template <typename Req, typename Resp>
  grpc::Status forward(grpc::ServerContext* ctx, const Caller& caller, const Remote& to,
                       grpc::Status (v1::Qabox::Stub::*rpc)(grpc::ClientContext*, const Req&,
                                                            Resp*),
                       const Req& req, Resp* resp) const;
  template <typename Req, typename Message>
  grpc::Status forward(grpc::ServerContext* ctx, const Caller& caller, const Remote& to,
                       std::unique_ptr<grpc::ClientReader<Message>> (v1::Qabox::Stub::*rpc)(
                           grpc::ClientContext*, const Req&),
                       const Req& req, grpc::ServerWriter<Message>* writer) const;
  // Every other live host's environments, asked in parallel, and the LOST
  // tickets of hosts that are down, added to `resp`.
  void listElsewhere(const Caller& caller, v1::ListEnvironmentsResponse* resp) const;

  const Config& config_;
  EnvironmentManager& envs_;
  ImageBuilder& images_;
  Store& store_;
  Authorizer& auth_;
  HostInfo host_;
  const TimeSource& time_;
  AuditLog audit_;
  Reaper* reaper_ = nullptr;
  Metrics* metrics_ = nullptr;
  TokenDirectory* tokens_ = nullptr;
  cluster::Cluster* cluster_ = nullptr;
  PeerClients* peers_ = nullptr;
};

}  // namespace qabox
