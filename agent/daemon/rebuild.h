#pragma once

// `qaboxd --rebuild-state`: a fresh qabox.db from what exists on disk, when
// the old one is lost or corrupt. Environments and their leases come from
// each container's qabox.json (lifecycle/env_record.h), image versions from
// images/ (deploy/image_record.h), the dependency and data layers from
// layers/ as the environments name them. Tokens cannot be rebuilt: only
// their hashes were stored. Refused while an agent runs on the state dir.

#include <ostream>

#include "core/config.h"

namespace qabox {

// Prints what it did and a summary table to `out`; returns the exit code.
int rebuildState(const Config& config, std::ostream& out);

}  // namespace qabox
