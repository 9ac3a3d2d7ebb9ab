#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace qabox {

// Container ids 0-65535 of an unprivileged container are host ids
// base-base+65535 (its `lxc.idmap = u 0 <base> 65536`, the same for g).
constexpr uint32_t kMappedIds = 65536;

// The host id of container id `id` under `base`; ids already in the mapped
// range, or beyond what a container has, stay as they are.
uint32_t shiftedId(uint32_t id, uint32_t base);

// Gives every file under `root` (and `root` itself, symlinks not followed)
// to the container's mapped ids, so root inside the container owns what
// root on the host made there. setuid and setgid bits, which chown clears,
// are kept. Repeating it changes nothing.
Status shiftOwnership(const std::string& root, uint32_t base);

// Moves every file under `root` (links not followed) from the container
// ids based at `from` to the same container ids based at `to` (a build
// container's files given to its image's ids); an id outside `from`'s range
// becomes `to` itself (container root). setuid and setgid bits are kept.
Status moveOwnership(const std::string& root, uint32_t from, uint32_t to);

// The host id container root runs as, read from an LXC config's
// `lxc.idmap = u 0 <base> <count>` line; nullopt for a privileged one.
std::optional<uint32_t> mappedRootOf(std::string_view lxcConfig);

}  // namespace qabox
