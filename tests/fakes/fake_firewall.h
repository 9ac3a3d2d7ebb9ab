#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "runtime/nftables.h"

namespace qabox::fakes {

// Keeps the rule text it is given instead of applying it; fails with
// `failWith` when that is set.
class FakeFirewall : public Firewall {
 public:
  Status apply(const std::string& rules) override {
    std::lock_guard lock(mu_);
    applied.push_back(rules);
    return failWith;
  }
  std::vector<std::string> appliedRules() {
    std::lock_guard lock(mu_);
    return applied;
  }

  Status failWith = Status::ok();
  std::vector<std::string> applied;

 private:
  std::mutex mu_;
};

}  // namespace qabox::fakes
