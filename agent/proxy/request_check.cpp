#include "proxy/request_check.h"

#include <algorithm>
#include <cstring>

#include <boost/asio/buffer.hpp>

#include "proxy/host.h"

namespace qabox::proxy_internal {
namespace {

namespace http = boost::beast::http;

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

void HeadScanner::feed(const char* data, size_t n) {
  // A line that starts with SP or HTAB continues the previous one.
  for (size_t i = 0; i < n; ++i) {
    char c = data[i];
    if (prev_ == '\n' && (c == ' ' || c == '\t')) folded_ = true;
    prev_ = c;
  }
  pendingScanned_ = pendingScanned_ > n ? pendingScanned_ - n : 0;
}

bool HeadScanner::pendingBadLineEnding(const char* data, size_t n) {
  for (size_t i = pendingScanned_; i < n; ++i) {
    char prev = i == 0 ? prev_ : data[i - 1];
    if ((data[i] == '\n' && prev != '\r') || (prev == '\r' && data[i] != '\n')) return true;
  }
  // A CR at the very end is judged when its successor arrives.
  pendingScanned_ = n;
  return false;
}

Refusal refusalForParseError(const boost::system::error_code& ec) {
  if (ec == http::error::header_limit) return {431, "the request head is too large"};
  if (ec == http::error::bad_version) {
    return {400, "the request line must end with HTTP/1.0 or HTTP/1.1 and CRLF"};
  }
  if (ec == http::error::bad_content_length) return {400, "invalid or conflicting Content-Length"};
  if (ec == http::error::bad_transfer_encoding) {
    return {400, "invalid Transfer-Encoding, or both Transfer-Encoding and Content-Length"};
  }
  if (ec == http::error::bad_field) return {400, "invalid header field name"};
  if (ec == http::error::bad_value) return {400, "invalid header field value"};
  if (ec == http::error::bad_line_ending) return {400, "lines must end with CRLF"};
  if (ec == http::error::bad_method) return {400, "invalid method"};
  if (ec == http::error::bad_target) return {400, "invalid request target"};
  if (ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension) {
    return {400, "invalid chunked encoding"};
  }
  return {400, "malformed request"};
}

std::optional<Refusal> checkRequestHead(RequestParser& parser, bool folded, size_t maxHeaderCount) {
  auto& m = parser.get();
  if (folded) return Refusal{400, "header lines must not be folded (obs-fold)"};

  size_t count = 0, hosts = 0, lengths = 0, encodings = 0;
  for (const auto& f : m) {
    if (++count > maxHeaderCount) return Refusal{431, "too many header fields"};
    switch (f.name()) {
      case http::field::host: ++hosts; break;
      case http::field::content_length:
        ++lengths;
        if (!allDigits(trim(sv(f.value())))) {
          return Refusal{400, "Content-Length must be one number"};
        }
        break;
      case http::field::transfer_encoding: ++encodings; break;
      default: break;
    }
  }
  if (lengths > 1) return Refusal{400, "more than one Content-Length field"};
  if (encodings > 0) {
    // Beast accepts a coding list that does not end in chunked and then
    // reads no body at all; a backend may read one. Only plain chunked is
    // unambiguous.
    if (lengths > 0) return Refusal{400, "both Content-Length and Transfer-Encoding"};
    if (encodings > 1) return Refusal{400, "more than one Transfer-Encoding field"};
    if (m.version() < 11) return Refusal{400, "Transfer-Encoding in an HTTP/1.0 request"};
    if (!parser.chunked() || !iequals(trim(sv(m[http::field::transfer_encoding])), "chunked")) {
      return Refusal{400, "Transfer-Encoding must be chunked"};
    }
  }
  if (m.method() == http::verb::connect) return Refusal{405, "CONNECT is not supported"};
  if (auto it = m.find(http::field::expect); it != m.end()) {
    if (!iequals(trim(sv(it->value())), "100-continue")) {
      return Refusal{417, "only Expect: 100-continue is supported"};
    }
  }

  std::string_view target = sv(m.target());
  if (target.empty()) return Refusal{400, "empty request target"};
  if (target.front() == '/') {
    // origin-form
  } else if (target == "*") {
    if (m.method() != http::verb::options) return Refusal{400, "'*' is only for OPTIONS"};
  } else if (startsWithNoCase(target, "http://") || startsWithNoCase(target, "https://")) {
    // absolute-form: its authority replaces Host (RFC 9112 3.2.2).
    std::string_view rest = target.substr(target.find("//") + 2);
    size_t end = rest.find_first_of("/?#");
    std::string authority(rest.substr(0, end));
    if (authority.empty() || authority.find('@') != std::string::npos) {
      return Refusal{400, "invalid authority in the request target"};
    }
    std::string path = end == std::string_view::npos ? std::string("/")
                       : rest[end] == '/'            ? std::string(rest.substr(end))
                                                     : "/" + std::string(rest.substr(end));
    m.set(http::field::host, authority);
    m.target(path);
    hosts = 1;
  } else {
    return Refusal{400, "the request target must be a path"};
  }
  if (hosts == 0) return Refusal{400, "a Host field is required"};
  if (hosts > 1) return Refusal{400, "more than one Host field"};
  return std::nullopt;
}

namespace {

// The bytes of inspectRequest as they arrive: all at once, or in pieces of
// `split` bytes.
struct Feed {
  std::string_view bytes;
  size_t split = 0;
  std::string pending;
  size_t pos = 0;

