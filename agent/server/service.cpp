#include "server/service.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "lifecycle/host_facts.h"
#include "lifecycle/logs.h"
#include "metrics/metrics.h"
#include "reaper/reaper.h"
#include "server/validate.h"

namespace qabox {
namespace {

using google::protobuf::util::TimeUtil;
using std::chrono::milliseconds;

// How long a cluster-wide list waits for the slowest host.
constexpr milliseconds kPeerListDeadline{3'000};

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

void toProto(const ResourceLimits& l, v1::ResourceLimits* out) {
  out->set_memory(l.memory);
  out->set_cpus(l.cpus);
  out->set_pids(l.pids);
}

void toProto(const ImageVersion& im, uint32_t users, v1::Image* out) {
  out->set_name(im.name);
  out->set_version(im.version);
  *out->mutable_built_at() = ts(im.builtAt);
  out->set_environments(users);
  out->set_current(im.current);
  out->set_description(im.description);
  out->set_parent(im.parent);
  out->set_parent_version(im.parentVersion);
  out->set_recipe_hash(im.recipeHash);
  out->set_cached(im.cached);
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

void toProto(const Event& e, v1::Event* out) {
  out->set_id(e.id);
  *out->mutable_at() = ts(e.at);
  out->set_ticket(e.ticket);
  out->set_action(e.action);
  out->set_actor(e.actor);
  out->set_outcome(e.outcome);
  out->set_detail(e.detail);
}

void toProto(const ReapReport& report, v1::ReapResponse* out) {
  out->set_dry_run(report.dryRun);
  for (const auto& d : report.reclaimed) {
    auto* r = out->add_reclaimed();
    r->set_ticket(d.ticket);
    r->set_policy(d.policy);
    r->set_reason(d.reason);
    r->set_done(d.done);
    r->set_error(d.error);
  }
  for (const auto& w : report.warnings) out->add_warnings(w);
}

// The host's facts; the config's and the process's are added by the caller.
void toProto(const HostFacts& f, v1::HostStatus* out) {
  out->set_environments(f.environments);
  for (const auto& [state, n] : f.byState) (*out->mutable_environments_by_state())[state] = n;
  out->set_sleeping(f.sleeping);
  out->set_max_environments(f.maxEnvironments);
  out->set_capacity_left(f.capacityLeft);
  if (f.addressesLeft) out->set_addresses_left(*f.addressesLeft);
  if (f.diskTotalBytes) out->set_disk_total_bytes(*f.diskTotalBytes);
  if (f.diskFreeBytes) out->set_disk_free_bytes(*f.diskFreeBytes);
  if (f.memoryTotalBytes) out->set_memory_total_bytes(*f.memoryTotalBytes);
  if (f.memoryAvailableBytes) out->set_memory_available_bytes(*f.memoryAvailableBytes);
  for (const auto& [image, n] : f.poolReady) (*out->mutable_pool_ready())[image] = n;
  for (const auto& [image, n] : f.poolFilling) (*out->mutable_pool_filling())[image] = n;
}

// What a shell would say: the exit code, 124 for a timeout, 128 + a signal.
int32_t exitCodeOf(const ProcessResult& r) {
  return r.timedOut ? 124 : r.exitCode >= 0 ? r.exitCode : 128 + r.signal;
}

// A write to a caller that went away just fails; what it says is logged.
template <typename Writer, typename Message>
void send(Writer* writer, const Message& message, std::string_view rpc) {
  if (!writer->Write(message)) spdlog::debug("{}: the caller is gone; not sent", rpc);
}

// Where an environment answers: its hostname and its URL.
void setAddress(const std::string& slug, const Config& config, v1::Environment* out) {
  out->set_hostname(slug + "." + config.routing.domain);
  out->set_url(config.urlFor(slug));
}

}  // namespace

grpc::Status toGrpc(const Status& s) {
  if (s.isOk()) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(s.code()), s.message()};
}

void toProto(const Environment& e, const Config& config, v1::Environment* out) {
  out->set_ticket(e.ticket);
  setAddress(e.slug, config, out);
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
  out->set_target_head(e.targetHead);
  out->set_behind(e.behind);
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
  toProto(e.limits, out->mutable_limits());
  toProto(e.spec.limits, out->mutable_asked_limits());
  out->set_access(e.spec.access.empty() ? config.routing.access : e.spec.access);
  for (const PhaseTime& p : e.phases) {
    v1::DeployPhase* phase = out->add_phases();
    phase->set_phase(p.phase);
    *phase->mutable_took() = TimeUtil::MillisecondsToDuration(p.took.count());
  }
}

QaboxService::QaboxService(const Config& config, EnvironmentManager& envs, ImageBuilder& images,
                           Store& store, Authorizer& auth, HostInfo host, const TimeSource& time)
    : config_(config),
      envs_(envs),
      images_(images),
      store_(store),
      auth_(auth),
      host_(std::move(host)),
      time_(time),
      audit_(store, time) {}

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
#define QABOX_VALID(req)                                             \
  do {                                                               \
    if (Status valid_ = validate(*(req), config_); !valid_.isOk()) { \
      return toGrpc(valid_);                                         \
    }                                                                \
  } while (0)

// Third, for a call about one ticket: in a cluster, a ticket another host
// owns is answered there, the call forwarded with its stream.
#define QABOX_FORWARD_IF_ELSEWHERE(rpc, out)                                                \
  do {                                                                                      \
    auto remote_ = remoteOwner(caller, req->ticket());                                      \
    if (!remote_) return toGrpc(remote_.status());                                          \
    if (*remote_) return forward(ctx, caller, **remote_, &v1::Qabox::Stub::rpc, *req, out); \
  } while (0)

Result<QaboxService::Remote> QaboxService::remoteHost(const std::string& host) const {
  auto h = cluster_->host(host);
  if (!h || h->state == cluster::HostState::kDown) {
    return unavailable("host " + host +
                       " is down: its environments are LOST until it comes back (deploy the "
                       "ticket again to place it on a live host)");
  }
  return Remote{host, peers_->stub(host, h->facts.api)};
}

Result<std::optional<QaboxService::Remote>> QaboxService::remoteOwner(
    const Caller& caller, const std::string& ticket) const {
  if (!cluster_ || !peers_ || !caller.via.empty()) return std::optional<Remote>();
  auto parsed = parseTicket(ticket);
  if (!parsed) return std::optional<Remote>();
  auto owner = cluster_->owner(parsed->slug);
  if (!owner || owner->host == cluster_->self()) return std::optional<Remote>();
  auto to = remoteHost(owner->host);
  if (!to) {
    return unavailable(ticket + " is LOST: its host " + owner->host +
                       " is down (deploy it again to place it on a live host; " + owner->host +
                       " reclaims its old container when it comes back)");
  }
  return std::optional<Remote>(std::move(*to));
}

std::optional<cluster::Owner> QaboxService::lostOwner(const Caller& caller,
                                                      const std::string& ticket) const {
  if (!cluster_ || !caller.via.empty()) return std::nullopt;
  auto parsed = parseTicket(ticket);
  if (!parsed) return std::nullopt;
  auto owner = cluster_->owner(parsed->slug);
  if (!owner || owner->host == cluster_->self()) return std::nullopt;
  auto h = cluster_->host(owner->host);
  if (h && h->state != cluster::HostState::kDown) return std::nullopt;
  return owner;
}

void QaboxService::describeLost(const cluster::Owner& o, v1::Environment* e) const {
  e->set_ticket(o.ticket);
  setAddress(o.slug, config_, e);
  e->set_state(v1::Environment::LOST);
  e->set_host(o.host);
  e->set_message("host " + o.host +
                 " is down (its lease expired): deploy the ticket again to place it on a live "
                 "host");
}

namespace {

// What a peer answered, as this host's answer; a transport failure names
// the host it was forwarded to.
grpc::Status fromPeer(const grpc::Status& s, const std::string& host) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return {s.error_code(), "forwarded to host " + host + ": " + s.error_message()};
  }
  return s;
}

}  // namespace

