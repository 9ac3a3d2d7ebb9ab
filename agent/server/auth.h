#pragma once

// Who may call what. Every call is authenticated once, by the interceptor
// below, and answered by the service only with the caller it produced:
//
//   unix socket (plaintext) -> the peer's uid from SO_PEERCRED, taken when the
//                              daemon accepted the connection (LocalPeers):
//                              root or a member of api.socket_group is `ops`
//   TCP (TLS, maybe mTLS)   -> `authorization: Bearer <secret>`: the SHA-256
//                              of the secret names a token and its role
//
// The role table (kRpcAccess) is the one place that says which role may call
// which RPC; README.md shows it as a table.

#include <grpcpp/support/server_interceptor.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "lifecycle/audit.h"
#include "store/store.h"

namespace qabox {

enum class Role : uint8_t { kCi = 1, kReaper = 2, kOps = 4, kViewer = 8, kQa = 16 };

std::string_view roleName(Role role);
std::optional<Role> parseRole(std::string_view name);  // ci, reaper, ops, viewer, qa

// Which roles may call one RPC of qabox.v1.Qabox, as a mask of Role bits.
struct RpcAccess {
  std::string_view rpc;  // the method name, as Deploy
  uint8_t roles;
};

inline constexpr uint8_t kAnyRole = 1 | 2 | 4 | 8 | 16;
inline constexpr uint8_t kCiOrOps = 1 | 4;
inline constexpr uint8_t kReaperOrOps = 2 | 4;
inline constexpr uint8_t kOpsOnly = 4;
inline constexpr uint8_t kReaders = 1 | 4 | 8 | 16;  // ci, ops, viewer, qa
inline constexpr uint8_t kQaOrOps = 4 | 16;
inline constexpr uint8_t kCiQaOrOps = 1 | 4 | 16;

// ci deploys and cleans up after pull requests; reaper is the scheduled job
// (qabox reap from cron); ops is a person who runs the host. viewer and qa
// are the people who test in environments, mostly through the dashboard:
// viewer reads (and opens previews behind a login), qa also redeploys,
// wakes, sleeps and pins. Pinning exempts an environment from every reaper
// policy: a decision for the people who test in it (qa) or run the host
// (ops), not for a pipeline. Sleep and wake stop and start a container and
// lose nothing: ci may, like deploy and delete. Deleting is ci's (the
// pipeline's end) and ops'. Reads of the host and the audit log are for
// everyone.
inline constexpr RpcAccess kRpcAccess[] = {
    {"Deploy", kCiOrOps},
    {"RedeployEnvironment", kCiQaOrOps},
    {"GetEnvironment", kReaders},
    {"ListEnvironments", kAnyRole},
    {"DeleteEnvironment", kCiOrOps},
    {"StreamLogs", kReaders},
    {"Exec", kOpsOnly},
    {"Reap", kReaperOrOps},
    {"SetPinned", kQaOrOps},
    {"SleepEnvironment", kCiQaOrOps},
    {"WakeEnvironment", kCiQaOrOps},
    {"ListImages", kOpsOnly},
    {"BuildImage", kOpsOnly},
    {"DeleteImage", kOpsOnly},
    {"GetHostStatus", kAnyRole},
    {"ListEvents", kAnyRole},
    {"CreateToken", kOpsOnly},
    {"ListTokens", kOpsOnly},
    {"RevokeToken", kOpsOnly},
    {"CheckInvariants", kOpsOnly},
    {"ListHosts", kAnyRole},
    {"DrainHost", kOpsOnly},
};

inline constexpr std::string_view kServicePrefix = "/qabox.v1.Qabox/";

// Server reflection and the health service answer without a token.
bool isOpenMethod(std::string_view fullMethod);

// The roles that may call `fullMethod` (/qabox.v1.Qabox/Deploy); nullopt for
// a method the table does not know, which nobody may call.
std::optional<uint8_t> rolesFor(std::string_view fullMethod);
bool mayCall(Role role, std::string_view fullMethod);

// "qbx_" and 64 hex digits from 32 bytes of OpenSSL's CSPRNG.
Result<std::string> newTokenSecret();
// Lower-case hex SHA-256: what the store keeps instead of the secret.
std::string hashTokenSecret(std::string_view secret);
// Token names appear in events and on command lines: 1 to 64 of letters,
// digits, '.', '_' and '-', starting with a letter or digit.
Status checkTokenName(std::string_view name);

// A token CreateToken made: the row the store keeps, and the secret, shown
// once and never stored.
struct IssuedToken {
  TokenRecord record;
  std::string secret;
};

// Makes token `name` with `role`, expiring `ttl` after `now` when given, and
// records token.create by `actor`. Names are never reused, not even once
// revoked (ALREADY_EXISTS): the audit log names callers by token name. The
// token events live here, not in the lifecycle, because tokens are this
// component's: it makes their secrets, keeps their hashes and checks them.
Result<IssuedToken> issueToken(Store& store, AuditLog& audit, const std::string& name,
                               const std::string& role,
                               std::optional<std::chrono::milliseconds> ttl,
                               const std::string& actor, TimePoint now);
// Revokes token `name` as of `now` and records token.revoke by `actor`.
Result<TokenRecord> revokeToken(Store& store, AuditLog& audit, const std::string& name,
                                const std::string& actor, TimePoint now);

// The secret of an `authorization` metadata value; "Bearer" in any case.
std::optional<std::string_view> bearerSecret(std::string_view authorization);

struct Caller {
  std::string name;  // token:<name>, or uid:<n> on the unix socket
  Role role = Role::kCi;
  // Set on a call another host of the cluster forwarded (its name): it is
  // answered here, never forwarded again.
  std::string via;
};

// The kernel's word on who opened a unix socket connection.
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (SO_PEERGROUPS)
};

