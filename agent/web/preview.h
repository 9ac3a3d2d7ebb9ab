#pragma once

// /auth/preview?to=URL: where a signed-in person is sent back to a preview.
// Only http(s)://<slug>.<domain>[:port]/... of this agent's own domain, with
// a slug that is a ticket's (never the dashboard's reserved label), may be a
// `to`: anything else would make the dashboard an open redirect.

#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox::web {

struct PreviewTarget {
  std::string scheme;     // http or https
  std::string host;       // exmp-113.qa.company.int[:port], as given (lower-cased)
  std::string slug;       // exmp-113
  std::string pathQuery;  // "/priority?x=1", "/" at least
};

Result<PreviewTarget> checkPreviewTarget(std::string_view to, std::string_view domain,
                                         std::string_view reservedLabel);

// <scheme>://<host>/.qabox/auth?grant=<sealed>&next=<url-encoded pathQuery>
std::string grantRedirect(const PreviewTarget& t, std::string_view sealedGrant);

}  // namespace qabox::web
