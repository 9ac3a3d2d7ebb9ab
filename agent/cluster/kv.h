#pragma once

// The part of etcd's v3 API the cluster uses, as an interface: the real
// one speaks gRPC to etcd (etcd_kv.cpp); unit tests use a fake.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace qabox::cluster {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t createRevision = 0;
  int64_t modRevision = 0;
  int64_t lease = 0;
};

struct KvEvent {
  bool deleted = false;
  KeyValue kv;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // the store's revision at the read
};

class Kv {
 public:
  virtual ~Kv() = default;

  // Every key under `prefix` (at most `limit`).
  virtual Result<RangeResult> range(const std::string& prefix, int64_t limit) = 0;
  virtual Result<std::optional<KeyValue>> get(const std::string& key) = 0;
  // `lease` 0: not leased.
  virtual Status put(const std::string& key, const std::string& value, int64_t lease) = 0;
  virtual Status remove(const std::string& key) = 0;
  // In one transaction: puts `value` if `key` does not exist. Nullopt when
  // it was created; else the entry that was there.
  virtual Result<std::optional<KeyValue>> createIfAbsent(const std::string& key,
                                                         const std::string& value) = 0;
  // In one transaction: puts `value` if `key` is still at `modRevision`.
  virtual Result<bool> swapIfRevision(const std::string& key, const std::string& value,
                                      int64_t modRevision) = 0;
  // In one transaction: deletes `key` if it is still at `modRevision`.
  virtual Result<bool> removeIfRevision(const std::string& key, int64_t modRevision) = 0;

  virtual Result<int64_t> grantLease(std::chrono::seconds ttl) = 0;
  // One renewal: kNotFound once the lease has expired.
  virtual Status keepAlive(int64_t lease) = 0;
  virtual Status revokeLease(int64_t lease) = 0;

  // Streams the changes under `prefix` from `fromRevision` to `onEvents`
  // until cancelWatches() or an error; returns why it ended (kCancelled
  // after cancelWatches; kOutOfRange-ish kFailedPrecondition when the
  // revision was compacted: range again).
  virtual Status watch(const std::string& prefix, int64_t fromRevision,
                       const std::function<void(const std::vector<KvEvent>&)>& onEvents) = 0;
  virtual void cancelWatches() = 0;
};

struct EtcdKvOptions {
  std::vector<std::string> endpoints;  // https://host:port, or http:// on loopback
  std::string caFile, certFile, keyFile;
  std::chrono::milliseconds callTimeout{2'000};
};

// The endpoints are checked (scheme, host, port; http:// only to a
// loopback address) and the TLS files read; nothing is dialled yet.
Result<std::unique_ptr<Kv>> makeEtcdKv(const EtcdKvOptions& options);

// The end of etcd's range for every key starting with `prefix`.
std::string prefixEnd(const std::string& prefix);

}  // namespace qabox::cluster
