// The behaviour every Store backend owes its callers. A second backend adds
// one line to INSTANTIATE_TEST_SUITE_P below and runs all of it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Backend {
  std::string name;
  std::function<Result<std::unique_ptr<Store>>(const std::string& dir)> open;
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

// Times go through the store as unix milliseconds.
TimePoint at(int64_t ms) { return fromUnixMillis(ms); }

Environment sampleEnvironment(const std::string& slug) {
  Environment e;
  e.ticket = "EXMP-" + slug;
  e.slug = slug;
  e.state = EnvState::kReady;
  e.ip = "10.44.0.9";
  e.container = containerNameFor(slug);
  e.createdAt = at(1'700'000'000'000);
  e.updatedAt = at(1'700'000'000'500);
  e.deployedAt = at(1'700'000'000'400);
  e.spec.limits = {"512M", 0, 100};
  e.limits = {"512M", 2, 100};
  return e;
}

void expectSameEnvironment(const Environment& a, const Environment& b) {
  EXPECT_EQ(a.ticket, b.ticket);
  EXPECT_EQ(a.slug, b.slug);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.ip, b.ip);
  EXPECT_EQ(a.container, b.container);
  EXPECT_EQ(a.imageVersion, b.imageVersion);
  EXPECT_EQ(a.spec.image, b.spec.image);
  EXPECT_EQ(a.spec.repo, b.spec.repo);
  EXPECT_EQ(a.spec.sourceBranch, b.spec.sourceBranch);
  EXPECT_EQ(a.spec.targetBranch, b.spec.targetBranch);
  EXPECT_EQ(a.spec.env, b.spec.env);
  EXPECT_EQ(a.spec.secretKeys, b.spec.secretKeys);
  EXPECT_EQ(a.spec.ttl, b.spec.ttl);
  EXPECT_EQ(a.spec.limits, b.spec.limits);
  EXPECT_EQ(a.limits, b.limits);
  EXPECT_TRUE(a.spec == b.spec);
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.sourceCommit, b.sourceCommit);
  EXPECT_EQ(a.targetCommit, b.targetCommit);
  EXPECT_EQ(a.targetHead, b.targetHead);
  EXPECT_EQ(a.behind, b.behind);
  EXPECT_EQ(a.depsLayer, b.depsLayer);
  EXPECT_EQ(a.dataLayer, b.dataLayer);
  EXPECT_EQ(a.phases, b.phases);
  EXPECT_EQ(a.port, b.port);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(a.pinned, b.pinned);
  EXPECT_EQ(a.createdAt, b.createdAt);
  EXPECT_EQ(a.updatedAt, b.updatedAt);
  EXPECT_EQ(a.deployedAt, b.deployedAt);
  EXPECT_EQ(a.lastAccessAt, b.lastAccessAt);
  EXPECT_EQ(a.expiresAt, b.expiresAt);
  EXPECT_EQ(a.requestCount, b.requestCount);
  EXPECT_EQ(a.bytesIn, b.bytesIn);
  EXPECT_EQ(a.bytesOut, b.bytesOut);
}

class StoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto s = GetParam().open(dir_.path());
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }

  std::optional<Environment> get(const std::string& slug) {
    auto e = store_->getEnvironment(slug);
    EXPECT_TRUE(e.isOk()) << e.status().toString();
    return e.isOk() ? *e : std::nullopt;
  }

  std::vector<std::string> leasedIps() {
    auto leases = store_->listLeases();
    EXPECT_TRUE(leases.isOk()) << leases.status().toString();
    std::vector<std::string> out;
    if (leases.isOk()) {
      for (const auto& l : *leases) out.push_back(l.ip);
    }
    return out;
  }

  std::string lease(const std::string& subnet, const std::string& owner) {
    auto ip = store_->leaseAddress(subnet, owner);
    EXPECT_TRUE(ip.isOk()) << ip.status().toString();
    return ip.isOk() ? *ip : "";
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContract, EnvironmentRoundTripsEveryField) {
  Environment e;
  e.ticket = "EXMP-113";
  e.slug = "exmp-113";
  e.state = EnvState::kDeploying;
  e.ip = "10.44.0.7";
  e.container = "qabox-exmp-113-2";
  e.imageVersion = 4'000'000'000u;
  e.spec.image = "busybox";
  e.spec.repo = "shop";
  e.spec.sourceBranch = "feature/EXMP-113";
  e.spec.targetBranch = "develop";
  e.spec.env = {
      {"PLAIN", "value"},
      {"EQUALS", "a=b=c"},
      {"COMMAS", "x,y,,z"},
      {"QUOTES", "say \"hi\" and 'bye'"},
      {"NEWLINES", "line1\nline2\r\nline3\n"},
      {"BACKSLASH", "C:\\path\\n not a newline \\"},
      {"CONTROL", std::string("tab\tbell\x07 nul\0end", 18)},
      {"JSONISH", "{\"k\":[1,2]}"},
      {"UNICODE", "gr\xc3\xbc\xc3\x9f \xe2\x9c\x93"},
      {"EMPTY", ""},
      {"ODD=KEY,\"\n", "odd key too"},
  };
  e.spec.secretKeys = {"DB_PASSWORD", "API,KEY", "with \"quote\"", "new\nline"};
  e.spec.ttl = std::chrono::milliseconds(72 * 3'600'000LL + 1);
  e.commit = "0123456789abcdef0123456789abcdef01234567";
  e.sourceCommit = "1111111111111111111111111111111111111111";
  e.targetCommit = "2222222222222222222222222222222222222222";
  e.targetHead = "3333333333333333333333333333333333333333";
  e.behind = 4'000'000'000u;
  e.depsLayer = std::string(64, 'd');
  e.spec.access = "login";
  e.phases = {{"merge", std::chrono::milliseconds(12)},
              {"health \"quoted\"", std::chrono::milliseconds(0)}};
  e.port = 8080;
  e.message = "deploying: \"build\" step\nsecond line";
  e.pinned = true;
  e.createdAt = at(1'700'000'000'123);
  e.updatedAt = at(1'700'000'100'456);
  e.deployedAt = at(1'700'000'050'789);
  e.lastAccessAt = at(1'700'000'200'001);
  e.expiresAt = at(1'800'000'000'000);
  e.requestCount = 123'456'789'012ULL;
  e.bytesIn = 42;
  e.bytesOut = 9'000'000'000ULL;

  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  auto got = get("exmp-113");
  ASSERT_TRUE(got.has_value());
  expectSameEnvironment(*got, e);
}

