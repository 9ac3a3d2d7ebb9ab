#include "web/pages.h"

#include "web/html.h"
#include "web/pages_internal.h"

namespace qabox::web {

using std::string;

namespace page {

string shortCommit(const string& c) { return escape(c.substr(0, 12)); }

string envLink(const string& ticket) {
  return "<a href=\"/env/" + urlEncode(ticket) + "\">" + escape(ticket) + "</a>";
}

string stateBadge(EnvState s) {
  return "<span class=\"state " + stateClass(s) + "\">" + string(stateName(s)) + "</span>";
}

string csrfField(const PageContext& c) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + escape(c.viewer.csrf) + "\">";
}

string layout(const PageContext& c, const string& title, const string& body,
              const string& bodyAttrs) {
  string h =
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      escape(title) +
      " · qabox</title><link rel=\"stylesheet\" href=\"/assets/app.css\">"
      "<script src=\"/assets/app.js\" defer></script></head><body" +
      bodyAttrs + "><header><a class=\"brand\" href=\"/\">qabox</a> <span class=\"domain\">" +
      escape(c.domain) + "</span>";
  if (!c.viewer.name.empty()) {
    h += "<nav><a href=\"/\">Environments</a> <a href=\"/host\">Host</a></nav>"
         "<form class=\"signout\" method=\"post\" action=\"/logout\">" +
         csrfField(c) + "<span class=\"who\">" + escape(c.viewer.name) + " (" +
         escape(c.viewer.role) + ")</span> <button type=\"submit\">Sign out</button></form>";
  }
  h += "</header><main>";
  if (!c.notice.empty()) h += "<p class=\"notice\" role=\"status\">" + escape(c.notice) + "</p>";
  return h + body + "</main></body></html>";
}

string sortLink(const ListQuery& q, const string& column, const string& label) {
  ListQuery next = q;
  next.sort = column;
  next.descending = q.sort == column && !q.descending;
  string mark = q.sort == column ? (q.descending ? " ▼" : " ▲") : "";
  return "<th><a href=\"/?" + escape(listQueryString(next)) + "\">" + label + mark + "</a></th>";
}

string filterForm(const ListQuery& q) {
  string f =
      "<form class=\"filter\" method=\"get\" action=\"/\" id=\"filter\">"
      "<input type=\"search\" name=\"q\" placeholder=\"Filter: ticket, branch, repo, "
      "commit…\" aria-label=\"Filter\" value=\"" +
      escape(q.text) +
      "\"><select name=\"state\" aria-label=\"State\"><option value=\"\">any state</option>";
  for (EnvState s :
       {EnvState::kReady, EnvState::kDeploying, EnvState::kCreating, EnvState::kSleeping,
        EnvState::kFailed, EnvState::kBroken, EnvState::kDeleting}) {
    string n(stateName(s));
    f += "<option" + string(q.state == n ? " selected" : "") + ">" + n + "</option>";
  }
  f += "</select>";
  if (q.sort != "ticket")
    f += "<input type=\"hidden\" name=\"sort\" value=\"" + escape(q.sort) + "\">";
  if (q.descending) f += "<input type=\"hidden\" name=\"dir\" value=\"desc\">";
  return f + "<button type=\"submit\">Filter</button></form>";
}

string flags(const Environment& e) {
  string f;
  if (e.state == EnvState::kSleeping) f += "<span class=\"flag\">sleeping</span> ";
  if (e.pinned) f += "<span class=\"flag\">pinned</span>";
  if (e.behind > 0 && !e.spec.targetBranch.empty()) {
    f += " <span class=\"flag stale\" title=\"" + escape(e.spec.targetBranch) + " is at " +
         escape(e.targetHead.substr(0, 12)) + ": deploy again to bring it up to date\">behind " +
         escape(e.spec.targetBranch) + " by " + std::to_string(e.behind) + "</span>";
  }
  return f;
}

}  // namespace page

using namespace page;

string stateClass(EnvState s) {
  switch (s) {
    case EnvState::kReady: return "ready";
    case EnvState::kCreating:
    case EnvState::kDeploying: return "busy";
    case EnvState::kDeleting: return "deleting";
    case EnvState::kSleeping: return "sleeping";
    case EnvState::kFailed:
    case EnvState::kBroken: return "failed";
  }
  return "busy";
}

string listRows(const PageContext& c, const std::vector<ListRow>& rows) {
  string h;
  h.reserve(rows.size() * 900);
  for (const auto& r : rows) {
    const Environment& e = r.env;
    string branches = e.spec.repo.empty()
                          ? "—"
                          : escape(e.spec.sourceBranch) + " → " + escape(e.spec.targetBranch);
    h += "<tr data-ticket=\"" + escape(e.ticket) + "\"><td>" + envLink(e.ticket) + "</td><td>" +
         stateBadge(e.state) + "</td><td><a href=\"" + escape(r.url) + "\">" + escape(r.url) +
         "</a></td><td>" + escape(e.spec.repo) + "</td><td>" + branches + "</td><td><code>" +
         shortCommit(e.commit) + "</code></td><td>" + escape(e.spec.image) + " v" +
         std::to_string(e.imageVersion) + "</td><td>" + ago(e.createdAt, c.now) + "</td><td>" +
         ago(e.lastAccessAt, c.now) + "</td><td>" + flags(e) + "</td><td class=\"why\">" +
         (e.state == EnvState::kFailed || e.state == EnvState::kBroken ? escape(e.message) : "") +
         "</td></tr>";
  }
  if (rows.empty()) h = "<tr><td colspan=\"11\" class=\"empty\">No environments.</td></tr>";
  return h;
}

string listPage(const PageContext& c, const std::vector<ListRow>& rows, const ListQuery& q,
                size_t total) {
  string body =
      "<h1>Environments <small>" + std::to_string(rows.size()) + " of " + std::to_string(total) +
      "</small></h1>" + filterForm(q) + "<table class=\"list\"><thead><tr>" +
      sortLink(q, "ticket", "Ticket") + sortLink(q, "state", "State") + "<th>URL</th>" +
      sortLink(q, "repo", "Repo") + sortLink(q, "source", "Source → target") + "<th>Commit</th>" +
      sortLink(q, "image", "Image") + sortLink(q, "age", "Age") + sortLink(q, "used", "Last used") +
      "<th>Sleeping / pinned</th><th>Why it failed</th></tr></thead>"
      "<tbody id=\"rows\">" +
      listRows(c, rows) + "</tbody></table>";
  return layout(c, "Environments", body, " data-live=\"list\"");
}

}  // namespace qabox::web
