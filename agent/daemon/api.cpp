#include "daemon/api.h"

#include <fmt/ranges.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "server/metrics_interceptor.h"
#include "sys/pem.h"

namespace qabox {

namespace {

// TCP listeners serve TLS only; with client_ca, clients need a certificate
// signed by it (and still a token: the certificate says which machine, the
// token which role).
Result<std::shared_ptr<grpc::ServerCredentials>> tlsCredentials(const Config::Api& api) {
  QABOX_ASSIGN_OR_RETURN(std::string cert, readPem("api.tls_cert", api.tlsCert));
  QABOX_ASSIGN_OR_RETURN(std::string key, readPem("api.tls_key", api.tlsKey));
  grpc::SslServerCredentialsOptions options(
      api.clientCa.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                           : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_key_cert_pairs.push_back({key, cert});
  if (!api.clientCa.empty()) {
    QABOX_ASSIGN_OR_RETURN(options.pem_root_certs, readPem("api.client_ca", api.clientCa));
  }
  return grpc::SslServerCredentials(options);
}

// Who may call, then (when metrics are on) the count of every call.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors(
    Authorizer& auth, bool peers, Metrics* metrics) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<AuthInterceptorFactory>(auth, peers));
  if (metrics) out.push_back(std::make_unique<MetricsInterceptorFactory>(*metrics));
  return out;
}

}  // namespace

Status ApiServer::start(const Config::Api& api, grpc::Service& service, Authorizer& auth,
                        Metrics* metrics, LocalPeers& peers, std::optional<gid_t> socketGroup) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(api.maxMessageBytes));
  std::shared_ptr<grpc::ServerCredentials> tls;
  for (const auto& l : api.listen) {
    if (l.rfind("unix://", 0) == 0) {
      auto listener = std::make_unique<UnixListener>(l.substr(7), peers);
      QABOX_RETURN_IF_ERROR(listener->bind(socketGroup));
      unixListeners_.push_back(std::move(listener));
      continue;
    }
    if (!tls) {
      QABOX_ASSIGN_OR_RETURN(tls, tlsCredentials(api));
    }
    builder.AddListeningPort(l, tls);
  }
  builder.experimental().SetInterceptorCreators(interceptors(auth, false, metrics));
  builder.RegisterService(&service);
  server_ = builder.BuildAndStart();
  if (!server_)
    return failedPrecondition("api.listen: cannot listen on every address given (in use?)");
  for (auto& l : unixListeners_) l->start(server_.get());
  spdlog::info("API listening on {}{}", fmt::join(api.listen, ", "),
               api.clientCa.empty() ? "" : " (TCP: client certificates required)");
  return Status::ok();
}

Status ApiServer::startPeers(const Config::Cluster& cluster, uint32_t maxMessageBytes,
                             grpc::Service& service, Authorizer& auth, Metrics* metrics) {
  const std::string& listen =
      cluster.peerListen.empty() ? cluster.advertiseApi : cluster.peerListen;
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  std::string cert, key;
  QABOX_ASSIGN_OR_RETURN(cert, readPem("cluster.cert", cluster.cert));
  QABOX_ASSIGN_OR_RETURN(key, readPem("cluster.key", cluster.key));
  QABOX_ASSIGN_OR_RETURN(options.pem_root_certs, readPem("cluster.ca", cluster.ca));
  options.pem_key_cert_pairs.push_back({key, cert});
  grpc::ServerBuilder builder;
  // What the API takes, forwarded: the same limit.
  builder.SetMaxReceiveMessageSize(static_cast<int>(maxMessageBytes));
  builder.AddListeningPort(listen, grpc::SslServerCredentials(options));
  builder.experimental().SetInterceptorCreators(interceptors(auth, true, metrics));
  builder.RegisterService(&service);
  peers_ = builder.BuildAndStart();
  if (!peers_) {
    return failedPrecondition("cluster.peer_listen " + listen + ": cannot listen there (in use?)");
  }
  spdlog::info("peer API listening on {} (mTLS, certificates of cluster.ca only)", listen);
  return Status::ok();
}

void ApiServer::stopListening() {
  for (auto& l : unixListeners_) l->stop();
}

void ApiServer::shutdown(std::chrono::milliseconds grace) {
  const auto deadline = std::chrono::system_clock::now() + grace;
  // Both at once: a call forwarded here from a peer finishes as a local one.
  for (auto* s : {server_.get(), peers_.get()}) {
    if (s) s->Shutdown(deadline);
  }
  for (auto* s : {server_.get(), peers_.get()}) {
    if (s) s->Wait();
  }
}

}  // namespace qabox
