#include "web/preview.h"

#include <cctype>

#include "core/ascii.h"
#include "core/ticket.h"
#include "core/url.h"
#include "web/html.h"

namespace qabox::web {

Result<PreviewTarget> checkPreviewTarget(std::string_view to, std::string_view domain,
                                         std::string_view reservedLabel) {
  auto bad = [](std::string why) { return invalidArgument("to: " + why); };
  PreviewTarget t;
  if (to.rfind("http://", 0) == 0) {
    t.scheme = "http";
  } else if (to.rfind("https://", 0) == 0) {
    t.scheme = "https";
  } else {
    return bad("not an http(s) URL");
  }
  std::string_view rest = to.substr(t.scheme.size() + 3);
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "/" : rest.substr(slash);
  if (path.find('#') != std::string_view::npos) path = path.substr(0, path.find('#'));
  // The path goes to the preview's own host: "//evil" or "/\\evil" there
  // would be read as another authority by a browser.
  if (!isLocalPath(path)) {
    return bad("the path must start with one / and hold no space, control character or '\\'");
  }
  if (authority.find('@') != std::string_view::npos) return bad("no user info allowed");
  std::string host = asciiLowered(authority);
  std::string_view name = host;
  if (size_t colon = name.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = name.substr(colon + 1);
    if (port.empty() || port.size() > 5) return bad("bad port");
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return bad("bad port");
    }
    if (std::stoul(std::string(port)) > 65535) return bad("bad port");
    name = name.substr(0, colon);
  }
  std::string suffix = "." + std::string(domain);
  if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix) {
    return bad("not a preview of " + std::string(domain));
  }
  std::string_view label = name.substr(0, name.size() - suffix.size());
  auto ticket = parseTicket(label);
  if (!ticket || ticket->slug != label) return bad("not an environment's host name");
  if (label == reservedLabel) return bad("the dashboard is not a preview");
  t.host = host;
  t.slug = std::string(label);
  t.pathQuery = std::string(path);
  return t;
}

std::string grantRedirect(const PreviewTarget& t, std::string_view sealedGrant) {
  return t.scheme + "://" + t.host + "/.qabox/auth?grant=" + urlEncode(sealedGrant) +
         "&next=" + urlEncode(t.pathQuery);
}

}  // namespace qabox::web
