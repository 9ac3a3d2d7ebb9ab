// The journal's kinds and outcomes and the strings the operations table holds.
#include <gtest/gtest.h>

#include "store/store.h"

namespace qabox {
namespace {

TEST(JournalNames, KindsAreStoredAsTheirOldNames) {
  const std::pair<JournalKind, const char*> kinds[] = {{JournalKind::kCreate, "create"},
                                                       {JournalKind::kRedeploy, "redeploy"},
                                                       {JournalKind::kDelete, "delete"},
                                                       {JournalKind::kImageBuild, "image.build"},
                                                       {JournalKind::kDepsBuild, "deps.build"}};
  for (const auto& [kind, name] : kinds) {
    EXPECT_EQ(journalKindName(kind), name);
    EXPECT_EQ(parseJournalKind(name), kind) << name;
  }
  for (const char* unknown : {"", "Create", "image_build", "build", "create "}) {
    EXPECT_FALSE(parseJournalKind(unknown).has_value()) << unknown;
  }
}

TEST(JournalNames, OutcomesAreStoredAsTheirOldNames) {
  const std::pair<JournalOutcome, const char*> outcomes[] = {
      {JournalOutcome::kUnfinished, ""},
      {JournalOutcome::kOk, "ok"},
      {JournalOutcome::kError, "error"},
      {JournalOutcome::kRolledBack, "rolled-back"}};
  for (const auto& [outcome, name] : outcomes) {
    EXPECT_EQ(journalOutcomeName(outcome), name);
    EXPECT_EQ(parseJournalOutcome(name), outcome) << name;
  }
  for (const char* unknown : {"OK", "rolled_back", "failed", " "}) {
    EXPECT_FALSE(parseJournalOutcome(unknown).has_value()) << unknown;
  }
}

}  // namespace
}  // namespace qabox
