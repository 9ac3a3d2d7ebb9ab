#include "server/auth.h"

#include <grpcpp/server_context.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "core/ascii.h"
#include "core/duration.h"
#include "core/failpoint.h"
#include "core/ticket.h"

namespace qabox {
namespace {

// last_used_at is for people ("is this token still used?"): once a minute
// per token is plenty, and spares a write transaction per call.
constexpr auto kTouchEvery = std::chrono::minutes(1);

std::string toHex(const unsigned char* data, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 0xf];
  }
  return out;
}

std::string_view rpcName(std::string_view fullMethod) {
  auto slash = fullMethod.rfind('/');
  return slash == std::string_view::npos ? fullMethod : fullMethod.substr(slash + 1);
}

}  // namespace

std::string_view roleName(Role role) {
  switch (role) {
    case Role::kCi: return "ci";
    case Role::kReaper: return "reaper";
    case Role::kOps: return "ops";
    case Role::kViewer: return "viewer";
    case Role::kQa: return "qa";
  }
  return "unknown";
}

std::optional<Role> parseRole(std::string_view name) {
  for (Role r : {Role::kCi, Role::kReaper, Role::kOps, Role::kViewer, Role::kQa}) {
    if (roleName(r) == name) return r;
  }
  return std::nullopt;
}

bool isOpenMethod(std::string_view fullMethod) {
  for (std::string_view prefix :
       {"/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/",
        "/grpc.health.v1.Health/"}) {
    if (fullMethod.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

std::optional<uint8_t> rolesFor(std::string_view fullMethod) {
  if (fullMethod.substr(0, kServicePrefix.size()) != kServicePrefix) return std::nullopt;
  std::string_view rpc = fullMethod.substr(kServicePrefix.size());
  for (const auto& a : kRpcAccess) {
    if (a.rpc == rpc) return a.roles;
  }
  return std::nullopt;
}

bool mayCall(Role role, std::string_view fullMethod) {
  auto roles = rolesFor(fullMethod);
  return roles && (*roles & static_cast<uint8_t>(role)) != 0;
}

Result<std::string> newTokenSecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return internalError("token: the random number generator failed");
  }
  return "qbx_" + toHex(bytes, sizeof bytes);
}

std::string hashTokenSecret(std::string_view secret) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(secret.data(), secret.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    // No hash matches "": such a secret names no token.
    spdlog::error("token: SHA-256 failed in OpenSSL");
    return "";
  }
  return toHex(digest, len);
}

Status checkTokenName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return invalidArgument("token name " + quoteForMessage(name) + ": must be 1 to 64 characters");
  }
  if (!std::isalnum(static_cast<unsigned char>(name.front()))) {
    return invalidArgument("token name " + quoteForMessage(name) +
                           ": must start with a letter or digit");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return invalidArgument("token name " + quoteForMessage(name) +
                             ": only letters, digits, '.', '_' and '-' are allowed");
    }
  }
  return Status::ok();
}

Result<IssuedToken> issueToken(Store& store, AuditLog& audit, const std::string& name,
                               const std::string& role,
                               std::optional<std::chrono::milliseconds> ttl,
                               const std::string& actor, TimePoint now) {
  IssuedToken out;
  TokenRecord& t = out.record;
  t.name = name;
  t.role = role;
  t.createdAt = now;
  if (ttl) t.expiresAt = t.createdAt + *ttl;
  QABOX_ASSIGN_OR_RETURN(out.secret, newTokenSecret());
  t.hash = hashTokenSecret(out.secret);
  Status s = store.transaction([&]() -> Status {
    QABOX_ASSIGN_OR_RETURN(auto existing, store.getToken(t.name));
    if (existing) {
      return alreadyExists("token " + t.name + ": already exists" +
                           (existing->revoked ? " (revoked); choose another name" : ""));
    }
    return store.putToken(t);
  });
  QABOX_RETURN_IF_ERROR(s);
  std::string expires =
      ttl ? ", expires in " + formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  *t.expiresAt - t.createdAt))
          : "";
  audit.record("", "token.create", actor, "ok", t.name + " (" + t.role + ")" + expires);
  return out;
}

Result<TokenRecord> revokeToken(Store& store, AuditLog& audit, const std::string& name,
                                const std::string& actor, TimePoint now) {
  QABOX_FAILPOINT("token.revoke.before");
  QABOX_ASSIGN_OR_RETURN(auto t, store.revokeToken(name, now));
  QABOX_FAILPOINT("token.revoke.after");
  audit.record("", "token.revoke", actor, "ok", t.name);
  return t;
}

