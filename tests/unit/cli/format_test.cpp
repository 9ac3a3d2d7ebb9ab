#include "cli/format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <sstream>
#include <vector>

namespace qabox::cli {
namespace {

using google::protobuf::util::TimeUtil;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// A fixed "now" keeps every expectation exact.
const TimePoint kNow = TimePoint(seconds(1'700'000'000));

google::protobuf::Timestamp at(TimePoint t) {
  return TimeUtil::MillisecondsToTimestamp(
      std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count());
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(RelativeTime, PastFutureAndUnset) {
  EXPECT_EQ(relativeTime(at(kNow - minutes(3)), kNow), "3m ago");
  EXPECT_EQ(relativeTime(at(kNow - seconds(45)), kNow), "45s ago");
  EXPECT_EQ(relativeTime(at(kNow - hours(2)), kNow), "2h ago");
  EXPECT_EQ(relativeTime(at(kNow - hours(47)), kNow), "47h ago");
  EXPECT_EQ(relativeTime(at(kNow - hours(72)), kNow), "3d ago");
  EXPECT_EQ(relativeTime(at(kNow + hours(2)), kNow), "in 2h");
  EXPECT_EQ(relativeTime(at(kNow), kNow), "0s ago");
  EXPECT_EQ(relativeTime(google::protobuf::Timestamp(), kNow), "-");
}

TEST(RelativeTime, AgeHasNoSuffixAndNeverGoesNegative) {
  EXPECT_EQ(age(at(kNow - hours(2)), kNow), "2h");
  EXPECT_EQ(age(at(kNow - minutes(59)), kNow), "59m");
  EXPECT_EQ(age(at(kNow + minutes(5)), kNow), "0s");
  EXPECT_EQ(age(google::protobuf::Timestamp(), kNow), "-");
}

TEST(RelativeTime, ShortDurationBoundaries) {
  EXPECT_EQ(shortDuration(milliseconds(999)), "0s");
  EXPECT_EQ(shortDuration(seconds(59)), "59s");
  EXPECT_EQ(shortDuration(seconds(60)), "1m");
  EXPECT_EQ(shortDuration(minutes(60)), "1h");
  EXPECT_EQ(shortDuration(hours(48)), "2d");
}

TEST(Format, AbsoluteTimeIsUtc) {
  google::protobuf::Timestamp t;
  t.set_seconds(1'700'000'000);
  EXPECT_EQ(absoluteTime(t), "2023-11-14T22:13:20Z");
  EXPECT_EQ(absoluteTime(google::protobuf::Timestamp()), "-");
}

TEST(Format, ElapsedAndBytes) {
  EXPECT_EQ(elapsed(milliseconds(20)), "0.02s");
  EXPECT_EQ(elapsed(milliseconds(3210)), "3.21s");
  EXPECT_EQ(elapsed(milliseconds(12'340)), "12.3s");
  EXPECT_EQ(elapsed(milliseconds(62'000)), "1m02s");
  EXPECT_EQ(humanBytes(512), "512 B");
  EXPECT_EQ(humanBytes(1536), "1.5 KiB");
  EXPECT_EQ(humanBytes(8ULL << 30), "8.0 GiB");
}

TEST(Table, ColumnsAlignAndRowsHaveNoTrailingBlanks) {
  std::string table =
      renderTable({"A", "LONGER", "C"}, {{"wide-cell", "x", "last"}, {"b", "", ""}});
  auto rows = lines(table);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], "A           LONGER   C");
  EXPECT_EQ(rows[1], "wide-cell   x        last");
  EXPECT_EQ(rows[2], "b");
  // Every column starts at the same offset on every row that has it.
  EXPECT_EQ(rows[0].find("LONGER"), rows[1].find("x"));
  EXPECT_EQ(rows[0].find("C"), rows[1].find("last"));
}

TEST(Table, ColourAndUtf8DoNotShiftColumns) {
  std::string table =
      renderTable({"STATE", "NEXT"}, {{"\x1b[32mREADY\x1b[0m", "a"}, {"FAILED", "b"}, {"ñé", "c"}});
  auto rows = lines(table);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(displayWidth(rows[1].substr(0, rows[1].find('a'))), 9u);
  EXPECT_EQ(displayWidth(rows[2].substr(0, rows[2].find('b'))), 9u);
  EXPECT_EQ(displayWidth(rows[3].substr(0, rows[3].find('c'))), 9u);
  EXPECT_EQ(displayWidth("\x1b[31mab\x1b[0m"), 2u);
}

TEST(Table, KeyValuesAlignValues) {
  auto rows = lines(renderKeyValues({{"a", "1"}, {"longer_key", "2"}, {"empty", ""}}));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], "a:          1");
  EXPECT_EQ(rows[1], "longer_key: 2");
  EXPECT_EQ(rows[2], "empty:");
}

TEST(Table, CleanCellRemovesControlCharacters) {
  EXPECT_EQ(cleanCell("a\nb\x1b[2Jc\x7f"), "a b [2Jc ");
}

v1::Environment sampleEnvironment() {
  v1::Environment e;
  e.set_ticket("EXMP-113");
  e.set_hostname("exmp-113.qa.company.int");
  e.set_url("http://exmp-113.qa.company.int");
  e.set_state(v1::Environment::READY);
  e.set_ip("10.44.0.7");
  e.set_image("busybox");
  e.set_image_version(2);
  e.set_container("qabox-exmp-113");
  e.set_repo("shop");
  e.set_source_branch("feature/EXMP-113");
  e.set_target_branch("develop");
  e.set_commit("0123456789abcdef0123456789abcdef01234567");
  *e.mutable_created_at() = at(kNow - hours(2));
  *e.mutable_updated_at() = at(kNow - minutes(10));
  *e.mutable_last_access_at() = at(kNow - minutes(3));
  *e.mutable_deployed_at() = at(kNow - minutes(10));
  *e.mutable_expires_at() = at(kNow + hours(46));
  e.set_port(8080);
  e.set_request_count(12);
  e.set_bytes_in(2048);
  e.set_bytes_out(4096);
  (*e.mutable_env())["FEATURE_X"] = "on";
  e.add_secret_keys("API_KEY");
  return e;
}

TEST(EnvironmentTable, ShowsTheAgreedColumns) {
  v1::ListEnvironmentsResponse list;
  *list.add_environments() = sampleEnvironment();
  auto* other = list.add_environments();
  other->set_ticket("EXMP-7");
  other->set_state(v1::Environment::FAILED);
  *other->mutable_created_at() = at(kNow - seconds(30));
  auto rows = lines(formatEnvironmentTable(list, kNow));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].rfind("TICKET", 0), 0u);
  for (const char* h : {"STATE", "URL", "IMAGE", "COMMIT", "TARGET", "AGE", "LAST USED"}) {
    EXPECT_NE(rows[0].find(h), std::string::npos) << h;
  }
  EXPECT_NE(rows[1].find("0123456789 "), std::string::npos) << "commit is cut to 10";
  EXPECT_EQ(rows[1].find("0123456789a"), std::string::npos);
  EXPECT_NE(rows[1].find("busybox:2"), std::string::npos);
  EXPECT_NE(rows[1].find("3m ago"), std::string::npos);
  EXPECT_EQ(rows[1].find("READY"), rows[0].find("STATE"));
  EXPECT_EQ(rows[2].find("FAILED"), rows[0].find("STATE"));
  size_t ageColumn = rows[0].find(" AGE") + 1;
  EXPECT_EQ(rows[1].find("2h"), ageColumn);
  EXPECT_EQ(rows[2].find("30s"), ageColumn);
  // Unset last use and url read as "-".
  EXPECT_EQ(rows[2].substr(rows[0].find("LAST USED")), "-");
  EXPECT_EQ(rows[2].substr(rows[0].find("URL"), 2), "- ");
}

TEST(EnvironmentTable, SaysWhenTheTargetMovedOn) {
  v1::ListEnvironmentsResponse list;
  auto* level = list.add_environments();
  *level = sampleEnvironment();
  level->set_target_commit(std::string(40, 'b'));
  auto* stale = list.add_environments();
  *stale = sampleEnvironment();
  stale->set_ticket("EXMP-114");
  stale->set_target_commit(std::string(40, 'b'));
  stale->set_behind(3);
  auto* imageOnly = list.add_environments();
  imageOnly->set_ticket("EXMP-1");
  auto rows = lines(formatEnvironmentTable(list, kNow));
  ASSERT_EQ(rows.size(), 4u);
  size_t column = rows[0].find("TARGET");
  EXPECT_EQ(rows[1].substr(column, 8), "develop ");
  EXPECT_EQ(rows[2].substr(column, 20), "behind develop by 3 ");
  EXPECT_EQ(rows[3].substr(column, 2), "- ");

  std::string text = formatEnvironment(*stale, nullptr, kNow);
  EXPECT_NE(text.find("behind develop by 3 (deploy again to bring it up to date)"),
            std::string::npos)
      << text;
  EXPECT_NE(formatEnvironment(*level, nullptr, kNow).find("0 (up to date with develop)"),
            std::string::npos);
}

// In a cluster: a HOST column, LOST tickets, and the hosts that did not
// answer said under the table.
TEST(EnvironmentTable, InAClusterNamesEachHostAndWhoDidNotAnswer) {
  v1::ListEnvironmentsResponse list;
  *list.add_environments() = sampleEnvironment();
  EXPECT_EQ(formatEnvironmentTable(list, kNow).find("HOST"), std::string::npos);
  list.mutable_environments(0)->set_host("qa-1");
  auto* lost = list.add_environments();
  lost->set_ticket("EXMP-9");
  lost->set_state(v1::Environment::LOST);
  lost->set_host("qa-2");
  list.add_warnings("host qa-3 did not answer (deadline): its environments are not listed");
  auto rows = lines(formatEnvironmentTable(list, kNow));
  ASSERT_EQ(rows.size(), 4u);
  size_t column = rows[0].find("HOST");
  ASSERT_NE(column, std::string::npos);
  EXPECT_EQ(rows[1].substr(column, 5), "qa-1 ");
  EXPECT_EQ(rows[2].substr(column, 5), "qa-2 ");
  EXPECT_EQ(rows[2].substr(rows[0].find("STATE"), 4), "LOST");
  EXPECT_EQ(rows[3].rfind("warning: host qa-3 did not answer", 0), 0u) << rows[3];
}

TEST(EnvironmentTable, ColoursStatesOnlyWhenAsked) {
  v1::ListEnvironmentsResponse list;
  *list.add_environments() = sampleEnvironment();
  EXPECT_EQ(formatEnvironmentTable(list, kNow).find('\x1b'), std::string::npos);
  EXPECT_NE(formatEnvironmentTable(list, kNow, Style{true}).find("\x1b[32mREADY"),
            std::string::npos);
}

TEST(EnvironmentTable, BrokenIsShownInRedWithItsName) {
  v1::ListEnvironmentsResponse list;
  auto* e = list.add_environments();
  *e = sampleEnvironment();
  e->set_state(v1::Environment::BROKEN);
  auto rows = lines(formatEnvironmentTable(list, kNow));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].find("BROKEN"), rows[0].find("STATE"));
  EXPECT_NE(formatEnvironmentTable(list, kNow, Style{true}).find("\x1b[31mBROKEN"),
            std::string::npos);
}

TEST(EnvironmentDetail, ShowsEveryFieldThenEvents) {
  v1::ListEventsResponse events;
  auto* ev = events.add_events();
  ev->set_ticket("EXMP-113");
  ev->set_action("deploy");
  ev->set_outcome("ok");
  ev->set_actor("ci:jenkins");
  *ev->mutable_at() = at(kNow - minutes(10));
  std::string text = formatEnvironment(sampleEnvironment(), &events, kNow);
  // Every field of the message appears as a key.
  const auto* desc = v1::Environment::descriptor();
  for (int i = 0; i < desc->field_count(); ++i) {
    EXPECT_NE(("\n" + text).find("\n" + desc->field(i)->name() + ":"), std::string::npos)
        << desc->field(i)->name();
  }
  EXPECT_NE(text.find("ticket:"), std::string::npos);
  EXPECT_NE(text.find("FEATURE_X=on"), std::string::npos);
  EXPECT_NE(text.find("API_KEY"), std::string::npos);
  EXPECT_NE(text.find("in 46h"), std::string::npos);
  EXPECT_NE(text.find("\nEvents:\n"), std::string::npos);
  EXPECT_NE(text.find("ci:jenkins"), std::string::npos);
  // Values start in one column.
  auto rows = lines(text);
  size_t column = rows[0].find("EXMP-113");
  EXPECT_EQ(rows[1].find("READY"), column);
  // No events table without events.
  EXPECT_EQ(formatEnvironment(sampleEnvironment(), nullptr, kNow).find("Events:"),
            std::string::npos);
}

TEST(EnvironmentDetail, ShowsTheServicesAndEachProcess) {
  v1::Environment e = sampleEnvironment();
  EXPECT_EQ(formatEnvironment(e, nullptr, kNow).find("Processes:"), std::string::npos);
  auto* pg = e.add_processes();
  pg->set_name("postgres");
  pg->set_service(true);
  pg->set_state("ready");
  pg->set_pid(31);
  auto* web = e.add_processes();
  web->set_name("web");
  web->set_state("backoff");
  web->set_restarts(4);
  web->set_message("exited with code 1\x1b[2J");
  std::string text = formatEnvironment(e, nullptr, kNow);
  auto rows = lines(text);
  auto row = [&](const std::string& start) {
    for (const auto& r : rows) {
      if (r.rfind(start, 0) == 0) return r;
    }
    return std::string();
  };
  EXPECT_NE(row("services:").find("postgres"), std::string::npos) << text;
  EXPECT_NE(row("processes:").find("postgres ready, web backoff"), std::string::npos) << text;
  EXPECT_NE(text.find("\nProcesses:\n"), std::string::npos) << text;
  EXPECT_NE(row("  postgres").find("service"), std::string::npos) << text;
  EXPECT_NE(row("  postgres").find("31"), std::string::npos) << text;
  std::string w = row("  web");
  EXPECT_NE(w.find("process"), std::string::npos) << text;
  EXPECT_NE(w.find("backoff (exited with code 1"), std::string::npos) << text;
  EXPECT_NE(w.find("4"), std::string::npos) << text;
  // The environment wrote the message: no terminal control reaches the screen.
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
}

TEST(HostStatus, ShowsStatesCapacityDiskMemoryAndVersion) {
  v1::HostStatus s;
  s.set_version("0.1.0");
  s.mutable_uptime()->set_seconds(3 * 3600);
  s.set_environments(4);
  s.set_max_environments(200);
  s.set_capacity_left(196);
  s.set_addresses_left(250);
  (*s.mutable_environments_by_state())["READY"] = 3;
  (*s.mutable_environments_by_state())["FAILED"] = 1;
  s.set_disk_total_bytes(100ULL << 30);
  s.set_disk_free_bytes(25ULL << 30);
  s.set_memory_total_bytes(8ULL << 30);
  s.set_memory_available_bytes(2ULL << 30);
  std::string text = formatHostStatus(s);
  EXPECT_NE(text.find("agent version:"), std::string::npos);
  EXPECT_NE(text.find("3h"), std::string::npos);
  EXPECT_NE(text.find("4 of 200"), std::string::npos);
  EXPECT_NE(text.find("FAILED 1, READY 3"), std::string::npos) << "sorted by state";
  EXPECT_NE(text.find("capacity left:"), std::string::npos);
  EXPECT_NE(text.find("196"), std::string::npos);
  EXPECT_NE(text.find("addresses left:"), std::string::npos);
  EXPECT_NE(text.find("25.0 GiB free of 100.0 GiB (25%)"), std::string::npos);
  EXPECT_NE(text.find("2.0 GiB available of 8.0 GiB (25%)"), std::string::npos);
}

TEST(ImagesTable, ShowsVersionsAndUnbuiltRecipes) {
  v1::ListImagesResponse images;
  auto* im = images.add_images();
  im->set_name("busybox");
  im->set_version(2);
  im->set_current(true);
  im->set_environments(5);
  im->set_description("tiny");
  *im->mutable_built_at() = at(kNow - hours(72));
  images.add_recipes("busybox");
  images.add_recipes("alpine");
  auto rows = lines(formatImagesTable(images, kNow));
  ASSERT_GE(rows.size(), 2u);
  EXPECT_EQ(rows[0], "IMAGE     VERSION   BUILT    ENVS   CURRENT   DESCRIPTION");
  EXPECT_EQ(rows[1], "busybox   2         3d ago   5      yes       tiny");
  EXPECT_EQ(rows.back(), "Not built yet (qabox image build NAME): alpine");
}

// Each version under the parent version it was built on.
TEST(ImagesTable, ShowsChildrenUnderTheParentVersionTheyWereBuiltOn) {
  v1::ListImagesResponse images;
  auto add = [&](const std::string& name, uint32_t v, const std::string& parent, uint32_t pv,
                 bool current) {
    auto* im = images.add_images();
    im->set_name(name);
    im->set_version(v);
    im->set_parent(parent);
    im->set_parent_version(pv);
    im->set_current(current);
    *im->mutable_built_at() = at(kNow - hours(1));
  };
  // In the store's order: by name, then version.
  add("debian", 1, "", 0, false);
  add("debian", 2, "", 0, true);
  add("node", 1, "services", 1, true);
  add("python", 1, "services", 1, false);
  add("python", 2, "services", 2, true);
  add("services", 1, "debian", 1, false);
  add("services", 2, "debian", 2, true);
  auto rows = lines(formatImagesTable(images, kNow));
  ASSERT_EQ(rows.size(), 8u);
  auto first = [](const std::string& row) {
    return row.substr(0, row.find("  ", row.find_first_not_of(' ')));
  };
  EXPECT_EQ(first(rows[1]), "debian");
  EXPECT_EQ(first(rows[2]), "`- services");
  EXPECT_EQ(first(rows[3]), "   `- node");
  EXPECT_EQ(first(rows[4]), "   `- python");
  EXPECT_EQ(first(rows[5]), "debian");
  EXPECT_EQ(first(rows[6]), "`- services");
  EXPECT_EQ(first(rows[7]), "   `- python");
  EXPECT_NE(rows[4].find(" 1 "), std::string::npos) << rows[4];  // python v1 on services v1
  EXPECT_NE(rows[7].find(" 2 "), std::string::npos) << rows[7];
  EXPECT_NE(rows[7].find("yes"), std::string::npos) << rows[7];
}

TEST(ImagesTable, ShowsTheDependencyLayersUnderTheImages) {
  v1::ListImagesResponse images;
  auto* im = images.add_images();
  im->set_name("python");
  im->set_version(3);
  *im->mutable_built_at() = at(kNow - hours(72));
  auto* l = images.add_layers();
  l->set_hash(std::string(12, 'a') + std::string(52, 'b'));
  l->set_image("python");
  l->set_image_version(3);
  l->set_kind("data");
  l->set_lineage("shop develop");
  l->set_size_bytes(3u << 20);
  l->set_environments(2);
  *l->mutable_built_at() = at(kNow - hours(2));
  *l->mutable_last_used_at() = at(kNow - hours(1));
  auto rows = lines(formatImagesTable(images, kNow));
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[3], "Cached layers ([deps] installs, [data] datasets):");
  EXPECT_EQ(rows[4],
            "LAYER          KIND   FOR            IMAGE       SIZE      BUILT    LAST USED   ENVS");
  EXPECT_EQ(rows[5],
            "aaaaaaaaaaaa   data   shop develop   python v3   3.0 MiB   2h ago   1h ago      2");
  // None: no section.
  images.clear_layers();
  EXPECT_EQ(formatImagesTable(images, kNow).find("Cached layers"), std::string::npos);
}

TEST(EventsAndTokens, Tables) {
  v1::ListEventsResponse events;
  auto* ev = events.add_events();
  ev->set_ticket("EXMP-1");
  ev->set_action("delete");
  ev->set_outcome("ok");
  ev->set_detail(std::string(300, 'x'));
  *ev->mutable_at() = at(kNow - minutes(5));
  auto rows = lines(formatEventsTable(events, kNow));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].rfind("WHEN", 0), 0u);
  EXPECT_EQ(rows[1].rfind("5m ago", 0), 0u);
  EXPECT_LT(rows[1].size(), 200u) << "long details are cut";

