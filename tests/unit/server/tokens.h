#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "server/auth.h"
#include "store/store.h"

namespace qabox::test {

// Puts a token in the store, as CreateToken would, and returns its secret.
inline std::string putToken(Store& store, const std::string& name, const std::string& role,
                            TimePoint createdAt, std::optional<TimePoint> expires = std::nullopt) {
  auto secret = newTokenSecret();
  EXPECT_TRUE(secret.isOk());
  TokenRecord t;
  t.name = name;
  t.role = role;
  t.hash = hashTokenSecret(*secret);
  t.createdAt = createdAt;
  t.expiresAt = expires;
  EXPECT_TRUE(store.putToken(t).isOk());
  return *secret;
}

}  // namespace qabox::test