std::optional<std::string_view> bearerSecret(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() || !istartsWith(authorization, kScheme)) {
    return std::nullopt;
  }
  std::string_view secret = authorization.substr(kScheme.size());
  while (!secret.empty() && secret.front() == ' ') secret.remove_prefix(1);
  while (!secret.empty() && secret.back() == ' ') secret.remove_suffix(1);
  if (secret.empty()) return std::nullopt;
  return secret;
}

void LocalPeers::add(int fd, PeerCred cred) {
  std::lock_guard l(mu_);
  byFd_[fd] = std::move(cred);
}

std::optional<PeerCred> LocalPeers::find(std::string_view grpcPeer) const {
  constexpr std::string_view kPrefix = "fd:";
  if (grpcPeer.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view digits = grpcPeer.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  int fd = std::stoi(std::string(digits));
  std::lock_guard l(mu_);
  auto it = byFd_.find(fd);
  if (it == byFd_.end()) return std::nullopt;
  return it->second;
}

Authorizer::Authorizer(Store& store, const LocalPeers& peers, std::optional<gid_t> socketGroup,
                       std::function<TimePoint()> now, DenialLimiter::Options denials)
    : store_(store),
      peers_(peers),
      socketGroup_(socketGroup),
      now_(std::move(now)),
      denials_(denials) {}

Result<Caller> Authorizer::authenticate(std::string_view peer,
                                        std::optional<std::string_view> authorization,
                                        std::string& who) {
  who = std::string(peer);
  if (auto cred = peers_.find(peer)) {
    who = "uid:" + std::to_string(cred->uid);
    bool member = socketGroup_ &&
                  (cred->gid == *socketGroup_ || std::find(cred->groups.begin(), cred->groups.end(),
                                                           *socketGroup_) != cred->groups.end());
    if (cred->uid == 0 || member) return Caller{who, Role::kOps, ""};
    // Not trusted by its uid; a token still identifies it.
    if (!authorization) {
      return Status(Code::kUnauthenticated,
                    "uid " + std::to_string(cred->uid) +
                        " is neither root nor in the agent's socket group: give a token");
    }
  }
  if (!authorization) {
    return Status(Code::kUnauthenticated,
                  "no token: send the metadata \"authorization: Bearer <secret>\" "
                  "(qabox --token or QABOX_TOKEN)");
  }
  auto secret = bearerSecret(*authorization);
  if (!secret) {
    return Status(Code::kUnauthenticated, "the authorization metadata must be \"Bearer <secret>\"");
  }
  QABOX_ASSIGN_OR_RETURN(auto token, store_.findTokenByHash(hashTokenSecret(*secret)));
  if (!token) return Status(Code::kUnauthenticated, "unknown token");
  who = "token:" + token->name;
  if (token->revoked) {
    return Status(Code::kUnauthenticated, "token " + token->name + " is revoked");
  }
  if (token->expiresAt && *token->expiresAt <= now_()) {
    return Status(Code::kUnauthenticated, "token " + token->name + " has expired");
  }
  auto role = parseRole(token->role);
  if (!role) {
    return Status(Code::kUnauthenticated,
                  "token " + token->name + " has an unknown role \"" + token->role + "\"");
  }
  touch(token->name);
  return Caller{who, *role, ""};
}

void Authorizer::touch(const std::string& token) {
  TimePoint now = now_();
  {
    std::lock_guard l(mu_);
    auto it = touched_.find(token);
    if (it != touched_.end() && now - it->second < kTouchEvery) return;
    touched_[token] = now;
  }
  if (auto s = store_.touchToken(token, now); !s.isOk()) {
    spdlog::warn("recording the use of token {}: {}", token, s.toString());
  }
}

DenialLimiter::DenialLimiter(Options options) : options_(options) {}

std::string DenialLimiter::peerKey(std::string_view peer) {
  // gRPC names TCP peers ipv4:a.b.c.d:port and ipv6:[addr]:port; each new
  // connection has a new port, the host is what floods.
  for (std::string_view prefix : {"ipv4:", "ipv6:"}) {
    if (peer.substr(0, prefix.size()) != prefix) continue;
    auto colon = peer.rfind(':');
    if (colon != std::string_view::npos && colon >= prefix.size()) {
      return std::string(peer.substr(0, colon));
    }
  }
  return std::string(peer.substr(0, 200));
}

void DenialLimiter::refill(Bucket& b, TimePoint now, double burst,
                           std::chrono::milliseconds every) {
  if (now > b.refilled && every.count() > 0) {
    double add = std::chrono::duration<double, std::milli>(now - b.refilled).count() /
                 static_cast<double>(every.count());
    b.tokens = std::min(burst, b.tokens + add);
  }
  b.refilled = std::max(b.refilled, now);
}

DenialLimiter::Verdict DenialLimiter::admit(const std::string& peer, TimePoint now) {
  std::lock_guard l(mu_);
  if (!globalStarted_) {
    global_.tokens = options_.globalBurst;
    global_.refilled = now;
    globalStarted_ = true;
  }
  refill(global_, now, options_.globalBurst, options_.globalRefill);
  std::string key = peerKey(peer);
  auto it = peers_.find(key);
  if (it == peers_.end()) {
    if (peers_.size() >= options_.maxPeers) {
      // Forget the peers that are quiet again (a full bucket, nothing owed).
      for (auto p = peers_.begin(); p != peers_.end();) {
        refill(p->second, now, options_.perPeerBurst, options_.perPeerRefill);
        if (p->second.suppressed == 0 && p->second.tokens >= options_.perPeerBurst) {
          p = peers_.erase(p);
        } else {
          ++p;
        }
      }
    }
    if (peers_.size() >= options_.maxPeers) key = "(other peers)";
    it = peers_.find(key);
    if (it == peers_.end()) {
      it = peers_.emplace(key, Bucket{options_.perPeerBurst, now, 0, {}}).first;
    }
  }
  Bucket& b = it->second;
  refill(b, now, options_.perPeerBurst, options_.perPeerRefill);
  Verdict v;
  if (b.tokens >= 1 && global_.tokens >= 1) {
    b.tokens -= 1;
    global_.tokens -= 1;
    v.record = true;
    v.suppressed = b.suppressed;
    v.since = b.since;
    b.suppressed = 0;
  } else {
    if (b.suppressed == 0) b.since = now;
    ++b.suppressed;
  }
  return v;
}

void Authorizer::recordDenial(std::string_view fullMethod, const std::string& who,
                              const Status& why, std::string_view peer) {
  std::string outcome =
      why.code() == Code::kPermissionDenied ? "permission_denied" : "unauthenticated";
  std::string rpc(rpcName(fullMethod));
  // Counted per uid on the unix socket, per host on TCP.
  std::string key = who.rfind("uid:", 0) == 0 ? who : DenialLimiter::peerKey(peer);
  TimePoint now = now_();
  auto v = denials_.admit(key, now);
  if (!v.record) {
    spdlog::debug("{} {}: {}: {} (not recorded: rate limit)", outcome, who, rpc, why.message());
    return;
  }
  spdlog::info("{} {}: {}: {}", outcome, who, rpc, why.message());
  if (v.suppressed > 0) {
    std::string detail =
        std::to_string(v.suppressed) + " more refused calls from " + key +
        " suppressed over the last " +
        formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(now - v.since)) +
        " (the audit log records a few per minute per peer)";
    spdlog::info("auth: {}", detail);
    auto s = store_.addEvent({0, now, "", "auth", key, "suppressed", detail});
    if (!s.isOk()) spdlog::warn("recording an auth event: {}", s.toString());
  }
  auto s = store_.addEvent({0, now, "", "auth", who, outcome, rpc + ": " + why.message()});
  if (!s.isOk()) spdlog::warn("recording an auth event: {}", s.toString());
}

