#include <nlohmann/json.hpp>

#include <set>
#include <sstream>

#include "cli/app.h"
#include "cli/completion.h"
#include "cli/exit_code.h"

// The commands on images, the host, the audit log and tokens, and the
// CLI's own: version and completion.
namespace qabox::cli {

using std::chrono::milliseconds;

int Cli::cmdImageBuild() {
  milliseconds timeout = durationOrUsage("--timeout", image_.timeout);
  if (timeout.count() <= 0) throw UsageError("--timeout: must be positive, as 30m");
  if (auto rc = connect()) return *rc;
  v1::BuildImageRequest req;
  req.set_name(name_);
  req.set_force(image_.force);
  auto ctx = client_->context(timeout);
  err_ << "building " << name_ << "...\n";
  v1::Image im;
  grpc::Status s = client_->stub().BuildImage(ctx.get(), req, &im);
  if (!s.ok()) return fail(s);
  return emit(im,
              [&] {
                std::string v = cleanCell(im.name()) + " version " + std::to_string(im.version());
                if (im.cached()) return v + " (current), cached: recipe unchanged\n";
                return v + " built" + (im.current() ? ", now current" : "") + "\n";
              },
              {im.name()});
}

int Cli::cmdImageList() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::ListImagesResponse resp;
  grpc::Status s = client_->stub().ListImages(ctx.get(), {}, &resp);
  if (!s.ok()) return fail(s);
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const auto& im : resp.images()) {
    if (seen.insert(im.name()).second) names.push_back(im.name());
  }
  for (const auto& r : resp.recipes()) {
    if (seen.insert(r).second) names.push_back(r);
  }
  return emit(
      resp, [&] { return formatImagesTable(resp, now()); }, names);
}

int Cli::cmdImageRemove() {
  if (auto rc = connect()) return *rc;
  v1::DeleteImageRequest req;
  req.set_name(name_);
  req.set_version(image_.version);
  auto ctx = client_->context(kSlowUnaryDeadline);
  v1::DeleteImageResponse resp;
  grpc::Status s = client_->stub().DeleteImage(ctx.get(), req, &resp);
  if (!s.ok()) return fail(s);
  std::vector<std::string> names;
  for (const auto& im : resp.deleted()) {
    names.push_back(im.name() + ":" + std::to_string(im.version()));
  }
  return emit(
      resp,
      [&] {
        if (names.empty())
          return std::string("Nothing deleted: every version is in use or current\n");
        std::string text;
        for (const auto& n : names) text += "deleted " + cleanCell(n) + "\n";
        return text;
      },
      names);
}

int Cli::cmdStatus() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::HostStatus status;
  grpc::Status s = client_->stub().GetHostStatus(ctx.get(), {}, &status);
  if (!s.ok()) return fail(s);
  if (output() == Output::kName) {
    out_ << formatHostStatus(status);
    return kExitOk;
  }
  return emit(status, [&] { return formatHostStatus(status); }, {});
}

int Cli::cmdHosts() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::ListHostsResponse resp;
  grpc::Status s = client_->stub().ListHosts(ctx.get(), {}, &resp);
  if (!s.ok()) return fail(s);
  std::vector<std::string> names;
  for (const auto& h : resp.hosts()) names.push_back(h.name());
  return emit(
      resp, [&] { return formatHostsTable(resp); }, names);
}

int Cli::cmdDrain(bool drain) {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::DrainHostRequest req;
  req.set_name(name_);
  req.set_undrain(!drain);
  v1::Host host;
  grpc::Status s = client_->stub().DrainHost(ctx.get(), req, &host);
  if (!s.ok()) return fail(s);
  return emit(
      host,
      [&] {
        return cleanCell(host.name()) + " is " + cleanCell(host.state()) +
               (drain ? ": no new tickets are placed there\n" : ": it takes new tickets again\n");
      },
      {host.name()});
}

int Cli::cmdCheck() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context(kSlowUnaryDeadline);
  v1::CheckInvariantsResponse resp;
  grpc::Status s = client_->stub().CheckInvariants(ctx.get(), {}, &resp);
  if (!s.ok()) return fail(s);
  std::vector<std::string> names;
  for (const auto& v : resp.violations()) names.push_back(v.kind() + " " + v.name());
  int rc = emit(
      resp, [&] { return formatViolationsTable(resp); }, names);
  if (rc != kExitOk) return rc;
  return resp.violations().empty() ? kExitOk : kExitViolations;
}

