#include "daemon/cluster_follower.h"

#include <spdlog/spdlog.h>

#include <map>

#include "core/endpoint.h"

namespace qabox {

using cluster::HostState;
using cluster::Owner;

namespace {

constexpr const char* kActor = "cluster";
// A pass this often even when nothing changed: a reclaim that failed is
// tried again.
constexpr std::chrono::seconds kEvery{5};

}  // namespace

void ClusterFollower::reclaim(const Environment& env, const std::string& why) {
  const std::string slug = env.slug;
  // Under the ticket's lock: a deploy that made it this host's again wins.
  auto stillDue = [this, slug](const Environment&) {
    auto o = cluster_.owner(slug);
    if (o && o->host == cluster_.self()) {
      return failedPrecondition("it is this host's again");
    }
    return Status::ok();
  };
  spdlog::info("cluster: reclaiming {}: {}", env.ticket, why);
  if (Status s = envs_.remove(env.ticket, kActor, why, stillDue); !s.isOk()) {
    spdlog::warn("cluster: reclaiming {}: {}", env.ticket, s.toString());
  }
}

void ClusterFollower::route(const Owner& o,
                            const std::map<std::string, const cluster::HostView*>& hosts) {
  Route r;
  r.slug = o.slug;
  r.state = EnvState::kReady;
  r.via = o.host;
  auto h = hosts.find(o.host);
  if (h != hosts.end() && h->second->state != HostState::kDown) {
    // No address (a name, not an IP): the route says LOST rather than guess.
    if (auto hp = parseHostPort(h->second->facts.router, "router"); hp && !hp->host.empty()) {
      r.ip = hp->host;
      r.port = hp->port;
    }
  }
  routes_.setRemote(std::move(r));
}

void ClusterFollower::syncOnce() {
  // Until etcd has answered, what this host has stands: nothing is reclaimed
  // on words that may be stale, and routes stay as they were.
  if (!cluster_.connected()) return;
  auto local = envs_.list();
  if (!local) {
    spdlog::warn("cluster: listing this host's environments: {}", local.status().toString());
    return;
  }
  const std::string& self = cluster_.self();
  std::map<std::string, Owner> owners;
  for (auto& o : cluster_.owners()) owners[o.slug] = std::move(o);
  std::map<std::string, std::string> gone;
  for (const auto& g : cluster_.forgotten()) gone[g.slug] = g.host;

  std::map<std::string, const Environment*> mine;
  for (const auto& e : *local) {
    auto o = owners.find(e.slug);
    if (o != owners.end() && o->second.host != self) {
      reclaim(e, "ticket re-placed on host " + o->second.host + " while this host was away");
      continue;
    }
    if (o == owners.end()) {
      auto g = gone.find(e.slug);
      if (g != gone.end() && g->second == self) {
        reclaim(e, "ticket deleted while this host was down");
        if (!envs_.get(e.ticket)) {
          if (Status s = cluster_.clearForgotten(e.slug); !s.isOk()) {
            spdlog::warn("cluster: {}", s.toString());
          }
        }
        continue;
      }
      // Not in the map (made before this host joined): this host's, unless
      // another host claimed it first; then the next pass reclaims it.
      auto claimed = cluster_.claim(e.ticket, e.slug);
      if (!claimed) {
        spdlog::warn("cluster: claiming {}: {}", e.ticket, claimed.status().toString());
      } else if (claimed->host != self) {
        reclaim(e, "ticket owned by host " + claimed->host);
        continue;
      }
    }
    mine[e.slug] = &e;
  }
  for (const auto& [slug, g] : gone) {
    if (g == self && !mine.count(slug) && !owners.count(slug)) {
      (void)cluster_.clearForgotten(slug);  // nothing left here to reclaim
    }
  }

  const auto hosts = cluster_.hosts();
  std::map<std::string, const cluster::HostView*> byName;
  for (const auto& h : hosts) byName[h.facts.name] = &h;
  for (const auto& [slug, o] : owners) {
    if (o.host != self && !mine.count(slug)) route(o, byName);
  }
  for (const auto& r : routes_.all()) {
    if (r.via.empty()) continue;
    auto o = owners.find(r.slug);
    if (o == owners.end() || o->second.host == self) routes_.removeRemote(r.slug);
  }
}

void ClusterFollower::start() {
  cluster_.onChange([this] {
    std::lock_guard lock(mu_);
    dirty_ = true;
    cv_.notify_one();
  });
  thread_ = std::thread([this] { loop(); });
}

void ClusterFollower::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, kEvery, [this] { return dirty_ || stopping_; });
    if (stopping_) return;
    dirty_ = false;
    lock.unlock();
    syncOnce();
    lock.lock();
  }
}

void ClusterFollower::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cluster_.onChange(nullptr);
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

}  // namespace qabox
