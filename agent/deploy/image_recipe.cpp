#include "deploy/image_recipe.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "sys/fd.h"

namespace qabox {
namespace fs = std::filesystem;
namespace {

struct DigestDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// A SHA-256 fed field by field; each field is length-prefixed, so no two
// different inputs feed the same bytes.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    ok_ = ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
  }
  void raw(const void* data, size_t n) { ok_ = ok_ && EVP_DigestUpdate(ctx_.get(), data, n) == 1; }
  void field(std::string_view s) {
    uint64_t n = s.size();
    raw(&n, sizeof n);
    raw(s.data(), s.size());
  }
  void number(uint64_t n) { raw(&n, sizeof n); }
  Result<std::string> hex() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), d, &len) != 1) {
      return internalError("SHA-256 of the recipe failed");
    }
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out += digits[d[i] >> 4];
      out += digits[d[i] & 15];
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx_;
  bool ok_ = false;
};

// A regular file's size and bytes into the hash, opened without following
// a link; `budget` is what the recipe may still hold.
Status hashFile(Sha256& h, const std::string& path, uint64_t& budget, uint64_t maxBytes) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return failedPrecondition("reading " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return failedPrecondition(path + ": not a regular file");
  }
  h.number(static_cast<uint64_t>(st.st_size));
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failedPrecondition("reading " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    if (static_cast<uint64_t>(n) > budget) {
      return failedPrecondition(path + ": the recipe is over " + std::to_string(maxBytes >> 20) +
                                " MiB; a recipe holds scripts and small files, not data");
    }
    budget -= static_cast<uint64_t>(n);
    h.raw(buf, static_cast<size_t>(n));
  }
  return Status::ok();
}

// Every entry under `dir`, relative, sorted; links and special files refused.
Result<std::set<std::string>> recipeEntries(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    // Lexically: never through a link.
    std::string rel = it->path().lexically_relative(dir).generic_string();
    if (fs::is_symlink(st)) {
      return failedPrecondition("recipe " + dir + ": " + rel +
                                " is a symbolic link; a recipe holds only files and folders");
    }
    if (!fs::is_regular_file(st) && !fs::is_directory(st)) {
      return failedPrecondition("recipe " + dir + ": " + rel +
                                " is not a file or folder; a recipe holds only files and folders");
    }
    out.insert(rel);
  }
  if (ec) return failedPrecondition("reading recipe " + dir + ": " + ec.message());
  return out;
}

// Every entry of `dir` into the hash, by relative path.
Status hashTree(Sha256& h, const std::string& dir, uint64_t& budget, uint64_t maxBytes) {
  struct stat top {};
  if (lstat(dir.c_str(), &top) != 0 || !S_ISDIR(top.st_mode)) {
    return failedPrecondition("recipe " + dir + ": not a folder");
  }
  QABOX_ASSIGN_OR_RETURN(auto entries, recipeEntries(dir));
  h.number(entries.size());
  for (const std::string& rel : entries) {
    std::string path = dir + "/" + rel;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) {
      return failedPrecondition("reading " + path + ": " + std::strerror(errno));
    }
    bool isDir = S_ISDIR(st.st_mode);
    h.field(isDir ? "dir" : "file");
    h.field(rel);
    h.number(st.st_mode & 07777);
    if (!isDir) QABOX_RETURN_IF_ERROR(hashFile(h, path, budget, maxBytes));
  }
  return Status::ok();
}

}  // namespace

Result<std::string> recipeHash(const RecipeInputs& in, uint64_t maxBytes) {
  Sha256 h;
  h.field("qabox recipe 1");
  uint64_t budget = maxBytes;
  QABOX_RETURN_IF_ERROR(hashTree(h, in.dir, budget, maxBytes));
  h.field("shared");
  h.number(in.shared.size());
  for (const auto& dir : in.shared) {
    h.field(fs::path(dir).filename().string());
    QABOX_RETURN_IF_ERROR(hashTree(h, dir, budget, maxBytes));
  }
  h.field("parent");
  h.field(in.parent);
  h.number(in.parentVersion);
  h.field("packages");
  h.number(in.packages.size());
  for (const auto& p : in.packages) h.field(p);
  h.field("init");
  if (!in.initBinary.empty()) {
    uint64_t initBudget = maxBytes;
    if (Status s = hashFile(h, in.initBinary, initBudget, maxBytes); !s.isOk()) {
      return s.withContext("qabox-init, which the recipe installs as its init");
    }
  }
  return h.hex();
}

Result<std::vector<ImageManifest>> recipeChain(const std::string& name,
                                               const ManifestLoader& load) {
  std::vector<ImageManifest> chain;
  std::string path = "image " + name;
  std::set<std::string> seen;
  std::string next = name;
  while (!next.empty()) {
    if (!seen.insert(next).second) {
      return failedPrecondition(path + ": a cycle; an image cannot be built on itself");
    }
    auto m = load(next);
    if (!m) {
      if (chain.empty()) return m.status();
      return Status(m.status().code(), path + ": " + m.status().message());
    }
    chain.push_back(*m);
    next = m->from;
    if (!next.empty()) path += (chain.size() == 1 ? ": from " : " from ") + next;
  }
  return chain;
}

ImageManifest inheritManifest(const ImageManifest& child, const ImageManifest& parent) {
  ImageManifest m = child;
  auto pick = [](std::string& mine, const std::string& theirs) {
    if (mine.empty()) mine = theirs;
  };
  pick(m.init, parent.init);
  m.services = parent.services;
  for (const auto& [name, def] : child.services) m.services[name] = def;
  AppManifest& d = m.defaults;
  const AppManifest& p = parent.defaults;
  pick(d.start, p.start);
  if (!d.port) d.port = p.port;
  pick(d.health, p.health);
  pick(d.build, p.build);
  pick(d.migrate, p.migrate);
  pick(d.seed, p.seed);
  pick(m.memory, parent.memory);
  if (m.cpus == 0) m.cpus = parent.cpus;
  if (m.pids == 0) m.pids = parent.pids;
  return m;
}

}  // namespace qabox
