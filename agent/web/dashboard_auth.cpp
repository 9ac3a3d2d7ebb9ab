// Signing in and out, and the grants that take a signed-in person to a
// preview behind a login.
#include <algorithm>

#include "core/cookie.h"
#include "core/ticket.h"
#include "core/url.h"
#include "web/dashboard.h"
#include "web/dashboard_internal.h"
#include "web/html.h"
#include "web/preview.h"

namespace qabox::web {

namespace {

// Where a sign-in goes on: a path on the dashboard, never another host.
std::string nextOf(const std::map<std::string, std::string>& fields) {
  auto it = fields.find("next");
  if (it == fields.end() || !isLocalPath(it->second)) return "/";
  return it->second;
}

}  // namespace

Reply Dashboard::loginForm(Call& c) {
  if (c.who) return redirect(nextOf(c.params));
  return makeReply(http::status::ok, loginPage(context(c), nextOf(c.params), ""));
}

Reply Dashboard::login(Call& c) {
  std::string origin(c.req[http::field::origin]);
  if (!origin.empty() && origin != c.origin()) {
    return makeReply(http::status::forbidden, "the form was not the dashboard's own\n",
                     "text/plain");
  }
  auto secret = c.form.find("token");
  std::optional<TokenHolder> holder;
  if (secret != c.form.end()) holder = tokens_.bySecret(secret->second, c.now);
  // A person who may not read environments has nothing to see here (the
  // reaper's token): refused like a wrong token, with the reason.
  std::string error;
  if (!holder) {
    error = "That token is not valid: it is unknown, revoked or expired.";
  } else if (!mayCall(holder->role, std::string(kServicePrefix) + "GetEnvironment")) {
    error = "The role " + std::string(roleName(holder->role)) + " cannot use the dashboard.";
  }
  if (!error.empty()) {
    c.who.reset();
    return makeReply(http::status::unauthorized, loginPage(context(c), nextOf(c.form), error));
  }
  // Always a new session (a cookie the browser brought is never reused):
  // until the token's own expiry at the latest.
  auto ttl = std::chrono::duration_cast<std::chrono::seconds>(config_.dashboard.sessionTtl);
  if (holder->expiresAt) {
    ttl =
        std::min(ttl, std::chrono::duration_cast<std::chrono::seconds>(*holder->expiresAt - c.now));
  }
  SessionClaims claims = SessionCodec::make(SessionKind::kSession, holder->name,
                                            std::string(kReservedLabel), c.now, ttl);
  Reply r = redirect(nextOf(c.form));
  r.res.set(http::field::set_cookie, setCookie(c.cookieName(), codec_.seal(claims), ttl, c.tls));
  audit("", "dashboard.login", "token:" + holder->name, "ok", "signed in to the dashboard");
  return r;
}

Reply Dashboard::logout(Call& c) {
  Reply r = redirect("/login");
  r.res.set(http::field::set_cookie, setCookie(c.cookieName(), "", std::chrono::seconds(0), c.tls));
  audit("", "dashboard.logout", c.actor(), "ok", "signed out of the dashboard");
  return r;
}

// The router sends a person without a preview cookie here; signed in (the
// route above made sure), they go back with a one-minute grant for that
// preview's host alone.
Reply Dashboard::previewGrant(Call& c) {
  if (!allowed(c, "GetEnvironment")) return forbidden(c, "Opening a preview", "GetEnvironment");
  auto to = c.params.find("to");
  auto target = checkPreviewTarget(to == c.params.end() ? "" : to->second, config_.routing.domain,
                                   kReservedLabel);
  if (!target) {
    return makeReply(http::status::bad_request,
                     messagePage(context(c), "Not a preview", target.status().message()));
  }
  SessionClaims grant = SessionCodec::make(SessionKind::kGrant, c.who->holder.name, target->slug,
                                           c.now, std::chrono::seconds(60));
  Reply r = redirect(grantRedirect(*target, codec_.seal(grant)));
  r.res.result(http::status::found);
  r.res.set("Referrer-Policy", "no-referrer");
  r.res.set(http::field::cache_control, "no-store");
  return r;
}

}  // namespace qabox::web
