#include "daemon/agent.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>

#include "cluster/etcd_cluster.h"
#include "core/ticket.h"
#include "daemon/metrics_sources.h"
#include "daemon/options.h"
#include "daemon/state_guard.h"
#include "deploy/health.h"
#include "lifecycle/host_facts.h"
#include "server/unix_listener.h"
#include "store/paths.h"

namespace qabox {

Status Agent::start() {
  QABOX_RETURN_IF_ERROR(openParts());
  QABOX_RETURN_IF_ERROR(recover());
  QABOX_RETURN_IF_ERROR(openSessions());
  // Before the router: a host back from the dead reclaims what was
  // re-placed while it was away before it could serve it.
  QABOX_RETURN_IF_ERROR(startCluster());
  QABOX_RETURN_IF_ERROR(startRouter());
  QABOX_RETURN_IF_ERROR(startApi());
  QABOX_RETURN_IF_ERROR(startDashboard());
  startBackground();
  return Status::ok();
}

Status Agent::openParts() {
  QABOX_ASSIGN_OR_RETURN(stateLock_, lockStateDir(config_.stateDir));
  // Before the store creates an empty file in its place.
  QABOX_RETURN_IF_ERROR(refuseLostDatabase(config_));
  QABOX_ASSIGN_OR_RETURN(store_, openSqliteStore(storeOptions(config_)));
  QABOX_RETURN_IF_ERROR(refuseEmptyDatabase(config_, *store_));
  QABOX_RETURN_IF_ERROR(checkIdmaps());
  runtime_ = std::make_unique<LxcRuntime>(runtimeOptions(config_), runner_, nftables_);
  bridge_ = std::make_unique<HostBridge>(nftables_);
  images_ = std::make_unique<ImageBuilder>(config_, *store_, runner_, *runtime_, defaultInitPath());
  git_ = std::make_unique<GitRepos>(runner_, config_.stateDir, config_.deploy.fetchTimeout);
  envs_ = std::make_unique<EnvironmentManager>(
      lifecycleOptions(config_), *store_, *runtime_, *bridge_, *images_, git_.get(), *routes_,
      [](const std::string& ip, uint16_t port, const std::string& path,
         std::chrono::milliseconds timeout) { return waitHealthy(ip, port, path, timeout); });
  envs_->setLayerMounter(runtime_.get());
  envs_->setFirewallLister([this](const std::string& commands) { return nftables_.run(commands); });
  if (!config_.metrics.listen.empty()) {
    metrics_ = std::make_unique<Metrics>();
    envs_->setMetrics(metrics_.get());
  }
  return Status::ok();
}

Status Agent::checkIdmaps() {
  if (!config_.containers.unprivileged || !config_.containers.isolatedIds) return Status::ok();
  ProcessSpec check;
  check.argv = {defaultLxcHelperPath(), "idmap-check", paths::runDir(config_.stateDir),
                std::to_string(config_.containers.idBase)};
  check.timeout = std::chrono::seconds(30);
  auto r = runner_.run(check);
  if (!r || !r->ok()) {
    return failedPrecondition(
        "containers.isolated_ids: clones of images cannot be mounted in " + config_.stateDir +
        " (" + (r ? lastLines(r->err, 2) : r.status().message()) +
        "): idmapped mounts need Linux 5.19 or later and a state_dir on ext4, xfs or btrfs; or "
        "set isolated_ids = false");
  }
  return Status::ok();
}

Status Agent::recover() {
  spdlog::info("qaboxd {} starting: state_dir {}, bridge {} {}, routing *.{}", QABOX_VERSION,
               config_.stateDir, config_.network.bridge, config_.network.subnet,
               config_.routing.domain);
  auto started = std::chrono::steady_clock::now();
  if (Status s = envs_->recover(); !s.isOk()) {
    return Status(s.code(), "recovery failed: " + s.toString());
  }
  spdlog::info("recovered in {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count());
  return Status::ok();
}

Status Agent::openSessions() {
  QABOX_ASSIGN_OR_RETURN(SessionKey key,
                         loadOrCreateSessionKey(paths::sessionKey(config_.stateDir)));
  sessions_ = std::make_unique<SessionCodec>(key);
  tokens_ = std::make_unique<TokenDirectory>(*store_);
  QABOX_RETURN_IF_ERROR(tokens_->reload());
  gate_ = std::make_unique<PreviewGate>(previewGateOptions(config_), *sessions_, *tokens_);
  return Status::ok();
}

Status Agent::startRouter() {
  // A request for a sleeping environment wakes it; the router holds it (and
  // any others for it) until the app answers its health check.
  waker_ = std::make_unique<Waker>(*envs_);
  RouterOptions ro = routerOptions(config_);
  ro.wake = std::bind_front(&Waker::wake, waker_.get());
  ro.gate = std::bind_front(&PreviewGate::decide, gate_.get());
  router_ = std::make_unique<Router>(ro, routes_);
  if (Status s = router_->start(); !s.isOk()) {
    return Status(s.code(), "routing.listen: " + s.message());
  }
  spdlog::info("router listening on {} (port {})", config_.routing.listen, router_->port());
  usage_ = std::make_unique<UsageRecorder>(*router_, *store_, config_);
  return startMetrics();
}

Status Agent::startMetrics() {
  if (!metrics_) return Status::ok();
  metrics_->addSource(environmentSource(*store_));
  metrics_->addSource(routerSource(*routes_, [this] { return router_->openConnections(); }));
  metrics_->addSource(processSource());
  QABOX_RETURN_IF_ERROR(metrics_->listen(config_.metrics.listen));
  spdlog::info("metrics listening on {} (port {})", config_.metrics.listen, metrics_->port());
  return Status::ok();
}

Status Agent::startCluster() {
  if (!config_.cluster.enabled()) return Status::ok();
  auto etcd = cluster::makeEtcdKv(etcdOptions(config_));
  if (!etcd) return etcd.status().withContext("cluster.etcd");
  const cluster::ClusterOptions o = clusterOptions(config_);
  cluster_ = cluster::makeEtcdCluster(o, std::move(*etcd));
  // What placement reads of this host, sampled each time the lease is kept:
  // one read of the host's facts and one of its images.
  cluster::LocalHost local;
  local.sample = [this](cluster::HostFacts& out) {
    if (auto f = hostFacts(*store_, config_)) {
      out.environments = f->environments;
      out.freeMemoryBytes = f->memoryAvailableBytes.value_or(0);
      out.freeDiskBytes = f->diskFreeBytes.value_or(0);
    }
    if (auto all = store_->listImages()) {
      for (const auto& im : *all) {
        if (im.current) out.images.push_back(im.name);
      }
    }
  };
  if (Status s = cluster_->start(local); !s.isOk()) {
    // Serving its own environments does not wait for etcd; the cluster
    // keeps trying and placements are refused until it answers.
    spdlog::warn("cluster: {} (this host keeps serving its own environments)", s.toString());
  } else {
    spdlog::info("cluster: host {} registered with etcd ({} endpoints)", o.self.name,
                 o.etcd.size());
  }
  follower_ = std::make_unique<ClusterFollower>(*cluster_, *envs_, *routes_);
  follower_->syncOnce();
  follower_->start();
  return Status::ok();
}

Status Agent::startApi() {
  HostInfo host;
  host.requestsRouted = [this] { return usage_->requestsRouted(); };
  std::optional<gid_t> socketGroup = lookupGroup(config_.api.socketGroup);
  if (!socketGroup) {
    spdlog::warn(
        "api.socket_group {}: no such group, so only root may use the unix socket "
        "(groupadd --system {} to let its members act as ops)",
        config_.api.socketGroup, config_.api.socketGroup);
  }
  DenialLimiter::Options denials;
  denials.perPeerBurst = config_.events.refusedBurst;
  denials.perPeerRefill = config_.events.refusedEvery;
  auth_ = std::make_unique<Authorizer>(
      *store_, localPeers_, socketGroup, [] { return Clock::now(); }, denials);
  service_ = std::make_unique<QaboxService>(config_, *envs_, *images_, *store_, *auth_, host);
  // In a cluster, a reclaimed ticket leaves the map too.
  auto reclaim = [this](const std::string& ticket, const std::string& why,
                        const std::function<Status(const Environment&)>& stillDue) {
    Status s = envs_->reclaim(ticket, why, stillDue);
    if (s.isOk() && cluster_) {
      if (Status r = cluster_->release(parseTicket(ticket)->slug); !r.isOk()) {
        spdlog::warn("cluster: releasing {}: {}", ticket, r.toString());
      }
    }
    return s;
  };
  reaper_ = std::make_unique<Reaper>(reaperOptions(config_), *store_, git_.get(), reclaim);
  reaper_->onFetched([envs = envs_.get()](const RepoConfig& repo) {
    if (auto r = envs->refreshBehind(repo.name, false); !r) {
      spdlog::warn("reaper: how far targets moved on repo {}: {}", repo.name,
                   r.status().toString());
    }
  });
  service_->setReaper(reaper_.get());
  service_->setTokenDirectory(tokens_.get());
  if (cluster_) {
    QABOX_ASSIGN_OR_RETURN(peers_, PeerClients::make(config_.cluster, cluster_->self()));
  }
  service_->setCluster(cluster_.get(), peers_.get());
  if (metrics_) {
    service_->setMetrics(metrics_.get());
    reaper_->setMetrics(metrics_.get());
  }
  QABOX_RETURN_IF_ERROR(
      api_.start(config_.api, *service_, *auth_, metrics_.get(), localPeers_, socketGroup));
  if (!cluster_) return Status::ok();
  return api_.startPeers(config_.cluster, config_.api.maxMessageBytes, *service_, *auth_,
                         metrics_.get());
}

void Agent::startBackground() {
  usage_->start();
  reaper_->start();
  schedule_ = std::make_unique<LifecycleSchedule>(*envs_);
  schedule_->start();
  envs_->startPool();
}

void Agent::stop() {
  // Scrapes read the router and the store: none after this.
  if (metrics_) metrics_->stopListening();
  if (reaper_) reaper_->stop();
  if (envs_) envs_->beginShutdown();
  // A fill in progress finishes; ready pooled containers keep running and
  // are claimed after the next start.
  if (envs_) envs_->stopPool();
  api_.stopListening();
  // In-flight deploys run to their end (or the journal rolls them back on
  // the next start); containers keep running across agent restarts.
  api_.shutdown(std::chrono::seconds(60));
  // Peers see this host gone at once, not a lease later.
  if (follower_) follower_->stop();
  if (cluster_) cluster_->stop();
  stopDashboard();
  if (schedule_) schedule_->stop();
  if (usage_) usage_->stop();
  if (router_) router_->stop();
  if (waker_) waker_->stop();
}

}  // namespace qabox
