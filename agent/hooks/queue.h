#pragma once

// The webhooks' work: a bounded queue of actions per ticket, run by a few
// worker threads. Coalesced per ticket: a newer redeploy or deploy replaces
// the one still pending (the last push wins), a reclaim supersedes whatever
// is pending and nothing but a reclaim replaces a pending reclaim. At most
// one action per ticket runs at a time; the next waits for it.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace qabox::hooks {

struct Action {
  enum class Type { kRedeploy, kDeploy, kReclaim };
  std::string ticket;
  Type type = Type::kRedeploy;
  std::string what;  // for logs: "redeploy PROJ-1 for push abc123"
  std::function<void()> run;
};

class WorkQueue {
 public:
  // `capacity`: tickets with a pending action; `workers`: threads.
  WorkQueue(size_t capacity, size_t workers);
  ~WorkQueue();  // stop()
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  enum class Outcome { kQueued, kReplaced, kSuperseded, kFull, kStopped };
  // kQueued: a new pending action; kReplaced: it took the place of the
  // ticket's pending one; kSuperseded: a pending reclaim stays and this one
  // is dropped; kFull: `capacity` tickets already wait; kStopped: stop() ran.
  Outcome push(Action a);

  void start();
  // No new actions; waits for the running ones, drops the pending ones.
  void stop();
  // Blocks until nothing is pending or running (tests, benches).
  void drain();
  size_t pending() const;

 private:
  void work();

  const size_t capacity_;
  const size_t workers_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_;
  std::deque<std::string> order_;          // tickets with a pending action, oldest first
  std::map<std::string, Action> pending_;  // by ticket
  std::set<std::string> running_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace qabox::hooks
