#include "daemon/rebuild.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "daemon/state_guard.h"
#include "deploy/image_record.h"
#include "lifecycle/datasets.h"
#include "lifecycle/env_record.h"
#include "store/paths.h"
#include "store/store.h"

namespace qabox {

namespace fs = std::filesystem;

namespace {

std::string stamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// A version built before image.json existed is named <name>-v<N>; its
// parent and recipe hash are lost (the next build of it makes a new version).
Result<ImageVersion> imageOf(const fs::path& dir) {
  const std::string name = dir.filename().string();
  auto text = readRecordFile(imageRecordPath(dir.string()));
  if (text) {
    auto image = parseImageRecord(*text);
    if (!image) return invalidArgument("image.json: " + image.status().message());
    if (paths::imageContainer(image->name, image->version) != name) {
      return invalidArgument("image.json names another version");
    }
    return image;
  }
  const auto dash = name.rfind("-v");
  ImageVersion im;
  if (dash == std::string::npos || dash == 0) return invalidArgument("not named <image>-v<N>");
  im.name = name.substr(0, dash);
  try {
    im.version = static_cast<uint32_t>(std::stoul(name.substr(dash + 2)));
  } catch (const std::exception&) {
    return invalidArgument("not named <image>-v<N>");
  }
  if (paths::imageContainer(im.name, im.version) != name) {
    return invalidArgument("not named <image>-v<N>");
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) im.builtAt = Clock::from_time_t(st.st_mtime);
  return im;
}

class Rebuild {
 public:
  Rebuild(const Config& c, std::ostream& out) : c_(c), out_(out) {}
  int run();

 private:
  Result<std::string> probeOldDatabase();
  Status build();
  Status install(const std::string& suffix);
  std::string temporary() const { return paths::database(c_.stateDir) + ".rebuild"; }
  Status images();
  std::vector<Environment> records();
  Status environments();
  Status layers();
  void summary();
  void report(const std::string& line) { out_ << "  " << line << "\n"; }

