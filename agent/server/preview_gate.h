#pragma once

// The router's gate in front of previews behind a login (routing.access =
// "login", or qabox deploy --access login). For each request to such a
// preview, in this order:
//
//   1. a client address in routing.access_allow       -> forwarded
//   2. GET /.qabox/auth?grant=G&next=/path            -> G is a grant the
//      dashboard sealed for this host a minute ago, used once: 302 to /path
//      setting the preview's own cookie (host-only, HttpOnly, signed for
//      this host alone)
//   3. Authorization: Bearer qbx_... of a valid token -> forwarded (automated
//      tests against a preview); a qbx_ token that is not valid -> 401
//   4. the preview's cookie, valid for this host       -> forwarded
//   5. otherwise GET or HEAD -> 302 to the dashboard's /auth/preview, which
//      signs the person in and comes back through 2; any other method -> 401
//
// The router strips qabox's cookies and bearer tokens before it forwards,
// so the app never sees them. Every check ends in the TokenDirectory:
// revoking a token closes every preview opened with it on the next request.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/url.h"
#include "proxy/router.h"
#include "server/sessions.h"

namespace qabox {

struct PreviewGateOptions {
  // routing.access_allow, as (network, mask) in host order.
  std::vector<std::pair<uint32_t, uint32_t>> allow;
  // How long a preview's cookie lasts (dashboard.session_ttl); never past
  // its token's expiry.
  std::chrono::seconds cookieTtl{12 * 3600};
};

// routing.access_allow's CIDRs (checked by the config) as (network, mask).
std::vector<std::pair<uint32_t, uint32_t>> parseAllowlist(const std::vector<std::string>& cidrs);

class PreviewGate {
 public:
  PreviewGate(
      PreviewGateOptions options, const SessionCodec& codec, const TokenDirectory& tokens,
      std::function<TimePoint()> now = [] { return Clock::now(); });

  // Thread-safe; called on the router's threads, never blocks on I/O.
  AccessAnswer decide(const AccessRequest& req);

  // Where grants are redeemed on a preview host.
  static constexpr std::string_view kAuthPath = "/.qabox/auth";
  static constexpr std::chrono::seconds kGrantTtl{60};

 private:
  bool allowedNetwork(uint32_t ip) const;
  AccessAnswer redeem(const AccessRequest& req, std::string_view query, TimePoint now);
  bool firstUse(const SessionClaims& grant, TimePoint now);
  static bool mayOpen(Role role);

  PreviewGateOptions options_;
  const SessionCodec& codec_;
  const TokenDirectory& tokens_;
  std::function<TimePoint()> now_;

  std::mutex mu_;
  std::map<std::string, TimePoint> usedGrants_;  // nonce -> when it expires
};

// The dashboard's /auth/preview URL that brings a person back to
// `scheme://host/target` once signed in: the host's first label becomes
// kReservedLabel, its port stays.
std::string dashboardReturnUrl(std::string_view host, std::string_view target, bool tls);

}  // namespace qabox
