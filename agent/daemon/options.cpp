#include "daemon/options.h"

#include <string_view>

#include "core/endpoint.h"
#include "store/paths.h"

namespace qabox {

namespace {

// The ports of TCP listen addresses; unix sockets and port 0 (any free
// port) have none a container could be kept from.
std::vector<uint16_t> tcpPorts(const std::vector<std::string>& listen) {
  std::vector<uint16_t> ports;
  for (const auto& l : listen) {
    if (auto port = portOfListen(l); port && *port != 0) ports.push_back(*port);
  }
  return ports;
}

}  // namespace

LifecycleOptions lifecycleOptions(const Config& config) {
  LifecycleOptions o;
  o.stateDir = config.stateDir;
  o.defaultImage = config.defaultImage;
  o.network = config.network;
  o.limits = config.limits;
  o.deploy = config.deploy;
  o.storage = config.storage;
  o.pool = config.pool;
  o.reaper.sleepAfter = config.reaper.sleepAfter;
  o.reaper.wakeTimeout = config.reaper.wakeTimeout;
  o.reaper.maxAge = config.reaper.maxAge;
  o.repos = config.repos;
  o.hostTcpPorts = tcpPorts(config.api.listen);
  o.routerTcpPorts = tcpPorts({config.routing.listen, config.routing.tlsListen});
  constexpr std::string_view kScheme = "http://";
  o.urlSuffix = config.urlFor("").substr(kScheme.size());
  o.defaultAccess = config.routing.access;
  return o;
}

ReaperOptions reaperOptions(const Config& config) {
  ReaperOptions o;
  o.reaper = config.reaper;
  o.repos = config.repos;
  return o;
}

RouterOptions routerOptions(const Config& config) {
  RouterOptions o;
  o.domain = config.routing.domain;
  o.listen = config.routing.listen;
  o.tlsListen = config.routing.tlsListen;
  o.tlsCert = config.routing.tlsCert;
  o.tlsKey = config.routing.tlsKey;
  o.headerTimeout = config.routing.headerTimeout;
  o.idleTimeout = config.routing.idleTimeout;
  o.backendTimeout = config.routing.backendTimeout;
  o.wakeTimeout = config.reaper.wakeTimeout;
  if (config.cluster.enabled()) o.self = localHostName(config);
  return o;
}

PreviewGateOptions previewGateOptions(const Config& config) {
  PreviewGateOptions o;
  o.allow = parseAllowlist(config.routing.accessAllow);
  o.cookieTtl = std::chrono::duration_cast<std::chrono::seconds>(config.dashboard.sessionTtl);
  return o;
}

LxcRuntimeOptions runtimeOptions(const Config& config) {
  LxcRuntimeOptions o;
  o.lxcPath = paths::lxcPath(config.stateDir);
  o.helperPath = defaultLxcHelperPath();
  o.startTimeout = config.deploy.startTimeout;
  o.seccompProfile = paths::seccompProfile(config.stateDir);
  o.dataPool = config.storage.dataPool;
  if (config.containers.unprivileged && config.containers.isolatedIds) {
    o.idBase = config.containers.idBase;
    o.idSlots = config.limits.maxEnvironments;
  }
  return o;
}

StoreOptions storeOptions(const Config& config) {
  StoreOptions o;
  o.path = paths::database(config.stateDir);
  return o;
}

cluster::EtcdKvOptions etcdOptions(const Config& config) {
  cluster::EtcdKvOptions o;
  o.endpoints = config.cluster.etcd;
  o.caFile = config.cluster.ca;
  o.certFile = config.cluster.cert;
  o.keyFile = config.cluster.key;
  return o;
}

cluster::ClusterOptions clusterOptions(const Config& config) {
  const auto& k = config.cluster;
  cluster::ClusterOptions o;
  o.etcd = k.etcd;
  o.caFile = k.ca;
  o.certFile = k.cert;
  o.keyFile = k.key;
  o.prefix = k.prefix;
  o.leaseTtl = k.leaseTtl;
  o.self.name = localHostName(config);
  o.self.api = k.advertiseApi;
  o.self.router = k.advertiseRouter;
  o.self.version = QABOX_VERSION;
  o.self.capacity = k.capacity > 0 ? k.capacity : config.limits.maxEnvironments;
  return o;
}

}  // namespace qabox
