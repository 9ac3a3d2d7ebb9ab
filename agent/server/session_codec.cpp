// SessionCodec: sealing and opening the values a browser holds. Only
// libsodium and core: the fuzzer over these bytes builds it alone.
#include "core/ascii.h"
#include "server/sessions.h"

#include <sodium.h>

#include <cstring>
#include <vector>

namespace qabox {

namespace {

constexpr std::string_view kVersion = "q1";

std::string base64url(const unsigned char* data, size_t n) {
  std::string out(sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::optional<std::string> unbase64url(std::string_view text) {
  std::string out(text.size(), '\0');
  size_t n = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &n, nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    return std::nullopt;
  }
  out.resize(n);
  return out;
}

// "q1|k|token|host|issued|expires|nonce": the token names, labels and hex
// that go in never hold a '|' (checkTokenName, parseTicket).
std::vector<std::string_view> splitFields(std::string_view s) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t bar = s.find('|');
    parts.push_back(s.substr(0, bar));
    if (bar == std::string_view::npos) break;
    s.remove_prefix(bar + 1);
  }
  return parts;
}

std::optional<int64_t> parseMillis(std::string_view s) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  return std::stoll(std::string(s));
}

std::optional<SessionClaims> parsePayload(std::string_view payload) {
  auto f = splitFields(payload);
  if (f.size() != 7 || f[0] != kVersion || f[1].size() != 1) return std::nullopt;
  auto issued = parseMillis(f[4]);
  auto expires = parseMillis(f[5]);
  if (!issued || !expires) return std::nullopt;
  SessionClaims c;
  c.kind = static_cast<SessionKind>(f[1][0]);
  c.token = std::string(f[2]);
  c.host = std::string(f[3]);
  c.issuedAt = fromUnixMillis(*issued);
  c.expiresAt = fromUnixMillis(*expires);
  c.nonce = std::string(f[6]);
  return c;
}

}  // namespace

SessionCodec::SessionCodec(const SessionKey& key) : key_(key) {
  if (sodium_init() < 0) std::abort();
}

SessionClaims SessionCodec::make(SessionKind kind, std::string token, std::string host,
                                 TimePoint now, std::chrono::seconds ttl) {
  unsigned char raw[16];
  randombytes_buf(raw, sizeof raw);
  char hex[sizeof raw * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  return SessionClaims{kind, std::move(token), std::move(host), now, now + ttl, hex};
}

std::string SessionCodec::mac(std::string_view data) const {
  unsigned char out[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key_.data(), key_.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(data.data()),
                                data.size());
  crypto_auth_hmacsha256_final(&st, out);
  return base64url(out, sizeof out);
}

std::string SessionCodec::seal(const SessionClaims& c) const {
  std::string payload(kVersion);
  payload += '|';
  payload += static_cast<char>(c.kind);
  for (const std::string& field : {c.token, c.host, std::to_string(toUnixMillis(c.issuedAt)),
                                   std::to_string(toUnixMillis(c.expiresAt)), c.nonce}) {
    payload += '|';
    payload += field;
  }
  std::string sealed =
      base64url(reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  sealed += '.';
  sealed += mac(payload);
  return sealed;
}

std::optional<SessionClaims> SessionCodec::open(std::string_view sealed, SessionKind kind,
                                                std::string_view host, TimePoint now) const {
  if (sealed.size() > 1024) return std::nullopt;
  size_t dot = sealed.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto payload = unbase64url(sealed.substr(0, dot));
  if (!payload) return std::nullopt;
  std::string expected = mac(*payload);
  std::string_view given = sealed.substr(dot + 1);
  if (given.size() != expected.size() ||
      sodium_memcmp(given.data(), expected.data(), expected.size()) != 0) {
    return std::nullopt;
  }
  auto claims = parsePayload(*payload);
  if (!claims || claims->kind != kind || !iequals(claims->host, host) || claims->expiresAt <= now) {
    return std::nullopt;
  }
  return claims;
}

std::string SessionCodec::csrfToken(const SessionClaims& session) const {
  return mac("csrf|" + session.nonce);
}

bool SessionCodec::csrfValid(const SessionClaims& session, std::string_view token) const {
  std::string expected = csrfToken(session);
  return token.size() == expected.size() &&
         sodium_memcmp(token.data(), expected.data(), expected.size()) == 0;
}

}  // namespace qabox