  const Config& c_;
  std::ostream& out_;
  std::unique_ptr<Store> store_;
  std::vector<Environment> restored_;
  std::set<std::pair<std::string, uint32_t>> imageVersions_;
  int skipped_ = 0;
};

int Rebuild::run() {
  auto lock = lockStateDir(c_.stateDir);
  if (!lock) {
    out_ << "qaboxd --rebuild-state: " << lock.status().message() << "\n";
    return 1;
  }
  auto suffix = probeOldDatabase();
  Status s = suffix.status();
  if (s.isOk()) s = build();
  if (s.isOk()) s = install(*suffix);
  if (!s.isOk()) {
    store_.reset();
    for (const char* part : {"", "-wal", "-shm"}) {
      std::error_code ec;
      fs::remove(temporary() + part, ec);
    }
    out_ << "qaboxd --rebuild-state: " << s.message() << "\n";
    return 1;
  }
  summary();
  return 0;
}

// The whole database is built under another name: a failure half-way
// never leaves a partial qabox.db that the agent would trust.
Status Rebuild::build() {
  for (const char* part : {"", "-wal", "-shm"}) {
    std::error_code ec;
    fs::remove(temporary() + part, ec);
    if (ec) return internalError("removing " + temporary() + part + ": " + ec.message());
  }
  auto store = openSqliteStore(temporary());
  QABOX_RETURN_IF_ERROR(store.status());
  store_ = std::move(*store);
  QABOX_RETURN_IF_ERROR(images());
  QABOX_RETURN_IF_ERROR(environments());
  QABOX_RETURN_IF_ERROR(layers());
  store_.reset();  // closed: its WAL checkpointed into the file
  return Status::ok();
}

Status fsyncPath(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) {
    return internalError("fsync " + path + ": " + std::strerror(errno));
  }
  return Status::ok();
}

// The old database (and its -wal, -shm) moved aside, the new one renamed
// over it.
Status Rebuild::install(const std::string& suffix) {
  const std::string db = paths::database(c_.stateDir);
  QABOX_RETURN_IF_ERROR(fsyncPath(temporary(), O_RDONLY));
  std::error_code ec;
  for (const char* part : {"", "-wal", "-shm"}) {
    const std::string from = db + part;
    if (!fs::exists(from, ec)) continue;
    const std::string to = db + suffix + part;
    fs::rename(from, to, ec);
    if (ec) return internalError("moving " + from + " aside to " + to + ": " + ec.message());
    out_ << "moved " << from << " aside to " << to << "\n";
  }
  for (const char* part : {"-wal", "-shm"}) fs::remove(temporary() + part, ec);
  fs::rename(temporary(), db, ec);
  if (ec) return internalError("renaming " + temporary() + " to " + db + ": " + ec.message());
  return fsyncPath(c_.stateDir, O_RDONLY | O_DIRECTORY);
}

// The suffix the old database is moved aside with; FAILED_PRECONDITION
// when it is sound and there is nothing to rebuild.
Result<std::string> Rebuild::probeOldDatabase() {
  const std::string db = paths::database(c_.stateDir);
  std::error_code ec;
  if (!fs::exists(db, ec)) return ".lost-" + stamp();  // or a -wal, -shm without it
  StoreOptions probe;
  probe.path = db;
  probe.busyTimeout = std::chrono::milliseconds(100);
  auto store = openSqliteStore(probe);
  if (!store) {
    if (store.status().code() != Code::kDataLoss) return store.status();
    out_ << db << ": " << store.status().message() << "\n";
    return ".corrupt-" + stamp();
  }
  Status empty = refuseEmptyDatabase(c_, **store);
  if (empty.code() == Code::kFailedPrecondition) {
    out_ << db << ": holds no environment while containers carry their records\n";
    return ".empty-" + stamp();
  }
  QABOX_RETURN_IF_ERROR(empty);
  return failedPrecondition(db +
                            " opens and passes its check: there is nothing to rebuild (move "
                            "it aside first to rebuild anyway)");
}

Status Rebuild::images() {
  out_ << "image versions (" << paths::imagesLxcPath(c_.stateDir) << "):\n";
  std::vector<ImageVersion> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(paths::imagesLxcPath(c_.stateDir), ec)) {
    const std::string dir = e.path().string();
    if (!fs::exists(e.path() / "config") || !fs::is_directory(e.path() / "rootfs")) {
      report(e.path().filename().string() + ": no config or rootfs, left alone");
      continue;
    }
    auto image = imageOf(e.path());
    if (!image) {
      report(e.path().filename().string() + ": " + image.status().message() + ", left alone");
      continue;
    }
    if (!fs::exists(imageRecordPath(dir), ec)) {
      report(e.path().filename().string() +
             ": no image.json (built by an older agent): restored without its parent or recipe "
             "hash");
    }
    found.push_back(*image);
  }
  // The newest version of each image is its current one; put last, as
  // setting current clears the others.
  std::sort(found.begin(), found.end(), [](const ImageVersion& a, const ImageVersion& b) {
    return std::tie(a.name, a.version) < std::tie(b.name, b.version);
  });
  for (size_t i = 0; i < found.size(); ++i) {
    ImageVersion& im = found[i];
    im.current = i + 1 == found.size() || found[i + 1].name != im.name;
    QABOX_RETURN_IF_ERROR(store_->putImage(im));
    imageVersions_.emplace(im.name, im.version);
    report(paths::imageContainer(im.name, im.version) + (im.current ? " (current)" : ""));
  }
  return Status::ok();
}

// Every container's record, one per environment: when a crash left two
// containers of one environment (a redeploy's old and new), the one whose
// record changed last; the other is left for the start's recovery.
std::vector<Environment> Rebuild::records() {
  std::map<std::string, Environment> bySlug;
  for (const std::string& name : containersIn(c_.stateDir)) {
    auto env = readEnvRecord(c_.stateDir, name, c_.network.subnet);
    if (!env) {
      report(name + ": " + env.status().message() +
             "; left for the agent's recovery at its next start");
      ++skipped_;
      continue;
    }
    auto [it, fresh] = bySlug.try_emplace(env->slug, *env);
    if (!fresh) {
      bool newer = env->updatedAt > it->second.updatedAt;
      report((newer ? it->second.container : name) + ": an older container of " + env->ticket +
             "; left for the agent's recovery at its next start");
      ++skipped_;
      if (newer) it->second = *env;
    }
  }
  std::vector<Environment> out;
  for (auto& [slug, env] : bySlug) out.push_back(std::move(env));
  return out;
}

