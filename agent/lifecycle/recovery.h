#pragma once

// Recovery at start-up as decisions. Before the API listens,
// EnvironmentManager::recover() reconciles what a crash or a reboot left:
//   1. every unfinished journal entry (an operation the agent did not get to
//      close) is rolled back, or, for a delete, completed: decideJournal();
//   2. containers and address leases no row owns go: ownedOrStuck();
//   3. every row is checked against its container: decideRow().
// The functions here only decide, from the journal entry, the row and the
// container's state; the manager carries the decisions out (recovery.cpp)
// and records each in the journal, the events and the log.

#include <optional>
#include <set>
#include <string>

#include "core/environment.h"
#include "core/status.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace qabox::recovery {

// ---------------------------------------------------------------- 1. journal

enum class JournalAction {
  kSkip,              // image.build: the image builder recovers its own
  kKeepSwitched,      // a redeploy that had switched: its container is the row's now
  kRollBackCreate,    // destroy the new container (and the row, unless READY)
  kRollBackRedeploy,  // destroy the new container; the row keeps its serving one
  kCompleteDelete,    // destroy the container, delete the row
  kClose,             // a kind this agent does not know: closed, nothing touched
};

// What an interrupted redeploy's row becomes (whatever its destroy did).
enum class RowRestore {
  kNone,
  kReady,   // its serving container is there
  kFailed,  // its serving container is missing
  kBroken,  // its serving container's state cannot be read
};

struct JournalDecision {
  JournalAction action = JournalAction::kClose;
  bool destroy = false;  // destroy op.container; once gone, its leases are released
  bool deleteRowWhenDestroyed = false;
  RowRestore restore = RowRestore::kNone;
  std::string restoreMessage;  // the row's message for kFailed, kReady and kBroken
  // When the destroy fails: true, the row (it owns the container) becomes
  // BROKEN; false, the container is left for the orphan sweep of the next
  // start, its lease kept.
  bool breakRowWhenStuck = false;
  std::string done;  // the journal's detail and the event's, when it went through
};

// Whether decideJournal() needs the state of the row's serving container:
// for a redeploy that had not switched, when the row is there.
bool needsServingState(const Operation& op, const std::optional<Environment>& row);

// `row` is the ticket's row as the store has it now; `serving` the state of
// its container (row->container) when needsServingState(), else nullopt.
JournalDecision decideJournal(const Operation& op, const std::optional<Environment>& row,
                              const std::optional<Result<ContainerState>>& serving);

// What the journal and the events say when op.container could not be destroyed.
std::string cannotDestroy(const std::string& container, const Status& why);

// ------------------------------------------------------- 2. orphans, leases

// A container or a lease's owner that recovery leaves alone: a row owns it,
// or it is stuck (a destroy failed this start, so something may still use
// its address). Everything else is destroyed (containers) or released (leases).
bool ownedOrStuck(const std::string& container, const std::set<std::string>& owned,
                  const std::set<std::string>& stuck);

// --------------------------------------------------------------- 3. rows

enum class RowAction {
  kLeaveBroken,  // BROKEN: left for an operator (qabox delete retries); only routed
  kBreak,        // its container's state cannot be read: BROKEN
  kMarkGone,     // its container is missing: FAILED, "is gone"
  // Stopped (a host reboot) while READY or DEPLOYING: recorded asleep, so
  // the first request wakes it and is held until its health check passes,
  // instead of a 502 while the app starts.
  kSleep,
  kStart,  // stopped otherwise (FAILED, DELETING) but not asleep: started again
  // Running while SLEEPING: a wake (or a sleep) the agent died in. Stopped,
  // so the row, the route and the host agree; the next request wakes it.
  kStop,
  kKeep,  // as it is
};

struct RowDecision {
  RowAction action = RowAction::kKeep;
  std::string message;  // the row's message for kBreak and kMarkGone
  // No operation is in flight after a restart: CREATING and DEPLOYING
  // become READY, DELETING FAILED. With kStart, only when the start worked.
  std::optional<EnvState> settle;
};

// Every row but a BROKEN one has its container's state asked.
bool needsContainerState(const Environment& row);

// `container` is the state of row.container when needsContainerState(),
// else nullopt.
RowDecision decideRow(const Environment& row,
                      const std::optional<Result<ContainerState>>& container);

// ----------------------------------------------------------- the executor

// What one recovery run carries from step to step.
struct Run {
  std::set<std::string> stuck;  // containers a destroy failed on: kept, leases too
  size_t broken = 0;            // rows made BROKEN
};

}  // namespace qabox::recovery
