#include "hooks/dedup.h"

#include <algorithm>

namespace qabox::hooks {

bool Deduplicator::add(const std::string& id) {
  std::lock_guard lock(mu_);
  if (!ids_.insert(id).second) return false;
  order_.push_back(id);
  while (order_.size() > capacity_) {
    ids_.erase(order_.front());
    order_.pop_front();
  }
  return true;
}

void Deduplicator::forget(const std::string& id) {
  std::lock_guard lock(mu_);
  if (ids_.erase(id) == 0) return;
  auto it = std::find(order_.rbegin(), order_.rend(), id);
  if (it != order_.rend()) order_.erase(std::next(it).base());
}

size_t Deduplicator::size() const {
  std::lock_guard lock(mu_);
  return ids_.size();
}

}  // namespace qabox::hooks
