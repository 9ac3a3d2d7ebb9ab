#include "sys/subid.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sys/atomic_file.h"

namespace qabox {
namespace {

bool parseNumber(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::string lineOf(const std::string& owner, const IdRange& r) {
  return owner + ":" + std::to_string(r.start) + ":" + std::to_string(r.count);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

bool executableOnPath(const char* name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? "" : dirs.substr(colon + 1);
    if (dir.empty()) continue;
    if (access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

}  // namespace

std::vector<SubIdEntry> parseSubIds(std::string_view text) {
  std::vector<SubIdEntry> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (a == 0 || b == std::string::npos || line.find(':', b + 1) != std::string::npos) continue;
    SubIdEntry e;
    e.owner = line.substr(0, a);
    std::string_view view(line);
    if (!parseNumber(view.substr(a + 1, b - a - 1), e.range.start) ||
        !parseNumber(view.substr(b + 1), e.range.count) || e.range.count == 0) {
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<std::string>> missingSubIdLines(std::string_view text,
                                                   const std::vector<std::string>& owners,
                                                   const std::vector<IdRange>& wanted) {
  auto entries = parseSubIds(text);
  auto ours = [&](const SubIdEntry& e) {
    return std::find(owners.begin(), owners.end(), e.owner) != owners.end();
  };
  std::vector<std::string> lines;
  for (const IdRange& w : wanted) {
    bool held = false;
    for (const auto& e : entries) {
      bool overlaps = e.range.start < w.end() && w.start < e.range.end();
      if (!overlaps) continue;
      if (!ours(e)) {
        return failedPrecondition("host ids " + std::to_string(w.start) + "-" +
                                  std::to_string(w.end() - 1) + " belong to \"" +
                                  lineOf(e.owner, e.range) +
                                  "\" already; choose a [containers] id_base no login user's "
                                  "range covers");
      }
      held = held || (e.range.start <= w.start && w.end() <= e.range.end());
    }
    std::string line = lineOf(owners.front(), w);
    if (!held && std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
  }
  return lines;
}

Status reserveSubIds(const std::string& path, const std::vector<std::string>& owners,
                     const std::vector<IdRange>& wanted) {
  std::string text;
  {
    std::ifstream in(path);
    if (!in && access(path.c_str(), F_OK) == 0) {
      return failedPrecondition(path + ": cannot be read: " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto missing = missingSubIdLines(text, owners, wanted);
  if (!missing) return missing.status().withContext(path);
  if (missing->empty()) return Status::ok();

  const std::string add = joined(*missing);
  auto cannot = [&](const std::string& why) {
    return failedPrecondition("cannot reserve the containers' ids in " + path + " (" + why +
                              "); add these lines to it yourself:\n" + add);
  };
  if (!text.empty() && text.back() != '\n') text += '\n';
  text += add;
  std::string tmp = path + ".qabox-tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return cannot(tmp + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0644) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    removeTemporaryFile(tmp);
    return cannot(std::strerror(err));
  }
  return Status::ok();
}

bool shadowMapsIds() { return executableOnPath("newuidmap") && executableOnPath("newgidmap"); }

}  // namespace qabox
