#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qabox::init {

// What /etc/qabox/app.env gives every supervised process. The agent writes
// KEY='value' lines (shellQuote: single quotes, '\'' for a quote inside, a
// value may span lines); init reads them itself instead of through a shell,
// so nothing in the file runs. A line it cannot read is skipped and named in
// `errors`; the rest still count.
struct AppEnv {
  std::vector<std::pair<std::string, std::string>> vars;  // in file order, last one wins
  std::vector<std::string> errors;                        // "app.env: line 3: ..."
};

AppEnv parseAppEnv(std::string_view text);

// PATH and HOME, then app.env's variables (which win): KEY=VALUE strings.
std::vector<std::string> processEnvironment(const AppEnv& env, const std::string& home);

}  // namespace qabox::init