int Cli::cmdEvents() {
  if (auto rc = connect()) return *rc;
  v1::ListEventsRequest req;
  req.set_ticket(ticket_);
  req.set_limit(events_.limit);
  auto ctx = client_->context();
  v1::ListEventsResponse resp;
  grpc::Status s = client_->stub().ListEvents(ctx.get(), req, &resp);
  if (!s.ok()) return fail(s);
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const auto& e : resp.events()) {
    if (!e.ticket().empty() && seen.insert(e.ticket()).second) names.push_back(e.ticket());
  }
  return emit(
      resp, [&] { return formatEventsTable(resp, now()); }, names);
}

int Cli::cmdTokenCreate() {
  v1::CreateTokenRequest req;
  req.set_name(tokenCmd_.name);
  req.set_role(tokenCmd_.role);
  if (!tokenCmd_.ttl.empty()) {
    milliseconds ttl = durationOrUsage("--ttl", tokenCmd_.ttl);
    if (ttl.count() <= 0) throw UsageError("--ttl: must be positive, as 90d");
    *req.mutable_ttl() = toProtoDuration(ttl);
  }
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::CreateTokenResponse resp;
  grpc::Status s = client_->stub().CreateToken(ctx.get(), req, &resp);
  if (!s.ok()) return fail(s);
  if (output() == Output::kTable) {
    // The secret alone on stdout, so TOKEN=$(qabox token create ...) works.
    err_ << "token " << resp.token().name() << " (" << resp.token().role()
         << ") created; the secret below is shown only once\n";
  }
  return emit(resp, [&] { return resp.secret() + "\n"; }, {resp.token().name()});
}

int Cli::cmdTokenList() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::ListTokensResponse resp;
  grpc::Status s = client_->stub().ListTokens(ctx.get(), {}, &resp);
  if (!s.ok()) return fail(s);
  std::vector<std::string> names;
  for (const auto& t : resp.tokens()) names.push_back(t.name());
  return emit(
      resp, [&] { return formatTokensTable(resp, now()); }, names);
}

int Cli::cmdTokenRevoke() {
  if (auto rc = connect()) return *rc;
  v1::RevokeTokenRequest req;
  req.set_name(name_);
  auto ctx = client_->context();
  v1::RevokeTokenResponse resp;
  grpc::Status s = client_->stub().RevokeToken(ctx.get(), req, &resp);
  if (!s.ok()) return fail(s);
  std::string name = resp.token().name().empty() ? name_ : resp.token().name();
  return emit(resp, [&] { return "token " + cleanCell(name) + " revoked\n"; }, {name});
}

int Cli::cmdVersion() {
  std::string agentVersion;
  std::string problem;
  if (auto rc = connect()) {
    problem = "agent version unknown";
  } else {
    auto ctx = client_->context(kVersionDeadline);
    v1::HostStatus status;
    grpc::Status s = client_->stub().GetHostStatus(ctx.get(), {}, &status);
    if (s.ok()) {
      agentVersion = status.version();
    } else {
      std::ostringstream msg;
      client_->report(s, msg);
      problem = msg.str();
    }
  }
  if (!problem.empty() && output() != Output::kJson) {
    err_ << (problem.back() == '\n' ? problem : problem + "\n");
  }
  if (output() == Output::kJson) {
    // Not a proto message: the CLI's own version has no RPC. Keys in this
    // order; bytes that are not UTF-8 become U+FFFD rather than an error.
    nlohmann::ordered_json json{{"client_version", QABOX_VERSION}, {"agent_version", agentVersion}};
    out_ << json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    out_ << "qabox " << QABOX_VERSION << "\n";
    if (!agentVersion.empty()) {
      out_ << "qaboxd " << cleanCell(agentVersion) << " at " << client_->connection().endpoint
           << "\n";
    }
  }
  return kExitOk;
}

int Cli::cmdCompletion() {
  out_ << bashCompletion(app_, kProgram,
                         {{"--output", "table json name"},
                          {"--policy", "merged idle ttl max_age"},
                          {"--role", "ci reaper ops viewer qa"},
                          {"--ca-cert", "@file"},
                          {"--cert", "@file"},
                          {"--key", "@file"}});
  return kExitOk;
}

}  // namespace qabox::cli
