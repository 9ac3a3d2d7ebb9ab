#pragma once

#include <string>
#include <string_view>

namespace qabox::proxy_internal {

std::string htmlEscape(std::string_view text);

// The small HTML page the router answers with when it does not forward:
// the status, a title and one sentence a person can act on.
std::string renderPage(unsigned status, std::string_view title, std::string_view message);

}  // namespace qabox::proxy_internal
