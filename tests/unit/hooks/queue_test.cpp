#include "hooks/queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

#include "hooks/dedup.h"

namespace qabox::hooks {
namespace {

using Type = Action::Type;

Action act(const std::string& ticket, Type type, std::function<void()> run) {
  Action a;
  a.ticket = ticket;
  a.type = type;
  a.what = ticket;
  a.run = std::move(run);
  return a;
}

TEST(Deduplicator, ReplaysAreSeenAndTheOldestAreForgotten) {
  Deduplicator d(3);
  EXPECT_TRUE(d.add("a"));
  EXPECT_FALSE(d.add("a"));
  EXPECT_TRUE(d.add("b"));
  EXPECT_TRUE(d.add("c"));
  EXPECT_TRUE(d.add("d"));  // "a" falls out
  EXPECT_EQ(d.size(), 3u);
  EXPECT_TRUE(d.add("a"));
  EXPECT_FALSE(d.add("d"));
  d.forget("d");
  EXPECT_TRUE(d.add("d"));
  d.forget("never-seen");
  EXPECT_EQ(d.size(), 3u);
}

// Nothing runs before start(): what is pending is what push() decided.
TEST(WorkQueue, LastPushWinsAndAReclaimSupersedesARedeploy) {
  std::vector<std::string> ran;
  std::mutex mu;
  auto note = [&](std::string what) {
    return [&, what] {
      std::lock_guard lock(mu);
      ran.push_back(what);
    };
  };
  WorkQueue q(10, 1);
  EXPECT_EQ(q.push(act("T-1", Type::kRedeploy, note("push 1"))), WorkQueue::Outcome::kQueued);
  EXPECT_EQ(q.push(act("T-1", Type::kRedeploy, note("push 2"))), WorkQueue::Outcome::kReplaced);
  EXPECT_EQ(q.push(act("T-2", Type::kRedeploy, note("T-2 push"))), WorkQueue::Outcome::kQueued);
  EXPECT_EQ(q.push(act("T-2", Type::kReclaim, note("T-2 reclaim"))), WorkQueue::Outcome::kReplaced);
  EXPECT_EQ(q.push(act("T-2", Type::kRedeploy, note("T-2 late push"))),
            WorkQueue::Outcome::kSuperseded);
  EXPECT_EQ(q.pending(), 2u);
  q.start();
  q.drain();
  std::lock_guard lock(mu);
  EXPECT_EQ(ran, (std::vector<std::string>{"push 2", "T-2 reclaim"}));
}

TEST(WorkQueue, BoundRefusesNewTicketsButStillCoalesces) {
  WorkQueue q(2, 1);
  EXPECT_EQ(q.push(act("A-1", Type::kRedeploy, {})), WorkQueue::Outcome::kQueued);
  EXPECT_EQ(q.push(act("A-2", Type::kRedeploy, {})), WorkQueue::Outcome::kQueued);
  EXPECT_EQ(q.push(act("A-3", Type::kRedeploy, {})), WorkQueue::Outcome::kFull);
  EXPECT_EQ(q.push(act("A-1", Type::kRedeploy, {})), WorkQueue::Outcome::kReplaced);
  q.stop();
  EXPECT_EQ(q.push(act("A-4", Type::kRedeploy, {})), WorkQueue::Outcome::kStopped);
}

TEST(WorkQueue, OneActionPerTicketAtATimeOthersInParallel) {
  WorkQueue q(100, 4);
  std::atomic<int> inT1{0};
  std::atomic<int> maxT1{0};
  std::atomic<int> total{0};
  std::promise<void> otherRan;
  auto t1 = [&] {
    int now = ++inT1;
    maxT1 = std::max(maxT1.load(), now);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    --inT1;
    ++total;
  };
  q.start();
  ASSERT_EQ(q.push(act("T-1", Type::kRedeploy, t1)), WorkQueue::Outcome::kQueued);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // T-1 runs: the next one for it waits, T-2 does not.
  EXPECT_EQ(q.push(act("T-1", Type::kRedeploy, t1)), WorkQueue::Outcome::kQueued);
  EXPECT_EQ(q.push(act("T-2", Type::kRedeploy, [&] { otherRan.set_value(); })),
            WorkQueue::Outcome::kQueued);
  EXPECT_EQ(otherRan.get_future().wait_for(std::chrono::milliseconds(25)),
            std::future_status::ready);
  q.drain();
  EXPECT_EQ(maxT1.load(), 1);
  EXPECT_EQ(total.load(), 2);
}

TEST(WorkQueue, AThrowingActionDoesNotStopTheWorkers) {
  WorkQueue q(10, 1);
  std::atomic<bool> second{false};
  q.start();
  ASSERT_EQ(q.push(act("X-1", Type::kRedeploy, [] { throw std::runtime_error("boom"); })),
            WorkQueue::Outcome::kQueued);
  ASSERT_EQ(q.push(act("X-2", Type::kRedeploy, [&] { second = true; })),
            WorkQueue::Outcome::kQueued);
  q.drain();
  EXPECT_TRUE(second.load());
}

}  // namespace
}  // namespace qabox::hooks
