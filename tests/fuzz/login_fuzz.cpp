// Fuzz entry point for the bytes a client sends to the login check before
// anything is looked up: Cookie headers, sealed values, the query of a
// grant's redemption. Invariants, not just "no crash":
//  - what the router forwards holds none of qabox's cookies, and stripping
//    twice changes nothing;
//  - no byte string opens as a session unless this key sealed it;
//  - a path a redirect may take is always on the same host.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/cookie.h"
#include "core/url.h"
#include "server/sessions.h"

namespace {

const qabox::SessionCodec& codec() {
  static const qabox::SessionCodec c([] {
    qabox::SessionKey k;
    k.fill(0x5a);
    return k;
  }());
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qabox;
  std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string kept = withoutQaboxCookies(in);
  if (withoutQaboxCookies(kept) != kept) __builtin_trap();
  for (std::string_view name :
       {"qabox_session", "qabox_preview", "__Host-qabox_session", "__Host-qabox_preview"}) {
    if (!cookieValues(kept, name).empty()) __builtin_trap();
  }

  const TimePoint now = fromUnixMillis(1'800'000'000'000);
  for (std::string_view value : cookieValues(in, "qabox_preview")) {
    for (auto kind : {SessionKind::kSession, SessionKind::kGrant, SessionKind::kPreview}) {
      if (codec().open(value, kind, "exmp-113", now)) __builtin_trap();  // nothing forged opens
    }
  }
  // A value this key did seal still opens after the fuzzer's bytes went by.
  static const std::string sealed = codec().seal(SessionCodec::make(
      SessionKind::kPreview, "alice", "exmp-113", now, std::chrono::seconds(60)));
  if (!codec().open(sealed, SessionKind::kPreview, "exmp-113", now)) __builtin_trap();

  if (auto next = queryParam(in, "next")) {
    if (auto path = urlDecode(*next); path && isLocalPath(*path)) {
      if (path->size() > 1 && ((*path)[1] == '/' || (*path)[1] == '\\')) __builtin_trap();
      for (char c : *path) {
        if (static_cast<unsigned char>(c) < 0x21) __builtin_trap();
      }
    }
  }
  (void)urlEncode(in.substr(0, 256));
  return 0;
}
