#include <algorithm>

#include "proxy/host.h"
#include "proxy/route_internal.h"
#include "proxy/router.h"

namespace qabox {
namespace proxy_internal {
namespace {
thread_local unsigned tCounterSlot = 0;

int64_t unixMsNow() { return toUnixMillis(Clock::now()); }
}  // namespace

unsigned counterSlot() { return tCounterSlot; }
void setCounterSlot(unsigned slot) { tCounterSlot = slot; }

}  // namespace proxy_internal

using proxy_internal::SlugStats;
using proxy_internal::Snapshot;
using proxy_internal::Target;

RouteTable::RouteTable() : snap_(std::make_shared<Snapshot>()) {}
RouteTable::~RouteTable() = default;

void RouteTable::publish(std::shared_ptr<const Snapshot> next,
                         const std::shared_ptr<Target>& retired) {
  snap_ = std::move(next);
  // The new snapshot is visible before the old target reads as retired: a
  // request that sees `retired` and looks again finds the new route.
  version_.fetch_add(1, std::memory_order_acq_rel);
  if (retired) {
    retired->retired.store(true, std::memory_order_seq_cst);
    retired_.push_back(retired);
  }
  std::erase_if(retired_, [](const std::weak_ptr<Target>& w) { return w.expired(); });
}

void RouteTable::set(Route r) {
  for (char& c : r.slug) c = proxy_internal::asciiLower(c);
  auto target = std::make_shared<Target>();
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(r.ip, ec);
  if (!ec && r.port != 0) {
    target->endpoint = {address, r.port};
    target->hasEndpoint = true;
  }
  std::lock_guard lock(mu_);
  std::shared_ptr<Target> old;
  if (auto it = snap_->bySlug.find(r.slug); it != snap_->bySlug.end()) {
    if (it->second->route == r) return;
    old = it->second;
  }
  auto& stats = stats_[r.slug];
  if (!stats) stats = std::make_shared<SlugStats>();
  stats->removed = false;
  target->stats = stats;
  target->route = std::move(r);
  auto next = std::make_shared<Snapshot>(*snap_);
  next->bySlug[target->route.slug] = std::move(target);
  publish(std::move(next), old);
}

void RouteTable::remove(const std::string& slug) {
  std::string key = slug;
  for (char& c : key) c = proxy_internal::asciiLower(c);
  std::lock_guard lock(mu_);
  auto it = snap_->bySlug.find(key);
  if (it == snap_->bySlug.end()) return;
  std::shared_ptr<Target> old = it->second;
  if (auto s = stats_.find(key); s != stats_.end()) s->second->removed = true;
  auto next = std::make_shared<Snapshot>(*snap_);
  next->bySlug.erase(key);
  publish(std::move(next), old);
}

std::optional<Route> RouteTable::lookup(std::string_view slug) const {
  std::string key(slug);
  for (char& c : key) c = proxy_internal::asciiLower(c);
  auto snap = snapshot();
  auto it = snap->bySlug.find(key);
  if (it == snap->bySlug.end()) return std::nullopt;
  return it->second->route;
}

std::vector<Route> RouteTable::all() const {
  auto snap = snapshot();
  std::vector<Route> out;
  out.reserve(snap->bySlug.size());
  for (const auto& [slug, target] : snap->bySlug) out.push_back(target->route);
  std::sort(out.begin(), out.end(), [](const Route& a, const Route& b) { return a.slug < b.slug; });
  return out;
}

int64_t RouteTable::inFlight(std::string_view ip, uint16_t port) const {
  std::lock_guard lock(mu_);
  int64_t n = 0;
  auto count = [&](const Target& t) {
    if (t.route.ip == ip && t.route.port == port) n += t.inFlightTotal();
  };
  for (const auto& [slug, target] : snap_->bySlug) count(*target);
  for (const auto& weak : retired_) {
    if (auto t = weak.lock()) count(*t);
  }
  return n;
}

std::vector<AccessStats> RouteTable::takeStats() {
  std::lock_guard lock(mu_);
  std::vector<AccessStats> out;
  for (auto it = stats_.begin(); it != stats_.end();) {
    AccessStats a;
    a.slug = it->first;
    int64_t last = 0;
    for (auto& slot : it->second->slots) {
      a.requests += slot.requests.exchange(0, std::memory_order_relaxed);
      a.bytesIn += slot.bytesIn.exchange(0, std::memory_order_relaxed);
      a.bytesOut += slot.bytesOut.exchange(0, std::memory_order_relaxed);
      last = std::max(last, slot.lastAccessMs.exchange(0, std::memory_order_relaxed));
    }
    if (a.requests != 0 || a.bytesIn != 0 || a.bytesOut != 0 || last != 0) {
      a.lastAccessAt = fromUnixMillis(last != 0 ? last : proxy_internal::unixMsNow());
      out.push_back(std::move(a));
    }
    it = it->second->removed ? stats_.erase(it) : std::next(it);
  }
  return out;
}

std::shared_ptr<const Snapshot> RouteTable::snapshot() const {
  std::lock_guard lock(mu_);
  return snap_;
}

}  // namespace qabox