  bool more() {
    if (pos >= bytes.size()) return false;
    size_t k = split == 0 ? bytes.size() - pos : std::min(split, bytes.size() - pos);
    pending.append(bytes.data() + pos, k);
    pos += k;
    return true;
  }
  size_t put(RequestParser& p, boost::system::error_code& ec) {
    if (pending.empty()) {
      ec = http::error::need_more;
      return 0;
    }
    return p.put(boost::asio::buffer(pending), ec);
  }
};

void refuseWith(HeadVerdict& v, const Refusal& r) {
  v.status = r.status;
  v.reason = r.reason;
}

// Parses the head; false when it ended without one to check (refused, or
// the bytes ran out).
bool readHead(RequestParser& p, Feed& in, HeadScanner& scan, HeadVerdict& v) {
  in.more();
  while (!p.is_header_done()) {
    boost::system::error_code ec;
    size_t n = in.put(p, ec);
    scan.feed(in.pending.data(), n);
    in.pending.erase(0, n);
    if (ec == http::error::need_more || (!ec && n == 0)) {
      if (scan.pendingBadLineEnding(in.pending.data(), in.pending.size())) {
        v.complete = true;
        refuseWith(v, {400, "lines must end with CRLF"});
        return false;
      }
      if (!in.more()) return false;
      continue;
    }
    if (ec) {
      v.complete = true;
      refuseWith(v, refusalForParseError(ec));
      return false;
    }
  }
  v.complete = true;
  return true;
}

void readBody(RequestParser& p, Feed& in, HeadVerdict& v) {
  p.eager(true);
  char body[4096];
  while (!p.is_done()) {
    p.get().body().data = body;
    p.get().body().size = sizeof body;
    boost::system::error_code ec;
    size_t n = in.put(p, ec);
    in.pending.erase(0, n);
    v.bodyBytes += sizeof body - p.get().body().size;
    if (ec == http::error::need_buffer) continue;
    if (ec == http::error::need_more || (!ec && n == 0)) {
      if (!in.more()) break;
      continue;
    }
    if (ec) return refuseWith(v, refusalForParseError(ec));
  }
  v.bodyDone = p.is_done();
}

}  // namespace

HeadVerdict inspectRequest(std::string_view bytes, std::string_view domain, size_t maxHeaderBytes,
                           size_t maxHeaderCount, size_t split) {
  HeadVerdict v;
  RequestParser p;
  p.header_limit(static_cast<uint32_t>(std::min<size_t>(maxHeaderBytes, UINT32_MAX)));
  p.body_limit(kNoBodyLimit);
  HeadScanner scan;
  Feed in;
  in.bytes = bytes;
  in.split = split;
  if (!readHead(p, in, scan, v)) return v;
  if (auto r = checkRequestHead(p, scan.folded(), maxHeaderCount)) {
    refuseWith(v, *r);
    return v;
  }
  std::string normalized = normalizeDomain(domain);
  std::string_view label;
  HostError he = matchHost(sv(p.get()[http::field::host]), normalized, label);
  if (he != HostError::kNone) {
    v.status = 400;
    v.reason = std::string(hostErrorText(he));
    return v;
  }
  v.slug.reserve(label.size());
  for (char c : label) v.slug += asciiLower(c);
  readBody(p, in, v);
  return v;
}

}  // namespace qabox::proxy_internal