template <typename Req, typename Resp>
grpc::Status QaboxService::forward(grpc::ServerContext* ctx, const Caller& caller, const Remote& to,
                                   grpc::Status (v1::Qabox::Stub::*rpc)(grpc::ClientContext*,
                                                                        const Req&, Resp*),
                                   const Req& req, Resp* resp) const {
  auto cc = peers_->context(*ctx, caller);
  return fromPeer((to.stub.get()->*rpc)(cc.get(), req, resp), to.host);
}

template <typename Req, typename Message>
grpc::Status QaboxService::forward(grpc::ServerContext* ctx, const Caller& caller, const Remote& to,
                                   std::unique_ptr<grpc::ClientReader<Message>> (
                                       v1::Qabox::Stub::*rpc)(grpc::ClientContext*, const Req&),
                                   const Req& req, grpc::ServerWriter<Message>* writer) const {
  // The caller's cancel and deadline go along (FromServerContext): a log
  // follow ends with it; a deploy runs to its end on its owner regardless.
  auto cc = peers_->context(*ctx, caller);
  auto reader = (to.stub.get()->*rpc)(cc.get(), req);
  Message m;
  while (reader->Read(&m)) {
    if (!writer->Write(m)) cc->TryCancel();
  }
  return fromPeer(reader->Finish(), to.host);
}

