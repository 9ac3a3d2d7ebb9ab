// The dashboard's pure parts: escaping, the list's filter and sort, the
// preview redirect's checks (no open redirect), and that pages carry no
// byte of an environment unescaped.
#include <gtest/gtest.h>

#include "web/html.h"
#include "web/list_view.h"
#include "web/pages.h"
#include "web/preview.h"

namespace qabox::web {
namespace {

TEST(Escape, MarkupAndControlCharactersCannotPass) {
  EXPECT_EQ(escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;");
  EXPECT_EQ(escape("a\x1b[31mred\x07"), "a\xEF\xBF\xBD[31mred\xEF\xBF\xBD");
  EXPECT_EQ(escape("line\nnext\ttab"), "line\nnext\ttab");
}

TEST(Query, ParsesAndDropsMalformedPairs) {
  auto q = parseQuery("q=feature%2FX&state=READY&bad=%zz&q=second&+=x&dir=desc");
  EXPECT_EQ(q["q"], "feature/X");
  EXPECT_EQ(q["state"], "READY");
  EXPECT_EQ(q.count("bad"), 0u);
  EXPECT_EQ(q["dir"], "desc");
}

TEST(Query, AHugeQueryReadsAtMost64Pairs) {
  std::string s;
  for (int i = 0; i < 1000; ++i) s += "k" + std::to_string(i) + "=v&";
  EXPECT_LE(parseQuery(s).size(), 64u);
}

Environment env(const std::string& ticket, EnvState state, const std::string& source,
                int ageMinutes) {
  Environment e;
  e.ticket = ticket;
  e.slug = ticket;
  for (char& c : e.slug) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  e.state = state;
  e.spec.repo = "shop";
  e.spec.sourceBranch = source;
  e.spec.targetBranch = "develop";
  e.spec.image = "busybox";
  e.createdAt = Clock::now() - std::chrono::minutes(ageMinutes);
  return e;
}

TEST(ListQuery, FiltersByTextAndStateAndSorts) {
  std::vector<Environment> all = {env("EXMP-2", EnvState::kReady, "feature/cart", 5),
                                  env("EXMP-1", EnvState::kFailed, "feature/search", 50),
                                  env("EXMP-3", EnvState::kReady, "feature/Search-v2", 1)};
  ListQuery q = parseListQuery({{"q", "SEARCH"}});
  auto r = applyListQuery(all, q);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].ticket, "EXMP-1");
  q = parseListQuery({{"state", "READY"}, {"sort", "age"}});
  r = applyListQuery(all, q);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].ticket, "EXMP-3");  // youngest first
  q = parseListQuery({{"sort", "ticket"}, {"dir", "desc"}});
  r = applyListQuery(all, q);
  EXPECT_EQ(r[0].ticket, "EXMP-3");
  EXPECT_EQ(r[2].ticket, "EXMP-1");
}

TEST(ListQuery, UnknownValuesFallBackAndRoundTrip) {
  ListQuery q = parseListQuery({{"state", "NOPE"}, {"sort", "'; drop"}, {"q", "a b"}});
  EXPECT_EQ(q.state, "");
  EXPECT_EQ(q.sort, "ticket");
  EXPECT_EQ(listQueryString(q), "q=a%20b");
}

TEST(Preview, AcceptsOnlyThisDomainsPreviews) {
  auto t = checkPreviewTarget("http://exmp-113.qa.test:8080/priority?x=1#frag", "qa.test", "qabox");
  ASSERT_TRUE(t.isOk()) << t.status().toString();
  EXPECT_EQ(t->scheme, "http");
  EXPECT_EQ(t->host, "exmp-113.qa.test:8080");
  EXPECT_EQ(t->slug, "exmp-113");
  EXPECT_EQ(t->pathQuery, "/priority?x=1");
  EXPECT_TRUE(checkPreviewTarget("https://EXMP-9.QA.TEST", "qa.test", "qabox").isOk());
}

TEST(Preview, RefusesEverythingThatWouldBeAnOpenRedirect) {
  for (const char* to :
       {"http://evil.example/", "https://qa.test.evil.example/",
        "http://exmp-1.qa.test@evil.example/", "//exmp-1.qa.test/", "javascript:alert(1)",
        "http://a.b.qa.test/", "http://qabox.qa.test/", "http://exmp-1.qa.test//evil.example",
        "http://exmp-1.qa.test/\\evil", "http://exmp-1.qa.test/a\r\nSet-Cookie: x",
        "http://exmp-1.qa.test:99999/", "http://-x.qa.test/", "http://exmp-1.qa.testx/", ""}) {
    EXPECT_FALSE(checkPreviewTarget(to, "qa.test", "qabox").isOk()) << to;
  }
}

TEST(Preview, TheGrantRedirectGoesToThePreviewsOwnHost) {
  auto t = checkPreviewTarget("http://exmp-1.qa.test/a b?c=d&e", "qa.test", "qabox");
  EXPECT_FALSE(t.isOk());  // a raw space is refused
  t = checkPreviewTarget("http://exmp-1.qa.test/a?c=d&e", "qa.test", "qabox");
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(grantRedirect(*t, "G.H"),
            "http://exmp-1.qa.test/.qabox/auth?grant=G.H&next=%2Fa%3Fc%3Dd%26e");
}

