#pragma once

// The daemon's components, made in the order of their arrows and stopped in
// the reverse: store, runtime, images, git, lifecycle (recovered before
// anything listens), router, API, reaper and the background schedules.

#include <sys/types.h>

#include <memory>
#include <optional>

#include "cluster/cluster.h"
#include "core/config.h"
#include "core/status.h"
#include "daemon/api.h"
#include "daemon/cluster_follower.h"
#include "daemon/usage.h"
#include "deploy/git.h"
#include "deploy/image_builder.h"
#include "hooks/service.h"
#include "lifecycle/manager.h"
#include "lifecycle/schedule.h"
#include "metrics/metrics.h"
#include "proxy/router.h"
#include "reaper/reaper.h"
#include "runtime/host_bridge.h"
#include "runtime/lxc_runtime.h"
#include "runtime/nftables.h"
#include "server/auth.h"
#include "server/preview_gate.h"
#include "server/service.h"
#include "server/sessions.h"
#include "store/store.h"
#include "sys/fd.h"
#include "sys/process.h"
#include "web/dashboard.h"
#include "web/http_server.h"

namespace qabox {

// Where git hosts deliver webhooks, on the dashboard's host.
inline constexpr std::string_view kHooksPrefix = "/hooks/";

class Agent {
 public:
  // `config` is validated, and the host prepared for it (prepareHost).
  explicit Agent(const Config& config) : config_(config) {}
  // A start that failed half-way: no scrape may read parts already gone.
  ~Agent() {
    if (metrics_) metrics_->stopListening();
  }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Everything up to serving: an error says what, for the daemon to exit with.
  Status start();
  // In-flight operations finish (or the journal rolls them back on the next
  // start); the containers keep running.
  void stop();

 private:
  Status openParts();      // store, runtime, bridge, images, git, lifecycle
  Status checkIdmaps();    // containers.isolated_ids can work on this host
  Status recover();        // the lifecycle reconciles, before anything listens
  Status openSessions();   // the session key, the token directory, the preview gate
  Status startRouter();    // with the lifecycle's Waker as its wake hook
  Status startMetrics();   // [metrics] listen, with the router's and the store's sources
  Status startCluster();   // [cluster] etcd: this host registered, the map watched
  Status startApi();       // auth, service, reaper, the gRPC listeners
  void startBackground();  // router use, reaper, sleep and disk schedules

  // The dashboard's loopback server and the qabox.<domain> route (dashboard.cpp).
  Status startDashboard();
  void stopDashboard();
  // The webhooks (hooks.cpp): their secrets read, their queue started; none
  // when no repo has a webhook secret.
  Status startHooks();
  // POST /hooks/<provider>: the delivery handed to hooks_ (404 without it).
  web::Reply serveHook(const web::Request& req);

  const Config& config_;
  // run/qaboxd.lock, shared: `--rebuild-state` refuses while it is held.
  UniqueFd stateLock_;
  std::unique_ptr<Store> store_;
  // Before everything that reports to it, so it goes last.
  std::unique_ptr<Metrics> metrics_;
  RealProcessRunner runner_;
  Nftables nftables_;
  std::unique_ptr<LxcRuntime> runtime_;
  std::unique_ptr<HostBridge> bridge_;
  std::unique_ptr<ImageBuilder> images_;
  std::unique_ptr<GitRepos> git_;
  std::shared_ptr<RouteTable> routes_ = std::make_shared<RouteTable>();
  std::unique_ptr<EnvironmentManager> envs_;
  std::unique_ptr<Waker> waker_;
  std::unique_ptr<SessionCodec> sessions_;
  std::unique_ptr<TokenDirectory> tokens_;
  std::unique_ptr<PreviewGate> gate_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<UsageRecorder> usage_;
  // Before the service that asks it; stopped (its lease revoked) after the
  // API stops taking calls.
  std::unique_ptr<cluster::Cluster> cluster_;
  std::unique_ptr<ClusterFollower> follower_;  // remote routes and stale reclaims
  LocalPeers localPeers_;
  std::unique_ptr<Authorizer> auth_;
  std::unique_ptr<PeerClients> peers_;  // [cluster]: calls forwarded to other hosts
  std::unique_ptr<QaboxService> service_;
  std::unique_ptr<Reaper> reaper_;
  ApiServer api_;
  std::unique_ptr<LifecycleSchedule> schedule_;
  // Last: stopped and gone first, before anything its pages read.
  std::unique_ptr<hooks::HookActions> hookActions_;
  std::unique_ptr<hooks::HookService> hooks_;
  std::unique_ptr<web::Dashboard> dashboard_;
  std::unique_ptr<web::HttpServer> web_;
};

}  // namespace qabox
