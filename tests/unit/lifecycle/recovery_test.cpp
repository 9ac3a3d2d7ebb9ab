// Recovery's decisions as tables: every situation the start-up recovery
// handles, and what it decides. EnvironmentManager::recover() carries them
// out; manager_test.cpp runs that against a fake runtime and a real store.
#include "lifecycle/recovery.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace qabox {
namespace {

using recovery::decideJournal;
using recovery::decideRow;
using recovery::JournalAction;
using recovery::RowAction;
using recovery::RowRestore;

constexpr const char* kServing = "qabox-t-1";
constexpr const char* kNew = "qabox-t-1_1";

// A kind by its stored name; one this build does not know stands for a
// value from outside the enum (the store refuses such rows, recovery still
// touches nothing for them).
Operation op(const std::string& kind, const std::string& container) {
  JournalKind k = parseJournalKind(kind).value_or(static_cast<JournalKind>(255));
  return {
      7, "t-1", k, container, "10.9.0.3", TimePoint{}, std::nullopt, JournalOutcome::kUnfinished,
      ""};
}

Environment row(const std::string& container, EnvState state, std::string message = "") {
  Environment e;
  e.ticket = "T-1";
  e.slug = "t-1";
  e.container = container;
  e.state = state;
  e.message = std::move(message);
  return e;
}

std::optional<Result<ContainerState>> state(ContainerState s) { return Result<ContainerState>(s); }
std::optional<Result<ContainerState>> unreadable() {
  return Result<ContainerState>(internalError("state qabox-t-1: injected"));
}
const std::optional<Result<ContainerState>> kNotAsked;

// ---------------------------------------------------------------- journal

struct JournalCase {
  const char* situation;
  Operation op;
  std::optional<Environment> row;
  std::optional<Result<ContainerState>> serving;
  // expected
  bool needsServing;
  JournalAction action;
  bool destroy;
  bool deleteRow;
  RowRestore restore;
  bool breakRowWhenStuck;
  const char* done;  // a part of the detail
};

TEST(RecoveryJournal, EveryUnfinishedOperationHasItsDecision) {
  const JournalCase table[] = {
      {"image build: the image builder's own", op("image.build", "busybox-2"), std::nullopt,
       kNotAsked, false, JournalAction::kSkip, false, false, RowRestore::kNone, false, ""},
      {"create, no row", op("create", kServing), std::nullopt, kNotAsked, false,
       JournalAction::kRollBackCreate, true, false, RowRestore::kNone, false,
       "rolled back the unfinished create of qabox-t-1"},
      {"create, its row CREATING", op("create", kServing), row(kServing, EnvState::kCreating),
       kNotAsked, false, JournalAction::kRollBackCreate, true, true, RowRestore::kNone, true,
       "rolled back the unfinished create"},
      {"create, its row FAILED", op("create", kServing), row(kServing, EnvState::kFailed),
       kNotAsked, false, JournalAction::kRollBackCreate, true, true, RowRestore::kNone, true,
       "rolled back the unfinished create"},
      {"create, its row READY: the row stays", op("create", kServing),
       row(kServing, EnvState::kReady), kNotAsked, false, JournalAction::kRollBackCreate, true,
       false, RowRestore::kNone, true, "rolled back the unfinished create"},
      {"create, a row of another container", op("create", kNew), row(kServing, EnvState::kReady),
       kNotAsked, false, JournalAction::kRollBackCreate, true, false, RowRestore::kNone, false,
       "rolled back the unfinished create of qabox-t-1_1"},
      {"redeploy that switched: kept", op("redeploy", kNew), row(kNew, EnvState::kReady), kNotAsked,
       false, JournalAction::kKeepSwitched, false, false, RowRestore::kNone, false,
       "kept qabox-t-1_1: the redeploy had already switched"},
      {"redeploy, no row", op("redeploy", kNew), std::nullopt, kNotAsked, false,
       JournalAction::kRollBackRedeploy, true, false, RowRestore::kNone, false,
       "rolled back the unfinished redeploy into qabox-t-1_1"},
      {"redeploy, serving container running", op("redeploy", kNew),
       row(kServing, EnvState::kDeploying), state(ContainerState::kRunning), true,
       JournalAction::kRollBackRedeploy, true, false, RowRestore::kReady, false,
       "rolled back the unfinished redeploy"},
      {"redeploy, serving container stopped", op("redeploy", kNew),
       row(kServing, EnvState::kDeploying), state(ContainerState::kStopped), true,
       JournalAction::kRollBackRedeploy, true, false, RowRestore::kReady, false,
       "rolled back the unfinished redeploy"},
      {"redeploy, serving container missing", op("redeploy", kNew),
       row(kServing, EnvState::kDeploying), state(ContainerState::kMissing), true,
       JournalAction::kRollBackRedeploy, true, false, RowRestore::kFailed, false,
       "rolled back the unfinished redeploy"},
      {"redeploy, serving container unreadable", op("redeploy", kNew),
       row(kServing, EnvState::kDeploying), unreadable(), true, JournalAction::kRollBackRedeploy,
       true, false, RowRestore::kBroken, false, "rolled back the unfinished redeploy"},
      {"delete, its row DELETING", op("delete", kServing), row(kServing, EnvState::kDeleting),
       kNotAsked, false, JournalAction::kCompleteDelete, true, true, RowRestore::kNone, true,
       "completed the unfinished delete of qabox-t-1"},
      {"delete, no row", op("delete", kServing), std::nullopt, kNotAsked, false,
       JournalAction::kCompleteDelete, true, false, RowRestore::kNone, false,
       "completed the unfinished delete"},
      {"delete, a row of another container", op("delete", kNew), row(kServing, EnvState::kReady),
       kNotAsked, false, JournalAction::kCompleteDelete, true, false, RowRestore::kNone, false,
       "completed the unfinished delete of qabox-t-1_1"},
      {"a kind this agent does not know", op("resize", kServing), row(kServing, EnvState::kReady),
       kNotAsked, false, JournalAction::kClose, false, false, RowRestore::kNone, false, ""},
  };
  for (const auto& c : table) {
    SCOPED_TRACE(c.situation);
    EXPECT_EQ(recovery::needsServingState(c.op, c.row), c.needsServing);
    auto d = decideJournal(c.op, c.row, c.serving);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.destroy, c.destroy);
    EXPECT_EQ(d.deleteRowWhenDestroyed, c.deleteRow);
    EXPECT_EQ(d.restore, c.restore);
    EXPECT_EQ(d.breakRowWhenStuck, c.breakRowWhenStuck);
    EXPECT_NE(d.done.find(c.done), std::string::npos) << d.done;
    if (std::string(c.done).empty()) {
      EXPECT_EQ(d.done, "");
    }
  }
}