void QaboxService::describe(const Environment& e, v1::Environment* out) const {
  toProto(e, config_, out);
  if (cluster_) out->set_host(cluster_->self());
}

void QaboxService::listElsewhere(const Caller& caller, v1::ListEnvironmentsResponse* resp) const {
  if (!cluster_ || !peers_ || !caller.via.empty()) return;
  struct Asked {
    std::string host;
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::ListEnvironmentsResponse resp;
    grpc::Status status;
    bool done = false;
  };
  // Every live host at once, on the stubs' async API, waiting at most
  // kPeerListDeadline for the slowest: a host that does not answer in time
  // is a warning, not a failed list.
  std::set<std::string> lostHosts;
  std::vector<std::unique_ptr<Asked>> asked;
  grpc::CompletionQueue cq;
  v1::ListEnvironmentsRequest local;
  local.set_local(true);
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ListEnvironmentsResponse>>> calls;
  for (const auto& h : cluster_->hosts()) {
    if (h.self) continue;
    if (h.state == cluster::HostState::kDown) {
      lostHosts.insert(h.facts.name);
      continue;
    }
    auto a = std::make_unique<Asked>();
    a->host = h.facts.name;
    a->ctx = peers_->context(caller, kPeerListDeadline);
    auto stub = peers_->stub(h.facts.name, h.facts.api);
    calls.push_back(stub->AsyncListEnvironments(a->ctx.get(), local, &cq));
    calls.back()->Finish(&a->resp, &a->status, a.get());
    asked.push_back(std::move(a));
  }
  for (size_t n = 0; n < asked.size(); ++n) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) break;
    static_cast<Asked*>(tag)->done = true;
  }
  for (const auto& a : asked) {
    if (!a->done || !a->status.ok()) {
      resp->add_warnings("host " + a->host + " did not answer (" +
                         (a->done ? a->status.error_message() : std::string("no answer")) +
                         "): its environments are not listed");
      continue;
    }
    for (auto& e : *a->resp.mutable_environments()) {
      e.set_host(a->host);
      *resp->add_environments() = std::move(e);
    }
  }
  // A down host's tickets, from the map: LOST, with the reason.
  for (const auto& o : cluster_->owners()) {
    if (!lostHosts.count(o.host)) continue;
    describeLost(o, resp->add_environments());
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
}

