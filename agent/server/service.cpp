#include "server/service.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <fstream>
#include <thread>

#include "core/duration.h"
#include "reaper/reaper.h"
#include "server/validate.h"
#include "store/ipam.h"
#include "sys/safe_path.h"

namespace qabox {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ts(TimePoint t) {
  return TimeUtil::MillisecondsToTimestamp(toUnixMillis(t));
}

v1::Environment::State toProtoState(EnvState s) {
  switch (s) {
    case EnvState::kCreating: return v1::Environment::CREATING;
    case EnvState::kDeploying: return v1::Environment::DEPLOYING;
    case EnvState::kReady: return v1::Environment::READY;
    case EnvState::kFailed: return v1::Environment::FAILED;
    case EnvState::kDeleting: return v1::Environment::DELETING;
    case EnvState::kSleeping: return v1::Environment::SLEEPING;
    case EnvState::kBroken: return v1::Environment::BROKEN;
  }
  return v1::Environment::STATE_UNSPECIFIED;
}

void toProto(const ImageVersion& im, uint32_t users, v1::Image* out) {
  out->set_name(im.name);
  out->set_version(im.version);
  *out->mutable_built_at() = ts(im.builtAt);
  out->set_environments(users);
  out->set_current(im.current);
  out->set_description(im.description);
}

void toProto(const TokenRecord& t, v1::Token* out) {
  out->set_name(t.name);
  out->set_role(t.role);
  *out->mutable_created_at() = ts(t.createdAt);
  if (t.expiresAt) *out->mutable_expires_at() = ts(*t.expiresAt);
  out->set_revoked(t.revoked);
  if (t.revokedAt) *out->mutable_revoked_at() = ts(*t.revokedAt);
  if (t.lastUsedAt) *out->mutable_last_used_at() = ts(*t.lastUsedAt);
}

// What a log has past `offset`, at most `max` bytes; "" while it does not
// exist. The app log is in the container's files: read beneath its root,
// never through a link, and never blocking on a FIFO (sys/safe_path.h).
Result<std::string> readLog(const EnvironmentManager::LogFile& log, off_t& offset, size_t max) {
  auto r = readFileBeneath(log.root, log.relative, offset, max);
  if (!r && r.status().code() == Code::kNotFound) return std::string();
  return r;
}

}  // namespace

grpc::Status toGrpc(const Status& s) {
  if (s.isOk()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(s.code()), s.message()};
}

void toProto(const Environment& e, const Config& config, v1::Environment* out) {
  out->set_ticket(e.ticket);
  out->set_hostname(e.slug + "." + config.routing.domain);
  out->set_url(config.urlFor(e.slug));
  out->set_state(toProtoState(e.state));
  out->set_ip(e.ip);
  out->set_image(e.spec.image);
  out->set_image_version(e.imageVersion);
  out->set_container(e.container);
  out->set_repo(e.spec.repo);
  out->set_source_branch(e.spec.sourceBranch);
  out->set_target_branch(e.spec.targetBranch);
  out->set_commit(e.commit);
  out->set_source_commit(e.sourceCommit);
  out->set_target_commit(e.targetCommit);
  *out->mutable_created_at() = ts(e.createdAt);
  *out->mutable_updated_at() = ts(e.updatedAt);
  if (e.lastAccessAt) *out->mutable_last_access_at() = ts(*e.lastAccessAt);
  out->set_message(e.message);
  out->set_port(e.port);
  out->set_pinned(e.pinned);
  if (e.expiresAt) *out->mutable_expires_at() = ts(*e.expiresAt);
  out->set_request_count(e.requestCount);
  out->set_bytes_in(e.bytesIn);
  out->set_bytes_out(e.bytesOut);
  for (const auto& [k, v] : e.spec.env) (*out->mutable_env())[k] = v;
  for (const auto& k : e.spec.secretKeys) out->add_secret_keys(k);
  if (e.deployedAt != TimePoint{}) *out->mutable_deployed_at() = ts(e.deployedAt);
  auto limits = [](const ResourceLimits& l, v1::ResourceLimits* o) {
    o->set_memory(l.memory);
    o->set_cpus(l.cpus);
    o->set_pids(l.pids);
  };
  limits(e.limits, out->mutable_limits());
  limits(e.spec.limits, out->mutable_asked_limits());
}

QaboxService::QaboxService(const Config& config, EnvironmentManager& envs, ImageBuilder& images,
                           Store& store, Authorizer& auth, HostInfo host)
    : config_(config),
      envs_(envs),
      images_(images),
      store_(store),
      auth_(auth),
      host_(std::move(host)) {}

