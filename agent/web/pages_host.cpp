#include <string>

#include "web/html.h"
#include "web/pages.h"
#include "web/pages_internal.h"

namespace qabox::web {

using std::string;
using namespace page;

namespace {

string fact(const string& name, const string& value) {
  return "<tr><th>" + name + "</th><td>" + value + "</td></tr>";
}

string capacity(const HostView& v) {
  const HostFacts& f = v.facts;
  string states;
  for (const auto& [state, n] : f.byState) states += escape(state) + " " + std::to_string(n) + ", ";
  if (!states.empty()) states.resize(states.size() - 2);
  auto used = [](std::optional<uint64_t> total, std::optional<uint64_t> free) {
    if (!total || !free) return string("unknown");
    return bytes(*total - *free) + " used of " + bytes(*total) + " (" + bytes(*free) + " free)";
  };
  return "<table class=\"details\">" + fact("Version", escape(v.version)) +
         fact("Domain", escape(v.domain)) + fact("State dir", escape(v.stateDir)) +
         fact("Environments", std::to_string(f.environments) + " of " +
                                  std::to_string(f.maxEnvironments) + " (" +
                                  std::to_string(f.capacityLeft) + " more may be made)") +
         fact("By state", states.empty() ? "—" : states) +
         fact("Addresses left", f.addressesLeft ? std::to_string(*f.addressesLeft) : "unknown") +
         fact("Memory", used(f.memoryTotalBytes, f.memoryAvailableBytes)) +
         fact("Disk", used(f.diskTotalBytes, f.diskFreeBytes)) + "</table>";
}

string images(const HostView& v) {
  string h =
      "<table><thead><tr><th>Image</th><th>Version</th><th>Current</th><th>Parent</th>"
      "<th>Built</th><th>Environments</th></tr></thead><tbody>";
  for (const auto& u : v.images) {
    const ImageVersion& im = u.image;
    h += "<tr><td>" + escape(im.name) + "</td><td>v" + std::to_string(im.version) + "</td><td>" +
         (im.current ? "current" : "") + "</td><td>" +
         (im.parent.empty() ? string("—")
                            : escape(im.parent) + " v" + std::to_string(im.parentVersion)) +
         "</td><td>" + utc(im.builtAt) + "</td><td>" + std::to_string(u.environments) +
         "</td></tr>";
  }
  if (v.images.empty()) h += "<tr><td colspan=\"6\" class=\"empty\">No images built.</td></tr>";
  return h + "</tbody></table>";
}

// The last pass itself, whatever it reclaimed: nothing reclaimed leaves no event.
string lastPass(const PageContext& c, const HostView& v) {
  if (!v.lastPass) return "<h2>The reaper's last pass</h2><p>None since the agent started.</p>";
  const auto& p = *v.lastPass;
  string h =
      "<h2>The reaper's last pass</h2><p><span title=\"" + utc(p.at) + "\">" + ago(p.at, c.now) +
      "</span> by " + escape(p.actor) + (p.policy.empty() ? "" : " (" + escape(p.policy) + ")") +
      ": " + std::to_string(p.environments) + " environments judged, " +
      std::to_string(p.reclaimed) + " reclaimed, " + std::to_string(p.failed) + " failed.</p>";
  for (const auto& w : p.warnings) h += "<p class=\"warning\">" + escape(w) + "</p>";
  return h;
}

string reaper(const PageContext& c, const HostView& v) {
  string h = lastPass(c, v) +
             "<h2>What it reclaimed lately</h2><table><thead><tr><th>When</th><th>Ticket</th>"
             "<th>By</th><th>Outcome</th><th>Detail</th></tr></thead><tbody>";
  for (const auto& e : v.lastReaps) {
    h += "<tr><td title=\"" + utc(e.at) + "\">" + ago(e.at, c.now) + "</td><td>" +
         escape(e.ticket) + "</td><td>" + escape(e.actor) + "</td><td>" + escape(e.outcome) +
         "</td><td>" + escape(e.detail) + "</td></tr>";
  }
  if (v.lastReaps.empty()) {
    h += "<tr><td colspan=\"5\" class=\"empty\">Nothing reclaimed yet.</td></tr>";
  }
  h += "</tbody></table><h2>What it would reclaim now <small>(dry run)</small></h2>";
  if (!v.dryRunError.empty()) return h + "<p class=\"error\">" + escape(v.dryRunError) + "</p>";
  h += "<table><thead><tr><th>Ticket</th><th>Policy</th><th>Reason</th></tr></thead><tbody>";
  for (const auto& r : v.dryRun) {
    h += "<tr><td>" + envLink(r.ticket) + "</td><td>" + escape(r.policy) + "</td><td>" +
         escape(r.reason) + "</td></tr>";
  }
  if (v.dryRun.empty()) h += "<tr><td colspan=\"3\" class=\"empty\">Nothing is due.</td></tr>";
  h += "</tbody></table>";
  for (const auto& w : v.dryRunWarnings) h += "<p class=\"warning\">" + escape(w) + "</p>";
  return h;
}

}  // namespace

string hostPage(const PageContext& c, const HostView& v) {
  string body = "<h1>Host</h1>" + capacity(v) + "<h2>Images</h2>" + images(v) + reaper(c, v);
  return layout(c, "Host", body);
}

}  // namespace qabox::web
