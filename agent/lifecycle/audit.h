#pragma once

// The audit log (the store's events table) as the lifecycle writes it: one
// row per thing done or refused, naming the ticket, the action, who asked
// and how it went. Writing a row never fails the operation it records: a
// row the store refuses is logged instead.

#include <cstddef>
#include <string>

#include "core/clock.h"
#include "store/store.h"

namespace qabox {

class AuditLog {
 public:
  explicit AuditLog(Store& store, const TimeSource& time = systemTime())
      : store_(store), time_(time) {}

  // One row, stamped now.
  void record(const std::string& ticket, const std::string& action, const std::string& actor,
              const std::string& outcome, const std::string& detail);

  // A reaper pass someone asked for (Reap), as a whole: how many it
  // reclaimed, or in a dry run would, under which policy ("" for all).
  // The reaper writes a row of its own for each environment.
  void reapPass(const std::string& actor, const std::string& policy, bool dryRun, size_t due,
                size_t reclaimed);
  // A reaper pass that could not run.
  void reapFailed(const std::string& actor, const std::string& why);

 private:
  Store& store_;
  const TimeSource& time_;
};

}  // namespace qabox
