#pragma once

// The delivery ids seen last, so that a replayed or retried delivery does
// nothing twice. In memory and bounded: a restart forgets them, which is
// safe because every action is idempotent or re-checked (a reclaim asks git
// again, a redeploy of the head already deployed changes nothing).

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_set>

namespace qabox::hooks {

class Deduplicator {
 public:
  explicit Deduplicator(size_t capacity = 4096) : capacity_(capacity == 0 ? 1 : capacity) {}

  // True when `id` is new (and now remembered), false when it was seen.
  bool add(const std::string& id);
  // Forgets `id`: the delivery was refused after all (a full queue), and
  // its retry must be served.
  void forget(const std::string& id);
  size_t size() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<std::string> order_;
  std::unordered_set<std::string> ids_;
};

}  // namespace qabox::hooks
