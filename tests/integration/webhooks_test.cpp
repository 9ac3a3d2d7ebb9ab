// Issue 16: git hosts deliver webhooks to https://qabox.<domain>/hooks/<host>;
// merges and closes reclaim, pushes redeploy, forgeries change nothing.
// Real LXC, the real daemon, a local bare repo as the remote, the payloads
// the hosts document (tests/fixtures/webhooks) signed here with the secret,
// over real HTTP through the router.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <thread>

#include "harness.h"
#include "hooks/event.h"

namespace qabox::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

const std::string kSecret = "webhook-secret-0123456789";

std::string fixture(const std::string& name) {
  return readFile(std::string(QABOX_WEBHOOK_FIXTURES) + "/" + name);
}

std::string isoNow() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool eventually(const std::function<bool()>& cond, milliseconds limit = seconds(20),
                milliseconds every = milliseconds(20)) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(every);
  }
  return cond();
}

long msSince(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<milliseconds>(Clock::now() - t).count());
}

class LxcWebhooks : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("index.html", "develop\n");
    git_->commit("base");
    git_->push("develop");
  }

  void start(const std::string& repoToml = "", const std::string& moreToml = "") {
    TestHost::Options o;
    // The reaper's schedule is off: what is reclaimed here is the webhook's doing.
    o.extraToml = "[[repos]]\nname = \"shop\"\nurl = \"" + git_->bare() +
                  "\"\nfull_name = \"acme/shop\"\nwebhook_secret = \"" + kSecret + "\"\n" +
                  repoToml + "\n[reaper]\ninterval = \"0\"\n[webhooks]\nmax_body = \"64K\"\n" +
                  moreToml;
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

  void branch(const std::string& name, const std::string& content) {
    git_->checkout("develop");
    git_->checkout(name, true);
    git_->write("index.html", content);
    git_->commit("work on " + name);
    git_->push(name);
    git_->checkout("develop");
  }

  std::string commitOn(const std::string& name, const std::string& content) {
    git_->checkout(name);
    git_->write("index.html", content);
    git_->commit("more on " + name);
    git_->push(name);
    std::string head = git_->head();
    git_->checkout("develop");
    return head;
  }

  std::string headOf(const std::string& name) {
    git_->checkout(name);
    std::string head = git_->head();
    git_->checkout("develop");
    return head;
  }

  void deployBranch(const std::string& ticket, const std::string& source) {
    auto r =
        host_->cli({"deploy", ticket, "--repo", "shop", "--source", source, "--target", "develop"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
  }

  HttpReply viaRouter(const std::string& slug) {
    return httpGet("127.0.0.1", host_->routerPort(), "/", slug + "." + host_->domain(), seconds(2));
  }

  struct Posted {
    int status = 0;
    std::string head;
    std::string body;
  };
  // POST over a raw connection to the router, as qabox.<domain>.
  Posted post(const std::string& path, const std::vector<std::pair<std::string, std::string>>& h,
              const std::string& body) {
    RawClient c(host_->routerPort());
    Posted p;
    if (!c.connected()) return p;
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: qabox." + host_->domain() +
                      "\r\nContent-Type: application/json\r\nConnection: close\r\n";
    for (const auto& [k, v] : h) req += k + ": " + v + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    c.send(req + body);
    std::string all = c.readAll(seconds(10));
    size_t sp = all.find(' ');
    if (sp != std::string::npos) p.status = std::atoi(all.c_str() + sp + 1);
    size_t end = all.find("\r\n\r\n");
    p.head = all.substr(0, end);
    if (end != std::string::npos) p.body = all.substr(end + 4);
    return p;
  }

  Posted github(const std::string& event, const std::string& body, const std::string& delivery,
                const std::string& secret = kSecret) {
    return post("/hooks/github",
                {{"X-GitHub-Event", event},
                 {"X-GitHub-Delivery", delivery},
                 {"X-Hub-Signature-256", "sha256=" + hooks::hmacSha256Hex(secret, body)}},
                body);
  }

  Posted gitlab(const std::string& event, const std::string& body, const std::string& delivery) {
    return post(
        "/hooks/gitlab",
        {{"X-Gitlab-Event", event}, {"X-Gitlab-Event-UUID", delivery}, {"X-Gitlab-Token", kSecret}},
        body);
  }

  // GitHub's pull_request payload for `source` at `head`.
  std::string pullRequest(const std::string& fixtureName, int number, const std::string& source,
                          const std::string& head) {
    json j = json::parse(fixture(fixtureName));
    j["number"] = number;
    j["pull_request"]["number"] = number;
    j["pull_request"]["head"]["ref"] = source;
    j["pull_request"]["head"]["sha"] = head;
    // The event's own time is now: a "closed" reclaim refuses environments
    // deployed after it.
    std::string now = isoNow();
    j["pull_request"]["updated_at"] = now;
    if (j["pull_request"]["closed_at"].is_string()) j["pull_request"]["closed_at"] = now;
    return j.dump();
  }

  std::string push(const std::string& branchName, const std::string& after) {
    json j = json::parse(fixture("github/push.json"));
    j["ref"] = "refs/heads/" + branchName;
    j["after"] = after;
    return j.dump();
  }

  std::string events(const std::string& ticket) {
    auto r = ticket.empty() ? host_->cli({"events", "-o", "json"})
                            : host_->cli({"events", ticket, "-o", "json"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    return r.out;
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

// The attacker's test first: nothing a forged, replayed, foreign, oversized
// or malformed delivery says changes anything.
TEST_F(LxcWebhooks, RefusedDeliveriesChangeNothing) {
  start();
  branch("feature/WH-1", "wh-1\n");
  deployBranch("WH-1", "feature/WH-1");
  auto before = host_->env("WH-1");
  ASSERT_TRUE(before);
  std::string merged = pullRequest("github/pull_request_closed_merged.json", 1, "feature/WH-1",
                                   headOf("feature/WH-1"));
  git_->checkout("develop");
  git_->git({"merge", "--quiet", "--no-ff", "-m", "Merge feature/WH-1", "feature/WH-1"});
  git_->push("develop");

  EXPECT_EQ(github("pull_request", merged, "forged-1", "not-the-secret-at-all").status, 401);
  EXPECT_EQ(post("/hooks/github",
                 {{"X-GitHub-Event", "pull_request"}, {"X-GitHub-Delivery", "u-1"}}, merged)
                .status,
            401);
  json foreign = json::parse(merged);
  foreign["repository"]["full_name"] = "evil/shop";
  // 401, not 404: the answer tells nothing of which repos are configured.
  EXPECT_EQ(github("pull_request", foreign.dump(), "foreign-1").status, 401);
  // A fork's pull request with the same head branch name.
  json fork = json::parse(merged);
  fork["pull_request"]["head"]["repo"]["full_name"] = "mallory/shop";
  auto forked = github("pull_request", fork.dump(), "fork-1");
  EXPECT_EQ(forked.status, 200) << forked.body;
  EXPECT_NE(forked.body.find("pull request from a fork"), std::string::npos) << forked.body;
  EXPECT_EQ(github("pull_request", "{\"action\": ", "bad-json-1").status, 422);
  std::string huge = merged;
  huge.insert(huge.size() - 1, ",\"pad\":\"" + std::string(70 * 1024, 'x') + "\"");
  EXPECT_EQ(github("pull_request", huge, "huge-1").status, 413);
  EXPECT_EQ(post("/hooks/nosuchhost", {}, merged).status, 404);
  // Only POST /hooks/{github,gitlab,gitea} gets the larger body limit.
  EXPECT_EQ(post("/hooks/nosuchhost", {}, std::string(16 * 1024, 'x')).status, 413);

  std::this_thread::sleep_for(milliseconds(500));
  auto after = host_->env("WH-1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state(), before->state());
  EXPECT_EQ(after->commit(), before->commit());
  EXPECT_EQ(viaRouter("wh-1").status, 200);
  std::string log = events("");
  EXPECT_NE(log.find("webhook:github"), std::string::npos) << log;
  EXPECT_EQ(log.find(kSecret), std::string::npos);

  // The real delivery, then its replay.
  auto real = github("pull_request", merged, "real-1");
  EXPECT_EQ(real.status, 202) << real.body;
  EXPECT_TRUE(eventually([&] { return !host_->env("WH-1"); }));
  auto replay = github("pull_request", merged, "real-1");
  EXPECT_EQ(replay.status, 200);
  EXPECT_NE(replay.body.find("duplicate"), std::string::npos) << replay.body;
  // The same body under a fresh delivery id is a replay too.
  auto fresh = github("pull_request", merged, "real-2");
  EXPECT_EQ(fresh.status, 200);
  EXPECT_NE(fresh.body.find("duplicate"), std::string::npos) << fresh.body;
}

TEST_F(LxcWebhooks, MergeReclaimsAtOnceButOnlyWhenGitAgrees) {
  start();
  branch("feature/WH-2", "wh-2\n");
  branch("feature/WH-3", "wh-3\n");
  deployBranch("WH-2", "feature/WH-2");
  deployBranch("WH-3", "feature/WH-3");
  git_->git({"merge", "--quiet", "--no-ff", "-m", "Merge feature/WH-2", "feature/WH-2"});
  git_->push("develop");

  // A host that says WH-3 merged while git does not: nothing is deleted.
  auto lie = github("pull_request",
                    pullRequest("github/pull_request_closed_merged.json", 3, "feature/WH-3",
                                headOf("feature/WH-3")),
                    "lie-1");
  EXPECT_EQ(lie.status, 202) << lie.body;

  auto t0 = Clock::now();
  auto a = github("pull_request",
                  pullRequest("github/pull_request_closed_merged.json", 2, "feature/WH-2",
                              headOf("feature/WH-2")),
                  "merge-2");
  EXPECT_EQ(a.status, 202) << a.body;
  EXPECT_TRUE(eventually([&] { return !host_->env("WH-2"); }, seconds(10), milliseconds(10)));
  long took = msSince(t0);
  RecordProperty("reclaim_ms", static_cast<int>(took));
  EXPECT_LT(took, 5000);
  EXPECT_TRUE(eventually([&] { return events("WH-3").find("does not show") != std::string::npos; }))
      << events("WH-3");
  ASSERT_TRUE(host_->env("WH-3"));
  EXPECT_EQ(viaRouter("wh-3").status, 200);
  std::string log = events("WH-2");
  EXPECT_NE(log.find("webhook:github"), std::string::npos) << log;
  EXPECT_NE(log.find("merge-2"), std::string::npos) << log;
}

TEST_F(LxcWebhooks, CloseWithoutMergeFollowsOnClosed) {
  start();
  branch("feature/WH-4", "wh-4\n");
  deployBranch("WH-4", "feature/WH-4");
  json j = json::parse(fixture("gitlab/merge_request_close.json"));
  j["object_attributes"]["source_branch"] = "feature/WH-4";
  j["object_attributes"]["last_commit"]["id"] = headOf("feature/WH-4");
  j["project"]["path_with_namespace"] = "ACME/Shop";  // case does not matter
  auto a = gitlab("Merge Request Hook", j.dump(), "close-4");
  EXPECT_EQ(a.status, 202) << a.body;
  EXPECT_TRUE(eventually([&] { return !host_->env("WH-4"); }));
  EXPECT_NE(events("WH-4").find("closed without merging"), std::string::npos);
}

TEST_F(LxcWebhooks, CloseIsKeptWhenOnClosedSaysKeep) {
  start("on_closed = \"keep\"\n");
  branch("feature/WH-5", "wh-5\n");
  deployBranch("WH-5", "feature/WH-5");
  auto a = github(
      "pull_request",
      pullRequest("github/pull_request_closed.json", 5, "feature/WH-5", headOf("feature/WH-5")),
      "close-5");
  EXPECT_EQ(a.status, 200) << a.body;
  EXPECT_NE(a.body.find("on_closed is keep"), std::string::npos) << a.body;
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_TRUE(host_->env("WH-5"));
}

// With the dashboard off, its server still takes deliveries, and nothing else.
TEST_F(LxcWebhooks, DashboardOffStillServesOnlyTheHooks) {
  start("", "[dashboard]\nenabled = false\n");
  branch("feature/WH-8", "wh-8\n");
  deployBranch("WH-8", "feature/WH-8");
  auto page = httpGet("127.0.0.1", host_->routerPort(), "/", "qabox." + host_->domain());
  EXPECT_EQ(page.status, 404) << page.body;
  EXPECT_EQ(post("/login", {}, "token=x").status, 404);
  auto a = github(
      "pull_request",
      pullRequest("github/pull_request_closed.json", 8, "feature/WH-8", headOf("feature/WH-8")),
      "off-8");
  EXPECT_EQ(a.status, 202) << a.body;
  EXPECT_TRUE(eventually([&] { return !host_->env("WH-8"); }));
}

// A push to the target marks what was merged onto it behind, at once.
TEST_F(LxcWebhooks, PushToTheTargetMarksEnvironmentsBehind) {
  start();
  branch("feature/WH-9", "wh-9\n");
  deployBranch("WH-9", "feature/WH-9");
  ASSERT_EQ(host_->env("WH-9")->behind(), 0u);
  git_->checkout("develop");
  git_->write("other.txt", "another merge\n");
  git_->commit("another pull request merged");
  git_->push("develop");
  auto a = github("push", push("develop", git_->head()), "target-9");
  EXPECT_EQ(a.status, 202) << a.body;
  EXPECT_TRUE(eventually([&] {
    auto e = host_->env("WH-9");
    return e && e->behind() == 1;
  }));
}

// A push redeploys to the new head while a client keeps asking: no request fails.
TEST_F(LxcWebhooks, PushRedeploysWithoutAFailedRequest) {
  start();
  branch("feature/WH-6", "wh-6 v1\n");
  deployBranch("WH-6", "feature/WH-6");
  ASSERT_EQ(viaRouter("wh-6").body, "wh-6 v1\n");

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::string lastFailure;
  std::thread client([&] {
    while (!stop) {
      auto r = viaRouter("wh-6");
      if (r.status == 200) {
        ++ok;
      } else {
        ++failed;
        lastFailure = std::to_string(r.status) + " " + r.error;
      }
    }
  });
  std::string head = commitOn("feature/WH-6", "wh-6 v2\n");
  auto t0 = Clock::now();
  auto a = github("push", push("feature/WH-6", head), "push-6");
  EXPECT_EQ(a.status, 202) << a.body;
  bool served = eventually([&] { return viaRouter("wh-6").body == "wh-6 v2\n"; }, seconds(60),
                           milliseconds(10));
  long took = msSince(t0);
  std::this_thread::sleep_for(milliseconds(300));
  stop = true;
  client.join();
  EXPECT_TRUE(served);
  RecordProperty("redeploy_ms", static_cast<int>(took));
  EXPECT_EQ(failed.load(), 0) << lastFailure;
  EXPECT_GT(ok.load(), 10);
  auto env = host_->env("WH-6");
  ASSERT_TRUE(env);
  EXPECT_NE(events("WH-6").find("push-6"), std::string::npos);
}

// 500 deliveries in a few seconds: the queue absorbs or refuses them (503),
// the agent stays up, and the environment ends on the last push's head.
TEST_F(LxcWebhooks, StormOfDeliveriesIsAbsorbedAndTheLastPushWins) {
  start();
  branch("feature/WH-7", "wh-7 v0\n");
  deployBranch("WH-7", "feature/WH-7");
  std::vector<std::string> heads;
  for (int i = 1; i <= 5; ++i)
    heads.push_back(commitOn("feature/WH-7", "wh-7 v" + std::to_string(i) + "\n"));

  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> senders;
  for (int s = 0; s < 4; ++s) {
    senders.emplace_back([&, s] {
      for (int n = s; n < 500; n += 4) {
        // A field of its own per delivery: the same body twice is a replay.
        json body = json::parse(push("feature/WH-7", heads[static_cast<size_t>(n) % 4]));
        body["storm"] = n;
        auto r = github("push", body.dump(), "storm-" + std::to_string(n));
        if (r.status == 202 || r.status == 200) {
          ++accepted;
        } else if (r.status == 503) {
          ++refused;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  auto last = github("push", push("feature/WH-7", heads.back()), "storm-last");
  // 200 "already at" when a redeploy of the storm already took the head.
  EXPECT_TRUE(last.status == 202 || last.status == 200) << last.status << " " << last.body;
  RecordProperty("storm_accepted", accepted.load());
  RecordProperty("storm_refused", refused.load());
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(accepted.load() + refused.load(), 500);
  EXPECT_TRUE(host_->daemonRunning());
  EXPECT_TRUE(eventually([&] { return viaRouter("wh-7").body == "wh-7 v5\n"; }, seconds(90),
                         milliseconds(50)));
  auto env = host_->env("WH-7");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->state(), v1::Environment::READY);
  // Far fewer deploys than deliveries: each one redeploys the branch's
  // current head, and pending ones for the ticket coalesce.
  std::string log = events("WH-7");
  size_t redeploys = 0;
  for (size_t p = log.find("redeploy for"); p != std::string::npos;
       p = log.find("redeploy for", p + 1)) {
    ++redeploys;
  }
  EXPECT_LT(redeploys, 100u) << redeploys;
}

}  // namespace
}  // namespace qabox::testing
