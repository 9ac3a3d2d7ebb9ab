#pragma once

// The one place the agent's Config becomes each component's own options:
// a component reads only what its struct holds, and a test builds one from
// a Config the same way the daemon does.

#include "cluster/cluster.h"
#include "cluster/kv.h"
#include "core/config.h"
#include "lifecycle/options.h"
#include "proxy/router.h"
#include "reaper/reaper.h"
#include "runtime/lxc_runtime.h"
#include "server/preview_gate.h"
#include "store/store.h"

namespace qabox {

LifecycleOptions lifecycleOptions(const Config& config);
ReaperOptions reaperOptions(const Config& config);
// Without the wake hook and the gate: the daemon sets them to the
// lifecycle's Waker and its PreviewGate.
RouterOptions routerOptions(const Config& config);
PreviewGateOptions previewGateOptions(const Config& config);
// With containers.isolated_ids, the id slots; the daemon checks first that
// idmapped mounts work here (Agent::checkIdmaps).
LxcRuntimeOptions runtimeOptions(const Config& config);
StoreOptions storeOptions(const Config& config);
// [cluster]: the client to etcd, and this host as the cluster knows it.
cluster::EtcdKvOptions etcdOptions(const Config& config);
cluster::ClusterOptions clusterOptions(const Config& config);

}  // namespace qabox
