// The dashboard's pages: the list, an environment, its logs, the host.
#include <spdlog/spdlog.h>

#include "core/url.h"
#include "lifecycle/host_facts.h"
#include "lifecycle/logs.h"
#include "web/dashboard.h"
#include "web/dashboard_internal.h"
#include "web/html.h"

namespace qabox::web {

namespace {

constexpr size_t kLogPageBytes = 64 << 10;  // what a log page shows at first
constexpr uint32_t kEventsShown = 50;

// The notices an action's redirect may ask for, by name: the page never
// prints text the URL chose.
std::string noticeOf(const std::map<std::string, std::string>& params) {
  static const std::map<std::string, std::string> kNotices = {
      {"redeploy", "Redeploy started: the page follows its state."},
      {"wake", "Waking: the page follows its state."},
      {"sleep", "Going to sleep: the page follows its state."},
      {"pin", "Pinned: the reaper leaves it alone."},
      {"unpin", "Unpinned."},
      {"delete", "Delete started."},
  };
  auto it = params.find("done");
  if (it == params.end()) return "";
  auto n = kNotices.find(it->second);
  return n == kNotices.end() ? "" : n->second;
}

Reply failurePage(const PageContext& p, const Status& s) {
  auto status = s.code() == Code::kNotFound             ? http::status::not_found
                : s.code() == Code::kInvalidArgument    ? http::status::bad_request
                : s.code() == Code::kFailedPrecondition ? http::status::conflict
                                                        : http::status::service_unavailable;
  return makeReply(status, messagePage(p, status == http::status::not_found ? "Not found" : "Error",
                                       s.message()));
}

}  // namespace

Result<EnvironmentManager::LogFile> Dashboard::logFileOf(const std::string& ticket, bool deploy,
                                                         const std::string& process) {
  // The lifecycle wakes a sleeping environment to read its app log, which
  // can take a wake's whole timeout: not on the server's threads, and not
  // for a person who only looks.
  if (!deploy) {
    QABOX_ASSIGN_OR_RETURN(Environment e, envs_.get(ticket));
    if (e.state == EnvState::kSleeping) {
      return failedPrecondition(e.ticket + " is asleep: wake it to read its app log");
    }
  }
  return envs_.logPath(ticket, deploy, process);
}

Reply Dashboard::listPage(Call& c, bool fragment) {
  if (!allowed(c, "ListEnvironments")) return forbidden(c, "The list", "ListEnvironments");
  auto envs = envs_.list();
  if (!envs) return failurePage(context(c), envs.status());
  size_t total = envs->size();
  ListQuery q = parseListQuery(c.params);
  std::vector<ListRow> rows;
  for (auto& e : applyListQuery(std::move(*envs), q)) {
    std::string url = config_.urlFor(e.slug);
    rows.push_back({std::move(e), std::move(url)});
  }
  PageContext p = context(c);
  if (fragment) return makeReply(http::status::ok, listRows(p, rows));
  return makeReply(http::status::ok, web::listPage(p, rows, q, total));
}

EnvView Dashboard::viewOf(Call& c, const Environment& e) {
  EnvView v;
  v.env = e;
  v.url = config_.urlFor(e.slug);
  v.access = e.spec.access.empty() ? config_.routing.access : e.spec.access;
  for (const auto& ph : e.phases) v.phases.push_back({ph.phase, ph.took});
  for (const auto& p : envs_.processesOf(e)) {
    v.processes.push_back({p.status.name, p.service,
                           std::string(supervise::stateName(p.status.state)), p.status.pid,
                           p.status.restarts, p.status.message});
  }
  if (allowed(c, "ListEvents")) {
    if (auto evs = store_.listEvents(e.ticket, kEventsShown)) v.events = std::move(*evs);
  }
  v.allowed.redeploy = allowed(c, "RedeployEnvironment");
  v.allowed.wake = allowed(c, "WakeEnvironment");
  v.allowed.sleep = allowed(c, "SleepEnvironment");
  v.allowed.pin = allowed(c, "SetPinned");
  v.allowed.remove = allowed(c, "DeleteEnvironment");
  return v;
}

Reply Dashboard::envPage(Call& c, const std::string& ticket, bool fragment) {
  if (!allowed(c, "GetEnvironment")) return forbidden(c, "An environment's page", "GetEnvironment");
  auto e = envs_.get(ticket);
  if (!e) return failurePage(context(c), e.status());
  PageContext p = context(c);
  p.notice = noticeOf(c.params);
  EnvView v = viewOf(c, *e);
  if (fragment) return makeReply(http::status::ok, envDetails(p, v));
  return makeReply(http::status::ok, web::envPage(p, v));
}

Reply Dashboard::logPage(Call& c, const std::string& ticket) {
  if (!allowed(c, "StreamLogs")) return forbidden(c, "Logs", "StreamLogs");
  bool deploy = c.params["which"] == "deploy";
  std::string process = c.params["process"];
  if (!process.empty() && !validProcessName(process)) {
    return failurePage(context(c), invalidArgument("process: not a process name"));
  }
  auto log = logFileOf(ticket, deploy, process);
  if (!log) return failurePage(context(c), log.status());
  off_t offset = 0;
  std::string text;
  for (;;) {
    auto chunk = readLog(*log, offset, kLogChunkMax);
    if (!chunk) return failurePage(context(c), chunk.status());
    if (chunk->empty()) break;
    text += *chunk;
    if (text.size() > 2 * kLogPageBytes) text.erase(0, text.size() - kLogPageBytes);
  }
  if (text.size() > kLogPageBytes) text.erase(0, text.size() - kLogPageBytes);
  std::string stream =
      "/env/" + urlEncode(ticket) + "/log/stream?which=" + (deploy ? "deploy" : "app") +
      "&from=" + std::to_string(offset) + (process.empty() ? "" : "&process=" + urlEncode(process));
  return makeReply(http::status::ok, web::logPage(context(c), ticket, deploy ? "deploy" : "app",
                                                  process, text, stream));
}

Reply Dashboard::hostPage(Call& c) {
  if (!allowed(c, "GetHostStatus")) return forbidden(c, "The host's page", "GetHostStatus");
  HostView v;
  auto facts = hostFacts(store_, config_);
  if (!facts) return failurePage(context(c), facts.status());
  v.facts = *facts;
  v.version = QABOX_VERSION;
  v.stateDir = config_.stateDir;
  v.domain = config_.routing.domain;
  if (auto uses = imageUses(store_)) v.images = std::move(*uses);
  if (auto evs = store_.listEvents("", 500)) {
    for (auto& e : *evs) {
      if (e.action.rfind("reap", 0) == 0 && v.lastReaps.size() < 20) v.lastReaps.push_back(e);
    }
  }
  if (reaper_) v.lastPass = reaper_->lastPass();
  if (!reaper_) {
    v.dryRunError = "The reaper is not running on this agent.";
  } else if (auto report = reaper_->runOnce(true, "", c.actor())) {
    for (const auto& d : report->reclaimed) v.dryRun.push_back({d.ticket, d.policy, d.reason});
    v.dryRunWarnings = report->warnings;
  } else {
    v.dryRunError = report.status().message();
  }
  return makeReply(http::status::ok, web::hostPage(context(c), v));
}

Reply Dashboard::deleteConfirm(Call& c, const std::string& ticket) {
  if (!allowed(c, "DeleteEnvironment")) return forbidden(c, "Deleting", "DeleteEnvironment");
  auto e = envs_.get(ticket);
  if (!e) return failurePage(context(c), e.status());
  return makeReply(http::status::ok, deleteConfirmPage(context(c), e->ticket));
}

}  // namespace qabox::web
