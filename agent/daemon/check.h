#pragma once

// qaboxd --check: the invariant checker (lifecycle/invariants.h) over the
// host of a config. Offline when no agent serves that state dir (the store
// opened read-only, nothing written); when one does, that agent is asked
// (the CheckInvariants RPC), as it alone knows its routes and the calls in
// flight. Violations one a line on stdout ("KIND NAME: what"), a summary on
// stderr.

#include "core/config.h"

namespace qabox {

// qaboxd --check's exit codes; every failure before the check (a bad
// flag, config or start-up step) is kCheckCannotRun, never "violations".
constexpr int kCheckClean = 0;
constexpr int kCheckViolations = 1;
constexpr int kCheckCannotRun = 2;

// The exit code: kCheckClean, kCheckViolations or kCheckCannotRun.
int runCheck(const Config& config);

}  // namespace qabox