TEST_P(StoreContract, EnvironmentWithoutOptionalsRoundTrips) {
  Environment e = sampleEnvironment("bare");
  e.createdAt = TimePoint{};
  e.deployedAt = TimePoint{};
  ASSERT_FALSE(e.lastAccessAt.has_value());
  ASSERT_FALSE(e.expiresAt.has_value());
  ASSERT_FALSE(e.spec.ttl.has_value());
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  auto got = get("bare");
  ASSERT_TRUE(got.has_value());
  expectSameEnvironment(*got, e);
  EXPECT_FALSE(got->lastAccessAt.has_value());
  EXPECT_FALSE(got->expiresAt.has_value());
  EXPECT_FALSE(got->spec.ttl.has_value());
  EXPECT_TRUE(got->spec.env.empty());
  EXPECT_TRUE(got->spec.secretKeys.empty());
}

TEST_P(StoreContract, EveryStateRoundTrips) {
  for (auto st : {EnvState::kCreating, EnvState::kDeploying, EnvState::kReady, EnvState::kFailed,
                  EnvState::kDeleting, EnvState::kSleeping, EnvState::kBroken}) {
    Environment e = sampleEnvironment("st");
    e.state = st;
    ASSERT_TRUE(store_->putEnvironment(e).isOk());
    auto got = get("st");
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->state, st) << stateName(st);
  }
}

TEST_P(StoreContract, MissingEnvironmentIsEmptyNotAnError) {
  auto e = store_->getEnvironment("nope");
  ASSERT_TRUE(e.isOk()) << e.status().toString();
  EXPECT_FALSE(e->has_value());
}

TEST_P(StoreContract, PutReplacesTheRowOfTheSameSlugButNeverRewindsUse) {
  Environment e = sampleEnvironment("a");
  e.spec.env = {{"OLD", "1"}};
  e.lastAccessAt = at(5);
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  e.state = EnvState::kFailed;
  e.message = "hook build failed";
  e.spec.env = {{"NEW", "2"}};
  e.lastAccessAt.reset();
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  auto count = store_->countEnvironments();
  ASSERT_TRUE(count.isOk());
  EXPECT_EQ(*count, 1u);
  auto got = get("a");
  ASSERT_TRUE(got.has_value());
  // The use columns only move forward: the router's flush of use and a put
  // from a deploy may cross, and neither may undo the other.
  e.lastAccessAt = at(5);
  expectSameEnvironment(*got, e);
}

TEST_P(StoreContract, ListDeleteAndCount) {
  auto count = store_->countEnvironments();
  ASSERT_TRUE(count.isOk());
  EXPECT_EQ(*count, 0u);
  for (auto [slug, created] : {std::pair{"c", 3}, std::pair{"a", 1}, std::pair{"b", 2}}) {
    Environment e = sampleEnvironment(slug);
    e.createdAt = at(1'000 * created);
    ASSERT_TRUE(store_->putEnvironment(e).isOk());
  }
  auto list = store_->listEnvironments();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 3u);
  // Oldest first.
  EXPECT_EQ((*list)[0].slug, "a");
  EXPECT_EQ((*list)[1].slug, "b");
  EXPECT_EQ((*list)[2].slug, "c");

  ASSERT_TRUE(store_->deleteEnvironment("b").isOk());
  count = store_->countEnvironments();
  ASSERT_TRUE(count.isOk());
  EXPECT_EQ(*count, 2u);
  EXPECT_FALSE(get("b").has_value());
  EXPECT_TRUE(get("a").has_value());
  // Deleting what is gone is not an error: recovery deletes idempotently.
  EXPECT_TRUE(store_->deleteEnvironment("b").isOk());
  list = store_->listEnvironments();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 2u);
}

TEST_P(StoreContract, LeasesAreHandedOutLowestFirstFromOffsetTwo) {
  EXPECT_EQ(lease("10.44.0.0/24", "qabox-a"), "10.44.0.2");
  EXPECT_EQ(lease("10.44.0.0/24", "qabox-b"), "10.44.0.3");
  EXPECT_EQ(lease("10.44.0.0/24", "qabox-c"), "10.44.0.4");
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  ASSERT_EQ(leases->size(), 3u);
  EXPECT_EQ((*leases)[0].ip, "10.44.0.2");
  EXPECT_EQ((*leases)[0].owner, "qabox-a");
  EXPECT_EQ((*leases)[2].owner, "qabox-c");
  EXPECT_GT(toUnixMillis((*leases)[0].createdAt), 0);
}

TEST_P(StoreContract, LeasesListInNumericOrder) {
  for (int i = 0; i < 12; ++i) lease("10.44.0.0/24", "o" + std::to_string(i));
  auto ips = leasedIps();
  ASSERT_EQ(ips.size(), 12u);
  EXPECT_EQ(ips[7], "10.44.0.9");
  EXPECT_EQ(ips[8], "10.44.0.10");
}

