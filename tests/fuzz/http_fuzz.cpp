// Fuzz entry point for what the router does with untrusted bytes before it
// forwards anything: the Host parser, and a request head and body fed
// through Beast's parser and the router's checks, whole and in pieces.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/request_check.h"
#include "proxy/router.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)qabox::parseHostHeader(in.substr(0, 512), "qa.company.int");
  (void)qabox::parseHostHeader(in.substr(0, 512), "");

  using qabox::proxy_internal::inspectRequest;
  size_t split = size > 0 ? 1 + data[0] % 32 : 1;
  auto whole = inspectRequest(in, "qa.company.int", 4096, 50, 0);
  auto pieces = inspectRequest(in, "qa.company.int", 4096, 50, split);
  // How the bytes arrive must not change whether a request is forwarded,
  // nor where it goes: a difference is a framing ambiguity.
  if (whole.complete && pieces.complete) {
    if ((whole.status == 0) != (pieces.status == 0)) __builtin_trap();
    if (whole.status == 0 && whole.slug != pieces.slug) __builtin_trap();
    if (whole.status == 0 && whole.bodyDone && pieces.bodyDone &&
        whole.bodyBytes != pieces.bodyBytes) {
      __builtin_trap();
    }
  }
  return 0;
}
