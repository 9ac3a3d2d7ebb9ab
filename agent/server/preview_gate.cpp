#include "server/preview_gate.h"

#include <arpa/inet.h>

#include <algorithm>

#include "core/ascii.h"
#include "core/cookie.h"
#include "core/ticket.h"

namespace qabox {

namespace {

using Kind = AccessAnswer::Kind;

AccessAnswer refuse(std::string message) {
  AccessAnswer a;
  a.kind = Kind::kRefuse;
  a.message = std::move(message);
  return a;
}

AccessAnswer allow() {
  AccessAnswer a;
  a.kind = Kind::kAllow;
  return a;
}

AccessAnswer redirect(std::string location, std::string cookie = {}) {
  AccessAnswer a;
  a.kind = Kind::kRedirect;
  a.location = std::move(location);
  a.setCookie = std::move(cookie);
  return a;
}

}  // namespace

std::vector<std::pair<uint32_t, uint32_t>> parseAllowlist(const std::vector<std::string>& cidrs) {
  std::vector<std::pair<uint32_t, uint32_t>> nets;
  for (const std::string& cidr : cidrs) {
    size_t slash = cidr.find('/');
    std::string addr = cidr.substr(0, slash);
    int prefix = slash == std::string::npos ? 32 : std::stoi(cidr.substr(slash + 1));
    in_addr a{};
    if (inet_pton(AF_INET, addr.c_str(), &a) != 1) continue;  // the config checked it
    uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
    nets.emplace_back(ntohl(a.s_addr) & mask, mask);
  }
  return nets;
}

std::string dashboardReturnUrl(std::string_view host, std::string_view target, bool tls) {
  std::string_view scheme = tls ? "https://" : "http://";
  size_t dot = host.find('.');
  std::string dashboard(scheme);
  dashboard += kReservedLabel;
  if (dot != std::string_view::npos) dashboard += host.substr(dot);
  std::string to(scheme);
  to += host;
  to += target;
  return dashboard + "/auth/preview?to=" + urlEncode(to);
}

PreviewGate::PreviewGate(PreviewGateOptions options, const SessionCodec& codec,
                         const TokenDirectory& tokens, std::function<TimePoint()> now)
    : options_(std::move(options)), codec_(codec), tokens_(tokens), now_(std::move(now)) {}

bool PreviewGate::mayOpen(Role role) {
  return mayCall(role, std::string(kServicePrefix) + "GetEnvironment");
}

bool PreviewGate::allowedNetwork(uint32_t ip) const {
  if (ip == 0) return false;
  return std::any_of(options_.allow.begin(), options_.allow.end(),
                     [ip](const auto& net) { return (ip & net.second) == net.first; });
}

AccessAnswer PreviewGate::decide(const AccessRequest& req) {
  if (allowedNetwork(req.peerIpv4)) return allow();
  const TimePoint now = now_();
  std::string_view path = req.target.substr(0, req.target.find('?'));
  if (path == kAuthPath) {
    size_t q = req.target.find('?');
    return redeem(req, q == std::string_view::npos ? "" : req.target.substr(q + 1), now);
  }
  if (auto secret = bearerSecret(req.authorization); secret && istartsWith(*secret, "qbx_")) {
    auto holder = tokens_.bySecret(*secret, now);
    if (holder && mayOpen(holder->role)) return allow();
    return refuse(
        "This preview is behind a login, and the bearer token is unknown, revoked, "
        "expired, or of a role that may not open previews.");
  }
  const std::string cookie = cookieName(kPreviewCookie, req.tls);
  if (auto in =
          signedIn(codec_, tokens_, req.cookie, cookie, SessionKind::kPreview, req.slug, now)) {
    if (mayOpen(in->holder.role)) return allow();
    return refuse("Your token's role (" + std::string(roleName(in->holder.role)) +
                  ") may not open previews; ask ops for a viewer or qa token.");
  }
  if (req.method == "GET" || req.method == "HEAD") {
    return redirect(dashboardReturnUrl(req.host, req.target, req.tls));
  }
  return refuse("This preview is behind a login: sign in at qabox." +
                std::string(req.host.substr(std::min(req.host.find('.'), req.host.size()) + 1)) +
                ", or send \"Authorization: Bearer <token>\".");
}

AccessAnswer PreviewGate::redeem(const AccessRequest& req, std::string_view query, TimePoint now) {
  constexpr std::string_view kAgain =
      "This sign-in link has expired or was already used. Open the preview's address again.";
  auto grant = queryParam(query, "grant");
  auto next = queryParam(query, "next");
  if (!grant || !next) return refuse(std::string(kAgain));
  auto path = urlDecode(*next);
  if (!path || !isLocalPath(*path)) return refuse(std::string(kAgain));
  auto claims = codec_.open(*grant, SessionKind::kGrant, req.slug, now);
  if (!claims) return refuse(std::string(kAgain));
  auto holder = tokens_.byName(claims->token, now);
  if (!holder || !mayOpen(holder->role) || !firstUse(*claims, now)) {
    return refuse(std::string(kAgain));
  }
  std::chrono::seconds ttl = options_.cookieTtl;
  if (holder->expiresAt) {
    ttl = std::min(ttl, std::chrono::duration_cast<std::chrono::seconds>(*holder->expiresAt - now));
  }
  SessionClaims preview =
      SessionCodec::make(SessionKind::kPreview, holder->name, std::string(req.slug), now, ttl);
  return redirect(
      *path, setCookie(cookieName(kPreviewCookie, req.tls), codec_.seal(preview), ttl, req.tls));
}

bool PreviewGate::firstUse(const SessionClaims& grant, TimePoint now) {
  std::lock_guard lock(mu_);
  // Grants live a minute: the used ones are forgotten once they expired.
  for (auto it = usedGrants_.begin(); it != usedGrants_.end();) {
    it = it->second <= now ? usedGrants_.erase(it) : std::next(it);
  }
  return usedGrants_.emplace(grant.nonce, grant.expiresAt).second;
}

}  // namespace qabox
