#include "server/peers.h"

#include "sys/pem.h"

namespace qabox {

Result<std::unique_ptr<PeerClients>> PeerClients::make(const Config::Cluster& cluster,
                                                       std::string self) {
  grpc::SslCredentialsOptions ssl;
  QABOX_ASSIGN_OR_RETURN(ssl.pem_root_certs, readPem("cluster.ca", cluster.ca));
  QABOX_ASSIGN_OR_RETURN(ssl.pem_cert_chain, readPem("cluster.cert", cluster.cert));
  QABOX_ASSIGN_OR_RETURN(ssl.pem_private_key, readPem("cluster.key", cluster.key));
  return std::unique_ptr<PeerClients>(new PeerClients(grpc::SslCredentials(ssl), std::move(self)));
}

std::shared_ptr<v1::Qabox::Stub> PeerClients::stub(const std::string& name,
                                                   const std::string& address) {
  std::lock_guard lock(mu_);
  Peer& p = peers_[name];
  if (p.stub && p.address == address) return p.stub;
  grpc::ChannelArguments args;
  // The certificate must name the host dialled, whatever its address.
  args.SetSslTargetNameOverride(name);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // No transparent retries (gRPC 1.51's retry filter can abort the process
  // on a peer shutting down mid-call: grpc/grpc#34683); a deploy must never
  // be sent twice anyway.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 * 1024 * 1024);
  p.address = address;
  p.stub = v1::Qabox::NewStub(grpc::CreateCustomChannel(address, creds_, args));
  return p.stub;
}

void PeerClients::addCaller(grpc::ClientContext& ctx, const Caller& caller) const {
  ctx.AddMetadata(std::string(kPeerVia), self_);
  ctx.AddMetadata(std::string(kPeerCaller), caller.name);
  ctx.AddMetadata(std::string(kPeerRole), std::string(roleName(caller.role)));
}

std::unique_ptr<grpc::ClientContext> PeerClients::context(const grpc::ServerContextBase& from,
                                                          const Caller& caller) const {
  auto ctx = grpc::ClientContext::FromServerContext(from);
  addCaller(*ctx, caller);
  return ctx;
}

std::unique_ptr<grpc::ClientContext> PeerClients::context(
    const Caller& caller, std::chrono::milliseconds deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  addCaller(*ctx, caller);
  return ctx;
}

}  // namespace qabox
