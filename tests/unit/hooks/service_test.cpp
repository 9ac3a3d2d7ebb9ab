#include "hooks/service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <mutex>

#include "unit/hooks/fixtures.h"

namespace qabox::hooks {
namespace {

using test::kSecret;
using test::signedHeaders;
using test::webhookFixture;
using ::testing::HasSubstr;

class FakeActions : public HookActions {
 public:
  Result<std::vector<Environment>> environments() override {
    std::lock_guard lock(mu);
    return envs;
  }
  Result<Reclaimed> reclaim(const Environment& env, const std::string& policy,
                            const std::string& reason, const std::string& actor) override {
    gate();
    std::lock_guard lock(mu);
    calls.push_back("reclaim " + env.ticket + " " + policy + " " + actor);
    reasons.push_back(reason);
    return Reclaimed{reclaimWorks, reclaimWorks ? "" : "git does not show it merged yet"};
  }
  Status redeploy(const std::string& ticket, const std::string& actor) override {
    gate();
    std::lock_guard lock(mu);
    calls.push_back("redeploy " + ticket + " " + actor);
    return Status::ok();
  }
  Status deploy(const std::string& ticket, const RepoConfig& repo, const std::string& source,
                const std::string& target, const std::string& actor) override {
    std::lock_guard lock(mu);
    calls.push_back("deploy " + ticket + " " + repo.name + " " + source + " " + target + " " +
                    actor);
    return Status::ok();
  }
  Result<std::vector<std::string>> refreshBehind(const std::string& repoName) override {
    std::lock_guard lock(mu);
    calls.push_back("refresh " + repoName);
    return behind;
  }
  void record(const Event& e) override {
    std::lock_guard lock(mu);
    events.push_back(e);
  }

  // Holds every reclaim and redeploy until open() (the storm test).
  void gate() {
    std::unique_lock lock(gateMu);
    gateCv.wait(lock, [&] { return gateOpen; });
  }
  void close() {
    std::lock_guard lock(gateMu);
    gateOpen = false;
  }
  void open() {
    {
      std::lock_guard lock(gateMu);
      gateOpen = true;
    }
    gateCv.notify_all();
  }

  std::mutex mu;
  std::vector<Environment> envs;
  std::vector<std::string> calls;
  std::vector<std::string> reasons;
  std::vector<Event> events;
  std::vector<std::string> behind;
  bool reclaimWorks = true;

  std::mutex gateMu;
  std::condition_variable gateCv;
  bool gateOpen = true;
};

Environment env(const std::string& ticket, const std::string& source,
                const std::string& target = "develop") {
  Environment e;
  e.ticket = ticket;
  e.slug = ticket;
  e.state = EnvState::kReady;
  e.spec.repo = "shop";
  e.spec.sourceBranch = source;
  e.spec.targetBranch = target;
  e.sourceCommit = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
  return e;
}

class HookServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_.name = "shop";
    repo_.url = "/srv/git/shop.git";
    repo_.fullName = "Acme/Shop";
    repo_.webhookSecret = kSecret;
    repo_.deployPhrase = "deploy this please";
    actions_.envs = {env("SHOP-12", "feature/SHOP-12-cart"), env("SHOP-13", "feature/SHOP-13")};
  }

  HookService& service(size_t queue = 16) {
    if (!service_) {
      HookServiceOptions o;
      o.repos = {repo_};
      o.queue = queue;
      o.workers = 2;
      service_ = std::make_unique<HookService>(o, actions_);
      service_->start();
    }
    return *service_;
  }

  HookAnswer deliver(Provider p, const std::string& event, const std::string& body,
                     const std::string& delivery, const std::string& secret = kSecret) {
    test::Headers h = signedHeaders(p, event, body, secret, delivery);
    return service().handle(p, h.fn(), body);
  }

  std::vector<std::string> calls() {
    service().drain();
    std::lock_guard lock(actions_.mu);
    return actions_.calls;
  }

  RepoConfig repo_;
  FakeActions actions_;
  std::unique_ptr<HookService> service_;
};

// ------------------------------------------------------------- refusals first