Result<Caller> QaboxService::authorized(grpc::ServerContext* ctx) const {
  return auth_.callerOf(static_cast<grpc::ServerContextBase*>(ctx));
}

// First thing in every handler: `who` is the caller the interceptor let
// through, or the handler returns the reason it did not.
#define QABOX_AUTHORIZED(who, ctx)                         \
  auto who##Result_ = authorized(ctx);                     \
  if (!who##Result_) return toGrpc(who##Result_.status()); \
  [[maybe_unused]] const Caller& who = *who##Result_

// Second thing: every field of the request against its rules, before
// anything is looked up or changed (server/validate.h).
#define QABOX_VALID(req)                                                    \
  do {                                                                      \
    if (Status valid_ = validate(*(req), config_); !valid_.isOk()) { \
      return toGrpc(valid_);                                                \
    }                                                                       \
  } while (0)

grpc::Status QaboxService::Deploy(grpc::ServerContext* ctx, const v1::DeployRequest* req,
                                  grpc::ServerWriter<v1::DeployEvent>* writer) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  DeployInput in = deployInputOf(*req);
  in.actor = caller.name;
  // The deploy runs to its end even when the caller goes away: a half-made
  // environment helps no one. Writes to a gone caller just fail.
  bool failed = false;
  auto result = envs_.deploy(in, [&](const Progress& p) {
    // A failed redeploy leaves the old container serving (READY), so the
    // final event, not the state, says the deploy failed.
    if (p.phase == "failed") failed = true;
    v1::DeployEvent ev;
    ev.set_phase(p.phase);
    ev.set_detail(p.detail);
    *ev.mutable_took() = TimeUtil::MillisecondsToDuration(p.took.count());
    writer->Write(ev);
  });
  if (!result) return toGrpc(result.status());
  v1::DeployEvent last;
  last.set_phase(failed || result->state == EnvState::kFailed ? "failed" : "done");
  last.set_detail(result->message);
  toProto(*result, config_, last.mutable_environment());
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status QaboxService::GetEnvironment(grpc::ServerContext* ctx,
                                          const v1::GetEnvironmentRequest* req,
                                          v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto e = envs_.get(req->ticket());
  if (!e) return toGrpc(e.status());
  toProto(*e, config_, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::ListEnvironments(grpc::ServerContext* ctx,
                                            const v1::ListEnvironmentsRequest*,
                                            v1::ListEnvironmentsResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  auto list = envs_.list();
  if (!list) return toGrpc(list.status());
  for (const auto& e : *list) toProto(e, config_, resp->add_environments());
  return grpc::Status::OK;
}

grpc::Status QaboxService::DeleteEnvironment(grpc::ServerContext* ctx,
                                             const v1::DeleteEnvironmentRequest* req,
                                             v1::DeleteEnvironmentResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  Status s = envs_.remove(req->ticket(), caller.name);
  if (!s.isOk()) return toGrpc(s);
  resp->set_ticket(req->ticket());
  return grpc::Status::OK;
}

grpc::Status QaboxService::StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                                      grpc::ServerWriter<v1::LogChunk>* writer) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto path = envs_.logPath(req->ticket(), req->deploy());
  if (!path) return toGrpc(path.status());
  auto refused = [&](const Status& s) {
    return toGrpc(Status(s.code(), "logs of " + req->ticket() + ": " + s.message()));
  };
  off_t offset = 0;
  if (req->tail() > 0) {
    off_t all = 0;
    auto content = readLog(*path, all, 64 << 20);
    if (!content) return refused(content.status());
    std::string tail = lastLines(*content, req->tail());
    offset = all - static_cast<off_t>(tail.size());
    while (offset > 0 && offset < all && (*content)[static_cast<size_t>(offset)] == '\n') ++offset;
  }
  while (!ctx->IsCancelled()) {
    auto read = readLog(*path, offset, 256 << 10);
    if (!read) return refused(read.status());
    std::string chunk = std::move(*read);
    if (!chunk.empty()) {
      v1::LogChunk out;
      out.set_data(std::move(chunk));
      if (!writer->Write(out)) return grpc::Status::OK;
      continue;
    }
    if (!req->follow()) break;
    // The environment may go away while followed.
    if (!envs_.get(req->ticket())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return grpc::Status::OK;
}

grpc::Status QaboxService::Exec(grpc::ServerContext* ctx, const v1::ExecRequest* req,
                                grpc::ServerWriter<v1::ExecOutput>* writer) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  std::vector<std::string> argv(req->argv().begin(), req->argv().end());
  std::map<std::string, std::string> env(req->env().begin(), req->env().end());
  auto timeout = std::chrono::milliseconds(
      req->has_timeout() ? TimeUtil::DurationToMilliseconds(req->timeout()) : 600'000);
  auto r = envs_.exec(
      req->ticket(), argv, env, req->stdin(), timeout,
      [&](bool isErr, std::string_view data) {
        v1::ExecOutput out;
        if (isErr) {
          out.set_stderr(std::string(data));
        } else {
          out.set_stdout(std::string(data));
        }
        writer->Write(out);
      },
      caller.name);
  if (!r) return toGrpc(r.status());
  v1::ExecOutput last;
  last.set_exited(true);
  last.set_exit_code(r->timedOut ? 124 : r->exitCode >= 0 ? r->exitCode : 128 + r->signal);
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status QaboxService::Reap(grpc::ServerContext* ctx, const v1::ReapRequest* req,
                                v1::ReapResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  if (!reaper_) return toGrpc(unavailable("Reap: the reaper is not running on this agent"));
  auto report = reaper_->runOnce(req->dry_run(), req->policy(), caller.name);
  if (!report) {
    (void)store_.addEvent(
        {0, Clock::now(), "", "reap", caller.name, "error", report.status().message()});
    return toGrpc(report.status());
  }
  {
    size_t done = 0;
    for (const auto& d : report->reclaimed) done += d.done;
    std::string detail = report->dryRun ? "dry run: " + std::to_string(report->reclaimed.size()) +
                                              " would be reclaimed"
                                        : std::to_string(done) + " reclaimed";
    if (!req->policy().empty()) detail += " (policy " + req->policy() + ")";
    (void)store_.addEvent({0, Clock::now(), "", "reap", caller.name, "ok", detail});
  }
  resp->set_dry_run(report->dryRun);
  for (const auto& d : report->reclaimed) {
    auto* r = resp->add_reclaimed();
    r->set_ticket(d.ticket);
    r->set_policy(d.policy);
    r->set_reason(d.reason);
    r->set_done(d.done);
    r->set_error(d.error);
  }
  for (const auto& w : report->warnings) resp->add_warnings(w);
  return grpc::Status::OK;
}

grpc::Status QaboxService::SetPinned(grpc::ServerContext* ctx, const v1::SetPinnedRequest* req,
                                     v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto e = envs_.setPinned(req->ticket(), req->pinned(), caller.name);
  if (!e) return toGrpc(e.status());
  toProto(*e, config_, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::SleepEnvironment(grpc::ServerContext* ctx,
                                            const v1::SleepEnvironmentRequest* req,
                                            v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto e = envs_.sleep(req->ticket(), caller.name);
  if (!e) return toGrpc(e.status());
  toProto(*e, config_, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::WakeEnvironment(grpc::ServerContext* ctx,
                                           const v1::WakeEnvironmentRequest* req,
                                           v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto e = envs_.wake(req->ticket(), caller.name);
  if (!e) return toGrpc(e.status());
  toProto(*e, config_, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::ListImages(grpc::ServerContext* ctx, const v1::ListImagesRequest*,
                                      v1::ListImagesResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  auto images = store_.listImages();
  if (!images) return toGrpc(images.status());
  auto envs = store_.listEnvironments();
  if (!envs) return toGrpc(envs.status());
  for (const auto& im : *images) {
    uint32_t users = 0;
    for (const auto& e : *envs) users += e.spec.image == im.name && e.imageVersion == im.version;
    toProto(im, users, resp->add_images());
  }
  for (const auto& r : images_.recipes()) resp->add_recipes(r);
  return grpc::Status::OK;
}

grpc::Status QaboxService::BuildImage(grpc::ServerContext* ctx, const v1::BuildImageRequest* req,
                                      v1::Image* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto im = images_.build(req->name(), caller.name);
  if (!im) return toGrpc(im.status());
  toProto(*im, 0, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::DeleteImage(grpc::ServerContext* ctx, const v1::DeleteImageRequest* req,
                                       v1::DeleteImageResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto deleted = images_.remove(req->name(), req->version(), caller.name);
  if (!deleted) return toGrpc(deleted.status());
  for (const auto& im : *deleted) toProto(im, 0, resp->add_deleted());
  return grpc::Status::OK;
}

grpc::Status QaboxService::GetHostStatus(grpc::ServerContext* ctx, const v1::GetHostStatusRequest*,
                                         v1::HostStatus* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  const Config& c = config_;
  resp->set_version(QABOX_VERSION);
  *resp->mutable_uptime() =
      TimeUtil::MillisecondsToDuration(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - host_.startedAt)
                                           .count());
  auto envs = store_.listEnvironments();
  if (!envs) return toGrpc(envs.status());
  resp->set_environments(static_cast<uint32_t>(envs->size()));
  uint32_t sleeping = 0;
  for (const auto& e : *envs) {
    (*resp->mutable_environments_by_state())[std::string(stateName(e.state))]++;
    sleeping += e.state == EnvState::kSleeping;
  }
  resp->set_sleeping(sleeping);
  resp->set_max_environments(c.limits.maxEnvironments);
  uint32_t n = static_cast<uint32_t>(envs->size());
  resp->set_capacity_left(n >= c.limits.maxEnvironments ? 0 : c.limits.maxEnvironments - n);
  if (auto subnet = parseSubnet(c.network.subnet); subnet) {
    auto leases = store_.listLeases();
    uint32_t used = leases ? static_cast<uint32_t>(leases->size()) : 0;
    uint32_t total = hostCount(*subnet);
    resp->set_addresses_left(used >= total ? 0 : total - used);
  }
  resp->set_state_dir(c.stateDir);
  struct statvfs vfs {};
  if (statvfs(c.stateDir.c_str(), &vfs) == 0) {
    resp->set_disk_total_bytes(static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize);
    resp->set_disk_free_bytes(static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize);
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemTotal:") resp->set_memory_total_bytes(kb * 1024);
    if (key == "MemAvailable:") resp->set_memory_available_bytes(kb * 1024);
  }
  resp->set_bridge(c.network.bridge);
  resp->set_subnet(c.network.subnet);
  resp->set_domain(c.routing.domain);
  if (host_.requestsRouted) resp->set_requests_routed(host_.requestsRouted());
  return grpc::Status::OK;
}

grpc::Status QaboxService::ListEvents(grpc::ServerContext* ctx, const v1::ListEventsRequest* req,
                                      v1::ListEventsResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto events = store_.listEvents(req->ticket(), req->limit());
  if (!events) return toGrpc(events.status());
  for (const auto& e : *events) {
    auto* out = resp->add_events();
    out->set_id(e.id);
    *out->mutable_at() = ts(e.at);
    out->set_ticket(e.ticket);
    out->set_action(e.action);
    out->set_actor(e.actor);
    out->set_outcome(e.outcome);
    out->set_detail(e.detail);
  }
  return grpc::Status::OK;
}

grpc::Status QaboxService::CreateToken(grpc::ServerContext* ctx, const v1::CreateTokenRequest* req,
                                       v1::CreateTokenResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  TokenRecord t;
  t.name = req->name();
  t.role = req->role();
  t.createdAt = Clock::now();
  if (req->has_ttl()) {
    t.expiresAt =
        t.createdAt + std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(req->ttl()));
  }
  auto secret = newTokenSecret();
  if (!secret) return toGrpc(secret.status());
  t.hash = hashTokenSecret(*secret);
  // Names are never reused: the audit log names callers by token name.
  Status s = store_.transaction([&]() -> Status {
    QABOX_ASSIGN_OR_RETURN(auto existing, store_.getToken(t.name));
    if (existing) {
      return alreadyExists("token " + t.name + ": already exists" +
                           (existing->revoked ? " (revoked); choose another name" : ""));
    }
    return store_.putToken(t);
  });
  if (!s.isOk()) return toGrpc(s);
  (void)store_.addEvent(
      {0, Clock::now(), "", "token.create", caller.name, "ok",
       t.name + " (" + t.role + ")" +
           (t.expiresAt ? ", expires in " +
                              formatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  *t.expiresAt - t.createdAt))
                        : "")});
  toProto(t, resp->mutable_token());
  resp->set_secret(*secret);
  return grpc::Status::OK;
}

grpc::Status QaboxService::ListTokens(grpc::ServerContext* ctx, const v1::ListTokensRequest*,
                                      v1::ListTokensResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  auto tokens = store_.listTokens();
  if (!tokens) return toGrpc(tokens.status());
  for (const auto& t : *tokens) toProto(t, resp->add_tokens());
  return grpc::Status::OK;
}

grpc::Status QaboxService::RevokeToken(grpc::ServerContext* ctx, const v1::RevokeTokenRequest* req,
                                       v1::RevokeTokenResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto t = store_.revokeToken(req->name(), Clock::now());
  if (!t) return toGrpc(t.status());
  (void)store_.addEvent({0, Clock::now(), "", "token.revoke", caller.name, "ok", t->name});
  toProto(*t, resp->mutable_token());
  return grpc::Status::OK;
}

}  // namespace qabox