// The connections the daemon accepted on its unix sockets and handed to
// gRPC, by descriptor. gRPC names such a connection's peer "fd:<n>".
class LocalPeers {
 public:
  void add(int fd, PeerCred cred);
  std::optional<PeerCred> find(std::string_view grpcPeer) const;

 private:
  mutable std::mutex mu_;
  std::map<int, PeerCred> byFd_;
};

// How many refused calls are written to the audit log: one token bucket
// per peer (its address without the port, or its uid on the unix socket)
// and one for all peers together, so a flood of bad calls, from one host or
// from many, costs a bounded number of rows. What a bucket turns away is
// counted and written as one summary event ("N more refused calls from X
// suppressed") with the peer's next recorded refusal.
class DenialLimiter {
 public:
  struct Options {
    double perPeerBurst = 10;                        // events a peer may cause at once
    std::chrono::milliseconds perPeerRefill{6'000};  // one more per this long
    double globalBurst = 100;                        // for all peers together
    std::chrono::milliseconds globalRefill{1'000};
    size_t maxPeers = 1024;  // peers tracked; beyond that, new ones share one bucket
  };
  struct Verdict {
    bool record = false;      // write this refusal's event
    uint64_t suppressed = 0;  // refusals from this peer not written since its last event
    TimePoint since{};        // when the first of those came
  };

  DenialLimiter() : DenialLimiter(Options{}) {}
  explicit DenialLimiter(Options options);
  Verdict admit(const std::string& peer, TimePoint now);

  // The key a peer's refusals are counted under: "ipv4:1.2.3.4:5678" -> "ipv4:1.2.3.4".
  static std::string peerKey(std::string_view peer);

 private:
  struct Bucket {
    double tokens = 0;
    TimePoint refilled{};
    uint64_t suppressed = 0;
    TimePoint since{};
  };
  static void refill(Bucket& b, TimePoint now, double burst, std::chrono::milliseconds every);

  Options options_;
  std::mutex mu_;
  std::map<std::string, Bucket> peers_;
  Bucket global_;
  bool globalStarted_ = false;
};

struct AuthDecision {
  Status status;  // ok, UNAUTHENTICATED or PERMISSION_DENIED
  Caller caller;  // set when authenticated
};

class Authorizer {
 public:
  // `socketGroup`: members of this group act as ops on the unix socket.
  // `denials`: how many refused calls of a peer are recorded.
  Authorizer(
      Store& store, const LocalPeers& peers, std::optional<gid_t> socketGroup,
      std::function<TimePoint()> now = [] { return Clock::now(); },
      DenialLimiter::Options denials = {});

  // Authenticates and authorizes one call; a denial is recorded as an event
  // naming the caller (or the peer) and the RPC.
  AuthDecision decide(std::string_view fullMethod, std::string_view peer,
                      std::optional<std::string_view> authorization);
  // One call on the peer listener: `certified` when TLS verified the peer's
  // certificate against cluster.ca; the rest is what the forwarding host
  // says of the caller it forwards (kPeerVia, kPeerCaller, kPeerRole), which
  // a member of the cluster is trusted to say. The caller's role is checked
  // again here.
  AuthDecision decidePeer(std::string_view fullMethod, std::string_view peer, bool certified,
                          std::string_view via, std::string_view callerName, std::string_view role);

  // The decision for a call in flight, keyed by its ServerContext.
  void remember(const void* call, AuthDecision decision);
  void forget(const void* call);
  // The caller of a call that may proceed, or why it may not. A call the
  // interceptor never saw is refused: forgetting to install it fails closed.
  Result<Caller> callerOf(const void* call) const;

 private:
  Result<Caller> authenticate(std::string_view peer, std::optional<std::string_view> authorization,
                              std::string& who);
  void touch(const std::string& token);
  void recordDenial(std::string_view fullMethod, const std::string& who, const Status& why,
                    std::string_view peer);

  Store& store_;
  const LocalPeers& peers_;
  std::optional<gid_t> socketGroup_;
  std::function<TimePoint()> now_;

  mutable std::mutex mu_;
  std::map<const void*, AuthDecision> calls_;
  std::map<std::string, TimePoint> touched_;  // when last_used_at was last written
  DenialLimiter denials_;
};

// Runs Authorizer::decide for every call on every listener.
//
// An interceptor rather than an AuthMetadataProcessor: a processor can only
// be set on secure credentials, and the unix socket is plaintext by design
// (gRPC asserts when a processor is set on insecure credentials); nor does
// it see the unix peer. The interceptor sees every call, its method and its
// peer, on either transport, so one rule set covers both. gRPC 1.51's server
// interceptors cannot end a call themselves, so the decision is kept for the
// call and the service asks for it first thing (QaboxService::authorized),
// refusing any call the interceptor did not pass.
//
// On the peer listener (`peers`), Authorizer::decidePeer instead: the
// caller is the one the forwarding host names in kPeerVia, kPeerCaller and
// kPeerRole.
class AuthInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(Authorizer& auth, bool peers = false)
      : auth_(auth), peers_(peers) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Authorizer& auth_;
  bool peers_;
};

// The metadata a forwarded call carries (PeerClients sets it).
inline constexpr std::string_view kPeerVia = "qabox-peer-via";        // the forwarding host
inline constexpr std::string_view kPeerCaller = "qabox-peer-caller";  // its caller's name
inline constexpr std::string_view kPeerRole = "qabox-peer-role";      // and role

}  // namespace qabox
