#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace qabox {

// How an app is built and run, from `qabox.toml` at the root of its repo:
//
//   [app]
//   start = "exec ./server --port 8080"   # the supervised app
//   port = 8080
//   health = "/healthz"
//   process = "web"                      # optional: the [processes] entry routed
//   [hooks]
//   build = "make"
//   migrate = "./manage migrate"
//   seed = "./manage seed"
//   [services.postgres]                  # the image's service, turned on
//   [processes]
//   web = "exec ./server --port 8080"
//   worker = "exec ./worker"
//
// Every key is optional here; empty strings and an unset port mean "not
// set", so image defaults fill them in (mergeManifests).
// [deps] of qabox.toml: `install` runs once per hash of the image version,
// itself and the contents of `files` (paths in the repo) into a layer that
// every environment with the same hash shares (lifecycle/deps.h).
struct DepsDef {
  std::vector<std::string> files;
  std::string install;
  bool operator==(const DepsDef&) const = default;
};

// [data] of qabox.toml: `seed` runs once, against the services, on the
// target branch (after its migrate hook), and the services' data is kept as
// a snapshot layer that every environment of that repo and target starts
// from; `depends` (paths in the repo: files or directories) is what it is
// rebuilt on when changed (lifecycle/datasets.h).
struct DataDef {
  std::string seed;
  std::vector<std::string> depends;
  bool operator==(const DataDef&) const = default;
};

struct AppManifest {
  std::string start;
  std::optional<uint32_t> port;
  std::string health;
  std::string build, migrate, seed;
  // [services.NAME] (a table, empty or not): the image's services this app
  // runs, each its own instance inside the environment. Sorted.
  std::vector<std::string> services;
  // [processes] NAME = "command": long-running processes besides [app]
  // start, each supervised with its own log.
  std::map<std::string, std::string> processes;
  // [app] process: the [processes] entry that is routed and health-checked;
  // empty: [app] start, under the name "app".
  std::string process;
  // [deps]; no install: none.
  DepsDef deps;
  DataDef data;
};

// A service an image carries ([services.NAME] in image.toml), which apps on
// it turn on by name: started by the image's init before the hooks run,
// ready when `ready` passes.
struct ServiceDef {
  std::string name;
  std::string run;    // the command (sh -c), in the foreground
  std::string ready;  // exits 0 once the service serves
  std::string setup;  // after each start, before it counts as ready (sets its password)
  std::string user;   // the image's user it runs as; empty: root
  // Given to hooks and app. "${password}" in a value is the environment's
  // own password for this service, generated at deploy and kept as a secret.
  std::map<std::string, std::string> env;
  // The directory (absolute) its data lives in: what a [data] snapshot keeps.
  std::string data;
};

// The init an image names (image.toml `init`) that reads supervise.json
// (agent/init/contract.h); an image without it only knows app.run.
inline constexpr const char* kSupervisorInit = "qabox-init";
// The name [app] start runs under when the app names no [app] process.
inline constexpr const char* kDefaultProcess = "app";

// A base image recipe, `images/<name>/image.toml`: how to provision it, the
// defaults for apps deployed on it ([app], [hooks]), and resource limits.
struct ImageManifest {
  std::string name;
  std::string description;
  std::string provision = "provision.sh";  // a script in the image's folder
  std::string from;                        // the parent image; empty: a base image
  std::vector<std::string> packages;       // Debian packages the provision script installs
  std::string init;                        // kSupervisorInit or empty (the image's own init)
  std::map<std::string, ServiceDef> services;
  AppManifest defaults;
  std::string memory;  // "256M", "1G": as LXC's memory limit takes it; empty: none
  uint32_t cpus = 0;   // 0: no limit
  uint32_t pids = 0;   // 0: no limit
};

inline constexpr const char* kAppManifestFile = "qabox.toml";

// Errors name the file and the key: `qabox.toml: app.prot: unknown key`,
// `qabox.toml: app.port: must be between 1 and 65535`.
Result<AppManifest> parseAppManifest(std::string_view toml);

// Errors name the key (`limits.memroy: unknown key`); the caller knows the
// file's path and adds it.
Result<ImageManifest> parseImageManifest(std::string_view toml, std::string_view name);

// The app's values where it sets them, the image's defaults elsewhere.
AppManifest mergeManifests(const ImageManifest& image, const AppManifest& app);

// The routed process's name: [app] process, or kDefaultProcess.
std::string routedProcess(const AppManifest& merged);
// Its command: its [processes] entry, or [app] start.
std::string routedCommand(const AppManifest& merged);

// What the app asks of its image: each service it turns on is one the image
// has, and services or [processes] need an image whose init is
// kSupervisorInit. FAILED_PRECONDITION naming the service (or key) and what
// the image has.
Status checkImageFits(const ImageManifest& image, const AppManifest& app);

// What a deploy needs from the merged manifest: a start command, and a port
// when there is a health path to check.
Status checkRunnable(const AppManifest& merged);

}  // namespace qabox