TEST(RecoveryJournal, AnInterruptedRedeploySaysSoOrWhyItsContainerIsUnknown) {
  auto back = decideJournal(op("redeploy", kNew), row(kServing, EnvState::kDeploying),
                            state(ContainerState::kRunning));
  EXPECT_EQ(back.restoreMessage, "redeploy interrupted by an agent restart");
  auto unknown =
      decideJournal(op("redeploy", kNew), row(kServing, EnvState::kDeploying), unreadable());
  EXPECT_EQ(unknown.restoreMessage,
            "recovery could not read the state of container qabox-t-1: state qabox-t-1: "
            "injected");
}

TEST(RecoveryJournal, CannotDestroySaysWhatAndHowItEnds) {
  EXPECT_EQ(recovery::cannotDestroy("qabox-t-1", internalError("device busy")),
            "recovery could not destroy container qabox-t-1: device busy; out of service until "
            "qabox delete gets it removed");
}

// -------------------------------------------------------- orphans, leases

TEST(RecoveryOrphans, OnlyWhatNoRowOwnsAndNoDestroyFailedOnGoes) {
  const std::set<std::string> owned = {"qabox-a-1", "qabox-b-1"};
  const std::set<std::string> stuck = {"qabox-stuck-1"};
  EXPECT_TRUE(recovery::ownedOrStuck("qabox-a-1", owned, stuck));
  EXPECT_TRUE(recovery::ownedOrStuck("qabox-stuck-1", owned, stuck));
  EXPECT_FALSE(recovery::ownedOrStuck("qabox-orphan", owned, stuck));
  EXPECT_FALSE(recovery::ownedOrStuck("qabox-a-1_1", owned, stuck));
}

