#include "web/dashboard.h"

#include <spdlog/spdlog.h>

#include "core/cookie.h"
#include "core/ticket.h"
#include "core/url.h"
#include "proxy/router.h"
#include "web/assets.h"
#include "web/dashboard_internal.h"
#include "web/html.h"

namespace qabox::web {

namespace {

std::string header(const Request& req, http::field f) {
  auto it = req.find(f);
  return it == req.end() ? std::string() : std::string(it->value());
}
std::string header(const Request& req, std::string_view name) {
  auto it = req.find(boost::beast::string_view(name.data(), name.size()));
  return it == req.end() ? std::string() : std::string(it->value());
}

Reply asset(std::string_view body, std::string_view type) {
  Reply r = makeReply(http::status::ok, std::string(body), type);
  r.res.set(http::field::cache_control, "public, max-age=300");
  return r;
}

}  // namespace

std::string Dashboard::Call::cookieName() const { return qabox::cookieName(kSessionCookie, tls); }

Reply redirect(const std::string& location) {
  Reply r = makeReply(http::status::see_other, "", "text/plain");
  r.res.set(http::field::location, location);
  return r;
}

Reply eventStreamReply() {
  Reply r = makeReply(http::status::ok, "", "text/event-stream");
  r.res.set("X-Accel-Buffering", "no");
  return r;
}

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string sseEvent(std::string_view name, std::string_view data) {
  return "event: " + std::string(name) + "\ndata: " + jsonString(data) + "\n\n";
}

bool validProcessName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return name[0] != '.';
}

Dashboard::Dashboard(const Config& config, EnvironmentManager& envs, Store& store, Reaper* reaper,
                     const SessionCodec& codec, const TokenDirectory& tokens, ChangeStamp changes,
                     const TimeSource& time)
    : config_(config),
      envs_(envs),
      store_(store),
      reaper_(reaper),
      codec_(codec),
      tokens_(tokens),
      stamp_(std::move(changes)),
      time_(time) {}

Dashboard::~Dashboard() {
  std::unique_lock lock(workMu_);
  stopping_ = true;
  workDone_.wait(lock, [&] { return running_ == 0; });
}

uint64_t Dashboard::changes() {
  std::lock_guard lock(stampMu_);
  auto now = std::chrono::steady_clock::now();
  if (now - stampAt_ >= std::chrono::milliseconds(200)) {
    stampValue_ = stamp_ ? stamp_() : 0;
    stampAt_ = now;
  }
  return stampValue_;
}

Reply Dashboard::handle(const Request& req) {
  Call c(req);
  Target t = splitTarget(std::string_view(req.target().data(), req.target().size()));
  c.path = t.path;
  c.query = t.query;
  c.params = parseQuery(t.query);
  c.tls = header(req, "X-Forwarded-Proto") == "https";
  c.host = header(req, "X-Forwarded-Host");
  if (c.host.empty()) c.host = header(req, http::field::host);
  c.cookies = header(req, http::field::cookie);
  c.now = time_.now();
  // Only the dashboard's own host name: the router sends no other here, and
  // absolute URLs and the Origin check are built from it.
  auto label = parseHostHeader(c.host, config_.routing.domain);
  if (!label || *label != kReservedLabel) {
    return makeReply(http::status::misdirected_request, "not the dashboard's host\n", "text/plain");
  }
  c.who = signedIn(codec_, tokens_, c.cookies, c.cookieName(), SessionKind::kSession,
                   kReservedLabel, c.now);
  if (req.method() == http::verb::post) c.form = parseQuery(req.body());
  return route(c);
}

Reply Dashboard::route(Call& c) {
  bool get = c.req.method() != http::verb::post;
  if (get && c.path == "/assets/app.css") return asset(appCss(), "text/css; charset=utf-8");
  if (get && c.path == "/assets/app.js") return asset(appJs(), "text/javascript; charset=utf-8");
  if (c.path == "/login") return get ? loginForm(c) : login(c);
  if (!c.who) {
    if (!get || c.path.rfind("/fragment/", 0) == 0 || c.path == "/events" ||
        c.path.find("/log/stream") != std::string::npos) {
      return makeReply(http::status::unauthorized, "sign in first\n", "text/plain");
    }
    return redirect("/login?next=" + urlEncode(std::string(c.req.target())));
  }
  return routeSignedIn(c);
}