TEST_P(StoreContract, ReleasedAddressIsReusedFirst) {
  lease("10.44.0.0/24", "a");
  lease("10.44.0.0/24", "b");
  lease("10.44.0.0/24", "c");
  ASSERT_TRUE(store_->releaseAddress("10.44.0.3").isOk());
  EXPECT_THAT(leasedIps(), ElementsAre("10.44.0.2", "10.44.0.4"));
  EXPECT_EQ(lease("10.44.0.0/24", "d"), "10.44.0.3");
  EXPECT_EQ(lease("10.44.0.0/24", "e"), "10.44.0.5");
  // Releasing an address nobody holds is not an error.
  EXPECT_TRUE(store_->releaseAddress("10.44.0.99").isOk());
}

TEST_P(StoreContract, SubnetExhaustionIsResourceExhausted) {
  // A /29 has eight addresses; network, gateway and broadcast leave five.
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) got.push_back(lease("10.44.0.0/29", "o" + std::to_string(i)));
  EXPECT_THAT(got, ElementsAre("10.44.0.2", "10.44.0.3", "10.44.0.4", "10.44.0.5", "10.44.0.6"));
  auto full = store_->leaseAddress("10.44.0.0/29", "late");
  ASSERT_FALSE(full.isOk());
  EXPECT_EQ(full.status().code(), Code::kResourceExhausted);
  EXPECT_THAT(full.status().message(),
              HasSubstr("network.subnet 10.44.0.0/29: no free address left (5 in use)"));
  EXPECT_EQ(leasedIps().size(), 5u);

  ASSERT_TRUE(store_->releaseAddress("10.44.0.4").isOk());
  EXPECT_EQ(lease("10.44.0.0/29", "late"), "10.44.0.4");
}

TEST_P(StoreContract, SmallestSubnetHasOneAddress) {
  EXPECT_EQ(lease("10.44.0.0/30", "only"), "10.44.0.2");
  auto full = store_->leaseAddress("10.44.0.0/30", "second");
  ASSERT_FALSE(full.isOk());
  EXPECT_EQ(full.status().code(), Code::kResourceExhausted);
  EXPECT_THAT(full.status().message(),
              HasSubstr("network.subnet 10.44.0.0/30: no free address left (1 in use)"));
}

TEST_P(StoreContract, LeasesOfAnotherSubnetDoNotBlock) {
  EXPECT_EQ(lease("10.44.0.0/30", "old"), "10.44.0.2");
  EXPECT_EQ(lease("10.45.0.0/30", "new"), "10.45.0.2");
}

TEST_P(StoreContract, BadSubnetIsInvalidArgumentAndLeasesNothing) {
  for (const char* bad : {"10.44.0.0/33", "nonsense", "10.44.0.1/24", ""}) {
    auto ip = store_->leaseAddress(bad, "x");
    ASSERT_FALSE(ip.isOk()) << bad;
    EXPECT_EQ(ip.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_THAT(ip.status().message(), HasSubstr("network.subnet")) << bad;
  }
  EXPECT_TRUE(leasedIps().empty());
}

TEST_P(StoreContract, ReleaseAddressesOfOneOwner) {
  lease("10.44.0.0/24", "qabox-a");
  lease("10.44.0.0/24", "qabox-b");
  lease("10.44.0.0/24", "qabox-a");
  ASSERT_TRUE(store_->releaseAddressesOf("qabox-a").isOk());
  auto leases = store_->listLeases();
  ASSERT_TRUE(leases.isOk());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].ip, "10.44.0.3");
  EXPECT_EQ((*leases)[0].owner, "qabox-b");
  EXPECT_TRUE(store_->releaseAddressesOf("qabox-nobody").isOk());
}

