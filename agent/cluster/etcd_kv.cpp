// The Kv of etcd's v3 gRPC API: one channel per endpoint, each call with a
// deadline, and a call that finds its endpoint unreachable tried on the
// next one, so losing one member of three changes nothing.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <mutex>
#include <set>

#include "cluster/kv.h"
#include "core/endpoint.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "sys/pem.h"

namespace qabox::cluster {
namespace {

namespace pb = etcdserverpb;

bool isLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// One connection to one member: a channel and its stubs.
struct Conn {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
};

// A member, and the connection to it now. gRPC's channel reconnects by
// itself, but one whose first attempts met a member still starting (its
// port open, its TLS not yet served) can stay down for tens of seconds
// after the member is ready; so a connection that answers UNAVAILABLE is
// replaced by a new one, at most once a second.
class Endpoint {
 public:
  Endpoint(std::string text, std::string target, std::shared_ptr<grpc::ChannelCredentials> creds)
      : text(std::move(text)), target_(std::move(target)), creds_(std::move(creds)) {
    conn_ = dial();
  }
  std::shared_ptr<Conn> connection() {
    std::lock_guard lock(mu_);
    return conn_;
  }
  void failed(const std::shared_ptr<Conn>& conn) {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (conn_ != conn || now - dialedAt_ < std::chrono::seconds(1)) return;
    conn_ = dial();
    dialedAt_ = now;
  }
  const std::string text;

 private:
  std::shared_ptr<Conn> dial() const;
  const std::string target_;
  const std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::mutex mu_;
  std::shared_ptr<Conn> conn_;
  std::chrono::steady_clock::time_point dialedAt_ = std::chrono::steady_clock::now();
};

std::shared_ptr<Conn> Endpoint::dial() const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 16 * 1024 * 1024);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Its own subchannels: a new connection never shares the old one's.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // No transparent retries: failover is ours (call()), and gRPC's retry
  // filter aborts the process on trailers without a status, which a member
  // shutting down can send (grpc/grpc#34683, present in Debian's 1.51).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // A member that died without closing its connections is noticed within
  // ~10 s even by a watch that only reads (etcd refuses pings under 5 s).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  auto c = std::make_shared<Conn>();
  c->channel = grpc::CreateCustomChannel(target_, creds_, args);
  c->kv = pb::KV::NewStub(c->channel);
  c->lease = pb::Lease::NewStub(c->channel);
  c->watch = pb::Watch::NewStub(c->channel);
  return c;
}

Status fromGrpc(const grpc::Status& s, const std::string& endpoint) {
  std::string m = "etcd at " + endpoint + ": " + s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::NOT_FOUND: return notFound(m);
    case grpc::StatusCode::CANCELLED: return {Code::kCancelled, m};
    case grpc::StatusCode::INVALID_ARGUMENT: return invalidArgument(m);
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE: return failedPrecondition(m);
    default: return unavailable(m);
  }
}

bool retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

KeyValue fromPb(const mvccpb::KeyValue& kv) {
  return {kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.lease()};
}

class EtcdKv final : public Kv {
 public:
  EtcdKv(std::vector<std::unique_ptr<Endpoint>> endpoints, std::chrono::milliseconds timeout)
      : endpoints_(std::move(endpoints)), timeout_(timeout) {}

  Result<RangeResult> range(const std::string& prefix, int64_t limit) override {
    pb::RangeRequest req;
    req.set_key(prefix);
    req.set_range_end(prefixEnd(prefix));
    req.set_limit(limit);
    pb::RangeResponse resp;
    QABOX_RETURN_IF_ERROR(
        call([&](Conn& e, grpc::ClientContext* c) { return e.kv->Range(c, req, &resp); }));
    RangeResult out;
    out.revision = resp.header().revision();
    for (const auto& kv : resp.kvs()) out.kvs.push_back(fromPb(kv));
    return out;
  }

  Result<std::optional<KeyValue>> get(const std::string& key) override {
    pb::RangeRequest req;
    req.set_key(key);
    pb::RangeResponse resp;
    QABOX_RETURN_IF_ERROR(
        call([&](Conn& e, grpc::ClientContext* c) { return e.kv->Range(c, req, &resp); }));
    if (resp.kvs_size() == 0) return std::optional<KeyValue>();
    return std::optional<KeyValue>(fromPb(resp.kvs(0)));
  }

  Status put(const std::string& key, const std::string& value, int64_t lease) override {
    pb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    req.set_lease(lease);
    pb::PutResponse resp;
    return call([&](Conn& e, grpc::ClientContext* c) { return e.kv->Put(c, req, &resp); });
  }

  Status remove(const std::string& key) override {
    pb::DeleteRangeRequest req;
    req.set_key(key);
    pb::DeleteRangeResponse resp;
    return call([&](Conn& e, grpc::ClientContext* c) { return e.kv->DeleteRange(c, req, &resp); });
  }

