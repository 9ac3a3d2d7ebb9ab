#include "proxy/pages.h"

namespace qabox::proxy_internal {

std::string htmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string renderPage(unsigned status, std::string_view title, std::string_view message) {
  std::string code = std::to_string(status);
  std::string t = htmlEscape(title);
  std::string out;
  out.reserve(256 + t.size() * 2 + message.size());
  out += "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>";
  out += code + " " + t;
  out +=
      "</title><style>body{font-family:sans-serif;margin:3em;color:#222}"
      "p{max-width:40em}small{color:#777}</style></head>\n<body><h1>";
  out += t;
  out += "</h1>\n<p>";
  out += htmlEscape(message);
  out += "</p>\n<p><small>";
  out += code;
  out += " &middot; qabox router</small></p></body></html>\n";
  return out;
}

}  // namespace qabox::proxy_internal
