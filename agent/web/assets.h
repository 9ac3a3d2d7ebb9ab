#pragma once

// The dashboard's stylesheet and script, compiled in: no CDN, nothing
// fetched from elsewhere (CSP default-src 'self').

#include <string_view>

namespace qabox::web {

std::string_view appCss();
std::string_view appJs();

}  // namespace qabox::web
