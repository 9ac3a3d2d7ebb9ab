#include "daemon/check.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "daemon/options.h"
#include "lifecycle/invariants.h"
#include "qabox/v1/qabox.grpc.pb.h"
#include "runtime/host_bridge.h"
#include "runtime/lxc_runtime.h"
#include "runtime/nftables.h"
#include "store/paths.h"
#include "sys/fd.h"

namespace qabox {

namespace {

constexpr int kClean = kCheckClean;
constexpr int kViolations = kCheckViolations;
constexpr int kCannotRun = kCheckCannotRun;

// The path of the config's first unix API socket, "" when it has none.
std::string unixSocketOf(const Config& config) {
  constexpr std::string_view kScheme = "unix://";
  for (const auto& l : config.api.listen) {
    if (l.rfind(kScheme, 0) == 0) return l.substr(kScheme.size());
  }
  return "";
}

// Whether an agent answers on `path` now: a connect that works.
bool agentListens(const std::string& path) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) return false;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, path.size());
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// run/qaboxd.lock held shared for the offline check: an empty fd when no
// lock file exists (no qaboxd ever ran there), FAILED_PRECONDITION when a qaboxd (agent or rebuild)
// holds it, even one that listens only on TCP, which the socket probe does not see.
Result<UniqueFd> lockForOfflineCheck(const std::string& stateDir) {
  const std::string path = paths::agentLock(stateDir);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return UniqueFd();
    return failedPrecondition("open " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return fd;
  if (errno != EWOULDBLOCK) {
    return failedPrecondition("lock " + path + ": " + std::strerror(errno));
  }
  return failedPrecondition("a qaboxd runs on " + stateDir + " (" + path +
                            " is held) but does not answer on a unix socket of api.listen: "
                            "an offline check would read its state under its feet. Add a "
                            "unix:// address to api.listen, or stop it first");
}

// The violations listed on stdout, one a line; what was left out and the
// totals by kind on stderr.
int report(const ViolationReport& found, const std::string& where) {
  for (const auto& v : found.listed) std::cout << v.line() << "\n";
  std::cout.flush();
  if (found.truncated()) {
    std::cerr << "... and " << found.total - found.listed.size() << " more\n";
  }
  std::cerr << "qaboxd --check: " << found.total << " violation(s) " << where;
  std::string sep = ": ";
  for (const auto& [kind, n] : found.totals) {
    std::cerr << sep << kind << " " << n;
    sep = ", ";
  }
  std::cerr << "\n";
  return found.total == 0 ? kClean : kViolations;
}

int checkOffline(const Config& config) {
  const std::string db = paths::database(config.stateDir);
  if (!std::filesystem::exists(db)) {
    std::cerr << "qaboxd --check: " << db << " does not exist: no agent ever ran on "
              << config.stateDir << "\n";
    return kCannotRun;
  }
  StoreOptions so = storeOptions(config);
  so.readOnly = true;
  auto store = openSqliteStore(so);
  if (!store) {
    std::cerr << "qaboxd --check: " << store.status().message() << "\n";
    return kCannotRun;
  }
  RealProcessRunner runner;
  Nftables nftables;
  LxcRuntime runtime(runtimeOptions(config), runner, nftables);
  HostBridge bridge(nftables);
  FactSources sources;
  sources.stateDir = config.stateDir;
  sources.bridgeName = config.network.bridge;
  sources.store = store->get();
  sources.runtime = &runtime;
  sources.bridge = &bridge;
  sources.nft = [&nftables](const std::string& commands) { return nftables.run(commands); };
  auto facts = gatherFacts(sources);
  if (!facts) {
    std::cerr << "qaboxd --check: " << facts.status().message() << "\n";
    return kCannotRun;
  }
  return report(findViolations(*facts, kMaxViolationsListed),
                "in " + config.stateDir + " (offline: no agent runs)");
}

// The agent that serves `socket` runs the checker itself (the unix socket
// trusts root as ops, which --check runs as).
int checkThroughAgent(const std::string& socket) {
  auto stub = v1::Qabox::NewStub(
      grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::CheckInvariantsResponse resp;
  grpc::Status s = stub->CheckInvariants(&ctx, {}, &resp);
  if (!s.ok()) {
    std::cerr << "qaboxd --check: the agent at " << socket
              << " did not check: " << s.error_message() << "\n";
    return kCannotRun;
  }
  ViolationReport found;
  for (const auto& v : resp.violations()) found.listed.push_back({v.kind(), v.name(), v.what()});
  found.totals.insert(resp.totals().begin(), resp.totals().end());
  found.total = std::max<size_t>(resp.total(), found.listed.size());
  return report(found, "(asked the running agent at " + socket + ", " +
                           std::to_string(resp.in_flight()) + " call(s) in flight)");
}

}  // namespace

int runCheck(const Config& config) {
  try {
    const std::string socket = unixSocketOf(config);
    if (agentListens(socket)) return checkThroughAgent(socket);
    // Held until the offline check ends: no agent starts under it either.
    auto lock = lockForOfflineCheck(config.stateDir);
    if (!lock) {
      std::cerr << "qaboxd --check: " << lock.status().message() << "\n";
      return kCannotRun;
    }
    return checkOffline(config);
  } catch (const std::exception& e) {
    std::cerr << "qaboxd --check: " << e.what() << "\n";
    return kCannotRun;
  }
}

}  // namespace qabox
