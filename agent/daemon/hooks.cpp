// The webhooks' wiring: the secrets read from their files, the actions
// over the reaper, the lifecycle and the store, and the HTTP side of a
// delivery on the dashboard's server.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/agent.h"
#include "sys/fd.h"

namespace qabox {

namespace {

// 0600 (or stricter) and owned by the agent's user: anyone who can read the
// secret can forge deliveries.
Result<std::string> readSecretFile(const RepoConfig& repo) {
  const std::string& path = repo.webhookSecretFile;
  std::string what = "repos.webhook_secret_file " + path + " (repo " + repo.name + ")";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return invalidArgument(what + ": " + std::strerror(errno));
  UniqueFd guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return invalidArgument(what + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return invalidArgument(what + ": not a regular file");
  if ((st.st_mode & 077) != 0) {
    return invalidArgument(what + ": readable by others; chmod 600 it");
  }
  if (st.st_uid != ::geteuid()) return invalidArgument(what + ": not owned by the agent's user");
  if (st.st_size > 4096) return invalidArgument(what + ": larger than 4K");
  std::string secret(static_cast<size_t>(st.st_size), '\0');
  ssize_t n = ::read(fd, secret.data(), secret.size());
  if (n < 0) return invalidArgument(what + ": " + std::strerror(errno));
  secret.resize(static_cast<size_t>(n));
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < 16)
    return invalidArgument(what + ": the secret must be at least 16 characters");
  return secret;
}

class AgentHookActions : public hooks::HookActions {
 public:
  AgentHookActions(Store& store, EnvironmentManager& envs, Reaper& reaper)
      : store_(store), envs_(envs), reaper_(reaper) {}

  Result<std::vector<Environment>> environments() override { return store_.listEnvironments(); }

  Result<Reclaimed> reclaim(const Environment& env, const std::string& policy,
                            const std::string& reason, const std::string& actor) override {
    QABOX_ASSIGN_OR_RETURN(ReapDecision d, reaper_.reclaimNow(env, policy, reason, actor));
    return Reclaimed{d.done, d.error};
  }

  Status redeploy(const std::string& ticket, const std::string& actor) override {
    return envs_.redeploy(ticket, false, actor, {}).status();
  }

  Status deploy(const std::string& ticket, const RepoConfig& repo, const std::string& source,
                const std::string& target, const std::string& actor) override {
    DeployInput in;
    in.ticket = ticket;
    in.spec.repo = repo.name;
    in.spec.sourceBranch = source;
    in.spec.targetBranch = target;
    in.actor = actor;
    // An existing environment keeps what it was deployed with but the branches.
    if (auto current = envs_.get(ticket); current.isOk()) {
      if (!current->spec.secretKeys.empty()) {
        return failedPrecondition("ticket " + ticket +
                                  ": deployed with secrets qabox does not keep; deploy it from "
                                  "its pipeline");
      }
      in.spec = current->spec;
      in.spec.repo = repo.name;
      in.spec.sourceBranch = source;
      in.spec.targetBranch = target;
    }
    return envs_.deploy(in, {}).status();
  }

  // A push to a target: fetch, then how far each environment merged onto it
  // is behind now (the lifecycle records it and its "behind" event).
  Result<std::vector<std::string>> refreshBehind(const std::string& repoName) override {
    QABOX_ASSIGN_OR_RETURN(auto moved, envs_.refreshBehind(repoName, true));
    std::vector<std::string> tickets;
    tickets.reserve(moved.size());
    for (const auto& m : moved) tickets.push_back(m.ticket);
    return tickets;
  }

  void record(const Event& e) override {
    if (Status s = store_.addEvent(e); !s.isOk()) spdlog::warn("webhooks: event: {}", s.toString());
  }

 private:
  Store& store_;
  EnvironmentManager& envs_;
  Reaper& reaper_;
};

}  // namespace

Status Agent::startHooks() {
  hooks::HookServiceOptions options;
  options.repos = config_.repos;
  bool any = false;
  for (RepoConfig& repo : options.repos) {
    if (!repo.webhookSecretFile.empty()) {
      QABOX_ASSIGN_OR_RETURN(repo.webhookSecret, readSecretFile(repo));
    }
    any = any || repo.hasWebhook();
  }
  if (!any) return Status::ok();
  options.queue = config_.webhooks.queue;
  options.workers = config_.webhooks.workers;
  hookActions_ = std::make_unique<AgentHookActions>(*store_, *envs_, *reaper_);
  hooks_ = std::make_unique<hooks::HookService>(std::move(options), *hookActions_);
  hooks_->start();
  size_t n = 0;
  for (const RepoConfig& repo : config_.repos) n += repo.fullName.empty() ? 0 : 1;
  if (config_.routing.tlsListen.empty()) {
    spdlog::warn(
        "webhooks are on without TLS (routing.tls_listen is empty): deliveries, and GitLab's "
        "X-Gitlab-Token (the secret itself), travel in clear; serve /hooks over TLS");
  }
  spdlog::info("webhooks for {} repos at {}://{}.{}/hooks/{{github,gitlab,gitea}}", n,
               config_.routing.tlsListen.empty() ? "http" : "https", kReservedLabel,
               config_.routing.domain);
  return Status::ok();
}

web::Reply Agent::serveHook(const web::Request& req) {
  namespace http = web::http;
  auto reply = [](http::status status, std::string body) {
    web::Reply r = web::makeReply(status, std::move(body), "application/json");
    return r;
  };
  if (!hooks_) return reply(http::status::not_found, "{\"error\":\"no repo takes webhooks\"}\n");
  std::string_view target(req.target().data(), req.target().size());
  std::string_view name = target.substr(kHooksPrefix.size());
  auto provider = hooks::parseProvider(name);
  if (!provider) {
    return reply(http::status::not_found,
                 "{\"error\":\"use /hooks/github, /hooks/gitlab or /hooks/gitea\"}\n");
  }
  if (req.method() != http::verb::post) {
    web::Reply r = reply(http::status::method_not_allowed, "{\"error\":\"POST only\"}\n");
    r.res.set(http::field::allow, "POST");
    return r;
  }
  auto headers = [&req](std::string_view field) -> std::string {
    auto it = req.find(boost::beast::string_view(field.data(), field.size()));
    return it == req.end() ? std::string() : std::string(it->value());
  };
  hooks::HookAnswer a = hooks_->handle(*provider, headers, req.body());
  web::Reply r = reply(static_cast<http::status>(a.status), std::move(a.json));
  if (a.retryAfter > 0) r.res.set(http::field::retry_after, std::to_string(a.retryAfter));
  return r;
}

}  // namespace qabox
