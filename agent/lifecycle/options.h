#pragma once

// What the lifecycle reads of the agent's config. Built from the Config in
// one place (daemon/options.cpp); the fields keep Config's names, so
// `config_.limits.maxDisk` reads the same in the lifecycle as in the config.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/environment.h"

namespace qabox {

struct LifecycleOptions {
  std::string stateDir;
  std::string defaultImage;
  Config::Network network;
  Config::Limits limits;
  Config::Deploy deploy;
  Config::Storage storage;
  Config::Pool pool;
  // The reaper section's settings the lifecycle itself follows.
  struct Reaper {
    std::chrono::milliseconds sleepAfter{0};  // 0: environments never sleep
    std::chrono::milliseconds wakeTimeout{30'000};
    std::chrono::milliseconds maxAge{0};  // the longest ttl a deploy may ask for; 0: any
  } reaper;
  std::vector<RepoConfig> repos;

  // What recovery's bridge guard needs of the listen addresses: the host
  // ports of api.listen (closed to containers) and of routing.listen and
  // routing.tls_listen (the router's, open to them).
  std::vector<uint16_t> hostTcpPorts;
  std::vector<uint16_t> routerTcpPorts;
  // What follows "http://<slug>" in an environment's URL, as Config::urlFor
  // writes it: ".<routing.domain>", with ":<port>" when not 80.
  std::string urlSuffix;
  // routing.access: who may open the URL of an environment whose deploy
  // did not choose ("open" or "login").
  std::string defaultAccess = "open";

  // The access in force for `spec`: its own, else the agent's.
  const std::string& accessOf(const DeploySpec& spec) const {
    return spec.access.empty() ? defaultAccess : spec.access;
  }

  std::string urlFor(std::string_view slug) const {
    return "http://" + std::string(slug) + urlSuffix;
  }
  const RepoConfig* findRepo(std::string_view nameOrUrl) const {
    return qabox::findRepo(repos, nameOrUrl);
  }
};

}  // namespace qabox
