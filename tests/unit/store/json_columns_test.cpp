// The env_json and secret_keys_json columns: what the rows in the field hold
// (written by the store's earlier hand-written writer) reads back the same,
// and what is written now is the same bytes.
#include "store/json_columns.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/store/old_rows.h"

#include <map>
#include <string>
#include <vector>

namespace qabox::store {
namespace {

using ::testing::HasSubstr;

using test::kEnv;
using test::kKeys;
using test::kOldEnvJson;
using test::kOldKeysJson;

TEST(JsonColumns, RowsOfTheEarlierWriterReadBackTheSame) {
  auto env = decodeStringMap(kOldEnvJson, "env_json");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(*env, kEnv);
  auto keys = decodeStringList(kOldKeysJson, "secret_keys_json");
  ASSERT_TRUE(keys.isOk()) << keys.status().toString();
  EXPECT_EQ(*keys, kKeys);

  auto empty = decodeStringMap("{}", "env_json");
  ASSERT_TRUE(empty.isOk());
  EXPECT_TRUE(empty->empty());
  auto none = decodeStringList("[]", "secret_keys_json");
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->empty());
}

TEST(JsonColumns, WritesTheSameBytesAsTheEarlierWriter) {
  auto env = encodeStringMap(kEnv, "env");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(*env, kOldEnvJson);
  auto keys = encodeStringList(kKeys, "keys");
  ASSERT_TRUE(keys.isOk()) << keys.status().toString();
  EXPECT_EQ(*keys, kOldKeysJson);
  EXPECT_EQ(*encodeStringMap({}, "env"), "{}");
  EXPECT_EQ(*encodeStringList({}, "keys"), "[]");
}

TEST(JsonColumns, WhatIsWrittenReadsBack) {
  std::map<std::string, std::string> env = kEnv;
  env["ALL"] = "";
  for (int c = 1; c < 0x80; ++c) env["ALL"] += static_cast<char>(c);
  auto text = encodeStringMap(env, "env");
  ASSERT_TRUE(text.isOk());
  auto back = decodeStringMap(*text, "env_json");
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, env);
}

// JSON an operator may have written by hand in the sqlite3 shell, which the
// earlier reader accepted: spaces, "\/", \u escapes in either case, a
// surrogate pair, a repeated key (the last one wins).
TEST(JsonColumns, ReadsAnyEquivalentSpelling) {
  auto env = decodeStringMap(
      " {\n\t\"A\" : \"a\\/b\" , \"U\":\"\\u00FC\\u00fc\\ud83d\\ude00\", \"A\": \"again\"} ",
      "env_json");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(*env, (std::map<std::string, std::string>{{"A", "again"},
                                                      {"U", "\xc3\xbc\xc3\xbc\xf0\x9f\x98\x80"}}));
  auto keys = decodeStringList(" [ \"a\" ,\"\\u0041\" ] ", "secret_keys_json");
  ASSERT_TRUE(keys.isOk()) << keys.status().toString();
  EXPECT_EQ(*keys, (std::vector<std::string>{"a", "A"}));
}

TEST(JsonColumns, BadJsonIsDataLossNamingTheColumn) {
  for (const char* bad :
       {"", "{", R"({"A":)", R"({"A":1})", R"({"A":null})", R"({"A":["x"]})", "[]",
        R"({"A":"x"} trailing)", R"({"A":"\ud800"})", "{\"A\":\"\xff\"}", R"({"A":"\q"})"}) {
    auto env = decodeStringMap(bad, "environment bad: env_json");
    ASSERT_FALSE(env.isOk()) << bad;
    EXPECT_EQ(env.status().code(), Code::kDataLoss) << bad;
    EXPECT_THAT(env.status().message(), HasSubstr("environment bad: env_json")) << bad;
  }
  for (const char* bad : {"", "[", R"(["a",])", "[1]", R"([null])", "{}", R"(["a"]])"}) {
    auto keys = decodeStringList(bad, "environment bad: secret_keys_json");
    ASSERT_FALSE(keys.isOk()) << bad;
    EXPECT_EQ(keys.status().code(), Code::kDataLoss) << bad;
    EXPECT_THAT(keys.status().message(), HasSubstr("environment bad: secret_keys_json")) << bad;
  }
}

// JSON text is UTF-8: a string that is not is refused with a message, not
// written in a form that would not read back.
TEST(JsonColumns, NonUtf8IsAnErrorNotACrash) {
  auto env = encodeStringMap({{"A", "bad \xff byte"}}, "environment t: env");
  ASSERT_FALSE(env.isOk());
  EXPECT_EQ(env.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(env.status().message(), HasSubstr("environment t: env"));
  auto keys = encodeStringList({"\xc3"}, "environment t: secret keys");
  ASSERT_FALSE(keys.isOk());
  EXPECT_EQ(keys.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace qabox::store
