// The environment states' shared sets.
#include "core/environment.h"

#include <gtest/gtest.h>

namespace qabox {
namespace {

TEST(EnvState, OnlyCreatingDeployingAndDeletingAreInAnOperation) {
  const std::pair<EnvState, bool> table[] = {
      {EnvState::kCreating, true}, {EnvState::kDeploying, true}, {EnvState::kDeleting, true},
      {EnvState::kReady, false},   {EnvState::kFailed, false},   {EnvState::kSleeping, false},
      {EnvState::kBroken, false},
  };
  for (const auto& [state, busy] : table) EXPECT_EQ(inOperation(state), busy) << stateName(state);
}

TEST(EnvState, NamesRoundTrip) {
  for (auto s : {EnvState::kCreating, EnvState::kDeploying, EnvState::kReady, EnvState::kFailed,
                 EnvState::kDeleting, EnvState::kSleeping, EnvState::kBroken}) {
    EXPECT_EQ(parseState(stateName(s)), s);
  }
  EXPECT_FALSE(parseState("ready").has_value());
}

}  // namespace
}  // namespace qabox