  Result<std::optional<KeyValue>> createIfAbsent(const std::string& key,
                                                 const std::string& value) override {
    pb::TxnRequest txn;
    auto* cmp = txn.add_compare();
    cmp->set_key(key);
    cmp->set_target(pb::Compare::CREATE);
    cmp->set_result(pb::Compare::EQUAL);
    cmp->set_create_revision(0);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    txn.add_failure()->mutable_request_range()->set_key(key);
    QABOX_ASSIGN_OR_RETURN(pb::TxnResponse resp, commit(txn));
    if (resp.succeeded()) return std::optional<KeyValue>();
    if (resp.responses_size() == 1 && resp.responses(0).response_range().kvs_size() == 1) {
      return std::optional<KeyValue>(fromPb(resp.responses(0).response_range().kvs(0)));
    }
    // Deleted between the compare and the read: the caller tries again.
    return aborted("etcd: " + key + " changed while it was claimed; try again");
  }

  Result<bool> swapIfRevision(const std::string& key, const std::string& value,
                              int64_t modRevision) override {
    pb::TxnRequest txn;
    addModCompare(txn, key, modRevision);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    QABOX_ASSIGN_OR_RETURN(pb::TxnResponse resp, commit(txn));
    return resp.succeeded();
  }

  Result<bool> removeIfRevision(const std::string& key, int64_t modRevision) override {
    pb::TxnRequest txn;
    addModCompare(txn, key, modRevision);
    txn.add_success()->mutable_request_delete_range()->set_key(key);
    QABOX_ASSIGN_OR_RETURN(pb::TxnResponse resp, commit(txn));
    return resp.succeeded();
  }

  Result<int64_t> grantLease(std::chrono::seconds ttl) override {
    pb::LeaseGrantRequest req;
    req.set_ttl(ttl.count());
    pb::LeaseGrantResponse resp;
    QABOX_RETURN_IF_ERROR(
        call([&](Conn& e, grpc::ClientContext* c) { return e.lease->LeaseGrant(c, req, &resp); }));
    if (!resp.error().empty() || resp.id() == 0) {
      return unavailable("etcd refused a lease: " + resp.error().substr(0, 200));
    }
    return resp.id();
  }

  Status keepAlive(int64_t lease) override {
    pb::LeaseKeepAliveResponse resp;
    QABOX_RETURN_IF_ERROR(call([&](Conn& e, grpc::ClientContext* c) {
      auto stream = e.lease->LeaseKeepAlive(c);
      pb::LeaseKeepAliveRequest req;
      req.set_id(lease);
      if (!stream->Write(req) || !stream->Read(&resp)) {
        stream->WritesDone();
        grpc::Status s = stream->Finish();
        return s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "keep-alive stream ended") : s;
      }
      stream->WritesDone();
      return stream->Finish();
    }));
    if (resp.ttl() <= 0) return notFound("etcd: lease " + std::to_string(lease) + " has expired");
    return Status::ok();
  }

  Status revokeLease(int64_t lease) override {
    pb::LeaseRevokeRequest req;
    req.set_id(lease);
    pb::LeaseRevokeResponse resp;
    return call(
        [&](Conn& e, grpc::ClientContext* c) { return e.lease->LeaseRevoke(c, req, &resp); });
  }

  Status watch(const std::string& prefix, int64_t fromRevision,
               const std::function<void(const std::vector<KvEvent>&)>& onEvents) override;

  void cancelWatches() override {
    std::lock_guard lock(watchMu_);
    cancelled_ = true;
    for (auto* c : watching_) c->TryCancel();
  }

 private:
  static void addModCompare(pb::TxnRequest& txn, const std::string& key, int64_t modRevision) {
    auto* cmp = txn.add_compare();
    cmp->set_key(key);
    cmp->set_target(pb::Compare::MOD);
    cmp->set_result(pb::Compare::EQUAL);
    cmp->set_mod_revision(modRevision);
  }

  Result<pb::TxnResponse> commit(const pb::TxnRequest& txn) {
    pb::TxnResponse resp;
    QABOX_RETURN_IF_ERROR(
        call([&](Conn& e, grpc::ClientContext* c) { return e.kv->Txn(c, txn, &resp); }));
    return resp;
  }

  // `fn` on the endpoint that answered last, then on each other one while
  // the endpoint tried is unreachable.
  template <typename Fn>
  Status call(Fn fn) {
    const size_t start = preferred_.load();
    grpc::Status last;
    std::string lastEndpoint;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      const size_t at = (start + i) % endpoints_.size();
      Endpoint& e = *endpoints_[at];
      auto conn = e.connection();
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
      last = fn(*conn, &ctx);
      lastEndpoint = e.text;
      if (last.ok()) {
        preferred_ = at;
        return Status::ok();
      }
      if (last.error_code() == grpc::StatusCode::UNAVAILABLE) e.failed(conn);
      if (!retryable(last)) break;
    }
    return fromGrpc(last, lastEndpoint);
  }

  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::chrono::milliseconds timeout_;
  std::atomic<size_t> preferred_{0};
  std::mutex watchMu_;
  std::set<grpc::ClientContext*> watching_;
  bool cancelled_ = false;
};