// The rest of a handler that answers with one environment.
grpc::Status QaboxService::answer(const Result<Environment>& e, v1::Environment* resp) const {
  if (!e) return toGrpc(e.status());
  describe(*e, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::Deploy(grpc::ServerContext* ctx, const v1::DeployRequest* req,
                                  grpc::ServerWriter<v1::DeployEvent>* writer) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  DeployInput in = deployInputOf(*req);
  in.actor = caller.name;
  if (!cluster_) {
    return streamDeploy(writer,
                        [&](const ProgressFn& progress) { return envs_.deploy(in, progress); });
  }
  // In a cluster the ticket's one owner is claimed in etcd first.
  const std::string slug = parseTicket(req->ticket())->slug;
  const std::string image = in.spec.image.empty() ? config_.defaultImage : in.spec.image;
  auto owner = cluster_->place(req->ticket(), slug, image, req->host());
  if (!owner) return toGrpc(owner.status());
  if (owner->host != cluster_->self()) {
    if (!peers_ || !caller.via.empty()) {
      // A peer's call is answered where it was sent: never forwarded again.
      auto h = cluster_->host(owner->host);
      return toGrpc(failedPrecondition(req->ticket() + " lives on host " + owner->host + " (" +
                                       (h ? h->facts.api : std::string("address unknown")) +
                                       "): deploy it there"));
    }
    auto to = remoteHost(owner->host);
    if (!to) return toGrpc(to.status());
    // Named, so the owner deploys it instead of placing it again.
    v1::DeployRequest there = *req;
    there.set_host(owner->host);
    return forward(ctx, caller, *to, &v1::Qabox::Stub::Deploy, there, writer);
  }
  grpc::Status s =
      streamDeploy(writer, [&](const ProgressFn& progress) { return envs_.deploy(in, progress); });
  // A first deploy that left nothing here gives the ticket back.
  if (!envs_.get(req->ticket())) {
    if (Status r = cluster_->release(slug); !r.isOk()) {
      spdlog::warn("cluster: releasing {}: {}", slug, r.toString());
    }
  }
  return s;
}

grpc::Status QaboxService::RedeployEnvironment(grpc::ServerContext* ctx,
                                               const v1::RedeployEnvironmentRequest* req,
                                               grpc::ServerWriter<v1::DeployEvent>* writer) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  QABOX_FORWARD_IF_ELSEWHERE(RedeployEnvironment, writer);
  return streamDeploy(writer, [&](const ProgressFn& progress) {
    return envs_.redeploy(req->ticket(), req->force(), caller.name, progress);
  });
}

void QaboxService::reloadTokens() {
  if (!tokens_) return;
  // Fails only when the store can not be read; the directory keeps its last
  // snapshot, and a token already revoked in the store is refused by the API.
  if (Status s = tokens_->reload(); !s.isOk()) spdlog::error("reloading tokens: {}", s.toString());
}

grpc::Status QaboxService::streamDeploy(
    grpc::ServerWriter<v1::DeployEvent>* writer,
    const std::function<Result<Environment>(const ProgressFn&)>& run) {
  // The deploy runs to its end even when the caller goes away: a half-made
  // environment helps no one. Writes to a gone caller just fail.
  bool failed = false;
  auto result = run([&](const Progress& p) {
    // A failed redeploy leaves the old container serving (READY), so the
    // final event, not the state, says the deploy failed.
    if (p.phase == Progress::kFailed) failed = true;
    v1::DeployEvent ev;
    ev.set_phase(p.phase);
    ev.set_detail(p.detail);
    *ev.mutable_took() = TimeUtil::MillisecondsToDuration(p.took.count());
    send(writer, ev, "Deploy");
  });
  if (!result) return toGrpc(result.status());
  v1::DeployEvent last;
  last.set_phase(failed || result->state == EnvState::kFailed ? Progress::kFailed : "done");
  last.set_detail(result->message);
  describe(*result, last.mutable_environment());
  send(writer, last, "Deploy");
  return grpc::Status::OK;
}

grpc::Status QaboxService::GetEnvironment(grpc::ServerContext* ctx,
                                          const v1::GetEnvironmentRequest* req,
                                          v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  if (auto lost = lostOwner(caller, req->ticket())) {
    describeLost(*lost, resp);
    return grpc::Status::OK;
  }
  QABOX_FORWARD_IF_ELSEWHERE(GetEnvironment, resp);
  auto e = envs_.get(req->ticket());
  if (!e) return toGrpc(e.status());
  describe(*e, resp);
  // Services first, as qabox-init lists them.
  for (const auto& p : envs_.processesOf(*e)) {
    v1::Process* out = resp->add_processes();
    out->set_name(p.status.name);
    out->set_service(p.service);
    out->set_state(std::string(supervise::stateName(p.status.state)));
    out->set_pid(p.status.pid);
    out->set_restarts(p.status.restarts);
    out->set_last_exit(p.status.lastExit);
    out->set_message(p.status.message);
    if (p.status.sinceMs > 0) {
      *out->mutable_since() = ts(TimePoint{} + std::chrono::milliseconds(p.status.sinceMs));
    }
  }
  return grpc::Status::OK;
}

