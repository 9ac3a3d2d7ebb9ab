#include <string>

#include "web/html.h"
#include "web/pages.h"
#include "web/pages_internal.h"

namespace qabox::web {

using std::string;
using namespace page;

namespace {

string row(const string& name, const string& valueHtml) {
  return "<tr><th>" + name + "</th><td>" + valueHtml + "</td></tr>";
}

string actionButton(const PageContext& c, const string& ticket, const string& action,
                    const string& label) {
  return "<form method=\"post\" action=\"/env/" + urlEncode(ticket) + "/" + action + "\">" +
         csrfField(c) + "<button type=\"submit\" name=\"do\" value=\"" + action + "\">" + label +
         "</button></form>";
}

string actions(const PageContext& c, const EnvView& v) {
  const string& t = v.env.ticket;
  string h = "<div class=\"actions\">";
  if (v.allowed.redeploy) h += actionButton(c, t, "redeploy", "Redeploy");
  if (v.allowed.wake && v.env.state == EnvState::kSleeping) h += actionButton(c, t, "wake", "Wake");
  if (v.allowed.sleep && v.env.state == EnvState::kReady) h += actionButton(c, t, "sleep", "Sleep");
  if (v.allowed.pin) {
    h += v.env.pinned ? actionButton(c, t, "unpin", "Unpin") : actionButton(c, t, "pin", "Pin");
  }
  if (v.allowed.remove) {
    h += "<a class=\"button danger\" href=\"/env/" + urlEncode(t) + "/delete\">Delete…</a>";
  }
  if (h == "<div class=\"actions\">")
    h += "<p class=\"muted\">Your role (" + escape(c.viewer.role) + ") can only look.</p>";
  return h + "</div>";
}

string phases(const EnvView& v) {
  if (v.phases.empty()) return "<p class=\"muted\">No deploy phases recorded.</p>";
  string h = "<table class=\"phases\"><thead><tr><th>Phase</th><th>Took</th></tr></thead><tbody>";
  std::chrono::milliseconds total{0};
  for (const auto& p : v.phases) {
    h += "<tr><td>" + escape(p.name) + "</td><td>" + took(p.took) + "</td></tr>";
    total += p.took;
  }
  return h + "<tr class=\"total\"><td>total</td><td>" + took(total) + "</td></tr></tbody></table>";
}

string processes(const EnvView& v) {
  string h = "<ul class=\"logs\"><li><a href=\"/env/" + urlEncode(v.env.ticket) +
             "/log?which=deploy\">Deploy log</a></li><li><a href=\"/env/" +
             urlEncode(v.env.ticket) + "/log?which=app\">App log</a></li></ul>";
  if (v.processes.empty()) return h;
  h += "<table class=\"processes\"><thead><tr><th>Process</th><th>Kind</th><th>State</th>"
       "<th>PID</th><th>Restarts</th><th>Message</th><th>Log</th></tr></thead><tbody>";
  for (const auto& p : v.processes) {
    h += "<tr><td>" + escape(p.name) + "</td><td>" + (p.service ? "service" : "process") +
         "</td><td>" + escape(p.state) + "</td><td>" + std::to_string(p.pid) + "</td><td>" +
         std::to_string(p.restarts) + "</td><td>" + escape(p.message) + "</td><td><a href=\"/env/" +
         urlEncode(v.env.ticket) + "/log?which=app&amp;process=" + urlEncode(p.name) +
         "\">log</a></td></tr>";
  }
  return h + "</tbody></table>";
}

string events(const PageContext& c, const std::vector<Event>& evs) {
  string h =
      "<table class=\"events\"><thead><tr><th>When</th><th>Action</th><th>By</th>"
      "<th>Outcome</th><th>Detail</th></tr></thead><tbody>";
  for (const auto& e : evs) {
    h += "<tr><td title=\"" + utc(e.at) + "\">" + ago(e.at, c.now) + "</td><td>" +
         escape(e.action) + "</td><td>" + escape(e.actor) + "</td><td>" + escape(e.outcome) +
         "</td><td>" + escape(e.detail) + "</td></tr>";
  }
  if (evs.empty()) h += "<tr><td colspan=\"5\" class=\"empty\">No events.</td></tr>";
  return h + "</tbody></table>";
}

}  // namespace

string envDetails(const PageContext& c, const EnvView& v) {
  const Environment& e = v.env;
  string t =
      "<table class=\"details\">" + row("State", stateBadge(e.state) + " " + flags(e)) +
      row("URL", "<a href=\"" + escape(v.url) + "\">" + escape(v.url) + "</a>") +
      row("Access", escape(v.access)) + row("Repo", escape(e.spec.repo)) +
      row("Source → target", escape(e.spec.sourceBranch) + " → " + escape(e.spec.targetBranch)) +
      row("Commit", "<code>" + escape(e.commit) + "</code>") +
      (e.spec.targetBranch.empty() || e.targetCommit.empty()
           ? string()
           : row("Target",
                 escape(e.spec.targetBranch) + " merged at <code>" +
                     escape(e.targetCommit.substr(0, 12)) + "</code>" +
                     (e.behind == 0
                          ? ", up to date"
                          : "; now at <code>" + escape(e.targetHead.substr(0, 12)) + "</code>, " +
                                std::to_string(e.behind) + " commits ahead"))) +
      row("Image", escape(e.spec.image) + " v" + std::to_string(e.imageVersion)) +
      row("Address", escape(e.ip) + ":" + std::to_string(e.port)) +
      row("Created", utc(e.createdAt) + " (" + ago(e.createdAt, c.now) + ")") +
      row("Deployed", e.deployedAt == TimePoint{} ? "—" : utc(e.deployedAt)) +
      row("Last used", ago(e.lastAccessAt, c.now)) +
      row("Requests", std::to_string(e.requestCount) + " (" + bytes(e.bytesIn) + " in, " +
                          bytes(e.bytesOut) + " out)");
  if (!e.message.empty())
    t += row("Message", "<span class=\"why\">" + escape(e.message) + "</span>");
  t += "</table>";
  return t + actions(c, v) + "<h2>Deploy phases</h2>" + phases(v) + "<h2>Logs</h2>" + processes(v) +
         "<h2>Events</h2>" + events(c, v.events);
}

string envPage(const PageContext& c, const EnvView& v) {
  string body = "<p><a href=\"/\">← Environments</a></p><h1>" + escape(v.env.ticket) +
                "</h1><div id=\"details\">" + envDetails(c, v) + "</div>";
  return layout(c, v.env.ticket, body,
                " data-live=\"env\" data-ticket=\"" + escape(v.env.ticket) + "\"");
}

string logPage(const PageContext& c, const string& ticket, const string& which,
               const string& process, const string& text, const string& stream) {
  string title = (which == "deploy" ? "Deploy log" : "App log") +
                 (process.empty() ? string() : " of " + process);
  string body = "<p><a href=\"/env/" + urlEncode(ticket) + "\">← " + escape(ticket) +
                "</a></p><h1>" + escape(title) + " <small>" + escape(ticket) +
                "</small></h1><p class=\"muted\" id=\"tail-state\">The last 64 KiB; "
                "with JavaScript on it follows the log live.</p><pre id=\"log\">" +
                escape(text) + "</pre>";
  return layout(c, title, body, " data-live=\"log\" data-stream=\"" + escape(stream) + "\"");
}

string deleteConfirmPage(const PageContext& c, const string& ticket) {
  string body =
      "<h1>Delete " + escape(ticket) + "?</h1><p>The environment <strong>" + escape(ticket) +
      "</strong>, its container, data and address go; this cannot be undone.</p>"
      "<form method=\"post\" action=\"/env/" +
      urlEncode(ticket) + "/delete\">" + csrfField(c) +
      "<label>Type the ticket to confirm: <input name=\"confirm\" autocomplete=\"off\" "
      "required></label> <button class=\"danger\" type=\"submit\">Delete " +
      escape(ticket) + "</button> <a href=\"/env/" + urlEncode(ticket) + "\">Cancel</a></form>";
  return layout(c, "Delete " + ticket, body);
}

string loginPage(const PageContext& c, const string& next, const string& error) {
  string body =
      "<h1>Sign in</h1>" +
      (error.empty() ? string() : "<p class=\"error\" role=\"alert\">" + escape(error) + "</p>") +
      "<form class=\"login\" method=\"post\" action=\"/login\"><input type=\"hidden\" "
      "name=\"next\" value=\"" +
      escape(next) +
      "\"><label>Your token <input type=\"password\" name=\"token\" autocomplete=\"off\" "
      "required autofocus></label> <button type=\"submit\">Sign in</button></form>"
      "<p class=\"muted\">Ops make one per person: <code>qabox token create --role viewer|qa "
      "--name alice</code>; it is shown once.</p>";
  return layout(c, "Sign in", body);
}

string forbiddenPage(const PageContext& c, const string& action, const string& needs) {
  string body = "<h1>Not allowed</h1><p>" + escape(action) + " needs the role <strong>" +
                escape(needs) + "</strong>; you are signed in as " + escape(c.viewer.name) +
                " with the role <strong>" + escape(c.viewer.role) +
                "</strong>.</p><p><a href=\"/\">← Environments</a></p>";
  return layout(c, "Not allowed", body);
}

string messagePage(const PageContext& c, const string& title, const string& text) {
  return layout(c, title,
                "<h1>" + escape(title) + "</h1><p>" + escape(text) +
                    "</p><p><a href=\"/\">← Environments</a></p>");
}

}  // namespace qabox::web
