#include <sstream>

#include "cli/app.h"
#include "cli/exit_code.h"
#include "cli/progress.h"

// The commands on environments: deploy, list, get, delete, logs, exec, reap,
// pin and unpin, sleep and wake.
namespace qabox::cli {

using std::chrono::milliseconds;

v1::DeployRequest Cli::deployRequest() const {
  v1::DeployRequest req;
  req.set_ticket(deploy_.ticket);
  req.set_image(deploy_.image);
  req.set_repo(deploy_.repo);
  req.set_source_branch(deploy_.source);
  req.set_target_branch(deploy_.target);
  for (const auto& [k, v] : assignments("--env", deploy_.env)) (*req.mutable_env())[k] = v;
  for (const auto& [k, v] : assignments("--secret", deploy_.secrets)) {
    (*req.mutable_secrets())[k] = v;
  }
  req.set_force(deploy_.force);
  req.set_access(deploy_.access);
  req.set_host(deploy_.host);
  if (!deploy_.memory.empty() || deploy_.cpus || deploy_.pids) {
    req.mutable_limits()->set_memory(deploy_.memory);
    req.mutable_limits()->set_cpus(deploy_.cpus);
    req.mutable_limits()->set_pids(deploy_.pids);
  }
  if (!deploy_.ttl.empty()) {
    milliseconds ttl = durationOrUsage("--ttl", deploy_.ttl);
    if (ttl.count() <= 0) throw UsageError("--ttl: must be positive, as 48h");
    *req.mutable_ttl() = toProtoDuration(ttl);
  }
  return req;
}

int Cli::cmdDeploy() {
  v1::DeployRequest req = deployRequest();
  return followDeploy(req.ticket(),
                      [&](grpc::ClientContext* ctx) { return client_->stub().Deploy(ctx, req); });
}

int Cli::cmdRedeploy() {
  v1::RedeployEnvironmentRequest req;
  req.set_ticket(ticket_);
  req.set_force(deploy_.force);
  deploy_.ticket = ticket_;
  return followDeploy(req.ticket(), [&](grpc::ClientContext* ctx) {
    return client_->stub().RedeployEnvironment(ctx, req);
  });
}

int Cli::followDeploy(const std::string& ticket,
                      const std::function<DeployStream(grpc::ClientContext*)>& open) {
  milliseconds timeout = durationOrUsage("--timeout", deploy_.timeout);
  if (timeout.count() <= 0) throw UsageError("--timeout: must be positive, as 10m");
  if (auto rc = connect()) return *rc;

  auto ctx = client_->context(timeout);
  auto reader = open(ctx.get());
  auto progress = makeDeployProgress(err_, options_.stderrIsTerminal, errStyle_, ticket);
  auto started = std::chrono::steady_clock::now();
  DeployOutcome outcome;
  v1::DeployEvent event;
  while (reader->Read(&event)) {
    outcome.sawEvent = true;
    if (event.has_environment()) {
      outcome.final = event.environment();
      outcome.failed = event.phase() == "failed";
    } else {
      progress->phase(event);
    }
    if (!deploy_.wait) break;
  }
  if (!deploy_.wait && outcome.sawEvent && !outcome.final) {
    // The agent finishes a deploy whose caller went away, so leaving now
    // does not abandon it. Finish says CANCELLED, as asked: nothing to report.
    ctx->TryCancel();
    (void)reader->Finish();
    progress->finish();
    auto getCtx = client_->context();
    v1::Environment env;
    grpc::Status s = client_->stub().GetEnvironment(getCtx.get(), ticketRequest(ticket), &env);
    if (!s.ok()) return fail(s);
    return emitEnvironmentLine(env);
  }
  grpc::Status status = reader->Finish();
  progress->finish();
  if (status.ok() && !outcome.final) {
    err_ << "qabox: the agent ended the deploy without reporting the environment\n";
    return kExitError;
  }
  return deployFinished(
      status, outcome,
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started));
}

