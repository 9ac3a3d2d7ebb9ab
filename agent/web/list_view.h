#pragma once

// The list's filter and sort, from the page's query (?q=&state=&sort=&dir=),
// applied on the server so the list works without JavaScript.

#include <map>
#include <string>
#include <vector>

#include "core/environment.h"

namespace qabox::web {

struct ListQuery {
  std::string text;             // in ticket, repo, branches, image, commit, message (any case)
  std::string state;            // "READY" ...; "" for all
  std::string sort = "ticket";  // a column of kSortColumns
  bool descending = false;
};

inline constexpr const char* kSortColumns[] = {"ticket", "state", "repo",  "image",
                                               "age",    "used",  "source"};

// Unknown values fall back to the defaults: a query can never fail the page.
ListQuery parseListQuery(const std::map<std::string, std::string>& params);
// The query string that gives `q` back ("q=x&state=READY&sort=age&dir=desc").
std::string listQueryString(const ListQuery& q);

std::vector<Environment> applyListQuery(std::vector<Environment> envs, const ListQuery& q);

}  // namespace qabox::web