TEST_F(HookServiceTest, ForgedDeliveriesChangeNothingAndAreRecorded) {
  std::string body = webhookFixture("github/pull_request_closed_merged.json");
  auto a = deliver(Provider::kGithub, "pull_request", body, "d-1", "not-the-secret-at-all");
  EXPECT_EQ(a.status, 401);
  test::Headers unsigned_ = signedHeaders(Provider::kGithub, "pull_request", body, kSecret, "d-2");
  unsigned_.erase("X-Hub-Signature-256");
  EXPECT_EQ(service().handle(Provider::kGithub, unsigned_.fn(), body).status, 401);
  // Signed for another body.
  test::Headers other = signedHeaders(Provider::kGithub, "pull_request", "{}", kSecret, "d-3");
  EXPECT_EQ(service().handle(Provider::kGithub, other.fn(), body).status, 401);
  EXPECT_TRUE(calls().empty());
  {
    std::lock_guard lock(actions_.mu);
    ASSERT_EQ(actions_.events.size(), 3u);
    for (const Event& e : actions_.events) {
      EXPECT_EQ(e.outcome, "denied");
      EXPECT_EQ(e.actor, "webhook:github");
      EXPECT_THAT(e.detail, ::testing::Not(HasSubstr(kSecret)));
    }
  }
  // A forged delivery's id is not remembered: the real one is served.
  EXPECT_EQ(deliver(Provider::kGithub, "pull_request", body, "d-1").status, 202);
}

TEST_F(HookServiceTest, UnknownRepoMalformedJsonAndBadDeliveryIdAreRefused) {
  nlohmann::json j = nlohmann::json::parse(webhookFixture("github/push.json"));
  j["repository"]["full_name"] = "evil/shop";
  // 401, not 404: the answer says nothing of which repos are configured.
  EXPECT_EQ(deliver(Provider::kGithub, "push", j.dump(), "d-1").status, 401);
  EXPECT_EQ(deliver(Provider::kGithub, "push", "{not json", "d-2").status, 422);
  EXPECT_EQ(deliver(Provider::kGithub, "push", "[]", "d-3").status, 422);
  j["repository"]["full_name"] = "acme/shop";
  j["after"] = 7;
  EXPECT_EQ(deliver(Provider::kGithub, "push", j.dump(), "d-4").status, 422);
  EXPECT_EQ(deliver(Provider::kGithub, "push", webhookFixture("github/push.json"), "bad id").status,
            422);
  // The URL in the payload plays no part: a configured URL elsewhere changes nothing.
  nlohmann::json u = nlohmann::json::parse(webhookFixture("github/push.json"));
  u["repository"]["full_name"] = "other/repo";
  u["repository"]["clone_url"] = repo_.url;
  EXPECT_EQ(deliver(Provider::kGithub, "push", u.dump(), "d-5").status, 401);
  EXPECT_TRUE(calls().empty());
}

TEST_F(HookServiceTest, AReplayedDeliveryIsADuplicate) {
  std::string body = webhookFixture("github/push.json");
  EXPECT_EQ(deliver(Provider::kGithub, "push", body, "d-1").status, 202);
  calls();
  auto again = deliver(Provider::kGithub, "push", body, "d-1");
  EXPECT_EQ(again.status, 200);
  EXPECT_THAT(again.json, HasSubstr("duplicate"));
  // The same id from another host is another delivery.
  EXPECT_EQ(deliver(Provider::kGitea, "push", webhookFixture("gitea/push.json"), "d-1").status,
            202);
  auto c = calls();
  EXPECT_EQ(c.size(), 2u);
}

// ------------------------------------------------------------- actions

TEST_F(HookServiceTest, MergedPullRequestReclaimsOnlyItsEnvironment) {
  auto a = deliver(Provider::kGithub, "pull_request",
                   webhookFixture("github/pull_request_closed_merged.json"), "d-1");
  EXPECT_EQ(a.status, 202);
  EXPECT_THAT(a.json, HasSubstr("SHOP-12"));
  EXPECT_EQ(calls(), (std::vector<std::string>{"reclaim SHOP-12 merged webhook:github"}));
  std::lock_guard lock(actions_.mu);
  EXPECT_THAT(actions_.reasons[0], HasSubstr("pull request #12 merged (delivery d-1)"));
}

TEST_F(HookServiceTest, ReclaimThatGitDoesNotConfirmIsRecordedNotDone) {
  actions_.reclaimWorks = false;
  deliver(Provider::kGitlab, "Merge Request Hook",
          webhookFixture("gitlab/merge_request_merge.json"), "d-1");
  calls();
  std::lock_guard lock(actions_.mu);
  ASSERT_EQ(actions_.events.size(), 1u);
  EXPECT_EQ(actions_.events[0].outcome, "skipped");
  EXPECT_EQ(actions_.events[0].actor, "webhook:gitlab");
  EXPECT_THAT(actions_.events[0].detail, HasSubstr("git does not show it merged yet"));
  EXPECT_THAT(actions_.events[0].detail, HasSubstr("d-1"));
}

