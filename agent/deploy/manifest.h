#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox {

// How an app is built and run, from `qabox.toml` at the root of its repo:
//
//   [app]
//   start = "exec ./server --port 8080"   # the supervised app
//   port = 8080
//   health = "/healthz"
//   [hooks]
//   build = "make"
//   migrate = "./manage migrate"
//   seed = "./manage seed"
//
// Every key is optional here; empty strings and an unset port mean "not
// set", so image defaults fill them in (mergeManifests).
struct AppManifest {
  std::string start;
  std::optional<uint32_t> port;
  std::string health;
  std::string build, migrate, seed;
};

// A base image recipe, `images/<name>/image.toml`: how to provision it, the
// defaults for apps deployed on it ([app], [hooks]), and resource limits.
struct ImageManifest {
  std::string name;
  std::string description;
  std::string provision = "provision.sh";  // a script in the image's folder
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

// What a deploy needs from the merged manifest: a start command, and a port
// when there is a health path to check.
Status checkRunnable(const AppManifest& merged);

}  // namespace qabox