grpc::Status QaboxService::ListEnvironments(grpc::ServerContext* ctx,
                                            const v1::ListEnvironmentsRequest* req,
                                            v1::ListEnvironmentsResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  auto list = envs_.list();
  if (!list) return toGrpc(list.status());
  for (const auto& e : *list) describe(e, resp->add_environments());
  if (!req->local()) listElsewhere(caller, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::DeleteEnvironment(grpc::ServerContext* ctx,
                                             const v1::DeleteEnvironmentRequest* req,
                                             v1::DeleteEnvironmentResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  if (auto lost = lostOwner(caller, req->ticket())) {
    // A LOST ticket leaves the map: its host reclaims the container when it
    // comes back.
    Status forgot = cluster_->forgetLost(lost->slug);
    audit_.record(req->ticket(), "delete", caller.name, forgot.isOk() ? "ok" : "error",
                  forgot.isOk() ? "LOST on host " + lost->host + ": its map entry removed"
                                : forgot.message());
    if (!forgot.isOk()) return toGrpc(forgot);
    resp->set_ticket(req->ticket());
    return grpc::Status::OK;
  }
  QABOX_FORWARD_IF_ELSEWHERE(DeleteEnvironment, resp);
  Status s = envs_.remove(req->ticket(), caller.name);
  if (!s.isOk()) return toGrpc(s);
  if (cluster_) {
    if (Status r = cluster_->release(parseTicket(req->ticket())->slug); !r.isOk()) {
      spdlog::warn("cluster: releasing {}: {}", req->ticket(), r.toString());
    }
  }
  resp->set_ticket(req->ticket());
  return grpc::Status::OK;
}

grpc::Status QaboxService::StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                                      grpc::ServerWriter<v1::LogChunk>* writer) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  QABOX_FORWARD_IF_ELSEWHERE(StreamLogs, writer);
  LogQuery query{req->ticket(), req->deploy(), req->tail(), req->follow(), req->process()};
  LogSink sink;
  sink.write = [&](std::string chunk) {
    v1::LogChunk out;
    out.set_data(std::move(chunk));
    return writer->Write(out);
  };
  sink.cancelled = [&] { return ctx->IsCancelled(); };
  return toGrpc(streamLogs(envs_, query, sink));
}

grpc::Status QaboxService::Exec(grpc::ServerContext* ctx, const v1::ExecRequest* req,
                                grpc::ServerWriter<v1::ExecOutput>* writer) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  QABOX_FORWARD_IF_ELSEWHERE(Exec, writer);
  std::vector<std::string> argv(req->argv().begin(), req->argv().end());
  std::map<std::string, std::string> env(req->env().begin(), req->env().end());
  auto timeout =
      milliseconds(req->has_timeout() ? TimeUtil::DurationToMilliseconds(req->timeout()) : 600'000);
  auto onOutput = [&](bool isErr, std::string_view data) {
    v1::ExecOutput out;
    if (isErr) {
      out.set_stderr(std::string(data));
    } else {
      out.set_stdout(std::string(data));
    }
    send(writer, out, "Exec");
  };
  auto r = envs_.exec(req->ticket(), argv, env, req->stdin(), timeout, onOutput, caller.name);
  if (!r) return toGrpc(r.status());
  v1::ExecOutput last;
  last.set_exited(true);
  last.set_exit_code(exitCodeOf(*r));
  send(writer, last, "Exec");
  return grpc::Status::OK;
}

