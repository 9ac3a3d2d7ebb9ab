#include "cli/client.h"

#include <fstream>
#include <sstream>

#include "cli/exit_code.h"

namespace qabox::cli {

namespace {

Result<std::string> readFile(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalidArgument(what + " " + path + ": cannot be read");
  std::ostringstream pem;
  pem << in.rdbuf();
  return pem.str();
}

}  // namespace

Result<std::unique_ptr<Client>> Client::create(Connection connection) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (connection.tls) {
    grpc::SslCredentialsOptions options;
    if (!connection.caCert.empty()) {
      QABOX_ASSIGN_OR_RETURN(options.pem_root_certs, readFile("CA certificate", connection.caCert));
    }
    if (!connection.cert.empty()) {
      QABOX_ASSIGN_OR_RETURN(options.pem_cert_chain,
                             readFile("client certificate", connection.cert));
      QABOX_ASSIGN_OR_RETURN(options.pem_private_key, readFile("client key", connection.key));
    }
    creds = grpc::SslCredentials(options);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  // Log chunks and long environment lists can exceed the 4 MiB default.
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(connection.target, creds, args);
  return std::unique_ptr<Client>(new Client(std::move(connection), std::move(channel)));
}

Client::Client(Connection connection, std::shared_ptr<grpc::Channel> channel)
    : connection_(std::move(connection)),
      channel_(std::move(channel)),
      stub_(v1::Qabox::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> Client::context(
    std::optional<std::chrono::milliseconds> deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  // An agent that is down should be reported now, not waited for.
  ctx->set_wait_for_ready(false);
  if (deadline) ctx->set_deadline(std::chrono::system_clock::now() + *deadline);
  if (!connection_.token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + connection_.token);
  }
  return ctx;
}

int Client::report(const grpc::Status& status, std::ostream& err) const {
  std::string message = status.error_message();
  if (message.empty()) message = std::string(statusCodeName(status.error_code()));
  bool reached = channel_->GetState(false) == GRPC_CHANNEL_READY;
  bool connectFailure = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  if (connectFailure && !reached) {
    err << "qabox: cannot reach the agent at " << connection_.endpoint << " ("
        << connection_.endpointSource << "): " << message << "\n";
  } else {
    err << "qabox: " << message << "\n";
    if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && connection_.token.empty()) {
      err << "qabox: no token was given: set --token, QABOX_TOKEN or token in the config file\n";
    }
  }
  return exitCodeFor(status.error_code());
}

}  // namespace qabox::cli
