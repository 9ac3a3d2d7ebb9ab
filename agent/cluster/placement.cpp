#include <algorithm>

#include "cluster/cluster.h"

namespace qabox::cluster {

std::string_view hostStateName(HostState s) {
  switch (s) {
    case HostState::kUp: return "UP";
    case HostState::kDraining: return "DRAINING";
    case HostState::kDown: return "DOWN";
  }
  return "UNKNOWN";
}

std::optional<std::string> choosePlacement(const std::vector<HostView>& hosts,
                                           const std::string& image) {
  const HostView* best = nullptr;
  auto free = [](const HostView& h) {
    return h.facts.capacity > h.facts.environments ? h.facts.capacity - h.facts.environments : 0u;
  };
  auto hasImage = [&image](const HostView& h) {
    return std::find(h.facts.images.begin(), h.facts.images.end(), image) != h.facts.images.end();
  };
  // Better: more free places, then has the image (no build first), then
  // more free memory, then the name (a stable answer). Every host can
  // build every image of the shared images directory.
  auto better = [&](const HostView& a, const HostView& b) {
    if (free(a) != free(b)) return free(a) > free(b);
    if (hasImage(a) != hasImage(b)) return hasImage(a);
    if (a.facts.freeMemoryBytes != b.facts.freeMemoryBytes) {
      return a.facts.freeMemoryBytes > b.facts.freeMemoryBytes;
    }
    return a.facts.name < b.facts.name;
  };
  for (const auto& h : hosts) {
    if (h.state != HostState::kUp || free(h) == 0) continue;
    if (!best || better(h, *best)) best = &h;
  }
  if (!best) return std::nullopt;
  return best->facts.name;
}

}  // namespace qabox::cluster