AuthDecision Authorizer::decide(std::string_view fullMethod, std::string_view peer,
                                std::optional<std::string_view> authorization) {
  AuthDecision d;
  if (isOpenMethod(fullMethod)) {
    d.caller = Caller{std::string(peer), Role::kCi, ""};
    return d;
  }
  std::string who;
  auto caller = authenticate(peer, authorization, who);
  if (!caller) {
    // A store failure is the agent's problem, not the caller's.
    d.status = caller.status().code() == Code::kUnauthenticated
                   ? caller.status()
                   : Status(Code::kUnavailable,
                            "cannot check the token now: " + caller.status().message());
    recordDenial(fullMethod, who, d.status, peer);
    return d;
  }
  d.caller = *caller;
  if (!mayCall(caller->role, fullMethod)) {
    std::string rpc(rpcName(fullMethod));
    d.status = Status(Code::kPermissionDenied, std::string(roleName(caller->role)) + " " +
                                                   caller->name + " may not call " + rpc);
    recordDenial(fullMethod, caller->name, d.status, peer);
  }
  return d;
}

AuthDecision Authorizer::decidePeer(std::string_view fullMethod, std::string_view peer,
                                    bool certified, std::string_view via,
                                    std::string_view callerName, std::string_view role) {
  AuthDecision d;
  std::string who = "peer " + std::string(peer);
  if (!certified) {
    d.status = Status(Code::kUnauthenticated,
                      "the peer listener takes only hosts of the cluster: a client certificate "
                      "signed by cluster.ca is needed");
    recordDenial(fullMethod, who, d.status, peer);
    return d;
  }
  if (isOpenMethod(fullMethod)) {
    d.caller = Caller{std::string(peer), Role::kCi, std::string(via)};
    return d;
  }
  auto parsedRole = parseRole(role);
  const bool printable =
      std::all_of(callerName.begin(), callerName.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (!checkHostName(via, kPeerVia).isOk() || !parsedRole || callerName.empty() ||
      callerName.size() > 200 || !printable) {
    d.status =
        Status(Code::kUnauthenticated, "a forwarded call must name its host, caller and role (" +
                                           std::string(kPeerVia) + ", " + std::string(kPeerCaller) +
                                           ", " + std::string(kPeerRole) + ")");
    recordDenial(fullMethod, who, d.status, peer);
    return d;
  }
  d.caller = Caller{std::string(callerName), *parsedRole, std::string(via)};
  if (!mayCall(*parsedRole, fullMethod)) {
    d.status =
        Status(Code::kPermissionDenied, std::string(roleName(*parsedRole)) + " " + d.caller.name +
                                            " may not call " + std::string(rpcName(fullMethod)));
    recordDenial(fullMethod, d.caller.name + " via " + d.caller.via, d.status, peer);
  }
  return d;
}

void Authorizer::remember(const void* call, AuthDecision decision) {
  std::lock_guard l(mu_);
  calls_[call] = std::move(decision);
}

void Authorizer::forget(const void* call) {
  std::lock_guard l(mu_);
  calls_.erase(call);
}

Result<Caller> Authorizer::callerOf(const void* call) const {
  std::lock_guard l(mu_);
  auto it = calls_.find(call);
  if (it == calls_.end()) {
    return Status(Code::kUnauthenticated, "the call was not authenticated");
  }
  if (!it->second.status.isOk()) return it->second.status;
  return it->second.caller;
}

namespace {

// A metadata value of the call, or nullopt when it has none of that key.
std::optional<std::string_view> metadataValue(
    const std::multimap<grpc::string_ref, grpc::string_ref>* md, std::string_view key) {
  if (!md) return std::nullopt;
  auto it = md->find(grpc::string_ref(key.data(), key.size()));
  if (it == md->end()) return std::nullopt;
  return std::string_view(it->second.data(), it->second.size());
}

// Decides each call once its metadata arrived: Authorizer::decide on the API
// listeners, decidePeer on the peer listener (where TLS verified the
// certificate, and the metadata names the caller forwarded).
class AuthInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(grpc::experimental::ServerRpcInfo* info, Authorizer& auth, bool peers)
      : info_(info), auth_(auth), peers_(peers) {}
  ~AuthInterceptor() override { auth_.forget(info_->server_context()); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      const auto* md = methods->GetRecvInitialMetadata();
      grpc::ServerContextBase* ctx = info_->server_context();
      if (peers_) {
        auto value = [md](std::string_view key) { return metadataValue(md, key).value_or(""); };
        auto authn = ctx->auth_context();
        const bool certified = authn && authn->IsPeerAuthenticated();
        auth_.remember(ctx,
                       auth_.decidePeer(info_->method(), ctx->peer(), certified, value(kPeerVia),
                                        value(kPeerCaller), value(kPeerRole)));
      } else {
        auth_.remember(
            ctx, auth_.decide(info_->method(), ctx->peer(), metadataValue(md, "authorization")));
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  Authorizer& auth_;
  const bool peers_;
};

}  // namespace

grpc::experimental::Interceptor* AuthInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new AuthInterceptor(info, auth_, peers_);
}

}  // namespace qabox
