#include "core/redact.h"

#include <algorithm>

namespace qabox {

Redactor::Redactor(const std::map<std::string, std::string>& secrets) {
  for (const auto& [key, value] : secrets) {
    if (!value.empty()) secrets_.push_back({value, "[secret " + key + "]"});
  }
  std::stable_sort(secrets_.begin(), secrets_.end(), [](const Secret& a, const Secret& b) {
    return a.value.size() > b.value.size();
  });
  for (uint32_t i = 0; i < secrets_.size(); ++i) {
    byFirstByte_[static_cast<unsigned char>(secrets_[i].value.front())].push_back(i);
  }
}

std::string Redactor::run(std::string_view text, bool final, size_t& consumed) const {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t rest = text.size() - i;
    const Secret* match = nullptr;
    bool undecided = false;
    for (uint32_t index : byFirstByte_[static_cast<unsigned char>(text[i])]) {
      const Secret& s = secrets_[index];
      if (s.value.size() > rest) {
        // A longer value may still complete in the next piece.
        if (!final && s.value.compare(0, rest, text.substr(i)) == 0) {
          undecided = true;
          break;
        }
        continue;
      }
      if (text.compare(i, s.value.size(), s.value) == 0) {
        match = &s;
        break;
      }
    }
    if (undecided) break;
    if (match) {
      out += match->replacement;
      i += match->value.size();
    } else {
      out += text[i++];
    }
  }
  consumed = i;
  return out;
}

std::string Redactor::redact(std::string_view text) const {
  if (secrets_.empty()) return std::string(text);
  size_t consumed = 0;
  return run(text, true, consumed);
}

std::string Redactor::feed(std::string_view piece) {
  if (secrets_.empty()) return std::string(piece);
  pending_.append(piece);
  size_t consumed = 0;
  std::string out = run(pending_, false, consumed);
  pending_.erase(0, consumed);
  return out;
}

std::string Redactor::finish() {
  std::string out = redact(pending_);
  pending_.clear();
  return out;
}

}  // namespace qabox
