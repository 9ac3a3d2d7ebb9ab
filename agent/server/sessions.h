#pragma once

// People signed in through a browser: the dashboard's session, and the
// grants and cookies that let that session open previews behind a login.
//
// A person signs in with their token (qabox token create --role viewer|qa|ops)
// once per browser. What the browser keeps is never the token: it is a
// value sealed with the agent's key (HMAC-SHA-256, libsodium) that names the
// token, the one host it is good for, and when it ends. Every check goes
// back to the TokenDirectory, so revoking the token ends every session and
// preview cookie made from it at once, on the next request.
//
//   kSession  the dashboard's cookie, for `qabox.<domain>`
//   kGrant    a one-minute, one-use value in the URL that hands a session to
//             one preview host (`<slug>.<domain>/.qabox/auth?grant=...`)
//   kPreview  that preview host's own cookie, set by the router from a grant
//
// Each kind verifies only as itself and only for its own host, so a preview
// cookie can not open the dashboard or another preview, and a session can
// not be replayed as a grant.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "server/auth.h"
#include "store/store.h"

namespace qabox {

enum class SessionKind : char { kSession = 's', kGrant = 'g', kPreview = 'p' };

struct SessionClaims {
  SessionKind kind = SessionKind::kSession;
  std::string token;  // the name of the token the person signed in with
  std::string
      host;  // the label it is good for: kReservedLabel (the dashboard), or a preview's slug
  TimePoint issuedAt{};
  TimePoint expiresAt{};
  std::string nonce;  // 16 random bytes, hex: tells sessions apart, keys CSRF
};

using SessionKey = std::array<unsigned char, 32>;

// The agent's key: `path` (0600, made with 32 random bytes when missing; a
// link, or a file of the wrong size or mode, is refused naming it).
Result<SessionKey> loadOrCreateSessionKey(const std::string& path);

class SessionCodec {
 public:
  explicit SessionCodec(const SessionKey& key);

  // Claims with a fresh nonce, from now for `ttl`.
  static SessionClaims make(SessionKind kind, std::string token, std::string host, TimePoint now,
                            std::chrono::seconds ttl);

  // base64url(payload) "." base64url(HMAC-SHA-256(key, payload)).
  std::string seal(const SessionClaims& claims) const;
  // The claims of `sealed` when its MAC is right, it is of `kind`, for
  // `host` (case-insensitive), and not expired at `now`.
  std::optional<SessionClaims> open(std::string_view sealed, SessionKind kind,
                                    std::string_view host, TimePoint now) const;

  // The CSRF token of a session: a MAC of its nonce, sent back in every form.
  std::string csrfToken(const SessionClaims& session) const;
  bool csrfValid(const SessionClaims& session, std::string_view token) const;

 private:
  std::string mac(std::string_view data) const;

  SessionKey key_;
};

// Who a valid token belongs to, as the request path needs it.
struct TokenHolder {
  std::string name;
  Role role = Role::kViewer;
  std::optional<TimePoint> expiresAt;
};

// The tokens, as an immutable snapshot read without a lock: by name (a
// session's token) and by secret (a bearer token on a preview, the login
// form). reload() after every change to the tokens table (CreateToken,
// RevokeToken), so a revoked token stops working at once.
class TokenDirectory {
 public:
  explicit TokenDirectory(Store& store);
  Status reload();

  // The holder of token `name`, if it exists, is not revoked and has not
  // expired at `now`.
  std::optional<TokenHolder> byName(std::string_view name, TimePoint now) const;
  // The same for a token's secret ("qbx_...").
  std::optional<TokenHolder> bySecret(std::string_view secret, TimePoint now) const;

 private:
  struct Snapshot {
    std::map<std::string, TokenHolder, std::less<>> byName;
    std::map<std::string, std::string, std::less<>> nameByHash;
  };
  std::optional<TokenHolder> valid(const Snapshot& s, std::string_view name, TimePoint now) const;

  Store& store_;
  std::atomic<std::shared_ptr<const Snapshot>> snap_;
};

// One valid session for `host` among the values of its cookie: none when
// there is none, or more than one value (a cookie another host under the
// domain tossed beside ours), or its token is gone.
struct SignedIn {
  SessionClaims claims;
  TokenHolder holder;
};
std::optional<SignedIn> signedIn(const SessionCodec& codec, const TokenDirectory& tokens,
                                 std::string_view cookieHeader, std::string_view cookie,
                                 SessionKind kind, std::string_view host, TimePoint now);

}  // namespace qabox
