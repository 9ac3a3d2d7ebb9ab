#include "server/sessions.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/cookie.h"
#include "sys/atomic_file.h"
#include "sys/fd.h"

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

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
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

Status keyFileProblem(const std::string& path, const std::string& what) {
  return Status(Code::kFailedPrecondition, "session key " + path + ": " + what +
                                               "; remove it to make a new one (everyone " +
                                               "signed in to the dashboard signs in again)");
}

}  // namespace

Result<SessionKey> loadOrCreateSessionKey(const std::string& path) {
  if (sodium_init() < 0) return Status(Code::kInternal, "libsodium did not initialise");
  SessionKey key{};
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!(fd.get() >= 0) && errno == ENOENT) {
    randombytes_buf(key.data(), key.size());
    std::string_view bytes(reinterpret_cast<const char*>(key.data()), key.size());
    QABOX_RETURN_IF_ERROR(writeFileAtomically(path, bytes, 0600));
    return key;
  }
  if (!(fd.get() >= 0)) return keyFileProblem(path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return keyFileProblem(path, "not a regular file");
  }
  if ((st.st_mode & 077) != 0 || st.st_uid != ::geteuid()) {
    return keyFileProblem(path, "readable by others, or not the agent's");
  }
  if (st.st_size != static_cast<off_t>(key.size()) ||
      ::read(fd.get(), key.data(), key.size()) != static_cast<ssize_t>(key.size())) {
    return keyFileProblem(path, "not 32 bytes");
  }
  return key;
}

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
  if (!claims || claims->kind != kind || !equalsIgnoreCase(claims->host, host) ||
      claims->expiresAt <= now) {
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

TokenDirectory::TokenDirectory(Store& store) : store_(store) {
  snap_.store(std::make_shared<const Snapshot>());
}

Status TokenDirectory::reload() {
  auto rows = store_.listTokens();
  if (!rows) {
    // Fail closed: a token revoked in a store that can not be read must not
    // keep its sessions. Everyone signs in again once it can be.
    snap_.store(std::make_shared<const Snapshot>());
    return rows.status();
  }
  auto next = std::make_shared<Snapshot>();
  for (const TokenRecord& t : *rows) {
    auto role = parseRole(t.role);
    if (t.revoked || !role) continue;
    next->byName.emplace(t.name, TokenHolder{t.name, *role, t.expiresAt});
    next->nameByHash.emplace(t.hash, t.name);
  }
  snap_.store(std::move(next));
  return Status::ok();
}

std::optional<TokenHolder> TokenDirectory::valid(const Snapshot& s, std::string_view name,
                                                 TimePoint now) const {
  auto it = s.byName.find(name);
  if (it == s.byName.end()) return std::nullopt;
  if (it->second.expiresAt && *it->second.expiresAt <= now) return std::nullopt;
  return it->second;
}

std::optional<TokenHolder> TokenDirectory::byName(std::string_view name, TimePoint now) const {
  auto s = snap_.load();
  return valid(*s, name, now);
}

std::optional<TokenHolder> TokenDirectory::bySecret(std::string_view secret, TimePoint now) const {
  auto s = snap_.load();
  auto it = s->nameByHash.find(hashTokenSecret(secret));
  if (it == s->nameByHash.end()) return std::nullopt;
  return valid(*s, it->second, now);
}

std::optional<SignedIn> signedIn(const SessionCodec& codec, const TokenDirectory& tokens,
                                 std::string_view cookieHeader, std::string_view cookie,
                                 SessionKind kind, std::string_view host, TimePoint now) {
  auto values = cookieValues(cookieHeader, cookie);
  if (values.size() != 1) return std::nullopt;
  auto claims = codec.open(values.front(), kind, host, now);
  if (!claims) return std::nullopt;
  auto holder = tokens.byName(claims->token, now);
  if (!holder) return std::nullopt;
  return SignedIn{std::move(*claims), std::move(*holder)};
}

}  // namespace qabox