TEST_F(HookServiceTest, ClosedWithoutMergeFollowsOnClosed) {
  deliver(Provider::kGitlab, "Merge Request Hook",
          webhookFixture("gitlab/merge_request_close.json"), "d-1");
  EXPECT_EQ(calls(), (std::vector<std::string>{"reclaim SHOP-12 closed webhook:gitlab"}));
  {
    std::lock_guard lock(actions_.mu);
    EXPECT_THAT(actions_.reasons[0], HasSubstr("pull request #12 closed without merging"));
  }
  service_.reset();
  actions_.calls.clear();
  repo_.onClosed = "keep";
  repo_.onMerged = "ignore";
  auto kept = deliver(Provider::kGithub, "pull_request",
                      webhookFixture("github/pull_request_closed.json"), "d-2");
  EXPECT_EQ(kept.status, 200);
  EXPECT_THAT(kept.json, HasSubstr("on_closed is keep"));
  auto merged = deliver(Provider::kGithub, "pull_request",
                        webhookFixture("github/pull_request_closed_merged.json"), "d-3");
  EXPECT_THAT(merged.json, HasSubstr("on_merged is ignore"));
  EXPECT_TRUE(calls().empty());
}

TEST_F(HookServiceTest, PushRedeploysWhatWasDeployedFromTheBranchButNotSecretOnes) {
  Environment secret = env("SHOP-14", "feature/SHOP-12-cart");
  secret.spec.secretKeys = {"API_KEY"};
  Environment current = env("SHOP-15", "feature/SHOP-12-cart");
  current.sourceCommit = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";  // already at the push
  actions_.envs.push_back(secret);
  actions_.envs.push_back(current);
  auto a = deliver(Provider::kGithub, "push", webhookFixture("github/push.json"), "d-1");
  EXPECT_EQ(a.status, 202);
  EXPECT_THAT(a.json, HasSubstr("SHOP-14: deployed with secrets"));
  EXPECT_THAT(a.json, HasSubstr("SHOP-15: already at"));
  EXPECT_EQ(calls(), (std::vector<std::string>{"redeploy SHOP-12 webhook:github"}));
  service_.reset();
  actions_.calls.clear();
  repo_.onPush = "ignore";
  EXPECT_EQ(deliver(Provider::kGithub, "push", webhookFixture("github/push.json"), "d-2").status,
            200);
  EXPECT_TRUE(calls().empty());
}

TEST_F(HookServiceTest, PushToATargetRefreshesWhatIsBehindAndRedeploysWhenAsked) {
  repo_.onTargetPush = "redeploy";
  actions_.behind = {"SHOP-12"};
  nlohmann::json j = nlohmann::json::parse(webhookFixture("github/push.json"));
  j["ref"] = "refs/heads/develop";
  auto a = deliver(Provider::kGithub, "push", j.dump(), "d-1");
  EXPECT_EQ(a.status, 202);
  auto c = calls();
  EXPECT_EQ(c, (std::vector<std::string>{"refresh shop", "redeploy SHOP-12 webhook:github"}));
}

TEST_F(HookServiceTest, CommentDeploysOnlyAPullRequestItHasSeen) {
  std::string comment = webhookFixture("github/issue_comment.json");
  auto unseen = deliver(Provider::kGithub, "issue_comment", comment, "d-1");
  EXPECT_EQ(unseen.status, 200);
  EXPECT_THAT(unseen.json, HasSubstr("PR #12 not seen yet"));
  EXPECT_TRUE(calls().empty());
  EXPECT_EQ(deliver(Provider::kGithub, "pull_request",
                    webhookFixture("github/pull_request_opened.json"), "d-2")
                .status,
            200);
  // Another comment (the same body again would be a replay).
  nlohmann::json later = nlohmann::json::parse(comment);
  later["comment"]["id"] = 1146826;
  auto a = deliver(Provider::kGithub, "issue_comment", later.dump(), "d-3");
  EXPECT_EQ(a.status, 202);
  EXPECT_EQ(calls(), (std::vector<std::string>{
                         "deploy SHOP-12 shop feature/SHOP-12-cart develop webhook:github"}));
  // Another comment is not the phrase.
  nlohmann::json j = nlohmann::json::parse(comment);
  j["comment"]["body"] = "please do not deploy";
  EXPECT_THAT(deliver(Provider::kGithub, "issue_comment", j.dump(), "d-4").json,
              HasSubstr("not the deploy phrase"));
}