grpc::Status QaboxService::Reap(grpc::ServerContext* ctx, const v1::ReapRequest* req,
                                v1::ReapResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  if (!reaper_) return toGrpc(unavailable("Reap: the reaper is not running on this agent"));
  auto report = reaper_->runOnce(req->dry_run(), req->policy(), caller.name);
  if (!report) {
    audit_.reapFailed(caller.name, report.status().message());
    return toGrpc(report.status());
  }
  size_t done = 0;
  for (const auto& d : report->reclaimed) done += d.done;
  audit_.reapPass(caller.name, req->policy(), report->dryRun, report->reclaimed.size(), done);
  toProto(*report, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::SetPinned(grpc::ServerContext* ctx, const v1::SetPinnedRequest* req,
                                     v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  QABOX_FORWARD_IF_ELSEWHERE(SetPinned, resp);
  return answer(envs_.setPinned(req->ticket(), req->pinned(), caller.name), resp);
}

grpc::Status QaboxService::SleepEnvironment(grpc::ServerContext* ctx,
                                            const v1::SleepEnvironmentRequest* req,
                                            v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  QABOX_FORWARD_IF_ELSEWHERE(SleepEnvironment, resp);
  return answer(envs_.sleep(req->ticket(), caller.name), resp);
}

grpc::Status QaboxService::WakeEnvironment(grpc::ServerContext* ctx,
                                           const v1::WakeEnvironmentRequest* req,
                                           v1::Environment* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  QABOX_FORWARD_IF_ELSEWHERE(WakeEnvironment, resp);
  return answer(envs_.wake(req->ticket(), caller.name), resp);
}

grpc::Status QaboxService::ListImages(grpc::ServerContext* ctx, const v1::ListImagesRequest*,
                                      v1::ListImagesResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  auto uses = imageUses(store_);
  if (!uses) return toGrpc(uses.status());
  for (const auto& u : *uses) toProto(u.image, u.environments, resp->add_images());
  for (const auto& r : images_.recipes()) resp->add_recipes(r);
  auto layers = store_.listLayers();
  auto envs = store_.listEnvironments();
  if (!layers) return toGrpc(layers.status());
  if (!envs) return toGrpc(envs.status());
  for (const auto& l : *layers) {
    auto* out = resp->add_layers();
    out->set_hash(l.hash);
    out->set_image(l.image);
    out->set_image_version(l.imageVersion);
    out->set_kind(std::string(layerKindName(l.kind)));
    out->set_lineage(l.lineage);
    out->set_size_bytes(l.sizeBytes);
    *out->mutable_built_at() = ts(l.builtAt);
    *out->mutable_last_used_at() = ts(l.lastUsedAt);
    out->set_environments(
        static_cast<uint32_t>(std::count_if(envs->begin(), envs->end(), [&](const Environment& e) {
          return e.depsLayer == l.hash || e.dataLayer == l.hash;
        })));
  }
  return grpc::Status::OK;
}

grpc::Status QaboxService::BuildImage(grpc::ServerContext* ctx, const v1::BuildImageRequest* req,
                                      v1::Image* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto im = images_.build(req->name(), caller.name, req->force());
  if (metrics_) metrics_->imageBuild(!im ? "error" : im->cached ? "cached" : "built");
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
  auto facts = hostFacts(store_, c);
  if (!facts) return toGrpc(facts.status());
  resp->set_version(QABOX_VERSION);
  auto uptime = std::chrono::steady_clock::now() - host_.startedAt;
  *resp->mutable_uptime() =
      TimeUtil::MillisecondsToDuration(std::chrono::duration_cast<milliseconds>(uptime).count());
  toProto(*facts, resp);
  resp->set_state_dir(c.stateDir);
  resp->set_bridge(c.network.bridge);
  resp->set_subnet(c.network.subnet);
  resp->set_domain(c.routing.domain);
  uint32_t poolSize = c.pool.size;
  for (const auto& [image, n] : c.pool.images) poolSize = std::max(poolSize, n);
  resp->set_pool_size(poolSize);
  if (host_.requestsRouted) resp->set_requests_routed(host_.requestsRouted());
  return grpc::Status::OK;
}

namespace {

void toProto(const cluster::HostView& h, v1::Host* out) {
  out->set_name(h.facts.name);
  out->set_state(std::string(cluster::hostStateName(h.state)));
  out->set_api(h.facts.api);
  out->set_router(h.facts.router);
  out->set_version(h.facts.version);
  out->set_capacity(h.facts.capacity);
  out->set_environments(h.facts.environments);
  out->set_memory_free_bytes(h.facts.freeMemoryBytes);
  out->set_disk_free_bytes(h.facts.freeDiskBytes);
  for (const auto& im : h.facts.images) out->add_images(im);
  out->set_self(h.self);
  if (h.facts.startedAtUnix > 0) {
    *out->mutable_started_at() = TimeUtil::SecondsToTimestamp(h.facts.startedAtUnix);
  }
}

}  // namespace

grpc::Status QaboxService::ListHosts(grpc::ServerContext* ctx, const v1::ListHostsRequest*,
                                     v1::ListHostsResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  if (cluster_) {
    resp->set_clustered(true);
    resp->set_etcd_connected(cluster_->connected());
    for (const auto& h : cluster_->hosts()) toProto(h, resp->add_hosts());
    return grpc::Status::OK;
  }
  // A host of its own: itself, always up.
  auto facts = hostFacts(store_, config_);
  if (!facts) return toGrpc(facts.status());
  cluster::HostView self;
  self.self = true;
  self.facts.name = localHostName(config_);
  self.facts.version = QABOX_VERSION;
  self.facts.capacity = facts->maxEnvironments;
  self.facts.environments = facts->environments;
  self.facts.freeMemoryBytes = facts->memoryAvailableBytes.value_or(0);
  self.facts.freeDiskBytes = facts->diskFreeBytes.value_or(0);
  toProto(self, resp->add_hosts());
  return grpc::Status::OK;
}

grpc::Status QaboxService::DrainHost(grpc::ServerContext* ctx, const v1::DrainHostRequest* req,
                                     v1::Host* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  if (!cluster_) {
    return toGrpc(failedPrecondition(
        "this host is not in a cluster ([cluster] etcd): there is no placement to drain"));
  }
  Status s = cluster_->setDraining(req->name(), !req->undrain());
  audit_.record("", req->undrain() ? "host.undrain" : "host.drain", caller.name,
                s.isOk() ? "ok" : "error", s.isOk() ? req->name() : s.message());
  if (!s.isOk()) return toGrpc(s);
  auto h = cluster_->host(req->name());
  if (!h) return toGrpc(notFound("host " + req->name() + " is not a member of the cluster"));
  // The watch may not have brought the change back yet: say what was asked.
  if (h->state != cluster::HostState::kDown) {
    h->state = req->undrain() ? cluster::HostState::kUp : cluster::HostState::kDraining;
  }
  toProto(*h, resp);
  return grpc::Status::OK;
}

grpc::Status QaboxService::CheckInvariants(grpc::ServerContext* ctx,
                                           const v1::CheckInvariantsRequest*,
                                           v1::CheckInvariantsResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  auto checked = envs_.checkInvariants();
  if (!checked) return toGrpc(checked.status());
  for (const auto& v : checked->report.listed) {
    v1::Violation* out = resp->add_violations();
    out->set_kind(v.kind);
    out->set_name(v.name);
    out->set_what(v.what);
  }
  for (const auto& [kind, n] : checked->report.totals) {
    (*resp->mutable_totals())[kind] = static_cast<uint32_t>(n);
  }
  resp->set_total(static_cast<uint32_t>(checked->report.total));
  resp->set_truncated(checked->report.truncated());
  resp->set_in_flight(static_cast<uint32_t>(checked->inFlight));
  *resp->mutable_checked_at() = ts(time_.now());
  return grpc::Status::OK;
}

grpc::Status QaboxService::ListEvents(grpc::ServerContext* ctx, const v1::ListEventsRequest* req,
                                      v1::ListEventsResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  auto events = store_.listEvents(req->ticket(), req->limit());
  if (!events) return toGrpc(events.status());
  for (const auto& e : *events) toProto(e, resp->add_events());
  return grpc::Status::OK;
}

grpc::Status QaboxService::CreateToken(grpc::ServerContext* ctx, const v1::CreateTokenRequest* req,
                                       v1::CreateTokenResponse* resp) {
  QABOX_AUTHORIZED(caller, ctx);
  QABOX_VALID(req);
  std::optional<milliseconds> ttl;
  if (req->has_ttl()) ttl = milliseconds(TimeUtil::DurationToMilliseconds(req->ttl()));
  auto t = issueToken(store_, audit_, req->name(), req->role(), ttl, caller.name, time_.now());
  if (!t) return toGrpc(t.status());
  reloadTokens();
  toProto(t->record, resp->mutable_token());
  resp->set_secret(t->secret);
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
  auto t = revokeToken(store_, audit_, req->name(), caller.name, time_.now());
  if (!t) return toGrpc(t.status());
  reloadTokens();
  toProto(*t, resp->mutable_token());
  return grpc::Status::OK;
}

}  // namespace qabox
