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
