#pragma once

// What the router refuses to forward. Beast's parser does the parsing; these
// checks close the gaps a backend could read differently from us (request
// smuggling) and enforce the router's own limits.

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/beast.h"

namespace qabox::proxy_internal {

// Header fields live in a per-connection arena on the request path (see
// Session), so a request costs no heap allocation for its fields.
using FieldsAllocator = std::pmr::polymorphic_allocator<char>;
using Fields = boost::beast::http::basic_fields<FieldsAllocator>;
using RequestParser =
    boost::beast::http::request_parser<boost::beast::http::buffer_body, FieldsAllocator>;
using ResponseParser =
    boost::beast::http::response_parser<boost::beast::http::buffer_body, FieldsAllocator>;

// Beast 1.74 compares a Content-Length against a disabled (boost::none) body
// limit as if the limit were zero; the largest limit is the working "none".
inline constexpr uint64_t kNoBodyLimit = UINT64_MAX;

// Beast 1.74 speaks boost::string_view unless configured otherwise; the
// setting would have to match in every translation unit of the daemon, so
// convert at the edges instead.
inline std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// Sees the raw head bytes in the order the parser consumed them. Beast
// unfolds obs-fold silently; a backend may not, so a folded head is refused.
class HeadScanner {
 public:
  void feed(const char* data, size_t n);
  bool folded() const { return folded_; }

  // Looks at the bytes received but not yet consumed while the parser still
  // needs more; all of them belong to the head. A bare LF or CR there would
  // keep Beast waiting for a CRLF CRLF that never comes, so it is refused at
  // once. `data` is the whole unconsumed buffer; the scan resumes where the
  // previous one stopped.
  bool pendingBadLineEnding(const char* data, size_t n);

  void reset() { *this = HeadScanner(); }

 private:
  char prev_ = '\0';
  bool folded_ = false;
  size_t pendingScanned_ = 0;
};

struct Refusal {
  unsigned status;          // 400, 405, 417, 431, 505
  std::string_view reason;  // static text
};

// A parse error from Beast's parser while reading a request head.
Refusal refusalForParseError(const boost::system::error_code& ec);

// Checks a complete request head, and rewrites an absolute-form target into
// origin form with the Host it names. nullopt: the head may be forwarded.
std::optional<Refusal> checkRequestHead(RequestParser& parser, bool folded, size_t maxHeaderCount);

// The whole head path on a string, as the router runs it, for tests and the
// fuzzer: the parser fed in pieces of `split` bytes (0: all at once), the
// checks, the Host match, and the body parsed to its end when it is there.
struct HeadVerdict {
  bool complete = false;  // a whole head was there
  unsigned status = 0;    // 0: would be forwarded
  std::string reason;
  std::string slug;
  bool bodyDone = false;  // the body was parsed to its end
  size_t bodyBytes = 0;
};
HeadVerdict inspectRequest(std::string_view bytes, std::string_view domain,
                           size_t maxHeaderBytes = 16 * 1024, size_t maxHeaderCount = 100,
                           size_t split = 0);

}  // namespace qabox::proxy_internal
