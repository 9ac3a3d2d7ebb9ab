#include <algorithm>
#include <utility>

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

size_t methodIndex(std::string_view method) {
  for (size_t i = 0; i + 1 < kTrafficMethods.size(); ++i) {
    if (method == kTrafficMethods[i]) return i;
  }
  return kTrafficMethods.size() - 1;
}

void countResponse(SlugStats::Slot& slot, unsigned status, size_t method, uint64_t micros) {
  size_t cls = std::clamp<unsigned>(status / 100, 1, kTrafficCodeClasses) - 1;
  slot.responses[cls][method % kTrafficMethodCount].fetch_add(1, std::memory_order_relaxed);
  size_t b = std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), micros) -
             kLatencyBoundsUs.begin();
  slot.latency[b].fetch_add(1, std::memory_order_relaxed);
  slot.latencySumUs.fetch_add(micros, std::memory_order_relaxed);
}

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

void RouteTable::set(Route r) { put(std::move(r), false); }

void RouteTable::setRemote(Route r) { put(std::move(r), true); }

void RouteTable::put(Route r, bool remote) {
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
    // This host's own environment wins over what the cluster says.
    if (remote && it->second->route.via.empty()) return;
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

void RouteTable::remove(const std::string& slug) { drop(slug, false); }

void RouteTable::removeRemote(const std::string& slug) { drop(slug, true); }

void RouteTable::drop(const std::string& slug, bool remote) {
  std::string key = slug;
  for (char& c : key) c = proxy_internal::asciiLower(c);
  std::lock_guard lock(mu_);
  auto it = snap_->bySlug.find(key);
  if (it == snap_->bySlug.end()) return;
  if (remote && it->second->route.via.empty()) return;
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
    SlugStats& st = *it->second;
    uint64_t requests = 0, bytesIn = 0, bytesOut = 0;
    int64_t last = 0;
    for (auto& slot : st.slots) {
      requests += slot.requests.load(std::memory_order_relaxed);
      bytesIn += slot.bytesIn.load(std::memory_order_relaxed);
      bytesOut += slot.bytesOut.load(std::memory_order_relaxed);
      last = std::max(last, slot.lastAccessMs.exchange(0, std::memory_order_relaxed));
    }
    a.requests = requests - std::exchange(st.takenRequests, requests);
    a.bytesIn = bytesIn - std::exchange(st.takenBytesIn, bytesIn);
    a.bytesOut = bytesOut - std::exchange(st.takenBytesOut, bytesOut);
    if (a.requests != 0 || a.bytesIn != 0 || a.bytesOut != 0 || last != 0) {
      a.lastAccessAt = fromUnixMillis(last != 0 ? last : proxy_internal::unixMsNow());
      out.push_back(std::move(a));
    }
    it = it->second->removed ? stats_.erase(it) : std::next(it);
  }
  return out;
}

namespace {

RouteTraffic sumTraffic(const Target& t) {
  RouteTraffic r;
  r.slug = t.route.slug;
  r.state = t.route.state;
  constexpr auto kRelaxed = std::memory_order_relaxed;
  for (const auto& slot : t.stats->slots) {
    r.requests += slot.requests.load(kRelaxed);
    r.bytesIn += slot.bytesIn.load(kRelaxed);
    r.bytesOut += slot.bytesOut.load(kRelaxed);
    r.websockets += slot.websockets.load(kRelaxed);
    r.websocketsOpen += slot.websocketsOpen.load(kRelaxed);
    for (size_t c = 0; c < kTrafficCodeClasses; ++c) {
      for (size_t m = 0; m < kTrafficMethodCount; ++m) {
        r.responses[c][m] += slot.responses[c][m].load(kRelaxed);
      }
    }
    for (size_t b = 0; b < r.latency.size(); ++b) r.latency[b] += slot.latency[b].load(kRelaxed);
    r.latencySumUs += slot.latencySumUs.load(kRelaxed);
  }
  return r;
}

}  // namespace

std::vector<RouteTraffic> RouteTable::traffic() const {
  auto snap = snapshot();
  std::vector<RouteTraffic> out;
  out.reserve(snap->bySlug.size());
  for (const auto& [slug, target] : snap->bySlug) out.push_back(sumTraffic(*target));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.slug < b.slug; });
  return out;
}

std::shared_ptr<const Snapshot> RouteTable::snapshot() const {
  std::lock_guard lock(mu_);
  return snap_;
}

}  // namespace qabox
