#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "init/contract.h"

namespace qabox::init {

// status.json as a table, one line a process: NAME STATE PID RESTARTS
// LAST-EXIT SINCE MESSAGE. `nowMs` for the SINCE column (a duration).
std::string statusTable(const supervise::InitStatus& s, int64_t nowMs);

// Reads, parses and prints the file; 0, or 1 with the reason on `err`.
int printStatus(const std::string& path, FILE* out, FILE* err);

}  // namespace qabox::init
