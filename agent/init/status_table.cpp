#include "init/status_table.h"

#include <algorithm>
#include <vector>

#include "init/clock.h"
#include "init/files.h"

namespace qabox::init {
namespace {

std::string ago(int64_t ms) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
  return std::to_string(s / 3600) + "h" + std::to_string(s % 3600 / 60) + "m";
}

// No control byte of the app's reaches the terminal.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s) out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
  return out;
}

}  // namespace

std::string statusTable(const supervise::InitStatus& s, int64_t nowMs) {
  std::vector<std::vector<std::string>> rows{
      {"NAME", "STATE", "PID", "RESTARTS", "LAST-EXIT", "SINCE", "MESSAGE"}};
  for (const supervise::ProcessStatus& p : s.processes) {
    rows.push_back({p.name, std::string(supervise::stateName(p.state)),
                    p.pid > 0 ? std::to_string(p.pid) : "-", std::to_string(p.restarts),
                    std::to_string(p.lastExit), ago(nowMs - p.sinceMs), printable(p.message)});
  }
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

int printStatus(const std::string& path, FILE* out, FILE* err) {
  auto text = readBounded(path, supervise::kMaxStatusBytes);
  if (!text) {
    std::fprintf(err, "qabox-init: %s\n", text.status().message().c_str());
    return 1;
  }
  auto s = supervise::parseStatus(*text);
  if (!s) {
    std::fprintf(err, "qabox-init: %s\n", s.status().message().c_str());
    return 1;
  }
  std::fputs(statusTable(*s, wallMs()).c_str(), out);
  return 0;
}

}  // namespace qabox::init
