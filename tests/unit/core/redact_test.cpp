#include "core/redact.h"

#include <gtest/gtest.h>

#include <string>

namespace qabox {
namespace {

using Secrets = std::map<std::string, std::string>;

TEST(Redactor, ReplacesEveryValueWithItsKey) {
  Redactor r(Secrets{{"API_KEY", "s3cr3t"}, {"DB_PASSWORD", "hunter2"}});
  EXPECT_EQ(r.redact("key=s3cr3t pw=hunter2 again s3cr3ts3cr3t"),
            "key=[secret API_KEY] pw=[secret DB_PASSWORD] again [secret API_KEY][secret API_KEY]");
  EXPECT_EQ(r.redact("nothing here s3cr3 hunter"), "nothing here s3cr3 hunter");
  EXPECT_EQ(r.redact(""), "");
}

TEST(Redactor, LongerValueWinsAndEmptyValuesAreIgnored) {
  Redactor r(Secrets{{"SHORT", "abc"}, {"LONG", "abcdef"}, {"EMPTY", ""}});
  EXPECT_EQ(r.redact("abcdef abc abcde"), "[secret LONG] [secret SHORT] [secret SHORT]de");
  Redactor none(Secrets{{"EMPTY", ""}});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.redact("text"), "text");
}

TEST(Redactor, BinaryValuesAndOutput) {
  std::string value("a\0b\xff", 4);
  Redactor r(Secrets{{"BIN", value}});
  EXPECT_EQ(r.redact(std::string("x") + value + "y"), "x[secret BIN]y");
}

// Output arrives in pieces cut anywhere: a value split across them is still
// replaced, and nothing else is lost or held back for good.
TEST(Redactor, StreamFindsValuesCutAnywhere) {
  const std::string text = "build: token=s3cr3t-value, again s3cr3t-value; s3cr3t-valu done\n";
  const std::string want = "build: token=[secret TOKEN], again [secret TOKEN]; s3cr3t-valu done\n";
  for (size_t piece = 1; piece <= text.size(); ++piece) {
    Redactor r(Secrets{{"TOKEN", "s3cr3t-value"}});
    std::string out;
    for (size_t i = 0; i < text.size(); i += piece) out += r.feed(text.substr(i, piece));
    out += r.finish();
    EXPECT_EQ(out, want) << "pieces of " << piece;
  }
}

TEST(Redactor, StreamHoldsOnlyWhatCouldStillBeAValue) {
  Redactor r(Secrets{{"K", "secret"}});
  EXPECT_EQ(r.feed("hello sec"), "hello ");
  EXPECT_EQ(r.feed("ond"), "second");
  EXPECT_EQ(r.feed("secre"), "");
  EXPECT_EQ(r.feed("t!"), "[secret K]!");
  EXPECT_EQ(r.feed("se"), "");
  EXPECT_EQ(r.finish(), "se");  // the end of the stream decides
  EXPECT_EQ(r.finish(), "");
}

TEST(Redactor, StreamPrefersTheLongerValueAcrossPieces) {
  Redactor r(Secrets{{"SHORT", "abc"}, {"LONG", "abcdef"}});
  std::string out = r.feed("xabc");
  out += r.feed("def abc");
  out += r.finish();
  EXPECT_EQ(out, "x[secret LONG] [secret SHORT]");
  Redactor r2(Secrets{{"SHORT", "abc"}, {"LONG", "abcdef"}});
  out = r2.feed("abcd");
  out += r2.finish();  // "abcdef" never completed: the shorter one applies
  EXPECT_EQ(out, "[secret SHORT]d");
}

}  // namespace
}  // namespace qabox
