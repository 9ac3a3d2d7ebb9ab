#pragma once

// An in-memory Kv with etcd's revisions, leases and watches, and a switch
// that makes every call fail as an unreachable etcd does.

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "cluster/kv.h"

namespace qabox::cluster::testing {

class FakeKv final : public Kv {
 public:
  void setDown(bool down) {
    std::lock_guard lock(mu_);
    down_ = down;
    cv_.notify_all();
  }
  // Every key of a lease goes, as when its TTL runs out.
  void expire(int64_t lease) {
    std::lock_guard lock(mu_);
    leases_.erase(lease);
    for (auto it = data_.begin(); it != data_.end();) {
      if (it->second.lease == lease) {
        emit(true, it->second);
        it = data_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::map<std::string, KeyValue> data() {
    std::lock_guard lock(mu_);
    return data_;
  }

  Result<RangeResult> range(const std::string& prefix, int64_t) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    RangeResult r;
    r.revision = rev_;
    for (const auto& [k, v] : data_) {
      if (k.rfind(prefix, 0) == 0) r.kvs.push_back(v);
    }
    return r;
  }
  Result<std::optional<KeyValue>> get(const std::string& key) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    auto it = data_.find(key);
    if (it == data_.end()) return std::optional<KeyValue>();
    return std::optional<KeyValue>(it->second);
  }
  Status put(const std::string& key, const std::string& value, int64_t lease) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    if (lease != 0 && !leases_.count(lease)) return notFound("lease not found");
    putLocked(key, value, lease);
    return Status::ok();
  }
  Status remove(const std::string& key) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    removeLocked(key);
    return Status::ok();
  }
  Result<std::optional<KeyValue>> createIfAbsent(const std::string& key,
                                                 const std::string& value) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    if (auto it = data_.find(key); it != data_.end()) return std::optional<KeyValue>(it->second);
    putLocked(key, value, 0);
    return std::optional<KeyValue>();
  }
  Result<bool> swapIfRevision(const std::string& key, const std::string& value,
                              int64_t modRevision) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    auto it = data_.find(key);
    if (it == data_.end() || it->second.modRevision != modRevision) return false;
    putLocked(key, value, 0);
    return true;
  }
  Result<bool> removeIfRevision(const std::string& key, int64_t modRevision) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    auto it = data_.find(key);
    if (it == data_.end() || it->second.modRevision != modRevision) return false;
    removeLocked(key);
    return true;
  }
  Result<int64_t> grantLease(std::chrono::seconds) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    leases_.insert(++nextLease_);
    return nextLease_;
  }
  Status keepAlive(int64_t lease) override {
    std::lock_guard lock(mu_);
    if (down_) return unavailable("fake etcd is down");
    return leases_.count(lease) ? Status::ok() : notFound("lease expired");
  }
  Status revokeLease(int64_t lease) override {
    expire(lease);
    return Status::ok();
  }
  Status watch(const std::string& prefix, int64_t fromRevision,
               const std::function<void(const std::vector<KvEvent>&)>& onEvents) override {
    return watchAs(0, prefix, fromRevision, onEvents);
  }
  void cancelWatches() override { cancelAs(0); }

  // A client of its own (one per Cluster instance): its own watches to cancel.
  std::unique_ptr<Kv> client();

  Status watchAs(int id, const std::string& prefix, int64_t fromRevision,
                 const std::function<void(const std::vector<KvEvent>&)>& onEvents) {
    std::unique_lock lock(mu_);
    size_t next = 0;
    while (next < log_.size() && log_[next].kv.modRevision < fromRevision) ++next;
    while (true) {
      if (cancelled_.count(id)) return {Code::kCancelled, "cancelled"};
      if (down_) return unavailable("fake etcd is down");
      std::vector<KvEvent> batch;
      for (; next < log_.size(); ++next) {
        if (log_[next].kv.key.rfind(prefix, 0) == 0) batch.push_back(log_[next]);
      }
      if (!batch.empty()) {
        lock.unlock();
        onEvents(batch);
        lock.lock();
        continue;
      }
      cv_.wait(lock);
    }
  }
  void cancelAs(int id) {
    std::lock_guard lock(mu_);
    cancelled_.insert(id);
    cv_.notify_all();
  }
  int newId() {
    std::lock_guard lock(mu_);
    return ++nextId_;
  }

 private:
  void putLocked(const std::string& key, const std::string& value, int64_t lease) {
    KeyValue& kv = data_[key];
    if (kv.createRevision == 0) kv.createRevision = rev_ + 1;
    kv.key = key;
    kv.value = value;
    kv.lease = lease;
    kv.modRevision = ++rev_;
    emit(false, kv);
  }
  void removeLocked(const std::string& key) {
    auto it = data_.find(key);
    if (it == data_.end()) return;
    emit(true, it->second);
    data_.erase(it);
  }
  void emit(bool deleted, KeyValue kv) {
    if (deleted) kv.modRevision = ++rev_;
    log_.push_back({deleted, kv});
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, KeyValue> data_;
  std::vector<KvEvent> log_;
  std::set<int64_t> leases_;
  int64_t rev_ = 0, nextLease_ = 0;
  bool down_ = false;
  std::set<int> cancelled_;
  int nextId_ = 0;
};

class FakeKvClient final : public Kv {
 public:
  explicit FakeKvClient(FakeKv& kv) : kv_(kv), id_(kv.newId()) {}
  Result<RangeResult> range(const std::string& p, int64_t l) override { return kv_.range(p, l); }
  Result<std::optional<KeyValue>> get(const std::string& k) override { return kv_.get(k); }
  Status put(const std::string& k, const std::string& v, int64_t l) override {
    return kv_.put(k, v, l);
  }
  Status remove(const std::string& k) override { return kv_.remove(k); }
  Result<std::optional<KeyValue>> createIfAbsent(const std::string& k,
                                                 const std::string& v) override {
    return kv_.createIfAbsent(k, v);
  }
  Result<bool> swapIfRevision(const std::string& k, const std::string& v, int64_t r) override {
    return kv_.swapIfRevision(k, v, r);
  }
  Result<bool> removeIfRevision(const std::string& k, int64_t r) override {
    return kv_.removeIfRevision(k, r);
  }
  Result<int64_t> grantLease(std::chrono::seconds t) override { return kv_.grantLease(t); }
  Status keepAlive(int64_t l) override { return kv_.keepAlive(l); }
  Status revokeLease(int64_t l) override { return kv_.revokeLease(l); }
  Status watch(const std::string& p, int64_t r,
               const std::function<void(const std::vector<KvEvent>&)>& f) override {
    return kv_.watchAs(id_, p, r, f);
  }
  void cancelWatches() override { kv_.cancelAs(id_); }

 private:
  FakeKv& kv_;
  int id_;
};

inline std::unique_ptr<Kv> FakeKv::client() { return std::make_unique<FakeKvClient>(*this); }

}  // namespace qabox::cluster::testing
