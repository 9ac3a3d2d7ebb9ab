#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qabox {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// BROKEN: the agent could not destroy a container it had to (at recovery, or
// a delete); the environment is out of service until a delete succeeds.
enum class EnvState { kCreating, kDeploying, kReady, kFailed, kDeleting, kSleeping, kBroken };

std::string_view stateName(EnvState s);  // "CREATING", ...
std::optional<EnvState> parseState(std::string_view s);

// The busy states: an operation (a deploy, a redeploy, a delete) is working
// on the environment, CREATING, DEPLOYING or DELETING. Nothing else may act
// on it then; after a restart no operation is, and recovery settles it.
bool inOperation(EnvState s);

// Who did something, in events and logs, when no caller did: the agent's own
// schedules and hooks. A caller's actor is its token's (or uid's) name.
namespace actors {
inline constexpr const char* kAgent = "qaboxd";            // recovery, the disk limits
inline constexpr const char* kSleeper = "qaboxd/sleeper";  // the idle-sleep schedule
inline constexpr const char* kReaper = "qaboxd/reaper";    // the reaper's schedule and deletes
inline constexpr const char* kRouter = "router";           // a request woke a sleeping one
inline constexpr const char* kLogs = "logs";               // reading the app log woke one
}  // namespace actors

// A container's share of the host, enforced by its cgroup from its first
// process on. Empty / 0: not set.
struct ResourceLimits {
  std::string memory;  // "256M", "1G": a number with an optional K, M or G
  uint32_t cpus = 0;   // whole CPUs of time per period
  uint32_t pids = 0;

  bool operator==(const ResourceLimits&) const = default;
};

// A memory size as ResourceLimits takes it, in bytes; nullopt when it is not one.
std::optional<uint64_t> parseMemorySize(std::string_view s);

// What was asked for: two deploys with an equal spec (and the same merge
// result) are the same deploy.
struct DeploySpec {
  std::string image;
  std::string repo;
  std::string sourceBranch;
  std::string targetBranch;
  std::map<std::string, std::string> env;
  std::vector<std::string> secretKeys;  // values never leave memory
  std::optional<std::chrono::milliseconds> ttl;
  ResourceLimits limits;  // overrides of the image's limits, within the agent's maxima
  std::string access;     // "open", "login", or "": the agent's routing.access

  bool operator==(const DeploySpec&) const = default;
};

// One phase of a deploy (clone, merge, build, migrate, ...) and how long it took.
struct PhaseTime {
  std::string phase;
  std::chrono::milliseconds took{0};

  bool operator==(const PhaseTime&) const = default;
};

// One row of the environments table.
struct Environment {
  std::string ticket;
  std::string slug;
  EnvState state = EnvState::kCreating;
  std::string ip;
  std::string container;  // qabox-<slug>
  uint32_t imageVersion = 0;
  DeploySpec spec;
  std::string commit;  // what was deployed: qabox's merge commit, or a head
  // The heads the deployed commit was made from, recorded at deploy: the
  // source's own head is what a merged pull request leaves in its target.
  std::string sourceCommit;
  std::string targetCommit;
  // The target branch's head when the agent last looked in its mirror (a
  // fetch: a deploy, a reap pass, a push webhook), and how many commits it
  // has that targetCommit lacks: > 0 means the merge QA tests went stale.
  std::string targetHead;
  uint32_t behind = 0;
  uint32_t port = 80;
  std::string message;
  bool pinned = false;
  TimePoint createdAt{};
  TimePoint updatedAt{};
  TimePoint deployedAt{};
  std::optional<TimePoint> lastAccessAt;
  std::optional<TimePoint> expiresAt;
  uint64_t requestCount = 0;
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  ResourceLimits limits;  // in force: the deploy's, else the image's, else the maxima
  // The dependency and data layers (store CachedLayer hashes) it is cloned
  // over; "": none.
  std::string depsLayer;
  std::string dataLayer;
  std::vector<PhaseTime> phases;  // the last successful deploy's, in order
};

std::string containerNameFor(std::string_view slug);  // qabox-<slug>
// The warm pool's containers: qaboxpool-<n>, n a positive number. No
// ticket's container is named so ("qabox-" starts all of those), so an
// environment that claimed one keeps the name for its life.
std::string poolContainerName(uint64_t n);
bool isPoolContainer(std::string_view name);

int64_t toUnixMillis(TimePoint t);
TimePoint fromUnixMillis(int64_t ms);

}  // namespace qabox
