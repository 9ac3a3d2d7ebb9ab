#pragma once

// qaboxd --check: the invariant checker (lifecycle/invariants.h) over the
// host of a config. Offline when no agent serves that state dir (the store
// opened read-only, nothing written); when one does, that agent is asked
// (the CheckInvariants RPC), as it alone knows its routes and the calls in
// flight. Violations one a line on stdout ("KIND NAME: what"), a summary on
// stderr.

#include "core/config.h"

namespace qabox {

// The exit code: 0 no violation, 1 some, 2 the check could not run.
int runCheck(const Config& config);

}  // namespace qabox
