#include "unit/cli/fake_agent.h"

#include <google/protobuf/util/time_util.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace qabox::cli::fake {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ago(std::chrono::seconds s) {
  return TimeUtil::SecondsToTimestamp(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch() - s)
                                          .count());
}

v1::Environment environment(const std::string& ticket, v1::Environment::State state) {
  v1::Environment e;
  std::string slug = ticket;
  for (auto& c : slug) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  e.set_ticket(ticket);
  e.set_hostname(slug + ".qa.company.int");
  e.set_url("http://" + slug + ".qa.company.int");
  e.set_state(state);
  e.set_ip("10.44.0.7");
  e.set_image("busybox");
  e.set_image_version(2);
  e.set_container("qabox-" + slug);
  e.set_repo("shop");
  e.set_source_branch("feature/" + ticket);
  e.set_target_branch("develop");
  e.set_commit("0123456789abcdef0123456789abcdef01234567");
  *e.mutable_created_at() = ago(std::chrono::hours(2));
  *e.mutable_updated_at() = ago(std::chrono::minutes(10));
  e.set_port(8080);
  return e;
}

v1::DeployEvent phase(const char* name, int ms, const char* detail = "") {
  v1::DeployEvent ev;
  ev.set_phase(name);
  ev.set_detail(detail);
  *ev.mutable_took() = TimeUtil::MillisecondsToDuration(ms);
  return ev;
}

}  // namespace

FakeAgent::FakeAgent() {
  envs_["EXMP-113"] = environment("EXMP-113", v1::Environment::READY);
  *envs_["EXMP-113"].mutable_last_access_at() = ago(std::chrono::minutes(3));
  envs_["EXMP-7"] = environment("EXMP-7", v1::Environment::FAILED);
  envs_["EXMP-7"].set_message("hook build exited with 2");
  envs_["SLOW-1"] = environment("SLOW-1", v1::Environment::DEPLOYING);

  char tmpl[] = "/tmp/qabox-cli-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  socketPath_ = dir_ + "/agent.sock";
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socketPath_, grpc::InsecureServerCredentials());
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (!server_) throw std::runtime_error("fake agent did not start on " + socketPath_);
}

FakeAgent::~FakeAgent() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void FakeAgent::requireToken(std::string token) {
  std::lock_guard lock(mu_);
  requiredToken_ = std::move(token);
}

FakeAgent::Seen FakeAgent::seen() {
  std::lock_guard lock(mu_);
  return seen_;
}

grpc::Status FakeAgent::enter(grpc::ServerContext* ctx, const std::string& method) {
  std::lock_guard lock(mu_);
  seen_.methods.push_back(method);
  std::string auth;
  auto it = ctx->client_metadata().find("authorization");
  if (it != ctx->client_metadata().end()) auth = std::string(it->second.data(), it->second.size());
  seen_.authorizations.push_back(auth);
  if (!requiredToken_.empty() && auth != "Bearer " + requiredToken_) {
    return {grpc::StatusCode::UNAUTHENTICATED, "missing or unknown token"};
  }
  return grpc::Status::OK;
}

grpc::Status FakeAgent::lookup(const std::string& ticket, v1::Environment* env) {
  static const std::map<std::string, grpc::StatusCode> kErrors = {
      {"DENIED-1", grpc::StatusCode::PERMISSION_DENIED},
      {"BAD-1", grpc::StatusCode::INVALID_ARGUMENT},
      {"FULL-1", grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"TAKEN-1", grpc::StatusCode::ALREADY_EXISTS},
      {"CONFLICT-1", grpc::StatusCode::FAILED_PRECONDITION},
      {"BUSY-1", grpc::StatusCode::ABORTED},
      {"DOWN-1", grpc::StatusCode::UNAVAILABLE},
  };
  if (auto e = kErrors.find(ticket); e != kErrors.end()) {
    return {e->second, "canned " + ticket + " error"};
  }
  std::lock_guard lock(mu_);
  auto it = envs_.find(ticket);
  if (it == envs_.end()) {
    return {grpc::StatusCode::NOT_FOUND, "environment \"" + ticket + "\": not found"};
  }
  if (env != nullptr) *env = it->second;
  return grpc::Status::OK;
}

