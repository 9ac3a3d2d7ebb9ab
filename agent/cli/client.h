#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "cli/endpoint.h"
#include "core/status.h"
#include "qabox/v1/qabox.grpc.pb.h"

namespace qabox::cli {

// Unary calls answer quickly or something is wrong; streams set their own.
inline constexpr std::chrono::seconds kUnaryDeadline{30};

// One channel to the agent, and the rules every call follows: the bearer
// token, a deadline, and failing fast instead of waiting for a server that
// is not there.
class Client {
 public:
  // Creates the channel (no connection is made yet). Fails when the CA
  // certificate cannot be read.
  static Result<std::unique_ptr<Client>> create(Connection connection);

  // A context for one call; no deadline when `deadline` is nullopt.
  std::unique_ptr<grpc::ClientContext> context(
      std::optional<std::chrono::milliseconds> deadline = kUnaryDeadline) const;

  v1::Qabox::Stub& stub() { return *stub_; }
  const Connection& connection() const { return connection_; }

  // "qabox: <message>" on `err`, with the endpoint and how it was chosen
  // when the agent was never reached. Returns the exit code.
  int report(const grpc::Status& status, std::ostream& err) const;

 private:
  Client(Connection connection, std::shared_ptr<grpc::Channel> channel);

  Connection connection_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Qabox::Stub> stub_;
};

}  // namespace qabox::cli
