#pragma once

// The web dashboard: what each URL of qabox.<domain> answers, behind the
// dashboard's session (server/sessions.h). The router forwards that host to
// the dashboard's loopback HTTP server (http_server.h) with X-Forwarded-*,
// from which the dashboard takes the scheme (cookie names, Secure) and the
// host it was asked for (absolute URLs, the Origin check).
//
// Who may do what is kRpcAccess (server/auth.h), nothing of its own: a page
// or an action is allowed iff the person's role may call the RPC that does
// the same (the list: ListEnvironments, redeploy: RedeployEnvironment, ...).
// Every POST carries the session's CSRF token and, when the browser sends an
// Origin or a Referer, it must be the dashboard's own. Actions run as
// `token:<name>`, the caller name the API gives the same token, so events
// name the person.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "lifecycle/manager.h"
#include "reaper/reaper.h"
#include "server/sessions.h"
#include "store/store.h"
#include "web/http_server.h"
#include "web/pages.h"

namespace qabox::web {

// A number that changes whenever an environment's state or the events do
// (the daemon: the route table's version and the newest event's id).
using ChangeStamp = std::function<uint64_t()>;

class Dashboard {
 public:
  // Everything referenced must outlive the dashboard; `reaper` may be null.
  Dashboard(const Config& config, EnvironmentManager& envs, Store& store, Reaper* reaper,
            const SessionCodec& codec, const TokenDirectory& tokens, ChangeStamp changes,
            const TimeSource& time = systemTime());
  ~Dashboard();  // waits for the actions still running
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // The HttpServer's handler.
  Reply handle(const Request& req);

  // The change stamp, read at most every 200 ms whatever the number of streams.
  uint64_t changes();

  struct Call;  // one request, as the handlers see it

 private:
  Reply route(Call& c);
  Reply routeSignedIn(Call& c);
  Reply routeEnv(Call& c, const std::string& ticket, const std::string& rest);
  // Pages
  Reply listPage(Call& c, bool fragment);
  Reply envPage(Call& c, const std::string& ticket, bool fragment);
  Reply logPage(Call& c, const std::string& ticket);
  // A log to read; never one that needs a wake first (FAILED_PRECONDITION).
  Result<EnvironmentManager::LogFile> logFileOf(const std::string& ticket, bool deploy,
                                                const std::string& process);
  Reply hostPage(Call& c);
  Reply loginForm(Call& c);
  Reply login(Call& c);
  Reply logout(Call& c);
  Reply previewGrant(Call& c);
  // Streams
  Reply eventStream(Call& c);
  Reply logStream(Call& c, const std::string& ticket);
  // Actions
  Reply action(Call& c, const std::string& ticket, const std::string& what);
  Reply deleteConfirm(Call& c, const std::string& ticket);
  void runInBackground(std::function<void()> work);

  bool allowed(const Call& c, std::string_view rpc) const;
  Reply forbidden(Call& c, const std::string& what, std::string_view rpc);
  PageContext context(const Call& c) const;
  EnvView viewOf(Call& c, const Environment& e);
  void audit(const std::string& ticket, const std::string& action, const std::string& actor,
             const std::string& outcome, const std::string& detail);

  const Config& config_;
  EnvironmentManager& envs_;
  Store& store_;
  Reaper* reaper_;
  const SessionCodec& codec_;
  const TokenDirectory& tokens_;
  ChangeStamp stamp_;
  const TimeSource& time_;

  std::mutex stampMu_;
  uint64_t stampValue_ = 0;
  std::chrono::steady_clock::time_point stampAt_{};

  std::mutex workMu_;
  std::condition_variable workDone_;
  size_t running_ = 0;
  bool stopping_ = false;
};

// How many actions may run at once (redeploys, deletes, wakes, sleeps);
// beyond that an action is answered 503.
inline constexpr size_t kMaxRunningActions = 8;

}  // namespace qabox::web