Status EtcdKv::watch(const std::string& prefix, int64_t fromRevision,
                     const std::function<void(const std::vector<KvEvent>&)>& onEvents) {
  Endpoint& e = *endpoints_[preferred_.load() % endpoints_.size()];
  auto conn = e.connection();
  grpc::ClientContext ctx;
  {
    std::lock_guard lock(watchMu_);
    if (cancelled_) return {Code::kCancelled, "watch cancelled"};
    watching_.insert(&ctx);
  }
  auto stream = conn->watch->Watch(&ctx);
  pb::WatchRequest req;
  auto* create = req.mutable_create_request();
  create->set_key(prefix);
  create->set_range_end(prefixEnd(prefix));
  create->set_start_revision(fromRevision);
  Status ended = unavailable("etcd at " + e.text + ": the watch stream ended");
  if (stream->Write(req)) {
    pb::WatchResponse resp;
    while (stream->Read(&resp)) {
      if (resp.compact_revision() > 0) {
        ended =
            failedPrecondition("etcd: revision " + std::to_string(fromRevision) + " was compacted");
        break;
      }
      if (resp.canceled()) {
        ended = unavailable("etcd cancelled the watch: " + resp.cancel_reason().substr(0, 200));
        break;
      }
      std::vector<KvEvent> events;
      for (const auto& ev : resp.events()) {
        events.push_back({ev.type() == mvccpb::Event::DELETE, fromPb(ev.kv())});
      }
      if (!events.empty()) onEvents(events);
    }
  }
  ctx.TryCancel();
  grpc::Status s = stream->Finish();
  bool cancelled = false;
  {
    std::lock_guard lock(watchMu_);
    watching_.erase(&ctx);
    cancelled = cancelled_;
  }
  if (cancelled) return {Code::kCancelled, "watch cancelled"};
  if (!s.ok() && s.error_code() == grpc::StatusCode::UNAVAILABLE) e.failed(conn);
  // Whatever ended it, it was not this side: a member shutting down ends
  // its watches with CANCELLED, which must not read as cancelWatches().
  if (!s.ok() && ended.code() == Code::kUnavailable) {
    return unavailable("etcd at " + e.text + ": the watch ended: " + s.error_message());
  }
  // The endpoint failed: the next watch starts on the next one.
  preferred_ = (preferred_.load() + 1) % endpoints_.size();
  return ended;
}

Result<std::unique_ptr<Endpoint>> dial(const std::string& text, size_t index,
                                       const std::shared_ptr<grpc::ChannelCredentials>& tls) {
  const std::string field = "cluster.etcd[" + std::to_string(index) + "]";
  bool https = text.rfind("https://", 0) == 0;
  bool http = text.rfind("http://", 0) == 0;
  if (!https && !http) {
    return invalidArgument(field + " \"" + text.substr(0, 80) + "\": use https://host:port");
  }
  std::string rest = text.substr(https ? 8 : 7);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  QABOX_ASSIGN_OR_RETURN(HostPort hp, parseHostPort(rest, field));
  if (hp.host.empty() || hp.port == 0) {
    return invalidArgument(field + " \"" + text.substr(0, 80) + "\": needs a host and a port");
  }
  if (http && !isLoopback(hp.host)) {
    return invalidArgument(field + " \"" + text.substr(0, 80) +
                           "\": plain http:// is for a loopback etcd only; use https://");
  }
  if (https && !tls) {
    return invalidArgument(field + ": https:// needs cluster.ca, cluster.cert and cluster.key");
  }
  const bool v6 = hp.host.find(':') != std::string::npos;
  const std::string target = (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
  return std::make_unique<Endpoint>(text, target, https ? tls : grpc::InsecureChannelCredentials());
}

}  // namespace

std::string prefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto c = static_cast<unsigned char>(end.back());
    if (c < 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

Result<std::unique_ptr<Kv>> makeEtcdKv(const EtcdKvOptions& o) {
  if (o.endpoints.empty()) return invalidArgument("cluster.etcd: name at least one endpoint");
  std::shared_ptr<grpc::ChannelCredentials> tls;
  if (!o.caFile.empty() || !o.certFile.empty() || !o.keyFile.empty()) {
    if (o.caFile.empty() || o.certFile.empty() || o.keyFile.empty()) {
      return invalidArgument("cluster.ca, cluster.cert and cluster.key go together");
    }
    grpc::SslCredentialsOptions ssl;
    QABOX_ASSIGN_OR_RETURN(ssl.pem_root_certs, readPem("cluster.ca", o.caFile));
    QABOX_ASSIGN_OR_RETURN(ssl.pem_cert_chain, readPem("cluster.cert", o.certFile));
    QABOX_ASSIGN_OR_RETURN(ssl.pem_private_key, readPem("cluster.key", o.keyFile));
    tls = grpc::SslCredentials(ssl);
  }
  std::vector<std::unique_ptr<Endpoint>> endpoints;
  for (size_t i = 0; i < o.endpoints.size(); ++i) {
    QABOX_ASSIGN_OR_RETURN(auto e, dial(o.endpoints[i], i, tls));
    endpoints.push_back(std::move(e));
  }
  return std::unique_ptr<Kv>(std::make_unique<EtcdKv>(std::move(endpoints), o.callTimeout));
}

}  // namespace qabox::cluster