// After the stream ended: a deadline, a failure, or the environment.
int Cli::deployFinished(const grpc::Status& status, const DeployOutcome& outcome,
                        milliseconds took) {
  if (!status.ok()) {
    // Without wait_for_ready an absent agent fails fast with UNAVAILABLE,
    // so a deadline here means the agent took the deploy and is still on it.
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      err_ << "qabox: gave up waiting after " << deploy_.timeout
           << "; the deploy goes on in the agent: follow it with qabox get " << deploy_.ticket
           << "\n";
      return kExitUnavailable;
    }
    return fail(status);
  }
  const v1::Environment& final = *outcome.final;
  if (final.state() == v1::Environment::FAILED || outcome.failed) {
    emitEnvironmentLine(final);
    err_ << "qabox: deploy of " << final.ticket() << " failed";
    if (!final.message().empty()) err_ << ": " << final.message();
    err_ << "\nqabox: see the hook output with: qabox logs " << final.ticket() << " --deploy\n";
    return kExitDeployFailed;
  }
  if (output() == Output::kTable) err_ << "deployed in " << elapsed(took) << "\n";
  return emitEnvironmentLine(final);
}

int Cli::emitEnvironmentLine(const v1::Environment& env) {
  return emit(env,
              [&] {
                std::string line =
                    cleanCell(env.ticket()) + " " + coloredState(env.state(), outStyle_);
                if (!env.url().empty()) line += " " + cleanCell(env.url());
                if (!env.commit().empty()) line += " (commit " + shortCommit(env.commit()) + ")";
                if (env.pinned()) line += " pinned";
                return line + "\n";
              },
              {env.ticket()});
}

v1::GetEnvironmentRequest Cli::ticketRequest(const std::string& ticket) {
  v1::GetEnvironmentRequest req;
  req.set_ticket(ticket);
  return req;
}

int Cli::cmdList() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::ListEnvironmentsResponse resp;
  v1::ListEnvironmentsRequest req;
  req.set_local(listLocal_);
  grpc::Status s = client_->stub().ListEnvironments(ctx.get(), req, &resp);
  if (!s.ok()) return fail(s);
  // The table shows them too; JSON and names go to scripts on stdout.
  if (output() != Output::kTable) {
    for (const auto& w : resp.warnings()) err_ << "qabox: warning: " << w << "\n";
  }
  std::vector<std::string> names;
  for (const auto& e : resp.environments()) names.push_back(e.ticket());
  return emit(
      resp, [&] { return formatEnvironmentTable(resp, now(), outStyle_); }, names);
}

int Cli::cmdGet() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context();
  v1::Environment env;
  grpc::Status s = client_->stub().GetEnvironment(ctx.get(), ticketRequest(ticket_), &env);
  if (!s.ok()) return fail(s);
  if (output() != Output::kTable) return emit(env, nullptr, {env.ticket()});
  v1::ListEventsRequest evReq;
  evReq.set_ticket(env.ticket());
  evReq.set_limit(10);
  v1::ListEventsResponse events;
  auto evCtx = client_->context();
  grpc::Status es = client_->stub().ListEvents(evCtx.get(), evReq, &events);
  if (!es.ok()) err_ << "qabox: events not shown: " << es.error_message() << "\n";
  out_ << formatEnvironment(env, es.ok() ? &events : nullptr, now(), outStyle_);
  out_.flush();
  return kExitOk;
}

int Cli::cmdDelete() {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context(kSlowUnaryDeadline);
  v1::DeleteEnvironmentRequest req;
  req.set_ticket(ticket_);
  v1::DeleteEnvironmentResponse resp;
  grpc::Status s = client_->stub().DeleteEnvironment(ctx.get(), req, &resp);
  if (!s.ok()) return fail(s);
  std::string ticket = resp.ticket().empty() ? ticket_ : resp.ticket();
  return emit(resp, [&] { return cleanCell(ticket) + " deleted\n"; }, {ticket});
}