TEST_P(StoreContract, ConcurrentLeasesAreDistinct) {
  constexpr int kThreads = 8;
  constexpr int kEach = 20;
  std::vector<std::vector<std::string>> got(kThreads);
  std::vector<std::string> errors[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto ip = store_->leaseAddress("10.44.0.0/24", "t" + std::to_string(t));
        if (ip.isOk()) {
          got[t].push_back(*ip);
        } else {
          errors[t].push_back(ip.status().toString());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(errors[t].empty()) << errors[t].front();
    all.insert(got[t].begin(), got[t].end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(leasedIps().size(), static_cast<size_t>(kThreads * kEach));
  // Lowest first means no gaps: .2 up to .161.
  EXPECT_TRUE(all.count("10.44.0.2"));
  EXPECT_TRUE(all.count("10.44.0.161"));
  EXPECT_FALSE(all.count("10.44.0.162"));
}

TEST_P(StoreContract, JournalBeginFinishAndUnfinished) {
  auto first =
      store_->beginOperation({0, "exmp-1", JournalKind::kCreate, "qabox-exmp-1", "10.44.0.2",
                              at(1'000), std::nullopt, JournalOutcome::kUnfinished, ""});
  auto second =
      store_->beginOperation({0, "exmp-2", JournalKind::kDelete, "qabox-exmp-2", "", at(2'000),
                              std::nullopt, JournalOutcome::kUnfinished, "why"});
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_GT(*second, *first);

  auto open = store_->unfinishedOperations();
  ASSERT_TRUE(open.isOk());
  ASSERT_EQ(open->size(), 2u);
  const Operation& op = (*open)[0];
  EXPECT_EQ(op.id, *first);
  EXPECT_EQ(op.slug, "exmp-1");
  EXPECT_EQ(op.kind, JournalKind::kCreate);
  EXPECT_EQ(op.container, "qabox-exmp-1");
  EXPECT_EQ(op.ip, "10.44.0.2");
  EXPECT_EQ(op.startedAt, at(1'000));
  EXPECT_FALSE(op.finishedAt.has_value());
  EXPECT_EQ(op.outcome, JournalOutcome::kUnfinished);
  EXPECT_EQ((*open)[1].detail, "why");

  ASSERT_TRUE(store_->finishOperation(*first, JournalOutcome::kOk, "done").isOk());
  open = store_->unfinishedOperations();
  ASSERT_TRUE(open.isOk());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, *second);

  ASSERT_TRUE(
      store_->finishOperation(*second, JournalOutcome::kRolledBack, "agent restarted").isOk());
  open = store_->unfinishedOperations();
  ASSERT_TRUE(open.isOk());
  EXPECT_TRUE(open->empty());

  Status missing = store_->finishOperation(*second + 100, JournalOutcome::kOk, "");
  EXPECT_EQ(missing.code(), Code::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("not in the journal"));
  Status empty = store_->finishOperation(*first, JournalOutcome::kUnfinished, "");
  EXPECT_EQ(empty.code(), Code::kInvalidArgument);
}

TEST_P(StoreContract, EventsNewestFirstWithLimitAndTicketFilter) {
  const char* tickets[] = {"EXMP-1", "EXMP-2", "EXMP-1", "EXMP-2", "EXMP-1"};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_
                    ->addEvent({0, at(1'000 + i), tickets[i], "deploy", "jenkins", "ok",
                                "event " + std::to_string(i)})
                    .isOk());
  }
  auto all = store_->listEvents("", 0);
  ASSERT_TRUE(all.isOk());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].detail, "event 4");
  EXPECT_EQ((*all)[4].detail, "event 0");
  EXPECT_GT((*all)[0].id, (*all)[1].id);
  EXPECT_EQ((*all)[0].at, at(1'004));
  EXPECT_EQ((*all)[0].ticket, "EXMP-1");
  EXPECT_EQ((*all)[0].action, "deploy");
  EXPECT_EQ((*all)[0].actor, "jenkins");
  EXPECT_EQ((*all)[0].outcome, "ok");

  auto two = store_->listEvents("", 2);
  ASSERT_TRUE(two.isOk());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].detail, "event 4");
  EXPECT_EQ((*two)[1].detail, "event 3");

  auto one = store_->listEvents("EXMP-2", 0);
  ASSERT_TRUE(one.isOk());
  ASSERT_EQ(one->size(), 2u);
  EXPECT_EQ((*one)[0].detail, "event 3");
  EXPECT_EQ((*one)[1].detail, "event 1");

  auto none = store_->listEvents("EXMP-9", 0);
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreContract, EventLimitZeroMeansOneHundred) {
  ASSERT_TRUE(store_
                  ->transaction([&]() -> Status {
                    for (int i = 0; i < 130; ++i) {
                      QABOX_RETURN_IF_ERROR(
                          store_->addEvent({0, at(i), "EXMP-1", "reap", "reaper", "ok", ""}));
                    }
                    return Status::ok();
                  })
                  .isOk());
  auto events = store_->listEvents("", 0);
  ASSERT_TRUE(events.isOk());
  EXPECT_EQ(events->size(), 100u);
  auto more = store_->listEvents("EXMP-1", 120);
  ASSERT_TRUE(more.isOk());
  EXPECT_EQ(more->size(), 120u);
}

TEST_P(StoreContract, PutEnvironmentReplacesTheRecordedHeads) {
  Environment e = sampleEnvironment("heads");
  EXPECT_TRUE(e.sourceCommit.empty());
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  EXPECT_TRUE(get("heads")->sourceCommit.empty());
  e.sourceCommit = std::string(40, 'a');
  e.targetCommit = std::string(40, 'b');
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  EXPECT_EQ(get("heads")->sourceCommit, std::string(40, 'a'));
  EXPECT_EQ(get("heads")->targetCommit, std::string(40, 'b'));
  auto listed = store_->listEnvironments();
  ASSERT_TRUE(listed.isOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].targetCommit, std::string(40, 'b'));
}

TEST_P(StoreContract, HowFarTheTargetMovedIsKeptUntilADeployOfANewTargetCommit) {
  const std::string merged(40, 'b'), moved(40, 'c'), next(40, 'd');
  Environment e = sampleEnvironment("stale");
  e.targetCommit = merged;
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  EXPECT_EQ(get("stale")->targetHead, merged);  // level with what it merged
  EXPECT_EQ(get("stale")->behind, 0u);
  const TimePoint updated = get("stale")->updatedAt;

  auto changed = store_->setTargetState("stale", merged, moved, 3);
  ASSERT_TRUE(changed.isOk()) << changed.status().toString();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(get("stale")->targetHead, moved);
  EXPECT_EQ(get("stale")->behind, 3u);
  EXPECT_EQ(get("stale")->updatedAt, updated);  // news about the remote, not a change
  // The same news again changes nothing.
  EXPECT_FALSE(*store_->setTargetState("stale", merged, moved, 3));

  // Any other write of the row (a pin, a message) keeps the stored count,
  // even from a copy read before it was set.
  e.pinned = true;
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  EXPECT_EQ(get("stale")->behind, 3u);
  EXPECT_EQ(get("stale")->targetHead, moved);

  // A count measured against an older target commit loses to a deploy that
  // merged a newer one, which starts level.
  e.targetCommit = next;
  ASSERT_TRUE(store_->putEnvironment(e).isOk());
  EXPECT_EQ(get("stale")->behind, 0u);
  EXPECT_EQ(get("stale")->targetHead, next);
  EXPECT_FALSE(*store_->setTargetState("stale", merged, moved, 5));
  EXPECT_EQ(get("stale")->behind, 0u);

  EXPECT_FALSE(*store_->setTargetState("no-such", merged, moved, 1));
}

TEST_P(StoreContract, EventsArePrunedByAgeThenByCountInBatches) {
  ASSERT_TRUE(store_
                  ->transaction([&]() -> Status {
                    for (int i = 0; i < 50; ++i) {
                      QABOX_RETURN_IF_ERROR(store_->addEvent(
                          {0, at(1'000 + i), "EXMP-1", "auth", "x", "ok", std::to_string(i)}));
                    }
                    return Status::ok();
                  })
                  .isOk());
  // Nothing is older than the epoch, and 0 rows means no count limit.
  auto none = store_->pruneEvents(TimePoint{}, 0, 100);
  ASSERT_TRUE(none.isOk()) << none.status().toString();
  EXPECT_EQ(*none, 0u);
  EXPECT_EQ(*store_->countEvents(), 50u);

  // Age: the ten written before 1'010; in batches of four.
  auto first = store_->pruneEvents(at(1'010), 0, 4);
  ASSERT_TRUE(first.isOk());
  EXPECT_EQ(*first, 4u);
  auto rest = store_->pruneEvents(at(1'010), 0, 100);
  ASSERT_TRUE(rest.isOk());
  EXPECT_EQ(*rest, 6u);
  EXPECT_EQ(*store_->countEvents(), 40u);

  // Count: the newest 15 stay, whatever their times.
  auto byCount = store_->pruneEvents(TimePoint{}, 15, 1000);
  ASSERT_TRUE(byCount.isOk());
  EXPECT_EQ(*byCount, 25u);
  auto left = store_->listEvents("", 0);
  ASSERT_TRUE(left.isOk());
  ASSERT_EQ(left->size(), 15u);
  EXPECT_EQ(left->front().detail, "49");
  EXPECT_EQ(left->back().detail, "35");
  EXPECT_EQ(*store_->pruneEvents(TimePoint{}, 15, 1000), 0u);
  EXPECT_EQ(*store_->pruneEvents(TimePoint{}, 100, 1000), 0u);
}

TEST_P(StoreContract, SettingACurrentImageClearsTheOthers) {
  ASSERT_TRUE(store_->putImage({"busybox", 1, at(1'000), true, "first"}).isOk());
  ASSERT_TRUE(store_->putImage({"busybox", 2, at(2'000), false, "candidate"}).isOk());
  ASSERT_TRUE(store_->putImage({"debian", 1, at(3'000), true, "other name"}).isOk());
  auto cur = store_->currentImage("busybox");
  ASSERT_TRUE(cur.isOk());
  ASSERT_TRUE(cur->has_value());
  EXPECT_EQ((*cur)->version, 1u);
  EXPECT_EQ((*cur)->description, "first");
  EXPECT_EQ((*cur)->builtAt, at(1'000));

  ASSERT_TRUE(store_->putImage({"busybox", 3, at(4'000), true, "third"}).isOk());
  cur = store_->currentImage("busybox");
  ASSERT_TRUE(cur.isOk() && cur->has_value());
  EXPECT_EQ((*cur)->version, 3u);

  auto list = store_->listImages();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 4u);
  int currentBusybox = 0;
  for (const auto& i : *list) {
    if (i.name == "busybox" && i.current) ++currentBusybox;
  }
  EXPECT_EQ(currentBusybox, 1);
  EXPECT_EQ((*list)[0].name, "busybox");
  EXPECT_EQ((*list)[0].version, 1u);
  EXPECT_FALSE((*list)[0].current);
  EXPECT_EQ((*list)[3].name, "debian");
  // Another name keeps its own current version.
  auto deb = store_->currentImage("debian");
  ASSERT_TRUE(deb.isOk() && deb->has_value());
  EXPECT_EQ((*deb)->version, 1u);

  // Rolling back to an older version is the same operation.
  ASSERT_TRUE(store_->putImage({"busybox", 1, at(1'000), true, "first"}).isOk());
  cur = store_->currentImage("busybox");
  ASSERT_TRUE(cur.isOk() && cur->has_value());
  EXPECT_EQ((*cur)->version, 1u);

  ASSERT_TRUE(store_->deleteImage("busybox", 1).isOk());
  cur = store_->currentImage("busybox");
  ASSERT_TRUE(cur.isOk());
  EXPECT_FALSE(cur->has_value());
  list = store_->listImages();
  ASSERT_TRUE(list.isOk());
  EXPECT_EQ(list->size(), 3u);
}

TEST_P(StoreContract, ImageParentAndRecipeHashRoundTrip) {
  ImageVersion base{"debian", 2, at(1'000), true, "debian"};
  base.recipeHash = std::string(64, 'a');
  ImageVersion child{"python", 1, at(2'000), true, "python"};
  child.parent = "debian";
  child.parentVersion = 2;
  child.recipeHash = std::string(64, 'b');
  child.cached = true;  // not stored
  ASSERT_TRUE(store_->putImage(base).isOk());
  ASSERT_TRUE(store_->putImage(child).isOk());
  auto cur = store_->currentImage("python");
  ASSERT_TRUE(cur.isOk() && cur->has_value());
  EXPECT_EQ((*cur)->parent, "debian");
  EXPECT_EQ((*cur)->parentVersion, 2u);
  EXPECT_EQ((*cur)->recipeHash, std::string(64, 'b'));
  EXPECT_FALSE((*cur)->cached);
  auto list = store_->listImages();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "debian");
  EXPECT_EQ((*list)[0].parent, "");
  EXPECT_EQ((*list)[0].parentVersion, 0u);
  EXPECT_EQ((*list)[0].recipeHash, std::string(64, 'a'));
  EXPECT_EQ((*list)[1].parent, "debian");
}

TEST_P(StoreContract, LayersRoundTripAreTouchedForwardOnlyAndDeleted) {
  CachedLayer a{std::string(64, 'a'), LayerKind::kDeps, "",       "python", 3,
                123'456'789,          at(1'000),        at(2'000)};
  CachedLayer b{
      std::string(64, 'b'), LayerKind::kData, "shop develop", "node", 1, 0, at(500), at(500)};
  ASSERT_TRUE(store_->putLayer(a).isOk());
  ASSERT_TRUE(store_->putLayer(b).isOk());
  auto got = store_->getLayer(a.hash);
  ASSERT_TRUE(got.isOk() && got->has_value());
  EXPECT_EQ((*got)->image, "python");
  EXPECT_EQ((*got)->imageVersion, 3u);
  EXPECT_EQ((*got)->kind, LayerKind::kDeps);
  auto gotB = store_->getLayer(b.hash);
  ASSERT_TRUE(gotB.isOk() && gotB->has_value());
  EXPECT_EQ((*gotB)->kind, LayerKind::kData);
  EXPECT_EQ((*gotB)->lineage, "shop develop");
  EXPECT_EQ((*got)->sizeBytes, 123'456'789u);
  EXPECT_EQ((*got)->builtAt, at(1'000));
  EXPECT_EQ((*got)->lastUsedAt, at(2'000));
  EXPECT_FALSE(store_->getLayer(std::string(64, 'c'))->has_value());
  auto list = store_->listLayers();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].hash, b.hash) << "oldest built first";
  ASSERT_TRUE(store_->touchLayer(a.hash, at(5'000)).isOk());
  ASSERT_TRUE(store_->touchLayer(a.hash, at(3'000)).isOk());
  EXPECT_EQ((*store_->getLayer(a.hash))->lastUsedAt, at(5'000));
  ASSERT_TRUE(store_->deleteLayer(a.hash).isOk());
  EXPECT_FALSE(store_->getLayer(a.hash)->has_value());
  EXPECT_EQ(store_->listLayers()->size(), 1u);
}

TEST_P(StoreContract, PoolClaimsTheOldestReadyOneThatFitsOnlyOnce) {
  ResourceLimits small{"256M", 0, 256};
  PooledContainer a{"qaboxpool-1", "busybox", 2, "10.0.0.2", small, PoolState::kReady, at(1'000)};
  PooledContainer b{"qaboxpool-2", "busybox", 2, "10.0.0.3", small, PoolState::kReady, at(2'000)};
  PooledContainer filling{"qaboxpool-3", "busybox",           2,      "10.0.0.4",
                          small,         PoolState::kFilling, at(500)};
  PooledContainer old{"qaboxpool-4", "busybox", 1, "10.0.0.5", small, PoolState::kReady, at(100)};
  for (const auto& p : {a, b, filling, old}) ASSERT_TRUE(store_->putPooled(p).isOk());
  auto list = store_->listPooled();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0].container, "qaboxpool-4") << "oldest first";
  EXPECT_EQ((*list)[3].limits, small);
  // Only another version, other limits, or a filling one: nothing.
  EXPECT_FALSE(store_->takePooled("busybox", 3, small)->has_value());
  EXPECT_FALSE(store_->takePooled("busybox", 2, ResourceLimits{"1G", 0, 256})->has_value());
  EXPECT_FALSE(store_->takePooled("python", 2, small)->has_value());
  auto first = store_->takePooled("busybox", 2, small);
  ASSERT_TRUE(first.isOk() && first->has_value()) << first.status().toString();
  EXPECT_EQ((*first)->container, "qaboxpool-1");
  EXPECT_EQ((*first)->ip, "10.0.0.2");
  auto second = store_->takePooled("busybox", 2, small);
  ASSERT_TRUE(second.isOk() && second->has_value());
  EXPECT_EQ((*second)->container, "qaboxpool-2");
  EXPECT_FALSE(store_->takePooled("busybox", 2, small)->has_value()) << "the filling one stays";
  // A drop after a claim finds nothing to mark; one marked is never claimed.
  EXPECT_FALSE(*store_->setPoolState("qaboxpool-1", PoolState::kReady, PoolState::kDropping));
  EXPECT_FALSE(*store_->setPoolState("qaboxpool-3", PoolState::kReady, PoolState::kDropping));
  EXPECT_TRUE(*store_->setPoolState("qaboxpool-3", PoolState::kFilling, PoolState::kDropping));
  EXPECT_TRUE(*store_->setPoolState("qaboxpool-4", PoolState::kReady, PoolState::kDropping));
  EXPECT_FALSE(store_->takePooled("busybox", 1, small)->has_value());
  EXPECT_EQ((*store_->listPooled())[0].state, PoolState::kDropping);
  ASSERT_TRUE(store_->deletePooled("qaboxpool-3").isOk());
  ASSERT_TRUE(store_->deletePooled("qaboxpool-4").isOk());
  EXPECT_TRUE(store_->listPooled()->empty());
}

TEST_P(StoreContract, APoolClaimInsideATransactionThatFailsGoesBack) {
  PooledContainer a{"qaboxpool-1", "busybox", 1, "10.0.0.2", {}, PoolState::kReady, at(1'000)};
  ASSERT_TRUE(store_->putPooled(a).isOk());
  Status s = store_->transaction([&]() -> Status {
    auto taken = store_->takePooled("busybox", 1, {});
    EXPECT_TRUE(taken.isOk() && taken->has_value());
    return resourceExhausted("the deploy's intent could not be written");
  });
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(store_->listPooled()->size(), 1u);
}

TEST_P(StoreContract, TokensFoundByHashAndRevokedByPut) {
  TokenRecord jenkins{"jenkins", "deployer", "aa11",       at(1'000),
                      at(9'000), false,      std::nullopt, std::nullopt};
  TokenRecord ops{"ops",        "admin", "bb22",       at(2'000),
                  std::nullopt, false,   std::nullopt, std::nullopt};
  ASSERT_TRUE(store_->putToken(jenkins).isOk());
  ASSERT_TRUE(store_->putToken(ops).isOk());

  auto found = store_->findTokenByHash("aa11");
  ASSERT_TRUE(found.isOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->name, "jenkins");
  EXPECT_EQ((*found)->role, "deployer");
  EXPECT_EQ((*found)->hash, "aa11");
  EXPECT_EQ((*found)->createdAt, at(1'000));
  EXPECT_EQ((*found)->expiresAt, at(9'000));
  EXPECT_FALSE((*found)->revoked);

  auto opsFound = store_->findTokenByHash("bb22");
  ASSERT_TRUE(opsFound.isOk() && opsFound->has_value());
  EXPECT_FALSE((*opsFound)->expiresAt.has_value());

  auto missing = store_->findTokenByHash("cc33");
  ASSERT_TRUE(missing.isOk());
  EXPECT_FALSE(missing->has_value());

  jenkins.revoked = true;
  ASSERT_TRUE(store_->putToken(jenkins).isOk());
  found = store_->findTokenByHash("aa11");
  ASSERT_TRUE(found.isOk() && found->has_value());
  EXPECT_TRUE((*found)->revoked);

  auto list = store_->listTokens();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "jenkins");
  EXPECT_EQ((*list)[1].name, "ops");
}

TEST_P(StoreContract, TokensByNameRevokedOnceAndTouched) {
  TokenRecord ci{"jenkins",    "ci",  "aa11",       at(1'000),
                 std::nullopt, false, std::nullopt, std::nullopt};
  ASSERT_TRUE(store_->putToken(ci).isOk());
  auto got = store_->getToken("jenkins");
  ASSERT_TRUE(got.isOk() && got->has_value());
  EXPECT_EQ((*got)->hash, "aa11");
  EXPECT_FALSE((*got)->lastUsedAt.has_value());
  auto none = store_->getToken("nobody");
  ASSERT_TRUE(none.isOk());
  EXPECT_FALSE(none->has_value());

  // Use times only move forward: requests finish out of order.
  ASSERT_TRUE(store_->touchToken("jenkins", at(5'000)).isOk());
  ASSERT_TRUE(store_->touchToken("jenkins", at(4'000)).isOk());
  got = store_->getToken("jenkins");
  ASSERT_TRUE(got.isOk() && got->has_value());
  EXPECT_EQ((*got)->lastUsedAt, at(5'000));

  auto revoked = store_->revokeToken("jenkins", at(6'000));
  ASSERT_TRUE(revoked.isOk()) << revoked.status().toString();
  EXPECT_TRUE(revoked->revoked);
  EXPECT_EQ(revoked->revokedAt, at(6'000));
  // Revoking again keeps the first time.
  revoked = store_->revokeToken("jenkins", at(7'000));
  ASSERT_TRUE(revoked.isOk());
  EXPECT_EQ(revoked->revokedAt, at(6'000));
  auto byHash = store_->findTokenByHash("aa11");
  ASSERT_TRUE(byHash.isOk() && byHash->has_value());
  EXPECT_TRUE((*byHash)->revoked);
  EXPECT_EQ((*byHash)->revokedAt, at(6'000));

  auto missing = store_->revokeToken("nobody", at(1));
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("token nobody"));
}

TEST_P(StoreContract, TokenHashCollisionDoesNotReplaceAnotherToken) {
  ASSERT_TRUE(
      store_
          ->putToken({"a", "admin", "same", at(1), std::nullopt, false, std::nullopt, std::nullopt})
          .isOk());
  Status s = store_->putToken(
      {"b", "viewer", "same", at(2), std::nullopt, false, std::nullopt, std::nullopt});
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  auto found = store_->findTokenByHash("same");
  ASSERT_TRUE(found.isOk() && found->has_value());
  EXPECT_EQ((*found)->name, "a");
  auto list = store_->listTokens();
  ASSERT_TRUE(list.isOk());
  EXPECT_EQ(list->size(), 1u);
}

TEST_P(StoreContract, RecordAccessAccumulates) {
  ASSERT_TRUE(store_->putEnvironment(sampleEnvironment("a")).isOk());
  Environment b = sampleEnvironment("b");
  b.lastAccessAt = at(50'000);
  b.requestCount = 10;
  ASSERT_TRUE(store_->putEnvironment(b).isOk());

  ASSERT_TRUE(store_
                  ->recordAccess({{"a", at(10'000), 3, 100, 1'000},
                                  {"b", at(20'000), 1, 1, 1},
                                  {"gone", at(30'000), 7, 7, 7}})
                  .isOk());
  ASSERT_TRUE(store_->recordAccess({{"a", at(5'000), 2, 50, 500}}).isOk());
  ASSERT_TRUE(store_->recordAccess({}).isOk());
  // A flush without requests carries no time and must not erase one.
  ASSERT_TRUE(store_->recordAccess({{"a", TimePoint{}, 0, 0, 0}}).isOk());

  auto a = get("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->lastAccessAt, at(10'000));
  EXPECT_EQ(a->requestCount, 5u);
  EXPECT_EQ(a->bytesIn, 150u);
  EXPECT_EQ(a->bytesOut, 1'500u);

  auto bb = get("b");
  ASSERT_TRUE(bb.has_value());
  EXPECT_EQ(bb->lastAccessAt, at(50'000));
  EXPECT_EQ(bb->requestCount, 11u);

  EXPECT_FALSE(get("gone").has_value());
  auto count = store_->countEnvironments();
  ASSERT_TRUE(count.isOk());
  EXPECT_EQ(*count, 2u);
}

TEST_P(StoreContract, TransactionCommitsWritesMadeThroughOtherMethods) {
  std::string ip;
  Status s = store_->transaction([&]() -> Status {
    QABOX_ASSIGN_OR_RETURN(uint32_t n, store_->countEnvironments());
    if (n != 0) return internalError("expected an empty store");
    QABOX_ASSIGN_OR_RETURN(ip, store_->leaseAddress("10.44.0.0/24", "qabox-t"));
    QABOX_ASSIGN_OR_RETURN(
        int64_t id, store_->beginOperation({0, "t", JournalKind::kCreate, "qabox-t", ip, at(1),
                                            std::nullopt, JournalOutcome::kUnfinished, ""}));
    (void)id;
    Environment e = sampleEnvironment("t");
    e.ip = ip;
    QABOX_RETURN_IF_ERROR(store_->putEnvironment(e));
    // Reads inside the transaction see its own writes.
    QABOX_ASSIGN_OR_RETURN(auto seen, store_->getEnvironment("t"));
    if (!seen) return internalError("own write not visible");
    return Status::ok();
  });
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(ip, "10.44.0.2");
  auto e = get("t");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->ip, ip);
  EXPECT_EQ(leasedIps().size(), 1u);
  auto ops = store_->unfinishedOperations();
  ASSERT_TRUE(ops.isOk());
  EXPECT_EQ(ops->size(), 1u);
}

TEST_P(StoreContract, TransactionRollsBackWhenBodyFails) {
  ASSERT_TRUE(store_->putEnvironment(sampleEnvironment("keep")).isOk());
  Status s = store_->transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_->putEnvironment(sampleEnvironment("t")));
    QABOX_RETURN_IF_ERROR(store_->deleteEnvironment("keep"));
    QABOX_ASSIGN_OR_RETURN(auto ip, store_->leaseAddress("10.44.0.0/24", "qabox-t"));
    (void)ip;
    QABOX_ASSIGN_OR_RETURN(
        auto id, store_->beginOperation({0, "t", JournalKind::kCreate, "qabox-t", "", at(1),
                                         std::nullopt, JournalOutcome::kUnfinished, ""}));
    (void)id;
    QABOX_RETURN_IF_ERROR(store_->addEvent({0, at(1), "T", "deploy", "me", "started", ""}));
    QABOX_RETURN_IF_ERROR(store_->putImage({"busybox", 1, at(1), true, ""}));
    QABOX_RETURN_IF_ERROR(store_->putToken(
        {"tok", "admin", "h", at(1), std::nullopt, false, std::nullopt, std::nullopt}));
    return resourceExhausted("limits.max_environments: full");
  });
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_EQ(s.message(), "limits.max_environments: full");

  EXPECT_FALSE(get("t").has_value());
  EXPECT_TRUE(get("keep").has_value());
  EXPECT_TRUE(leasedIps().empty());
  auto ops = store_->unfinishedOperations();
  ASSERT_TRUE(ops.isOk());
  EXPECT_TRUE(ops->empty());
  auto events = store_->listEvents("", 0);
  ASSERT_TRUE(events.isOk());
  EXPECT_TRUE(events->empty());
  auto images = store_->listImages();
  ASSERT_TRUE(images.isOk());
  EXPECT_TRUE(images->empty());
  auto tokens = store_->listTokens();
  ASSERT_TRUE(tokens.isOk());
  EXPECT_TRUE(tokens->empty());

  // The store is usable afterwards.
  EXPECT_EQ(lease("10.44.0.0/24", "after"), "10.44.0.2");
}

TEST_P(StoreContract, FailedNestedTransactionUndoesOnlyItsOwnWrites) {
  Status s = store_->transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_->putEnvironment(sampleEnvironment("outer")));
    Status inner = store_->transaction([&]() -> Status {
      QABOX_RETURN_IF_ERROR(store_->putEnvironment(sampleEnvironment("inner")));
      return aborted("inner gives up");
    });
    if (inner.code() != Code::kAborted) return internalError("inner: " + inner.toString());
    return store_->transaction(
        [&]() -> Status { return store_->putEnvironment(sampleEnvironment("inner-ok")); });
  });
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_TRUE(get("outer").has_value());
  EXPECT_FALSE(get("inner").has_value());
  EXPECT_TRUE(get("inner-ok").has_value());
}

TEST_P(StoreContract, FailedWriteInsideATransactionLeavesTheRestUsable) {
  ASSERT_TRUE(
      store_
          ->putToken({"a", "admin", "same", at(1), std::nullopt, false, std::nullopt, std::nullopt})
          .isOk());
  Status s = store_->transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_->putEnvironment(sampleEnvironment("x")));
    Status dup = store_->putToken(
        {"b", "admin", "same", at(1), std::nullopt, false, std::nullopt, std::nullopt});
    if (dup.code() != Code::kAlreadyExists) return internalError("dup: " + dup.toString());
    return store_->putEnvironment(sampleEnvironment("y"));
  });
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_TRUE(get("x").has_value());
  EXPECT_TRUE(get("y").has_value());
}

TEST_P(StoreContract, TransactionRollsBackWhenBodyThrows) {
  EXPECT_THROW((void)store_->transaction([&]() -> Status {
    (void)store_->putEnvironment(sampleEnvironment("t"));
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_FALSE(get("t").has_value());
  ASSERT_TRUE(
      store_->transaction([&] { return store_->putEnvironment(sampleEnvironment("u")); }).isOk());
  EXPECT_TRUE(get("u").has_value());
}

TEST_P(StoreContract, OtherThreadsWaitForAnOpenTransaction) {
  std::thread writer;
  Status s = store_->transaction([&]() -> Status {
    QABOX_RETURN_IF_ERROR(store_->putEnvironment(sampleEnvironment("first")));
    // Were the other thread let in now, its write would join this
    // transaction and vanish in the rollback below.
    writer = std::thread([&] {
      auto n = store_->countEnvironments();
      Environment e = sampleEnvironment("second");
      e.message = n.isOk() ? std::to_string(*n) : n.status().toString();
      EXPECT_TRUE(store_->putEnvironment(e).isOk());
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return aborted("changed my mind");
  });
  if (writer.joinable()) writer.join();
  EXPECT_EQ(s.code(), Code::kAborted);
  EXPECT_FALSE(get("first").has_value());
  auto second = get("second");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->message, "0");
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StoreContract,
    ::testing::Values(Backend{
        "Sqlite", [](const std::string& dir) { return openSqliteStore(dir + "/qabox.db"); }}),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

}  // namespace
}  // namespace qabox
