#pragma once

// `[log] format = "json"`: one JSON object per line for log shippers,
// {"time": RFC 3339 with ms in UTC, "level", "logger", "message"}, every
// string escaped by nlohmann-json, so a message with quotes, newlines or
// control bytes stays one line.

#include <memory>

#include <spdlog/formatter.h>

namespace qabox {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

}  // namespace qabox
