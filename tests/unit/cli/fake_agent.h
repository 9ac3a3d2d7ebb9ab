#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "qabox/v1/qabox.grpc.pb.h"

namespace qabox::cli::fake {

// An in-process agent with canned answers on a unix socket in a temporary
// directory. Tickets pick the behaviour:
//   EXMP-113 (READY) and EXMP-7 (FAILED) exist; any other ticket is NOT_FOUND
//   DENIED-1, BAD-1, FULL-1, TAKEN-1, CONFLICT-1, BUSY-1, DOWN-1: the
//     matching gRPC error from every per-ticket call
//   BROKEN-1: deploy ends with the environment FAILED
//   SLOW-1: deploy sends one phase, then takes 5s unless cancelled
// It records what reached it so tests can check requests and metadata.
class FakeAgent : public v1::Qabox::Service {
 public:
  FakeAgent();
  ~FakeAgent() override;

  std::string endpoint() const { return "unix://" + socketPath_; }
  // Every call fails with UNAUTHENTICATED unless it carries this token.
  void requireToken(std::string token);

  struct Seen {
    std::vector<std::string> methods;
    std::vector<std::string> authorizations;
    v1::DeployRequest deploy;
    v1::StreamLogsRequest logs;
    v1::ExecRequest exec;
    v1::ReapRequest reap;
    v1::SetPinnedRequest pinned;
    v1::DeleteImageRequest deleteImage;
    v1::ListEventsRequest events;
    v1::CreateTokenRequest createToken;
    bool deployCancelled = false;
  };
  Seen seen();

  grpc::Status Deploy(grpc::ServerContext* ctx, const v1::DeployRequest* req,
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

 private:
  // Records the call and checks the token.
  grpc::Status enter(grpc::ServerContext* ctx, const std::string& method);
  // The canned error or environment for a ticket.
  grpc::Status lookup(const std::string& ticket, v1::Environment* env);

  std::mutex mu_;
  Seen seen_;
  std::string requiredToken_;
  std::map<std::string, v1::Environment> envs_;
  std::string dir_;
  std::string socketPath_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace qabox::cli::fake
