#pragma once

#include <memory>

#include "cluster/cluster.h"
#include "cluster/kv.h"

namespace qabox::cluster {

// The Cluster kept in etcd through `kv` (makeEtcdKv, or a fake in tests).
std::unique_ptr<Cluster> makeEtcdCluster(ClusterOptions options, std::unique_ptr<Kv> kv);

}  // namespace qabox::cluster
