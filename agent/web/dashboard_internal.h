#pragma once

// What the dashboard's handler files share: one request as they see it.

#include <map>
#include <optional>
#include <string>

#include "server/sessions.h"
#include "web/dashboard.h"

namespace qabox::web {

struct Dashboard::Call {
  explicit Call(const Request& r) : req(r) {}
  const Request& req;
  std::string path;
  std::string query;
  std::map<std::string, std::string> params;  // the query's
  std::map<std::string, std::string> form;    // a POST's urlencoded body
  bool tls = false;                           // X-Forwarded-Proto: https
  std::string host;                           // X-Forwarded-Host (else Host), as sent
  std::string cookies;                        // the Cookie header
  std::optional<SignedIn> who;
  TimePoint now{};

  std::string origin() const { return (tls ? "https://" : "http://") + host; }
  std::string actor() const { return "token:" + who->holder.name; }
  std::string cookieName() const;
};

// 303 See Other to `location` (a path on the dashboard, or an absolute URL).
Reply redirect(const std::string& location);
// text/event-stream's head: no caching, no buffering by a proxy.
Reply eventStreamReply();
// One server-sent event; `data` as a JSON string, so any bytes survive.
std::string sseEvent(std::string_view name, std::string_view data);
std::string jsonString(std::string_view s);
// Ticket and process names as the URL carries them: checked before use.
bool validProcessName(std::string_view name);

}  // namespace qabox::web