int Cli::cmdLogs() {
  if (auto rc = connect()) return *rc;
  v1::StreamLogsRequest req;
  req.set_ticket(ticket_);
  req.set_deploy(logs_.deploy);
  req.set_follow(logs_.follow);
  req.set_tail(logs_.tail);
  req.set_process(logs_.process);
  // No deadline: a followed log streams until interrupted.
  auto ctx = client_->context(std::nullopt);
  auto reader = client_->stub().StreamLogs(ctx.get(), req);
  v1::LogChunk chunk;
  while (reader->Read(&chunk)) {
    if (output() == Output::kJson) {
      out_ << toJson(chunk) << "\n";
    } else {
      out_.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    }
    out_.flush();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return fail(s);
  return kExitOk;
}

int Cli::cmdExec() {
  v1::ExecRequest req;
  req.set_ticket(ticket_);
  for (const auto& a : exec_.argv) req.add_argv(a);
  for (const auto& [k, v] : assignments("--env", exec_.env)) (*req.mutable_env())[k] = v;
  std::optional<milliseconds> deadline;
  if (!exec_.timeout.empty()) {
    milliseconds t = durationOrUsage("--timeout", exec_.timeout);
    if (t.count() <= 0) throw UsageError("--timeout: must be positive, as 10m");
    *req.mutable_timeout() = toProtoDuration(t);
    // The agent enforces the timeout; ours only covers an agent that hangs.
    deadline = t + std::chrono::seconds(30);
  }
  if (exec_.sendStdin && options_.in != nullptr) {
    std::ostringstream data;
    data << options_.in->rdbuf();
    req.set_stdin(data.str());
  }
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context(deadline);
  auto reader = client_->stub().Exec(ctx.get(), req);
  std::optional<int> exitCode;
  v1::ExecOutput output;
  while (reader->Read(&output)) {
    if (this->output() == Output::kJson) {
      out_ << toJson(output) << "\n";
      out_.flush();
    } else {
      if (!output.stdout().empty()) {
        out_.write(output.stdout().data(), static_cast<std::streamsize>(output.stdout().size()));
        out_.flush();
      }
      if (!output.stderr().empty()) {
        err_.write(output.stderr().data(), static_cast<std::streamsize>(output.stderr().size()));
        err_.flush();
      }
    }
    if (output.exited()) exitCode = output.exit_code();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return fail(s);
  if (!exitCode) {
    err_ << "qabox: the agent ended exec without the command's exit code\n";
    return kExitError;
  }
  return *exitCode;
}

int Cli::cmdReap() {
  if (auto rc = connect()) return *rc;
  v1::ReapRequest req;
  req.set_dry_run(reap_.dryRun);
  req.set_policy(reap_.policy);
  auto ctx = client_->context(kReapDeadline);
  v1::ReapResponse resp;
  grpc::Status s = client_->stub().Reap(ctx.get(), req, &resp);
  if (!s.ok()) return fail(s);
  for (const auto& w : resp.warnings()) err_ << "qabox: warning: " << w << "\n";
  std::vector<std::string> names;
  for (const auto& r : resp.reclaimed()) names.push_back(r.ticket());
  return emit(
      resp, [&] { return formatReap(resp); }, names);
}

int Cli::cmdPin(bool pinned) {
  if (auto rc = connect()) return *rc;
  v1::SetPinnedRequest req;
  req.set_ticket(ticket_);
  req.set_pinned(pinned);
  auto ctx = client_->context();
  v1::Environment env;
  grpc::Status s = client_->stub().SetPinned(ctx.get(), req, &env);
  if (!s.ok()) return fail(s);
  return emit(
      env, [&] { return cleanCell(env.ticket()) + (env.pinned() ? " pinned\n" : " unpinned\n"); },
      {env.ticket()});
}

int Cli::cmdSleep(bool sleep) {
  if (auto rc = connect()) return *rc;
  auto ctx = client_->context(kSlowUnaryDeadline);
  v1::Environment env;
  grpc::Status s;
  if (sleep) {
    v1::SleepEnvironmentRequest req;
    req.set_ticket(ticket_);
    s = client_->stub().SleepEnvironment(ctx.get(), req, &env);
  } else {
    v1::WakeEnvironmentRequest req;
    req.set_ticket(ticket_);
    s = client_->stub().WakeEnvironment(ctx.get(), req, &env);
  }
  if (!s.ok()) return fail(s);
  return emitEnvironmentLine(env);
}

}  // namespace qabox::cli
