#include "hooks/queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <system_error>

namespace qabox::hooks {

WorkQueue::WorkQueue(size_t capacity, size_t workers)
    : capacity_(std::max<size_t>(1, capacity)), workers_(std::max<size_t>(1, workers)) {}

WorkQueue::~WorkQueue() { stop(); }

WorkQueue::Outcome WorkQueue::push(Action a) {
  std::lock_guard lock(mu_);
  if (stopping_) return Outcome::kStopped;
  auto it = pending_.find(a.ticket);
  if (it != pending_.end()) {
    if (it->second.type == Action::Type::kReclaim && a.type != Action::Type::kReclaim) {
      return Outcome::kSuperseded;
    }
    it->second = std::move(a);
    return Outcome::kReplaced;
  }
  if (pending_.size() >= capacity_) return Outcome::kFull;
  order_.push_back(a.ticket);
  std::string ticket = a.ticket;
  pending_.emplace(std::move(ticket), std::move(a));
  cv_.notify_one();
  return Outcome::kQueued;
}

void WorkQueue::start() {
  std::lock_guard lock(mu_);
  if (!threads_.empty()) return;
  stopping_ = false;
  for (size_t i = 0; i < workers_; ++i) {
    try {
      threads_.emplace_back(&WorkQueue::work, this);
    } catch (const std::system_error& e) {
      spdlog::warn("webhooks: starting a worker thread: {}", e.what());
      break;
    }
  }
}

void WorkQueue::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    threads = std::move(threads_);
    threads_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
  std::lock_guard lock(mu_);
  if (!pending_.empty()) spdlog::info("webhooks: {} pending actions dropped", pending_.size());
  pending_.clear();
  order_.clear();
  idle_.notify_all();
}

void WorkQueue::drain() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return (pending_.empty() && running_.empty()) || stopping_; });
}

size_t WorkQueue::pending() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

void WorkQueue::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    // The oldest ticket with nothing of its own running.
    auto next = order_.end();
    cv_.wait(lock, [&] {
      if (stopping_) return true;
      next = std::find_if(order_.begin(), order_.end(),
                          [&](const std::string& t) { return running_.count(t) == 0; });
      return next != order_.end();
    });
    if (stopping_) return;
    std::string ticket = *next;
    order_.erase(next);
    auto it = pending_.find(ticket);
    Action a = std::move(it->second);
    pending_.erase(it);
    running_.insert(ticket);
    lock.unlock();
    try {
      if (a.run) a.run();
    } catch (const std::exception& e) {
      spdlog::error("webhooks: {}: {}", a.what, e.what());
    }
    lock.lock();
    running_.erase(ticket);
    // A worker may have passed this ticket over while it ran.
    cv_.notify_all();
    if (pending_.empty() && running_.empty()) idle_.notify_all();
  }
}

}  // namespace qabox::hooks
