#pragma once

#include <mutex>
#include <string>

#include "core/status.h"

struct nft_ctx;

namespace qabox {

// The host's nftables ruleset: rule text in `nft -f`'s language, applied as
// one transaction (all of it or none).
class Firewall {
 public:
  virtual ~Firewall() = default;
  // What `nft -f -` does with `rules`; an error carries nft's message.
  virtual Status apply(const std::string& rules) = 0;
};

// Through libnftables in this process: one context, used by one caller at a
// time, its output and errors kept in buffers rather than printed.
class Nftables : public Firewall {
 public:
  Nftables();
  ~Nftables() override;
  Nftables(const Nftables&) = delete;
  Nftables& operator=(const Nftables&) = delete;

  Status apply(const std::string& rules) override;
  // Runs commands (`list table ...` too) and returns what nft printed.
  Result<std::string> run(const std::string& commands);

 private:
  std::mutex mu_;
  nft_ctx* ctx_ = nullptr;
};

}  // namespace qabox
