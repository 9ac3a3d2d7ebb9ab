#pragma once

#include <map>
#include <string>

namespace CLI {
class App;
}

namespace qabox::cli {

// A bash completion script drawn from the command tree, so it never lags
// behind the commands. `valueWords` maps an option ("--output") to the words
// its value may be, or to "@file" for a path. Positionals named "ticket",
// "image" and "token" are completed by asking the agent at completion time
// (`qabox list -o name`, ...), with the line's --endpoint/--token/--ca-cert.
std::string bashCompletion(const CLI::App& root, const std::string& program,
                           const std::map<std::string, std::string>& valueWords);

}  // namespace qabox::cli
