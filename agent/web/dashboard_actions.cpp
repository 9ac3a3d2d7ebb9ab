// What a person does from an environment's page. Each action is the RPC's
// own lifecycle call, allowed iff the role may call that RPC, run as the
// person (token:<name>), so the lifecycle's events name them. The slow ones
// run on a thread of their own and the page follows their state live.
#include <spdlog/spdlog.h>

#include <thread>

#include "core/url.h"
#include "web/dashboard.h"
#include "web/dashboard_internal.h"
#include "web/html.h"

namespace qabox::web {

namespace {

struct ActionSpec {
  std::string_view name;
  std::string_view rpc;
  std::string_view label;  // for the 403 page
};

constexpr ActionSpec kActions[] = {
    {"redeploy", "RedeployEnvironment", "Redeploying"},
    {"wake", "WakeEnvironment", "Waking"},
    {"sleep", "SleepEnvironment", "Putting to sleep"},
    {"pin", "SetPinned", "Pinning"},
    {"unpin", "SetPinned", "Unpinning"},
    {"delete", "DeleteEnvironment", "Deleting"},
};

void logFailure(const std::string& what, const std::string& ticket, const Status& s) {
  if (!s.isOk()) spdlog::info("dashboard: {} {}: {}", what, ticket, s.toString());
}

}  // namespace

void Dashboard::runInBackground(std::function<void()> work) {
  auto finished = [this] {
    std::lock_guard lock(workMu_);
    --running_;
    workDone_.notify_all();
  };
  try {
    std::thread([work = std::move(work), finished] {
      try {
        work();
      } catch (const std::exception& e) {
        spdlog::error("dashboard: action: {}", e.what());
      }
      finished();
    }).detach();
  } catch (const std::system_error& e) {
    spdlog::error("dashboard: starting an action: {}", e.what());
    finished();
  }
}

Reply Dashboard::action(Call& c, const std::string& ticket, const std::string& what) {
  const ActionSpec* spec = nullptr;
  for (const auto& a : kActions) {
    if (a.name == what) spec = &a;
  }
  if (!spec) return makeReply(http::status::not_found, "no such action\n", "text/plain");
  if (!allowed(c, spec->rpc)) {
    return forbidden(c, std::string(spec->label) + " " + ticket, spec->rpc);
  }
  auto env = envs_.get(ticket);
  if (!env)
    return makeReply(http::status::not_found,
                     messagePage(context(c), "Not found", env.status().message()));
  if (what == "delete" && c.form["confirm"] != env->ticket) {
    PageContext p = context(c);
    p.notice = "Type the ticket exactly to delete it.";
    return makeReply(http::status::bad_request, deleteConfirmPage(p, env->ticket));
  }
  std::string actor = c.actor();
  if (what == "pin" || what == "unpin") {
    auto r = envs_.setPinned(ticket, what == "pin", actor);
    if (!r)
      return makeReply(http::status::conflict,
                       messagePage(context(c), "Not done", r.status().message()));
    return redirect("/env/" + urlEncode(ticket) + "?done=" + what);
  }
  {
    std::lock_guard lock(workMu_);
    if (stopping_ || running_ >= kMaxRunningActions) {
      return makeReply(
          http::status::service_unavailable,
          messagePage(context(c), "Busy", "Too many actions are running; try again soon."));
    }
    ++running_;
  }
  runInBackground([this, ticket, what, actor] {
    if (what == "redeploy") {
      auto r = envs_.redeploy(ticket, false, actor, [](const Progress&) {});
      logFailure(what, ticket, r.status());
    } else if (what == "wake") {
      logFailure(what, ticket, envs_.wake(ticket, actor).status());
    } else if (what == "sleep") {
      logFailure(what, ticket, envs_.sleep(ticket, actor).status());
    } else if (what == "delete") {
      logFailure(what, ticket, envs_.remove(ticket, actor));
    }
  });
  if (what == "delete") return redirect("/?done=delete");
  return redirect("/env/" + urlEncode(ticket) + "?done=" + what);
}

}  // namespace qabox::web
