#include "init/users.h"

#include <algorithm>
#include <charconv>

namespace qabox::init {
namespace {

constexpr size_t kMaxGroups = 64;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

bool number(std::string_view s, uint32_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

template <typename Fn>
void eachLine(std::string_view text, Fn fn) {
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.front() != '#' && !fn(split(line, ':'))) return;
  }
}

}  // namespace

Result<UserIds> lookupUser(std::string_view passwd, std::string_view group, std::string_view name) {
  std::string_view want = name.empty() ? "root" : name;
  UserIds u;
  bool found = false;
  eachLine(passwd, [&](const std::vector<std::string_view>& f) {
    uint32_t uid = 0, gid = 0;
    if (f.size() < 7 || f[0] != want || !number(f[2], uid) || !number(f[3], gid)) return true;
    u.name = std::string(f[0]);
    u.uid = uid;
    u.gid = gid;
    u.home = f[5].empty() || f[5].front() != '/' ? "/" : std::string(f[5]);
    found = true;
    return false;
  });
  if (!found) {
    if (want != "root") return notFound("user " + std::string(want) + ": not in /etc/passwd");
    u.name = "root";
    u.home = "/root";
  }
  u.groups.push_back(u.gid);
  eachLine(group, [&](const std::vector<std::string_view>& f) {
    uint32_t gid = 0;
    if (f.size() < 4 || !number(f[2], gid)) return true;
    for (std::string_view member : split(f[3], ',')) {
      if (member == u.name && std::find(u.groups.begin(), u.groups.end(), gid) == u.groups.end())
        u.groups.push_back(gid);
    }
    return u.groups.size() < kMaxGroups;
  });
  return u;
}

}  // namespace qabox::init
