#pragma once

// What a host of a cluster does as the map changes: routes for the tickets
// other hosts own (so any host's router answers for all), and this host's
// containers of tickets that are no longer its own reclaimed (re-placed
// while it was down, or deleted while LOST), so no ticket is ever served by
// two hosts. Each pass reads the cluster's cache; nothing waits for etcd
// but the claims and the clearing of marks.

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "cluster/cluster.h"
#include "lifecycle/manager.h"
#include "proxy/router.h"

namespace qabox {

class ClusterFollower {
 public:
  ClusterFollower(cluster::Cluster& cluster, EnvironmentManager& envs, RouteTable& routes)
      : cluster_(cluster), envs_(envs), routes_(routes) {}
  ~ClusterFollower() { stop(); }
  ClusterFollower(const ClusterFollower&) = delete;
  ClusterFollower& operator=(const ClusterFollower&) = delete;

  // One pass now. The daemon runs one before its router listens, so a host
  // that comes back never serves a ticket re-placed while it was away.
  void syncOnce();
  // A pass after every change the cluster reports, on a thread of its own.
  void start();
  void stop();

 private:
  void loop();
  void reclaim(const Environment& env, const std::string& why);
  void route(const cluster::Owner& o, const std::map<std::string, const cluster::HostView*>& hosts);

  cluster::Cluster& cluster_;
  EnvironmentManager& envs_;
  RouteTable& routes_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qabox