Status Rebuild::environments() {
  out_ << "environments (" << paths::lxcPath(c_.stateDir) << "):\n";
  // Leases first, each checked against those already restored: no address
  // is ever handed out twice.
  for (Environment& env : records()) {
    Status s = store_->transaction([&]() -> Status {
      QABOX_RETURN_IF_ERROR(store_->restoreLease(env.ip, env.container));
      return store_->putEnvironment(env);
    });
    if (s.code() == Code::kAlreadyExists) {
      report(env.container + ": " + s.message() + "; left for the agent's recovery");
      ++skipped_;
      continue;
    }
    QABOX_RETURN_IF_ERROR(s);
    if (!imageVersions_.contains({env.spec.image, env.imageVersion})) {
      report(env.container + ": its image version " +
             paths::imageContainer(env.spec.image, env.imageVersion) + " is not in images/");
    }
    restored_.push_back(env);
  }
  return Status::ok();
}

Status Rebuild::layers() {
  const std::string dir = c_.stateDir + "/layers";
  std::set<std::string> named;
  for (const Environment& env : restored_) {
    for (auto [kind, hash] :
         {std::pair{LayerKind::kDeps, env.depsLayer}, std::pair{LayerKind::kData, env.dataLayer}}) {
      if (hash.empty()) continue;
      const std::string name = std::string(layerKindName(kind)) + "-" + hash;
      struct stat st {};
      if (named.contains(name) || ::stat((dir + "/" + name).c_str(), &st) != 0) continue;
      named.insert(name);
      CachedLayer l;
      l.hash = hash;
      l.kind = kind;
      l.lineage = kind == LayerKind::kData ? dataLineage(env.spec.repo, env.spec.targetBranch) : "";
      l.image = env.spec.image;
      l.imageVersion = env.imageVersion;
      l.builtAt = Clock::from_time_t(st.st_mtime);
      l.lastUsedAt = Clock::now();
      QABOX_RETURN_IF_ERROR(store_->putLayer(l));
    }
  }
  out_ << "layers (" << dir << "): " << named.size() << " named by environments";
  std::error_code ec;
  int unnamed = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!named.contains(e.path().filename().string())) ++unnamed;
  }
  if (unnamed > 0) out_ << ", " << unnamed << " no environment names (collected at the next start)";
  out_ << "\n";
  return Status::ok();
}

void Rebuild::summary() {
  out_ << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-20s %-9s %-15s %-14s %-12s %s\n", "TICKET", "STATE",
                "ADDRESS", "IMAGE", "COMMIT", "REPO");
  out_ << line;
  for (const Environment& e : restored_) {
    std::snprintf(line, sizeof line, "%-20s %-9s %-15s %-14s %-12s %s\n", e.ticket.c_str(),
                  std::string(stateName(e.state)).c_str(), e.ip.c_str(),
                  paths::imageContainer(e.spec.image, e.imageVersion).c_str(),
                  e.commit.substr(0, 12).c_str(),
                  e.spec.repo.empty() ? "-" : (e.spec.repo + " " + e.spec.sourceBranch).c_str());
    out_ << line;
  }
  out_ << "\nrebuilt " << restored_.size() << " environments, " << imageVersions_.size()
       << " image versions; " << skipped_ << " containers left for the agent's recovery\n"
       << "tokens cannot be rebuilt (only their hashes were stored): create them again with "
          "`qabox token create`\n"
       << "start the agent: its recovery runs as at every start\n";
}

}  // namespace

int rebuildState(const Config& config, std::ostream& out) { return Rebuild(config, out).run(); }

}  // namespace qabox
