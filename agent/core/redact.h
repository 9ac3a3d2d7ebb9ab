#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qabox {

// Replaces the values of secrets with "[secret KEY]" in text that leaves the
// deploy's memory: hook output kept in the deploy log, failure messages,
// progress details. Hooks get the values and may well print them.
//
// redact() takes a whole text. feed() and finish() take a stream cut into
// pieces anywhere: a value split between two pieces is still found, because
// a tail that could be the start of one is held back until the next piece
// (or finish()) decides it. Where two values could match at the same place
// the longer wins. Empty values are never looked for.
class Redactor {
 public:
  explicit Redactor(const std::map<std::string, std::string>& secrets);

  std::string redact(std::string_view text) const;

  std::string feed(std::string_view piece);
  std::string finish();

  bool empty() const { return secrets_.empty(); }

 private:
  // Redacts `text` from its start; when `final` is false, stops where the
  // rest could still become a value and says how much it consumed.
  std::string run(std::string_view text, bool final, size_t& consumed) const;

  struct Secret {
    std::string value;
    std::string replacement;
  };
  std::vector<Secret> secrets_;  // longest value first
  // Indexes into secrets_ by the value's first byte, longest first: output
  // is scanned byte by byte.
  std::array<std::vector<uint32_t>, 256> byFirstByte_;
  std::string pending_;
};

}  // namespace qabox
