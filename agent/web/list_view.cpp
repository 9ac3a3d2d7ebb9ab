#include "web/list_view.h"

#include <algorithm>
#include <cctype>

#include "core/ascii.h"
#include "web/html.h"

namespace qabox::web {
namespace {

bool matches(const Environment& e, const std::string& needle) {
  if (needle.empty()) return true;
  for (const std::string* f : {&e.ticket, &e.spec.repo, &e.spec.sourceBranch, &e.spec.targetBranch,
                               &e.spec.image, &e.commit, &e.message}) {
    if (asciiLowered(*f).find(needle) != std::string::npos) return true;
  }
  return false;
}

// Ascending order of `column`; ties by ticket.
bool before(const Environment& a, const Environment& b, const std::string& column) {
  auto key = [&](const Environment& e) {
    if (column == "state") return std::string(stateName(e.state));
    if (column == "repo") return e.spec.repo;
    if (column == "image") return e.spec.image;
    if (column == "source") return e.spec.sourceBranch;
    return std::string();
  };
  if (column == "age" && a.createdAt != b.createdAt) return a.createdAt > b.createdAt;
  if (column == "used" && a.lastAccessAt != b.lastAccessAt) {
    return a.lastAccessAt.value_or(TimePoint{}) > b.lastAccessAt.value_or(TimePoint{});
  }
  std::string ka = key(a), kb = key(b);
  if (ka != kb) return ka < kb;
  return a.slug < b.slug;
}

}  // namespace

ListQuery parseListQuery(const std::map<std::string, std::string>& params) {
  ListQuery q;
  auto get = [&](const char* name) {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  };
  q.text = get("q").substr(0, 200);
  if (auto s = parseState(get("state"))) q.state = std::string(stateName(*s));
  std::string sort = get("sort");
  for (const char* c : kSortColumns) {
    if (sort == c) q.sort = c;
  }
  q.descending = get("dir") == "desc";
  return q;
}

std::string listQueryString(const ListQuery& q) {
  std::string out;
  auto add = [&](const char* name, const std::string& v) {
    if (v.empty()) return;
    if (!out.empty()) out += '&';
    out += std::string(name) + "=" + urlEncode(v);
  };
  add("q", q.text);
  add("state", q.state);
  if (q.sort != "ticket") add("sort", q.sort);
  if (q.descending) add("dir", "desc");
  return out;
}

std::vector<Environment> applyListQuery(std::vector<Environment> envs, const ListQuery& q) {
  std::string needle = asciiLowered(q.text);
  std::erase_if(envs, [&](const Environment& e) {
    return !matches(e, needle) || (!q.state.empty() && stateName(e.state) != q.state);
  });
  std::stable_sort(envs.begin(), envs.end(), [&](const Environment& a, const Environment& b) {
    return q.descending ? before(b, a, q.sort) : before(a, b, q.sort);
  });
  return envs;
}

}  // namespace qabox::web
