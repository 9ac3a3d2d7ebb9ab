#pragma once

// The dashboard's pages as HTML text. Pure: each takes plain values and
// returns the page; every string that came from an environment, a person or
// the store is escaped (html.h) on its way in. Readable with JavaScript off;
// the script (assets.cpp) only makes the list and the logs live.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/environment.h"
#include "lifecycle/host_facts.h"
#include "reaper/reaper.h"
#include "store/store.h"
#include "web/list_view.h"

namespace qabox::web {

// Who is looking: empty name on the login page.
struct Viewer {
  std::string name;  // the token's name
  std::string role;  // viewer, qa, ops, ci
  std::string csrf;  // the form field every POST carries
};

// What the viewer's role allows on an environment.
struct Allowed {
  bool redeploy = false, wake = false, sleep = false, pin = false, remove = false;
};

struct PageContext {
  Viewer viewer;
  std::string domain;
  TimePoint now{};
  std::string notice;  // a line at the top ("redeploy of X started")
};

struct ListRow {
  Environment env;
  std::string url;
};

// The whole page, and its table body alone (the live update's fragment).
std::string listPage(const PageContext& c, const std::vector<ListRow>& rows, const ListQuery& q,
                     size_t total);
std::string listRows(const PageContext& c, const std::vector<ListRow>& rows);

struct PhaseRow {
  std::string name;
  std::chrono::milliseconds took{0};
};
struct ProcessRow {
  std::string name;
  bool service = false;
  std::string state;
  int64_t pid = 0;
  uint32_t restarts = 0;
  std::string message;
};
struct EnvView {
  Environment env;
  std::string url;
  std::string access;  // open, login
  std::vector<PhaseRow> phases;
  std::vector<ProcessRow> processes;
  std::vector<Event> events;
  Allowed allowed;
};
std::string envPage(const PageContext& c, const EnvView& v);
std::string envDetails(const PageContext& c, const EnvView& v);  // the live fragment

// A log as a page of its own (the last bytes, escaped), with its live tail.
// `stream`: the URL of its live tail (from where `text` ends).
std::string logPage(const PageContext& c, const std::string& ticket, const std::string& which,
                    const std::string& process, const std::string& text, const std::string& stream);

std::string deleteConfirmPage(const PageContext& c, const std::string& ticket);

struct ReapRow {
  std::string ticket, policy, reason;
};
struct HostView {
  HostFacts facts;
  std::string version, stateDir, domain;
  std::vector<ImageUse> images;
  std::optional<Reaper::LastPass> lastPass;  // since the agent started
  std::vector<Event> lastReaps;              // the reaper's latest events
  std::vector<ReapRow> dryRun;
  std::vector<std::string> dryRunWarnings;
  std::string dryRunError;
};
std::string hostPage(const PageContext& c, const HostView& v);

std::string loginPage(const PageContext& c, const std::string& next, const std::string& error);
// 403: which role the action needs.
std::string forbiddenPage(const PageContext& c, const std::string& action,
                          const std::string& needs);
std::string messagePage(const PageContext& c, const std::string& title, const std::string& text);

// CSS classes per state: the colour; the word is always printed beside it.
std::string stateClass(EnvState s);

}  // namespace qabox::web