grpc::Status FakeAgent::Deploy(grpc::ServerContext* ctx, const v1::DeployRequest* req,
                               grpc::ServerWriter<v1::DeployEvent>* writer) {
  if (auto s = enter(ctx, "Deploy"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.deploy = *req;
  }
  if (req->ticket() == "CONFLICT-1") {
    writer->Write(phase("clone", 20));
    writer->Write(phase("fetch", 300));
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "merge feature/CONFLICT-1 into develop: conflict in app/models.py"};
  }
  v1::Environment env;
  if (auto s = lookup(req->ticket(), nullptr);
      !s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
    return s;
  }
  writer->Write(phase("clone", 20));
  if (req->ticket() == "SLOW-1") {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until && !ctx->IsCancelled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (ctx->IsCancelled()) {
      std::lock_guard lock(mu_);
      seen_.deployCancelled = true;
      return grpc::Status::CANCELLED;
    }
  }
  writer->Write(phase("fetch", 300));
  writer->Write(phase("merge", 40, "feature/x into develop"));
  writer->Write(phase("health", 1200));
  env = environment(req->ticket(), v1::Environment::READY);
  v1::DeployEvent last;
  last.set_phase("done");
  if (req->ticket() == "BROKEN-1") {
    env.set_state(v1::Environment::FAILED);
    env.set_message("hook build exited with 2");
    last.set_phase("failed");
    last.set_detail(env.message());
  }
  *last.mutable_environment() = env;
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status FakeAgent::GetEnvironment(grpc::ServerContext* ctx,
                                       const v1::GetEnvironmentRequest* req,
                                       v1::Environment* resp) {
  if (auto s = enter(ctx, "GetEnvironment"); !s.ok()) return s;
  return lookup(req->ticket(), resp);
}

grpc::Status FakeAgent::ListEnvironments(grpc::ServerContext* ctx,
                                         const v1::ListEnvironmentsRequest*,
                                         v1::ListEnvironmentsResponse* resp) {
  if (auto s = enter(ctx, "ListEnvironments"); !s.ok()) return s;
  std::lock_guard lock(mu_);
  for (const char* t : {"EXMP-113", "EXMP-7"}) *resp->add_environments() = envs_[t];
  return grpc::Status::OK;
}

grpc::Status FakeAgent::DeleteEnvironment(grpc::ServerContext* ctx,
                                          const v1::DeleteEnvironmentRequest* req,
                                          v1::DeleteEnvironmentResponse* resp) {
  if (auto s = enter(ctx, "DeleteEnvironment"); !s.ok()) return s;
  if (auto s = lookup(req->ticket(), nullptr); !s.ok()) return s;
  resp->set_ticket(req->ticket());
  return grpc::Status::OK;
}

grpc::Status FakeAgent::StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                                   grpc::ServerWriter<v1::LogChunk>* writer) {
  if (auto s = enter(ctx, "StreamLogs"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.logs = *req;
  }
  if (auto s = lookup(req->ticket(), nullptr); !s.ok()) return s;
  for (const char* data : {"line one\n", "line two\n"}) {
    v1::LogChunk chunk;
    chunk.set_data(data);
    writer->Write(chunk);
  }
  return grpc::Status::OK;
}

grpc::Status FakeAgent::Exec(grpc::ServerContext* ctx, const v1::ExecRequest* req,
                             grpc::ServerWriter<v1::ExecOutput>* writer) {
  if (auto s = enter(ctx, "Exec"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.exec = *req;
  }
  if (auto s = lookup(req->ticket(), nullptr); !s.ok()) return s;
  v1::ExecOutput out;
  std::string joined;
  for (const auto& a : req->argv()) joined += (joined.empty() ? "" : " ") + a;
  out.set_stdout("ran: " + joined + "\n" + req->stdin());
  writer->Write(out);
  v1::ExecOutput err;
  err.set_stderr("a warning\n");
  writer->Write(err);
  v1::ExecOutput last;
  last.set_exited(true);
  last.set_exit_code(!req->argv().empty() && req->argv(0) == "false" ? 42 : 0);
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status FakeAgent::Reap(grpc::ServerContext* ctx, const v1::ReapRequest* req,
                             v1::ReapResponse* resp) {
  if (auto s = enter(ctx, "Reap"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.reap = *req;
  }
  auto* r = resp->add_reclaimed();
  r->set_ticket("EXMP-7");
  r->set_policy("merged");
  r->set_reason("feature/EXMP-7 merged into develop");
  r->set_done(!req->dry_run());
  resp->add_warnings("repo shop: fetch failed, merged policy skipped for 1 environment");
  resp->set_dry_run(req->dry_run());
  return grpc::Status::OK;
}

grpc::Status FakeAgent::SetPinned(grpc::ServerContext* ctx, const v1::SetPinnedRequest* req,
                                  v1::Environment* resp) {
  if (auto s = enter(ctx, "SetPinned"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.pinned = *req;
  }
  if (auto s = lookup(req->ticket(), resp); !s.ok()) return s;
  resp->set_pinned(req->pinned());
  return grpc::Status::OK;
}

grpc::Status FakeAgent::SleepEnvironment(grpc::ServerContext* ctx,
                                         const v1::SleepEnvironmentRequest* req,
                                         v1::Environment* resp) {
  if (auto s = enter(ctx, "SleepEnvironment"); !s.ok()) return s;
  if (auto s = lookup(req->ticket(), resp); !s.ok()) return s;
  resp->set_state(v1::Environment::SLEEPING);
  return grpc::Status::OK;
}

grpc::Status FakeAgent::WakeEnvironment(grpc::ServerContext* ctx,
                                        const v1::WakeEnvironmentRequest* req,
                                        v1::Environment* resp) {
  if (auto s = enter(ctx, "WakeEnvironment"); !s.ok()) return s;
  if (auto s = lookup(req->ticket(), resp); !s.ok()) return s;
  resp->set_state(v1::Environment::READY);
  return grpc::Status::OK;
}

grpc::Status FakeAgent::ListImages(grpc::ServerContext* ctx, const v1::ListImagesRequest*,
                                   v1::ListImagesResponse* resp) {
  if (auto s = enter(ctx, "ListImages"); !s.ok()) return s;
  for (uint32_t v : {1u, 2u}) {
    auto* im = resp->add_images();
    im->set_name("busybox");
    im->set_version(v);
    im->set_current(v == 2);
    im->set_environments(v == 2 ? 3 : 0);
    *im->mutable_built_at() = ago(std::chrono::hours(v == 2 ? 5 : 100));
  }
  resp->add_recipes("busybox");
  resp->add_recipes("alpine");
  return grpc::Status::OK;
}

grpc::Status FakeAgent::BuildImage(grpc::ServerContext* ctx, const v1::BuildImageRequest* req,
                                   v1::Image* resp) {
  if (auto s = enter(ctx, "BuildImage"); !s.ok()) return s;
  if (req->name() != "busybox" && req->name() != "alpine") {
    return {grpc::StatusCode::NOT_FOUND, "image recipe \"" + req->name() + "\": not found"};
  }
  // busybox's recipe is unchanged since its current version 2.
  const bool cached = req->name() == "busybox" && !req->force();
  resp->set_name(req->name());
  resp->set_version(cached ? 2 : 3);
  resp->set_current(true);
  resp->set_cached(cached);
  *resp->mutable_built_at() = ago(std::chrono::seconds(0));
  return grpc::Status::OK;
}

grpc::Status FakeAgent::DeleteImage(grpc::ServerContext* ctx, const v1::DeleteImageRequest* req,
                                    v1::DeleteImageResponse* resp) {
  if (auto s = enter(ctx, "DeleteImage"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.deleteImage = *req;
  }
  auto* im = resp->add_deleted();
  im->set_name(req->name());
  im->set_version(req->version() == 0 ? 1 : req->version());
  return grpc::Status::OK;
}

grpc::Status FakeAgent::GetHostStatus(grpc::ServerContext* ctx, const v1::GetHostStatusRequest*,
                                      v1::HostStatus* resp) {
  if (auto s = enter(ctx, "GetHostStatus"); !s.ok()) return s;
  resp->set_version("9.8.7");
  resp->mutable_uptime()->set_seconds(3 * 3600);
  resp->set_environments(2);
  (*resp->mutable_environments_by_state())["READY"] = 1;
  (*resp->mutable_environments_by_state())["FAILED"] = 1;
  resp->set_max_environments(200);
  resp->set_capacity_left(198);
  resp->set_addresses_left(251);
  resp->set_state_dir("/var/lib/qabox");
  resp->set_disk_total_bytes(100ULL << 30);
  resp->set_disk_free_bytes(40ULL << 30);
  resp->set_memory_total_bytes(8ULL << 30);
  resp->set_memory_available_bytes(6ULL << 30);
  resp->set_domain("qa.company.int");
  return grpc::Status::OK;
}

grpc::Status FakeAgent::ListEvents(grpc::ServerContext* ctx, const v1::ListEventsRequest* req,
                                   v1::ListEventsResponse* resp) {
  if (auto s = enter(ctx, "ListEvents"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.events = *req;
  }
  int n = 0;
  for (const char* t : {"EXMP-113", "EXMP-7", "EXMP-113"}) {
    if (!req->ticket().empty() && req->ticket() != t) continue;
    auto* ev = resp->add_events();
    ev->set_id(++n);
    ev->set_ticket(t);
    ev->set_action("deploy");
    ev->set_actor("token:jenkins");
    ev->set_outcome("ok");
    ev->set_detail("commit 0123456789");
    *ev->mutable_at() = ago(std::chrono::minutes(10 * n));
  }
  return grpc::Status::OK;
}

grpc::Status FakeAgent::CreateToken(grpc::ServerContext* ctx, const v1::CreateTokenRequest* req,
                                    v1::CreateTokenResponse* resp) {
  if (auto s = enter(ctx, "CreateToken"); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    seen_.createToken = *req;
  }
  if (req->name() == "jenkins") {
    return {grpc::StatusCode::ALREADY_EXISTS, "token \"jenkins\": already exists"};
  }
  resp->mutable_token()->set_name(req->name());
  resp->mutable_token()->set_role(req->role());
  *resp->mutable_token()->mutable_created_at() = ago(std::chrono::seconds(0));
  resp->set_secret("qbx_s3cret");
  return grpc::Status::OK;
}

grpc::Status FakeAgent::ListTokens(grpc::ServerContext* ctx, const v1::ListTokensRequest*,
                                   v1::ListTokensResponse* resp) {
  if (auto s = enter(ctx, "ListTokens"); !s.ok()) return s;
  auto* t = resp->add_tokens();
  t->set_name("jenkins");
  t->set_role("ci");
  *t->mutable_created_at() = ago(std::chrono::hours(72));
  *t->mutable_last_used_at() = ago(std::chrono::hours(2));
  return grpc::Status::OK;
}

grpc::Status FakeAgent::RevokeToken(grpc::ServerContext* ctx, const v1::RevokeTokenRequest* req,
                                    v1::RevokeTokenResponse* resp) {
  if (auto s = enter(ctx, "RevokeToken"); !s.ok()) return s;
  if (req->name() != "jenkins") {
    return {grpc::StatusCode::NOT_FOUND, "token \"" + req->name() + "\": not found"};
  }
  resp->mutable_token()->set_name("jenkins");
  resp->mutable_token()->set_revoked(true);
  return grpc::Status::OK;
}

}  // namespace qabox::cli::fake