TEST_F(HookServiceTest, GitlabNoteNamesItsBranchesAndTheTicketPatternDecides) {
  auto a = deliver(Provider::kGitlab, "Note Hook", webhookFixture("gitlab/note_merge_request.json"),
                   "d-1");
  EXPECT_EQ(a.status, 202);
  EXPECT_EQ(calls(), (std::vector<std::string>{
                         "deploy SHOP-12 shop feature/SHOP-12-cart develop webhook:gitlab"}));
  nlohmann::json j = nlohmann::json::parse(webhookFixture("gitlab/note_merge_request.json"));
  j["merge_request"]["source_branch"] = "no-ticket-here";
  auto none = deliver(Provider::kGitlab, "Note Hook", j.dump(), "d-2");
  EXPECT_EQ(none.status, 200);
  EXPECT_THAT(none.json, HasSubstr("no ticket in branch no-ticket-here"));
}

TEST_F(HookServiceTest, DeployPhraseOffByDefault) {
  repo_.deployPhrase.clear();
  auto a = deliver(Provider::kGitlab, "Note Hook", webhookFixture("gitlab/note_merge_request.json"),
                   "d-1");
  EXPECT_THAT(a.json, HasSubstr("deploy_phrase is off"));
  EXPECT_TRUE(calls().empty());
}