// ------------------------------------------------------------------- rows

struct RowCase {
  const char* situation;
  Environment row;
  std::optional<Result<ContainerState>> container;
  // expected
  bool needsState;
  RowAction action;
  std::optional<EnvState> settle;
  const char* message;  // a part of it
};

TEST(RecoveryRows, EveryRowAgainstItsContainerHasItsDecision) {
  const RowCase table[] = {
      {"BROKEN: left for an operator", row(kServing, EnvState::kBroken, "could not destroy"),
       kNotAsked, false, RowAction::kLeaveBroken, std::nullopt, ""},
      {"state unreadable", row(kServing, EnvState::kReady), unreadable(), true, RowAction::kBreak,
       std::nullopt, "recovery could not read the state of container qabox-t-1: state"},
      {"missing", row(kServing, EnvState::kReady), state(ContainerState::kMissing), true,
       RowAction::kMarkGone, std::nullopt,
       "container qabox-t-1 is gone (found missing at agent start)"},
      {"missing while CREATING", row(kServing, EnvState::kCreating),
       state(ContainerState::kMissing), true, RowAction::kMarkGone, std::nullopt, "is gone"},
      {"missing while SLEEPING", row(kServing, EnvState::kSleeping),
       state(ContainerState::kMissing), true, RowAction::kMarkGone, std::nullopt, "is gone"},
      {"missing, already recorded gone",
       row(kServing, EnvState::kFailed,
           "container qabox-t-1 is gone (found missing at agent start)"),
       state(ContainerState::kMissing), true, RowAction::kKeep, std::nullopt, ""},
      {"missing, FAILED for another reason", row(kServing, EnvState::kFailed, "health failed"),
       state(ContainerState::kMissing), true, RowAction::kMarkGone, std::nullopt, "is gone"},
      {"stopped READY (a reboot): asleep until a request", row(kServing, EnvState::kReady),
       state(ContainerState::kStopped), true, RowAction::kSleep, std::nullopt, ""},
      {"stopped FAILED", row(kServing, EnvState::kFailed), state(ContainerState::kStopped), true,
       RowAction::kStart, std::nullopt, ""},
      {"stopped DEPLOYING", row(kServing, EnvState::kDeploying), state(ContainerState::kStopped),
       true, RowAction::kSleep, std::nullopt, ""},
      {"stopped DELETING", row(kServing, EnvState::kDeleting), state(ContainerState::kStopped),
       true, RowAction::kStart, EnvState::kFailed, ""},
      {"stopped SLEEPING: stays asleep", row(kServing, EnvState::kSleeping),
       state(ContainerState::kStopped), true, RowAction::kKeep, std::nullopt, ""},
      {"running READY", row(kServing, EnvState::kReady), state(ContainerState::kRunning), true,
       RowAction::kKeep, std::nullopt, ""},
      {"running CREATING", row(kServing, EnvState::kCreating), state(ContainerState::kRunning),
       true, RowAction::kKeep, EnvState::kReady, ""},
      {"running DEPLOYING", row(kServing, EnvState::kDeploying), state(ContainerState::kRunning),
       true, RowAction::kKeep, EnvState::kReady, ""},
      {"running DELETING", row(kServing, EnvState::kDeleting), state(ContainerState::kRunning),
       true, RowAction::kKeep, EnvState::kFailed, ""},
      // A wake the agent died in after the start: stopped again, or it
      // would hold its memory while the route says asleep.
      {"running SLEEPING: stopped", row(kServing, EnvState::kSleeping),
       state(ContainerState::kRunning), true, RowAction::kStop, std::nullopt, ""},
      {"another state, FAILED", row(kServing, EnvState::kFailed), state(ContainerState::kOther),
       true, RowAction::kKeep, std::nullopt, ""},
  };
  for (const auto& c : table) {
    SCOPED_TRACE(c.situation);
    EXPECT_EQ(recovery::needsContainerState(c.row), c.needsState);
    auto d = decideRow(c.row, c.container);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.settle, c.settle);
    EXPECT_NE(d.message.find(c.message), std::string::npos) << d.message;
    if (std::string(c.message).empty()) {
      EXPECT_EQ(d.message, "");
    }
  }
}

}  // namespace
}  // namespace qabox