TEST(Pages, EveryByteFromAnEnvironmentIsEscaped) {
  PageContext c;
  c.viewer = {"alice", "qa", "tok"};
  c.domain = "qa.test";
  c.now = Clock::now();
  Environment e = env("EXMP-1", EnvState::kFailed, "feature/<b>x</b>", 3);
  e.message = "<img src=x onerror=alert(1)>";
  e.commit = "\"><script>";
  std::string rows = listRows(c, {{e, "http://exmp-1.qa.test"}});
  EXPECT_EQ(rows.find("<img"), std::string::npos);
  EXPECT_EQ(rows.find("<b>"), std::string::npos);
  EXPECT_EQ(rows.find("<script>"), std::string::npos);
  EXPECT_NE(rows.find("FAILED"), std::string::npos);  // the state in words too
  EnvView v;
  v.env = e;
  v.events.push_back({1, Clock::now(), "EXMP-1", "deploy", "token:<x>", "error", "<svg onload=1>"});
  v.processes.push_back({"<proc>", false, "running", 1, 0, "<i>"});
  v.phases.push_back({"<merge>", std::chrono::milliseconds(5)});
  std::string page = envPage(c, v);
  for (const char* bad : {"<svg", "<proc>", "<i>", "<merge>", "token:<x>", "<img"}) {
    EXPECT_EQ(page.find(bad), std::string::npos) << bad;
  }
  std::string log = logPage(c, "EXMP-1", "app", "", "</pre><script>x</script>", "/s");
  EXPECT_EQ(log.find("</pre><script>"), std::string::npos);
}

TEST(Pages, AMergeThatWentStaleSaysSoInTheListAndOnItsPage) {
  PageContext c;
  c.viewer = {"alice", "qa", "tok"};
  c.domain = "qa.test";
  c.now = Clock::now();
  Environment e = env("EXMP-1", EnvState::kReady, "feature/x", 3);
  e.spec.repo = "shop";
  e.spec.targetBranch = "develop<i>";
  e.targetCommit = std::string(40, 'b');
  e.targetHead = std::string(40, 'b');
  EXPECT_EQ(listRows(c, {{e, "http://exmp-1.qa.test"}}).find("behind"), std::string::npos);
  EnvView v;
  v.env = e;
  EXPECT_NE(envPage(c, v).find("up to date"), std::string::npos);

  e.targetHead = std::string(40, 'c');
  e.behind = 3;
  std::string rows = listRows(c, {{e, "http://exmp-1.qa.test"}});
  EXPECT_NE(rows.find(">behind develop&lt;i&gt; by 3</span>"), std::string::npos) << rows;
  EXPECT_NE(rows.find("is at cccccccccccc: deploy again"), std::string::npos) << rows;
  v.env = e;
  std::string page = envPage(c, v);
  EXPECT_NE(page.find("now at <code>cccccccccccc</code>, 3 commits ahead"), std::string::npos)
      << page;
  EXPECT_EQ(page.find("<i>"), std::string::npos);
}

TEST(Pages, TheHostPageShowsTheLastPassEvenWhenItReclaimedNothing) {
  PageContext c;
  c.viewer = {"alice", "ops", "tok"};
  c.now = Clock::now();
  HostView v;
  EXPECT_NE(hostPage(c, v).find("None since the agent started"), std::string::npos);
  v.lastPass = Reaper::LastPass{c.now - std::chrono::minutes(3),       "reaper", "", 12, 0, 0,
                                {"remote <shop> could not be fetched"}};
  std::string page = hostPage(c, v);
  EXPECT_NE(page.find("12 environments judged, 0 reclaimed, 0 failed"), std::string::npos);
  EXPECT_NE(page.find("&lt;shop&gt;"), std::string::npos);
  EXPECT_EQ(page.find("<shop>"), std::string::npos);
}

TEST(Pages, TheFilterFormIsClosedBeforeTheTable) {
  PageContext c;
  c.viewer = {"alice", "qa", "tok"};
  std::string page = listPage(c, {}, ListQuery{}, 0);
  size_t select = page.find("</select>"), form = page.find("</form>", page.find("filter"));
  ASSERT_NE(select, std::string::npos);
  EXPECT_LT(select, page.find("<table"));
  EXPECT_LT(form, page.find("<table"));
}

TEST(Pages, ActionsFollowTheRole) {
  PageContext c;
  c.viewer = {"bob", "viewer", "tok"};
  EnvView v;
  v.env = env("EXMP-1", EnvState::kReady, "f", 1);
  std::string page = envPage(c, v);
  EXPECT_EQ(page.find("/redeploy"), std::string::npos);
  EXPECT_EQ(page.find("/delete"), std::string::npos);
  v.allowed = {true, true, true, true, false};
  page = envPage(c, v);
  EXPECT_NE(page.find("/redeploy"), std::string::npos);
  EXPECT_NE(page.find("/sleep"), std::string::npos);
  EXPECT_NE(page.find("name=\"csrf\" value=\"tok\""), std::string::npos);
  EXPECT_EQ(page.find("/delete"), std::string::npos);
}

}  // namespace
}  // namespace qabox::web