// A storm: 500 pushes for a few tickets while every action is held; the
// queue stays bounded, each ticket runs once per release, and a full queue
// says 503 with Retry-After and forgets the id so the retry is served.
TEST_F(HookServiceTest, StormIsCoalescedAndBounded) {
  actions_.envs.clear();
  for (int i = 0; i < 6; ++i) {
    actions_.envs.push_back(env("SHOP-" + std::to_string(100 + i), "b" + std::to_string(i)));
  }
  HookService& s = service(4);
  actions_.close();
  nlohmann::json base = nlohmann::json::parse(webhookFixture("github/push.json"));
  int accepted = 0;
  int full = 0;
  std::string fullId;
  for (int n = 0; n < 500; ++n) {
    nlohmann::json j = base;
    j["ref"] = "refs/heads/b" + std::to_string(n % 6);
    char sha[41];
    std::snprintf(sha, sizeof sha, "%040x", n + 1);
    j["after"] = sha;
    std::string id = "storm-" + std::to_string(n);
    auto a = deliver(Provider::kGithub, "push", j.dump(), id);
    if (a.status == 202) ++accepted;
    if (a.status == 503) {
      ++full;
      EXPECT_EQ(a.retryAfter, 5);
      fullId = id;
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_GT(full, 0);  // 6 tickets, room for 4 pending (and up to 2 running)
  actions_.open();
  auto c = calls();
  // At most: the ones that were running plus one pending per ticket.
  EXPECT_LE(c.size(), 12u);
  EXPECT_GE(c.size(), 4u);
  // The retry of a refused delivery is not a duplicate.
  nlohmann::json j = base;
  j["ref"] = "refs/heads/b0";
  j["after"] = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
  auto retry = deliver(Provider::kGithub, "push", j.dump(), fullId);
  EXPECT_EQ(retry.status, 202) << retry.json;
  EXPECT_EQ(
      s.handle(Provider::kGithub,
               signedHeaders(Provider::kGithub, "push", j.dump(), kSecret, fullId).fn(), j.dump())
          .status,
      200);  // and now it is
}

// ------------------------------------------------------------- the attacker's findings

// A fork's pull request names a head branch of its own choosing: closing it
// must not reclaim the environment deployed from the base repo's branch of
// that name, and commenting on it must not deploy.
TEST_F(HookServiceTest, ForkPullRequestsAreIgnored) {
  auto gh = deliver(Provider::kGithub, "pull_request",
                    webhookFixture("github/pull_request_closed_fork.json"), "d-1");
  EXPECT_EQ(gh.status, 200);
  EXPECT_THAT(gh.json, HasSubstr("pull request from a fork"));
  auto gl = deliver(Provider::kGitlab, "Merge Request Hook",
                    webhookFixture("gitlab/merge_request_close_fork.json"), "d-2");
  EXPECT_THAT(gl.json, HasSubstr("pull request from a fork"));
  // A fork's opened event is not remembered: a later comment finds nothing.
  nlohmann::json opened = nlohmann::json::parse(webhookFixture("github/pull_request_opened.json"));
  opened["pull_request"]["head"]["repo"]["full_name"] = "mallory/shop";
  EXPECT_THAT(deliver(Provider::kGithub, "pull_request", opened.dump(), "d-3").json,
              HasSubstr("pull request from a fork"));
  EXPECT_THAT(deliver(Provider::kGithub, "issue_comment",
                      webhookFixture("github/issue_comment.json"), "d-4")
                  .json,
              HasSubstr("not seen yet"));
  // A deleted fork (head.repo null) is a fork too.
  nlohmann::json gone = nlohmann::json::parse(webhookFixture("github/pull_request_closed.json"));
  gone["pull_request"]["head"]["repo"] = nullptr;
  EXPECT_THAT(deliver(Provider::kGithub, "pull_request", gone.dump(), "d-5").json,
              HasSubstr("pull request from a fork"));
  // A GitLab note on a fork's merge request.
  nlohmann::json note = nlohmann::json::parse(webhookFixture("gitlab/note_merge_request.json"));
  note["merge_request"]["source_project_id"] = 666;
  EXPECT_THAT(deliver(Provider::kGitlab, "Note Hook", note.dump(), "d-6").json,
              HasSubstr("pull request from a fork"));
  EXPECT_TRUE(calls().empty());
}

TEST_F(HookServiceTest, ClosingMatchesTheTargetBranchToo) {
  actions_.envs = {env("SHOP-12", "feature/SHOP-12-cart", "release")};
  auto a = deliver(Provider::kGithub, "pull_request",
                   webhookFixture("github/pull_request_closed_merged.json"), "d-1");
  EXPECT_EQ(a.status, 200) << a.json;
  EXPECT_TRUE(calls().empty());
}

// The same signed body under a fresh delivery id is a replay.
TEST_F(HookServiceTest, AReplayUnderAFreshIdIsADuplicate) {
  std::string body = webhookFixture("github/push.json");
  EXPECT_EQ(deliver(Provider::kGithub, "push", body, "d-1").status, 202);
  auto again = deliver(Provider::kGithub, "push", body, "d-fresh");
  EXPECT_EQ(again.status, 200);
  EXPECT_THAT(again.json, HasSubstr("duplicate"));
  EXPECT_EQ(calls().size(), 1u);
}

// A replayed "closed" does not reclaim what was deployed after the close.
TEST_F(HookServiceTest, ClosedDoesNotReclaimWhatWasDeployedAfterIt) {
  // closed_at 2026-12-01T12:00:00Z; deployed an hour later.
  auto closedAt = parseTimestamp("2026-12-01T12:00:00Z");
  ASSERT_TRUE(closedAt.has_value());
  actions_.envs[0].deployedAt = fromUnixMillis((*closedAt + 3600) * 1000);
  auto a = deliver(Provider::kGithub, "pull_request",
                   webhookFixture("github/pull_request_closed.json"), "d-1");
  EXPECT_THAT(a.json, HasSubstr("deployed after the pull request was closed"));
  EXPECT_TRUE(calls().empty());
  // Deployed before the close: reclaimed.
  service_.reset();
  actions_.envs[0].deployedAt = fromUnixMillis((*closedAt - 3600) * 1000);
  deliver(Provider::kGithub, "pull_request", webhookFixture("github/pull_request_closed.json"),
          "d-2");
  EXPECT_EQ(calls(), (std::vector<std::string>{"reclaim SHOP-12 closed webhook:github"}));
}

TEST_F(HookServiceTest, CommentDeploysNeedATrustedAuthorTheLineStartAndAnOpenPr) {
  deliver(Provider::kGithub, "pull_request", webhookFixture("github/pull_request_opened.json"),
          "d-0");
  nlohmann::json c = nlohmann::json::parse(webhookFixture("github/issue_comment.json"));
  c["comment"]["author_association"] = "NONE";
  auto untrusted = deliver(Provider::kGithub, "issue_comment", c.dump(), "d-1");
  EXPECT_THAT(untrusted.json, HasSubstr("not trusted"));
  c["comment"].erase("author_association");
  EXPECT_THAT(deliver(Provider::kGithub, "issue_comment", c.dump(), "d-2").json,
              HasSubstr("not trusted"));
  c["comment"]["author_association"] = "OWNER";
  c["comment"]["body"] = "I would not say deploy this please here";
  EXPECT_THAT(deliver(Provider::kGithub, "issue_comment", c.dump(), "d-3").json,
              HasSubstr("not the deploy phrase"));
  c["comment"]["body"] = "ok\n   deploy this please  ";
  c["issue"]["state"] = "closed";
  EXPECT_THAT(deliver(Provider::kGithub, "issue_comment", c.dump(), "d-4").json,
              HasSubstr("the pull request is closed"));
  nlohmann::json note = nlohmann::json::parse(webhookFixture("gitlab/note_merge_request.json"));
  note["merge_request"]["state"] = "merged";
  EXPECT_THAT(deliver(Provider::kGitlab, "Note Hook", note.dump(), "d-5").json,
              HasSubstr("the pull request is closed"));
  EXPECT_TRUE(calls().empty());
  c["issue"]["state"] = "open";
  EXPECT_EQ(deliver(Provider::kGithub, "issue_comment", c.dump(), "d-6").status, 202);
  EXPECT_EQ(calls().size(), 1u);
}

// A second repo's secret does not sign for the first; an unconfigured repo
// and a wrong secret answer alike.
TEST_F(HookServiceTest, TheSecretThatMatchesDecidesTheRepo) {
  RepoConfig other = repo_;
  other.name = "blog";
  other.fullName = "acme/blog";
  other.webhookSecret = "another-secret-another";
  HookServiceOptions o;
  o.repos = {repo_, other};
  service_ = std::make_unique<HookService>(o, actions_);
  service_->start();
  std::string body = webhookFixture("github/push.json");  // names acme/shop
  auto wrong = deliver(Provider::kGithub, "push", body, "d-1", other.webhookSecret);
  EXPECT_EQ(wrong.status, 401);
  nlohmann::json j = nlohmann::json::parse(body);
  j["repository"]["full_name"] = "acme/nowhere";
  auto unknown = deliver(Provider::kGithub, "push", j.dump(), "d-2");
  EXPECT_EQ(unknown.status, 401);
  auto bad = deliver(Provider::kGithub, "push", "{not json", "d-3", "not-any-secret-at-all");
  EXPECT_EQ(bad.status, 401);  // not 422: nothing unsigned is parsed
  EXPECT_EQ(deliver(Provider::kGithub, "push", body, "d-4").status, 202);
}

TEST_F(HookServiceTest, ADenialFloodIsRateLimited) {
  TimePoint now = fromUnixMillis(1'800'000'000'000);
  HookServiceOptions o;
  o.repos = {repo_};
  o.deniedPerMinute = 5;
  o.clock = [&now] { return now; };
  service_ = std::make_unique<HookService>(o, actions_);
  service_->start();
  std::string body = webhookFixture("github/push.json");
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(
        deliver(Provider::kGithub, "push", body, "f-" + std::to_string(i), "wrong-secret-x").status,
        401);
  }
  {
    std::lock_guard lock(actions_.mu);
    EXPECT_EQ(actions_.events.size(), 5u);
  }
  now += std::chrono::seconds(61);
  deliver(Provider::kGithub, "push", body, "f-late", "wrong-secret-x");
  std::lock_guard lock(actions_.mu);
  ASSERT_EQ(actions_.events.size(), 7u);
  EXPECT_THAT(actions_.events[5].detail, HasSubstr("and 195 more denied deliveries"));
}

class ThrowingActions : public FakeActions {
 public:
  Result<std::vector<Environment>> environments() override {
    if (fail) throw std::runtime_error("the store is gone");
    return FakeActions::environments();
  }
  bool fail = true;
};

// A delivery whose dispatch failed is forgotten: the host's retry is served.
TEST_F(HookServiceTest, AFailedDispatchForgetsTheDelivery) {
  ThrowingActions throwing;
  throwing.envs = actions_.envs;
  HookServiceOptions o;
  o.repos = {repo_};
  HookService s(o, throwing);
  s.start();
  std::string body = webhookFixture("github/pull_request_closed_merged.json");
  auto h = signedHeaders(Provider::kGithub, "pull_request", body, kSecret, "d-1");
  EXPECT_EQ(s.handle(Provider::kGithub, h.fn(), body).status, 500);
  throwing.fail = false;
  EXPECT_EQ(s.handle(Provider::kGithub, h.fn(), body).status, 202);
  EXPECT_EQ(s.handle(Provider::kGithub, h.fn(), body).status, 200);
}

}  // namespace
}  // namespace qabox::hooks