Reply Dashboard::routeSignedIn(Call& c) {
  bool get = c.req.method() != http::verb::post;
  if (!get) {
    // Every POST: the session's CSRF token, and the browser's own word on
    // where the form was, when it gives one.
    std::string origin = header(c.req, http::field::origin);
    std::string referer = header(c.req, http::field::referer);
    bool sameOrigin = origin.empty() ? referer.empty() || referer.rfind(c.origin() + "/", 0) == 0
                                     : origin == c.origin();
    auto csrf = c.form.find("csrf");
    if (!sameOrigin || csrf == c.form.end() || !codec_.csrfValid(c.who->claims, csrf->second)) {
      return makeReply(http::status::forbidden,
                       messagePage(context(c), "Refused",
                                   "The form was not the dashboard's own (its CSRF token or "
                                   "origin did not match). Reload the page and try again."));
    }
    if (c.path == "/logout") return logout(c);
  }
  if (get && c.path == "/") return listPage(c, false);
  if (get && c.path == "/fragment/rows") return listPage(c, true);
  if (get && c.path == "/events") return eventStream(c);
  if (get && c.path == "/host") return hostPage(c);
  if (get && c.path == "/auth/preview") return previewGrant(c);
  for (std::string prefix : {"/env/", "/fragment/env/"}) {
    if (c.path.rfind(prefix, 0) != 0) continue;
    std::string rest = c.path.substr(prefix.size());
    size_t slash = rest.find('/');
    auto ticket = urlDecode(rest.substr(0, slash));
    if (!ticket || !parseTicket(*ticket)) break;
    if (prefix == "/fragment/env/")
      return get && slash == std::string::npos ? envPage(c, *ticket, true)
                                               : makeReply(http::status::not_found, "");
    return routeEnv(c, *ticket, slash == std::string::npos ? "" : rest.substr(slash));
  }
  return makeReply(http::status::not_found,
                   messagePage(context(c), "Not found", "The dashboard has no such page."));
}

Reply Dashboard::routeEnv(Call& c, const std::string& ticket, const std::string& rest) {
  bool get = c.req.method() != http::verb::post;
  if (get && rest.empty()) return envPage(c, ticket, false);
  if (get && rest == "/log") return logPage(c, ticket);
  if (get && rest == "/log/stream") return logStream(c, ticket);
  if (get && rest == "/delete") return deleteConfirm(c, ticket);
  if (!get && rest.size() > 1) return action(c, ticket, rest.substr(1));
  return makeReply(http::status::not_found,
                   messagePage(context(c), "Not found", "The dashboard has no such page."));
}

bool Dashboard::allowed(const Call& c, std::string_view rpc) const {
  return c.who && mayCall(c.who->holder.role, std::string(kServicePrefix) + std::string(rpc));
}

Reply Dashboard::forbidden(Call& c, const std::string& what, std::string_view rpc) {
  auto mask = rolesFor(std::string(kServicePrefix) + std::string(rpc)).value_or(0);
  std::string needs;
  for (Role r : {Role::kViewer, Role::kQa, Role::kOps, Role::kCi}) {
    if ((mask & static_cast<uint8_t>(r)) == 0) continue;
    if (!needs.empty()) needs += " or ";
    needs += std::string(roleName(r));
  }
  audit("", "dashboard", c.actor(), "denied", what + " (" + std::string(rpc) + ")");
  return makeReply(http::status::forbidden, forbiddenPage(context(c), what, needs));
}

PageContext Dashboard::context(const Call& c) const {
  PageContext p;
  p.domain = config_.routing.domain;
  p.now = c.now;
  if (c.who) {
    p.viewer.name = c.who->holder.name;
    p.viewer.role = std::string(roleName(c.who->holder.role));
    p.viewer.csrf = codec_.csrfToken(c.who->claims);
  }
  return p;
}

void Dashboard::audit(const std::string& ticket, const std::string& action,
                      const std::string& actor, const std::string& outcome,
                      const std::string& detail) {
  Event e;
  e.at = time_.now();
  e.ticket = ticket;
  e.action = action;
  e.actor = actor;
  e.outcome = outcome;
  e.detail = detail;
  if (Status s = store_.addEvent(e); !s.isOk()) spdlog::warn("dashboard: event: {}", s.toString());
}

}  // namespace qabox::web
