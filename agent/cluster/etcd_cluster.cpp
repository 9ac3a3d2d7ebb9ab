// The cluster in etcd: this host's facts under a lease it keeps alive, and a
// cache of every host, drain mark and ticket owner, filled by one range and
// then fed by a watch, so owner() and hosts() never wait for etcd.
#include "cluster/etcd_cluster.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cluster/records.h"
#include "core/ticket.h"

namespace qabox::cluster {
namespace {

using std::chrono::milliseconds;

constexpr int kPlaceAttempts = 4;
constexpr milliseconds kRetryMin{100};
constexpr milliseconds kRetryMax{2'000};

class EtcdCluster final : public Cluster {
 public:
  EtcdCluster(ClusterOptions o, std::unique_ptr<Kv> kv)
      : o_(std::move(o)),
        kv_(std::move(kv)),
        hostsPrefix_(o_.prefix + "hosts/"),
        ticketsPrefix_(o_.prefix + "tickets/"),
        drainPrefix_(o_.prefix + "drain/"),
        gonePrefix_(o_.prefix + "gone/") {}
  ~EtcdCluster() override { stop(); }

  const std::string& self() const override { return o_.self.name; }

  std::optional<Owner> owner(const std::string& slug) const override {
    std::lock_guard lock(mu_);
    auto it = owners_.find(slug);
    if (it == owners_.end()) return std::nullopt;
    return it->second;
  }

  std::vector<Owner> owners() const override {
    std::lock_guard lock(mu_);
    std::vector<Owner> out;
    for (const auto& [slug, o] : owners_) out.push_back(o);
    return out;
  }

  std::vector<HostView> hosts() const override {
    std::lock_guard lock(mu_);
    return hostsLocked();
  }

  std::optional<HostView> host(const std::string& name) const override {
    for (auto& h : hosts()) {
      if (h.facts.name == name) return h;
    }
    return std::nullopt;
  }

  bool connected() const override { return connected_.load(); }

  Result<Owner> place(const std::string& ticket, const std::string& slug, const std::string& image,
                      const std::string& wanted) override;
  Result<Owner> claim(const std::string& ticket, const std::string& slug) override;
  Status release(const std::string& slug) override;
  Status forgetLost(const std::string& slug) override;
  std::vector<Owner> forgotten() const override {
    std::lock_guard lock(mu_);
    std::vector<Owner> out;
    for (const auto& [slug, host] : gone_) out.push_back({slug, slug, host, 0});
    return out;
  }
  Status clearForgotten(const std::string& slug) override {
    if (Status s = kv_->remove(gonePrefix_ + slug); !s.isOk()) return unreachable(s);
    std::lock_guard lock(mu_);
    gone_.erase(slug);
    return Status::ok();
  }
  Status setDraining(const std::string& host, bool draining) override;

  void onChange(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    onChange_ = std::move(fn);
  }

  Status start(LocalHost local) override;
  void stop() override;

 private:
  std::vector<HostView> hostsLocked() const;
  Result<std::string> chooseTarget(const std::string& image, const std::string& wanted) const;
  Status unreachable(const Status& why) const {
    return unavailable("etcd is unreachable (" + why.message() +
                       "): new placements wait for it; environments already placed go on");
  }

  HostFacts currentFacts() const;
  Status registerSelf();
  void keepLoop();
  void watchLoop();
  Result<int64_t> loadAll();
  // Removes slug's map entry if it is still the revision read, once `first`
  // saw that entry (a bad record: an error) and said go on; `doing` names the
  // removal in its error when the entry changed meanwhile.
  Status removeTicket(const std::string& slug, std::string_view doing,
                      const std::function<Status(const Result<TicketEntry>&)>& first);
  void apply(const KvEvent& ev);  // under mu_
  void changed();
  bool sleepFor(milliseconds d) {  // false once stopping
    std::unique_lock lock(stopMu_);
    return !stopCv_.wait_for(lock, d, [this] { return stopping_; });
  }

  ClusterOptions o_;
  std::unique_ptr<Kv> kv_;
  const std::string hostsPrefix_, ticketsPrefix_, drainPrefix_, gonePrefix_;
  LocalHost local_;

  mutable std::mutex mu_;
  std::map<std::string, HostFacts> live_;  // hosts/ keys now
  std::map<std::string, HostFacts> seen_;  // every host seen since start
  std::map<std::string, Owner> owners_;    // by slug
  std::set<std::string> draining_;
  std::map<std::string, std::string> gone_;  // slug -> the host that had it
  std::function<void()> onChange_;

  std::atomic<bool> connected_{false};
  std::mutex leaseMu_;  // lease_ and lastPut_
  int64_t lease_ = 0;
  std::string lastPut_;

  std::mutex stopMu_;
  std::condition_variable stopCv_;
  bool stopping_ = false;
  bool started_ = false;
  std::thread keeper_, watcher_;
};

std::vector<HostView> EtcdCluster::hostsLocked() const {
  std::map<std::string, HostView> out;
  for (const auto& [name, f] : seen_) out[name] = {f, HostState::kDown, name == self()};
  for (const auto& [slug, o] : owners_) {
    if (!out.count(o.host)) {
      HostView v;
      v.facts.name = o.host;
      v.state = HostState::kDown;
      out[o.host] = v;
    }
  }
  for (const auto& [name, f] : live_) {
    out[name] = {f, draining_.count(name) ? HostState::kDraining : HostState::kUp, name == self()};
  }
  // A host's count is at least the tickets the map gives it: placements
  // made since it last published its facts count at once, so a burst of
  // new tickets spreads instead of all going where there was room a moment
  // ago.
  std::map<std::string, uint32_t> mapped;
  for (const auto& [slug, o] : owners_) ++mapped[o.host];
  std::vector<HostView> v;
  for (auto& [name, h] : out) {
    h.facts.environments = std::max(h.facts.environments, mapped[name]);
    v.push_back(std::move(h));
  }
  return v;
}

Result<std::string> EtcdCluster::chooseTarget(const std::string& image,
                                              const std::string& wanted) const {
  auto all = hosts();
  if (wanted.empty()) {
    auto chosen = choosePlacement(all, image);
    if (!chosen) {
      return failedPrecondition(
          "no host of the cluster can take a new environment: every live host is full or "
          "draining (qabox hosts shows them)");
    }
    return *chosen;
  }
  for (const auto& h : all) {
    if (h.facts.name != wanted) continue;
    if (h.state == HostState::kDown) {
      return failedPrecondition("host " + wanted + " is down: choose another (qabox hosts)");
    }
    if (h.state == HostState::kDraining) {
      return failedPrecondition("host " + wanted +
                                " is draining: it takes no new environments (qabox host undrain " +
                                wanted + ")");
    }
    return wanted;
  }
  return notFound("host " + quoteForMessage(wanted) +
                  " is not a member of the cluster (qabox hosts)");
}

Result<Owner> EtcdCluster::place(const std::string& ticket, const std::string& slug,
                                 const std::string& image, const std::string& wanted) {
  auto liveOwner = [this](const std::string& host) {
    std::lock_guard lock(mu_);
    return live_.count(host) > 0;
  };
  if (auto cur = owner(slug); cur && liveOwner(cur->host)) return *cur;
  const std::string key = ticketsPrefix_ + slug;
  for (int attempt = 0; attempt < kPlaceAttempts; ++attempt) {
    QABOX_ASSIGN_OR_RETURN(std::string target, chooseTarget(image, wanted));
    const std::string value =
        encodeTicket({ticket, target, static_cast<int64_t>(std::time(nullptr))});
    auto created = kv_->createIfAbsent(key, value);
    if (!created) {
      if (created.status().code() == Code::kAborted) continue;
      return unreachable(created.status());
    }
    if (!created->has_value()) {
      auto now = kv_->get(key);  // its revision, for a later compare
      Owner o{slug, ticket, target, now && now->has_value() ? (*now)->modRevision : 0};
      std::lock_guard lock(mu_);
      owners_[slug] = o;
      return o;
    }
    const KeyValue& existing = **created;
    auto entry = decodeTicket(existing.value);
    if (entry && liveOwner(entry->host)) {
      Owner o{slug, entry->ticket, entry->host, existing.modRevision};
      std::lock_guard lock(mu_);
      owners_[slug] = o;
      return o;
    }
    // Its owner is down (or the entry is not one of ours): re-placed, if no
    // other host re-placed it since it was read.
    auto swapped = kv_->swapIfRevision(key, value, existing.modRevision);
    if (!swapped) return unreachable(swapped.status());
    if (*swapped) {
      spdlog::info("ticket {} re-placed on {}: its host {} is down", ticket, target,
                   entry ? entry->host : "(a bad entry)");
      auto now = kv_->get(key);
      Owner o{slug, ticket, target, now && now->has_value() ? (*now)->modRevision : 0};
      std::lock_guard lock(mu_);
      owners_[slug] = o;
      return o;
    }
  }
  return aborted("ticket " + ticket + ": its owner changed under every attempt; try again");
}

Result<Owner> EtcdCluster::claim(const std::string& ticket, const std::string& slug) {
  const std::string key = ticketsPrefix_ + slug;
  const std::string value =
      encodeTicket({ticket, self(), static_cast<int64_t>(std::time(nullptr))});
  auto created = kv_->createIfAbsent(key, value);
  if (!created) return unreachable(created.status());
  Owner o{slug, ticket, self(), 0};
  if (created->has_value()) {
    auto entry = decodeTicket((*created)->value);
    if (!entry)
      return failedPrecondition("ticket " + ticket + ": its map entry is not one of ours");
    o = {slug, entry->ticket, entry->host, (*created)->modRevision};
  } else if (auto now = kv_->get(key); now && now->has_value()) {
    o.modRevision = (*now)->modRevision;
  }
  std::lock_guard lock(mu_);
  owners_[slug] = o;
  return o;
}

Status EtcdCluster::removeTicket(const std::string& slug, std::string_view doing,
                                 const std::function<Status(const Result<TicketEntry>&)>& first) {
  const std::string key = ticketsPrefix_ + slug;
  auto cur = kv_->get(key);
  if (!cur) return unreachable(cur.status());
  if (!cur->has_value()) return Status::ok();
  QABOX_RETURN_IF_ERROR(first(decodeTicket((*cur)->value)));
  auto removed = kv_->removeIfRevision(key, (*cur)->modRevision);
  if (!removed) return unreachable(removed.status());
  if (!*removed) {
    return aborted("ticket " + slug + " changed while it was " + std::string(doing) +
                   "; try again");
  }
  std::lock_guard lock(mu_);
  owners_.erase(slug);
  return Status::ok();
}

Status EtcdCluster::release(const std::string& slug) {
  return removeTicket(slug, "released", [this](const Result<TicketEntry>& entry) {
    if (entry && entry->host != self()) {
      return failedPrecondition("ticket " + entry->ticket + " belongs to host " + entry->host);
    }
    return Status::ok();
  });
}

Status EtcdCluster::forgetLost(const std::string& slug) {
  return removeTicket(slug, "removed", [this, &slug](const Result<TicketEntry>& entry) {
    if (!entry) return Status::ok();
    {
      std::lock_guard lock(mu_);
      if (live_.count(entry->host)) {
        return failedPrecondition("ticket " + entry->ticket + " lives on host " + entry->host +
                                  ", which is up: delete it there");
      }
    }
    // The mark first: a host that comes back between the two writes finds it
    // and the entry, and keeps the entry's word until the entry goes.
    if (Status s = kv_->put(gonePrefix_ + slug, entry->host, 0); !s.isOk()) return unreachable(s);
    return Status::ok();
  });
}

Status EtcdCluster::setDraining(const std::string& host, bool draining) {
  if (!this->host(host)) {
    return notFound("host " + quoteForMessage(host) +
                    " is not a member of the cluster (qabox hosts)");
  }
  Status s = draining ? kv_->put(drainPrefix_ + host, "1", 0) : kv_->remove(drainPrefix_ + host);
  if (!s.isOk()) return unavailable("etcd is unreachable (" + s.message() + ")");
  std::lock_guard lock(mu_);
  if (draining) {
    draining_.insert(host);
  } else {
    draining_.erase(host);
  }
  return Status::ok();
}

HostFacts EtcdCluster::currentFacts() const {
  HostFacts f = o_.self;
  if (local_.sample) local_.sample(f);
  return f;
}

// A lease (a new one when it expired meanwhile) and this host's facts on it.
Status EtcdCluster::registerSelf() {
  std::lock_guard lock(leaseMu_);
  if (lease_ == 0) {
    auto ttl = std::chrono::duration_cast<std::chrono::seconds>(o_.leaseTtl);
    auto lease = kv_->grantLease(ttl.count() < 1 ? std::chrono::seconds(1) : ttl);
    if (!lease) return lease.status();
    lease_ = *lease;
    lastPut_.clear();
  }
  const std::string facts = encodeHost(currentFacts());
  if (facts == lastPut_) return Status::ok();
  QABOX_RETURN_IF_ERROR(kv_->put(hostsPrefix_ + self(), facts, lease_));
  lastPut_ = facts;
  return Status::ok();
}

void EtcdCluster::keepLoop() {
  const milliseconds every = std::max(milliseconds(200), o_.leaseTtl / 3);
  while (sleepFor(every)) {
    int64_t lease = 0;
    {
      std::lock_guard lock(leaseMu_);
      lease = lease_;
    }
    Status kept = lease ? kv_->keepAlive(lease) : notFound("no lease yet");
    if (kept.code() == Code::kNotFound) {
      std::lock_guard lock(leaseMu_);
      if (lease_ == lease) lease_ = 0;
      if (lease) spdlog::warn("cluster: this host's lease expired; registering again");
    } else if (!kept.isOk()) {
      connected_ = false;
      continue;
    }
    if (Status s = registerSelf(); !s.isOk()) {
      connected_ = false;
      spdlog::warn("cluster: registering {}: {}", self(), s.message());
    }
  }
}

Result<int64_t> EtcdCluster::loadAll() {
  QABOX_ASSIGN_OR_RETURN(RangeResult all, kv_->range(o_.prefix, 0));
  {
    std::lock_guard lock(mu_);
    // What place() learnt after this read stays: the watch from here on
    // would bring it again, but owner() must not miss it meanwhile.
    std::map<std::string, Owner> newer;
    for (const auto& [slug, o] : owners_) {
      if (o.modRevision > all.revision) newer[slug] = o;
    }
    live_.clear();
    owners_.clear();
    draining_.clear();
    gone_.clear();
    for (const auto& kv : all.kvs) apply({false, kv});
    for (auto& [slug, o] : newer) owners_[slug] = std::move(o);
  }
  return all.revision;
}

void EtcdCluster::apply(const KvEvent& ev) {
  const std::string& key = ev.kv.key;
  auto under = [&key](const std::string& p) {
    return key.size() > p.size() && key.compare(0, p.size(), p) == 0;
  };
  if (under(hostsPrefix_)) {
    const std::string name = key.substr(hostsPrefix_.size());
    if (ev.deleted) {
      live_.erase(name);
      return;
    }
    auto h = decodeHost(ev.kv.value);
    if (!h || h->name != name) {
      spdlog::warn("cluster: ignoring {}: {}", key.substr(0, 200),
                   h ? "its name is not its key's" : h.status().message());
      return;
    }
    live_[name] = *h;
    seen_[name] = *h;
  } else if (under(ticketsPrefix_)) {
    const std::string slug = key.substr(ticketsPrefix_.size());
    if (ev.deleted) {
      owners_.erase(slug);
      return;
    }
    auto t = decodeTicket(ev.kv.value);
    auto parsed = t ? parseTicket(t->ticket) : Result<Ticket>(t.status());
    if (!t || !parsed || parsed->slug != slug) {
      spdlog::warn("cluster: ignoring {}: {}", key.substr(0, 200),
                   t && parsed ? "its ticket is not its key's" : parsed.status().message());
      owners_.erase(slug);
      return;
    }
    owners_[slug] = {slug, t->ticket, t->host, ev.kv.modRevision};
  } else if (under(gonePrefix_)) {
    const std::string slug = key.substr(gonePrefix_.size());
    if (ev.deleted) {
      gone_.erase(slug);
    } else if (checkHostName(ev.kv.value, "gone").isOk()) {
      gone_[slug] = ev.kv.value;
    }
  } else if (under(drainPrefix_)) {
    const std::string name = key.substr(drainPrefix_.size());
    if (ev.deleted) {
      draining_.erase(name);
    } else if (checkHostName(name, "drain").isOk()) {
      draining_.insert(name);
    }
  }
}

void EtcdCluster::changed() {
  std::function<void()> fn;
  {
    std::lock_guard lock(mu_);
    fn = onChange_;
  }
  if (fn) fn();
}

void EtcdCluster::watchLoop() {
  milliseconds backoff = kRetryMin;
  while (true) {
    {
      std::lock_guard lock(stopMu_);
      if (stopping_) return;
    }
    auto rev = loadAll();
    if (!rev) {
      if (connected_.exchange(false)) spdlog::warn("cluster: {}", rev.status().message());
      if (!sleepFor(backoff)) return;
      backoff = std::min(backoff * 2, kRetryMax);
      continue;
    }
    if (!connected_.exchange(true)) spdlog::info("cluster: etcd answers");
    backoff = kRetryMin;
    changed();
    Status ended = kv_->watch(o_.prefix, *rev + 1, [this](const std::vector<KvEvent>& events) {
      {
        std::lock_guard lock(mu_);
        for (const auto& ev : events) apply(ev);
      }
      changed();
    });
    // Cancelled on stop(): the loop's top sees stopping_ and returns.
    if (ended.code() != Code::kCancelled) {
      spdlog::info("cluster: the watch ended ({}); reading again", ended.message());
    }
    if (!sleepFor(kRetryMin)) return;
  }
}

Status EtcdCluster::start(LocalHost local) {
  local_ = std::move(local);
  Status registered = registerSelf();
  if (registered.isOk()) {
    if (auto rev = loadAll(); rev) connected_ = true;
  }
  started_ = true;
  keeper_ = std::thread([this] { keepLoop(); });
  watcher_ = std::thread([this] { watchLoop(); });
  if (!registered.isOk()) return unreachable(registered);
  return Status::ok();
}

void EtcdCluster::stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(stopMu_);
    stopping_ = true;
  }
  stopCv_.notify_all();
  kv_->cancelWatches();
  if (keeper_.joinable()) keeper_.join();
  if (watcher_.joinable()) watcher_.join();
  std::lock_guard lock(leaseMu_);
  if (lease_ != 0) {
    // Peers see this host gone at once, not a lease TTL later.
    if (Status s = kv_->revokeLease(lease_); !s.isOk()) {
      spdlog::warn("cluster: revoking this host's lease: {}", s.message());
    }
    lease_ = 0;
  }
}

}  // namespace

std::unique_ptr<Cluster> makeEtcdCluster(ClusterOptions options, std::unique_ptr<Kv> kv) {
  return std::make_unique<EtcdCluster>(std::move(options), std::move(kv));
}

}  // namespace qabox::cluster