  v1::ListTokensResponse tokens;
  auto* t = tokens.add_tokens();
  t->set_name("jenkins");
  t->set_role("ci");
  *t->mutable_created_at() = at(kNow - hours(72));
  auto* revoked = tokens.add_tokens();
  revoked->set_name("old");
  revoked->set_role("ops");
  *revoked->mutable_created_at() = at(kNow - hours(72));
  *revoked->mutable_expires_at() = at(kNow + hours(24));
  *revoked->mutable_last_used_at() = at(kNow - minutes(5));
  revoked->set_revoked(true);
  *revoked->mutable_revoked_at() = at(kNow - minutes(1));
  auto trows = lines(formatTokensTable(tokens, kNow));
  ASSERT_EQ(trows.size(), 3u);
  EXPECT_EQ(trows[0], "NAME      ROLE   CREATED   EXPIRES   LAST USED   REVOKED");
  EXPECT_EQ(trows[1], "jenkins   ci     3d ago    never     never       no");
  EXPECT_EQ(trows[2], "old       ops    3d ago    in 24h    5m ago      1m ago");
}

TEST(Reap, DryRunSaysSo) {
  v1::ReapResponse reap;
  reap.set_dry_run(true);
  auto* r = reap.add_reclaimed();
  r->set_ticket("EXMP-7");
  r->set_policy("merged");
  r->set_reason("feature/EXMP-7 merged into develop");
  std::string text = formatReap(reap);
  EXPECT_NE(text.find("would reclaim"), std::string::npos);
  EXPECT_NE(text.find("Dry run"), std::string::npos);
  EXPECT_EQ(formatReap(v1::ReapResponse()), "Nothing to reclaim\n");
}

TEST(Deploy, PhaseLine) {
  v1::DeployEvent ev;
  ev.set_phase("clone");
  ev.mutable_took()->set_nanos(20'000'000);
  EXPECT_EQ(formatDeployPhase(ev), "clone 0.02s");
  ev.set_detail("feature/x into develop");
  EXPECT_EQ(formatDeployPhase(ev), "clone 0.02s  feature/x into develop");
}

TEST(Json, UsesProtoNamesPrintsZeroValuesAndParsesBack) {
  v1::ListEnvironmentsResponse list;
  *list.add_environments() = sampleEnvironment();
  list.mutable_environments(0)->set_pinned(false);
  std::string json = toJson(list);
  EXPECT_EQ(json.rfind("{\"environments\":[", 0), 0u);
  EXPECT_NE(json.find("\"source_branch\":\"feature/EXMP-113\""), std::string::npos);
  EXPECT_NE(json.find("\"pinned\":false"), std::string::npos);
  EXPECT_NE(json.find("\"state\":\"READY\""), std::string::npos);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  v1::ListEnvironmentsResponse back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_EQ(back.environments(0).commit(), sampleEnvironment().commit());
  EXPECT_EQ(toJson(v1::ListEnvironmentsResponse()), "{\"environments\":[],\"warnings\":[]}");
}

}  // namespace
}  // namespace qabox::cli
