#include "init/app_env.h"

#include <gtest/gtest.h>

#include <map>

namespace qabox::init {
namespace {

std::map<std::string, std::string> vars(const AppEnv& e) {
  std::map<std::string, std::string> m;
  for (const auto& [k, v] : e.vars) m[k] = v;
  return m;
}

// What the agent's shellQuote writes.
std::string quote(const std::string& v) {
  std::string out = "'";
  for (char c : v) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

TEST(AppEnv, ReadsWhatShellQuoteWrites) {
  const std::string hostile = "it's $(rm -rf /) `x` \"q\" \\ \n second line; 'end'";
  AppEnv e = parseAppEnv("A=" + quote("plain") + "\nB=" + quote(hostile) + "\nC=" + quote("") +
                         "\nD=" + quote("'") + "\n");
  EXPECT_TRUE(e.errors.empty()) << e.errors.front();
  auto m = vars(e);
  EXPECT_EQ(m["A"], "plain");
  EXPECT_EQ(m["B"], hostile);
  EXPECT_EQ(m["C"], "");
  EXPECT_EQ(m["D"], "'");
}

TEST(AppEnv, PlainValuesCommentsAndExport) {
  AppEnv e = parseAppEnv("# comment\n\nexport X=1\nY=a/b:c@d\nZ=x'y z'\n");
  EXPECT_TRUE(e.errors.empty());
  auto m = vars(e);
  EXPECT_EQ(m["X"], "1");
  EXPECT_EQ(m["Y"], "a/b:c@d");
  EXPECT_EQ(m["Z"], "xy z");
}

TEST(AppEnv, BadLinesAreNamedAndSkippedTheRestCounts) {
  AppEnv e = parseAppEnv("GOOD='1'\nBAD LINE\n1X='no'\nV=$(id)\nK=a b\nAFTER='2'\nOPEN='never");
  auto m = vars(e);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m["GOOD"], "1");
  EXPECT_EQ(m["AFTER"], "2");
  ASSERT_EQ(e.errors.size(), 5u);
  EXPECT_NE(e.errors[0].find("line 2"), std::string::npos) << e.errors[0];
  EXPECT_NE(e.errors[1].find("line 3"), std::string::npos);
  EXPECT_NE(e.errors[2].find("line 4"), std::string::npos);
  EXPECT_NE(e.errors[3].find("line 5"), std::string::npos);
  EXPECT_NE(e.errors[4].find("line 7"), std::string::npos);
  EXPECT_NE(e.errors[4].find("not closed"), std::string::npos);
}

TEST(AppEnv, LineNumbersCountLinesInsideQuotes) {
  AppEnv e = parseAppEnv("A='x\ny\nz'\nBAD\n");
  ASSERT_EQ(e.errors.size(), 1u);
  EXPECT_NE(e.errors[0].find("line 4"), std::string::npos) << e.errors[0];
}

TEST(AppEnv, HugeAndBinaryInputNeverCrashes) {
  std::string junk;
  for (int i = 0; i < 200000; ++i) junk += static_cast<char>((i * 131) % 256);
  AppEnv e = parseAppEnv(junk);
  EXPECT_LE(e.errors.size(), 20u);
  std::string longKey(100000, 'K');
  e = parseAppEnv(longKey + "='v'\n");
  EXPECT_TRUE(e.vars.empty());
  EXPECT_EQ(e.errors.size(), 1u);
}

TEST(AppEnv, EnvironmentHasPathAndHomeAppEnvWins) {
  AppEnv e = parseAppEnv("HOME='/elsewhere'\nX='1'\n");
  auto env = processEnvironment(e, "/home/u");
  EXPECT_NE(std::find(env.begin(), env.end(), "HOME=/elsewhere"), env.end());
  EXPECT_NE(std::find(env.begin(), env.end(), "X=1"), env.end());
  bool path = false;
  for (const auto& kv : env) path = path || kv.rfind("PATH=", 0) == 0;
  EXPECT_TRUE(path);
  env = processEnvironment(AppEnv{}, "/home/u");
  EXPECT_NE(std::find(env.begin(), env.end(), "HOME=/home/u"), env.end());
}

}  // namespace
}  // namespace qabox::init
