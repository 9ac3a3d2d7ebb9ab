#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/config.h"
#include "daemon/json_log.h"
#include "daemon/metrics_sources.h"
#include "metrics/metrics.h"
#include "proxy/route_internal.h"
#include "server/metrics_interceptor.h"

namespace qabox {
namespace {

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

Route readyRoute(const std::string& slug) {
  Route r;
  r.slug = slug;
  r.state = EnvState::kReady;
  r.ip = "127.0.0.1";
  r.port = 8080;
  r.generation = 1;
  return r;
}

TEST(Metrics, EventFamiliesHaveTheirNamesAndLabels) {
  Metrics m;
  m.deployFinished(true, "", 3.5);
  m.deployFinished(false, "health", 1);
  m.deployFinished(false, "made-up\"step", 1);
  m.deployPhase("merge", 0.2);
  m.wake(true, 0.7);
  m.reaperPass({{"idle", 2}, {"bogus", 1}});
  m.imageBuild("cached");
  m.apiCall("Deploy", 0);
  m.apiCall("Evil\"}\n", 7);
  std::string text = m.scrape();
  EXPECT_TRUE(has(text, "qabox_deploys_total{outcome=\"ok\",step=\"\"} 1")) << text;
  EXPECT_TRUE(has(text, "qabox_deploys_total{outcome=\"error\",step=\"health\"} 1"));
  EXPECT_TRUE(has(text, "qabox_deploys_total{outcome=\"error\",step=\"other\"} 1"));
  EXPECT_TRUE(has(text, "qabox_deploy_duration_seconds_count{outcome=\"ok\"} 1"));
  EXPECT_TRUE(has(text, "qabox_deploy_phase_duration_seconds_count{phase=\"merge\"} 1"));
  EXPECT_TRUE(has(text, "qabox_wake_duration_seconds_count{outcome=\"ok\"} 1"));
  EXPECT_TRUE(has(text, "qabox_reaper_passes_total 1"));
  EXPECT_TRUE(has(text, "qabox_reaper_reclaimed_total{policy=\"idle\"} 2"));
  EXPECT_TRUE(has(text, "qabox_reaper_reclaimed_total{policy=\"other\"} 1"));
  EXPECT_TRUE(has(text, "qabox_image_builds_total{outcome=\"cached\"} 1"));
  EXPECT_TRUE(has(text, "qabox_api_calls_total{code=\"OK\",rpc=\"Deploy\"} 1"));
  EXPECT_TRUE(has(text, "qabox_api_calls_total{code=\"PERMISSION_DENIED\",rpc=\"unknown\"} 1"));
  EXPECT_FALSE(has(text, "Evil"));
}

TEST(Metrics, RpcLabelsComeFromTheRoleTableOnly) {
  EXPECT_EQ(rpcLabel("/qabox.v1.Qabox/Deploy"), "Deploy");
  EXPECT_EQ(rpcLabel("/qabox.v1.Qabox/NoSuchRpc"), "unknown");
  EXPECT_EQ(rpcLabel("/other.Service/Deploy"), "unknown");
  EXPECT_EQ(rpcLabel("/qabox.v1.Qabox/Deploy\"x"), "unknown");
}

TEST(Metrics, RouterSeriesPerEnvironmentGoWithTheRoute) {
  RouteTable table;
  table.set(readyRoute("exmp-1"));
  table.set(readyRoute("exmp-2"));
  {
    auto snap = table.snapshot();
    auto& slot = snap->bySlug.at("exmp-1")->stats->mine();
    proxy_internal::countResponse(slot, 200, proxy_internal::methodIndex("GET"), 3'000);
    proxy_internal::countResponse(slot, 503, proxy_internal::methodIndex("BREW"), 2'000'000);
    slot.bytesIn.fetch_add(100);
    slot.bytesOut.fetch_add(2000);
  }
  Metrics m;
  m.addSource(routerSource(table, [] { return int64_t{3}; }));
  std::string text = m.scrape();
  EXPECT_TRUE(has(text,
                  "qabox_router_requests_total{environment=\"exmp-1\",code_class=\"2xx\","
                  "method=\"GET\"} 1"))
      << text;
  EXPECT_TRUE(has(text, "code_class=\"5xx\",method=\"other\"} 1"));
  EXPECT_TRUE(has(text, "qabox_router_received_bytes_total{environment=\"exmp-1\"} 100"));
  EXPECT_TRUE(has(text, "qabox_router_sent_bytes_total{environment=\"exmp-1\"} 2000"));
  EXPECT_TRUE(has(
      text, "qabox_router_request_duration_seconds_bucket{environment=\"exmp-1\",le=\"0.005\"} 1"));
  EXPECT_TRUE(has(text, "qabox_router_request_duration_seconds_count{environment=\"exmp-1\"} 2"));
  EXPECT_TRUE(has(text, "qabox_router_open_connections 3"));
  EXPECT_TRUE(has(text, "environment=\"exmp-2\""));

  table.remove("exmp-1");
  text = m.scrape();
  EXPECT_FALSE(has(text, "exmp-1")) << text;
  EXPECT_TRUE(has(text, "environment=\"exmp-2\""));
}

TEST(Metrics, UseCountersStillDrainAsDeltas) {
  RouteTable table;
  table.set(readyRoute("a"));
  table.snapshot()->bySlug.at("a")->stats->mine().requests.fetch_add(5);
  auto first = table.takeStats();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].requests, 5u);
  EXPECT_TRUE(table.takeStats().empty());
  EXPECT_EQ(table.traffic().at(0).requests, 5u);  // the metrics' count never resets
}

TEST(Metrics, EnvironmentsByStateCountEveryState) {
  Environment a, b;
  a.state = EnvState::kReady;
  b.state = EnvState::kSleeping;
  Metrics m;
  m.addSource(sourceOf([&] { return environmentFamilies({a, b}); }));
  std::string text = m.scrape();
  EXPECT_TRUE(has(text, "qabox_environments{state=\"ready\"} 1")) << text;
  EXPECT_TRUE(has(text, "qabox_environments{state=\"sleeping\"} 1"));
  EXPECT_TRUE(has(text, "qabox_environments{state=\"broken\"} 0"));
}

TEST(Metrics, ScrapeIsValidForPromtool) {
  RouteTable table;
  table.set(readyRoute("exmp-1"));
  Metrics m;
  m.deployFinished(false, "clone", 2);
  m.addSource(routerSource(table, nullptr));
  m.addSource(processSource());
  std::string text = m.scrape();
  EXPECT_TRUE(has(text, "process_resident_memory_bytes "));
  EXPECT_TRUE(has(text, "process_threads "));
  if (std::system("command -v promtool >/dev/null") != 0) {
    if (std::getenv("CI")) FAIL() << "promtool is missing (scripts/install-deps.sh installs it)";
    GTEST_SKIP() << "promtool is not installed";
  }
  std::string path = ::testing::TempDir() + "/qabox-metrics.txt";
  std::ofstream(path) << text;
  EXPECT_EQ(std::system(("promtool check metrics < " + path).c_str()), 0) << text;
  std::remove(path.c_str());
}

TEST(Metrics, ListensOnAFreePortAndServesText) {
  Metrics m;
  m.deployFinished(true, "", 1);
  ASSERT_TRUE(m.listen("127.0.0.1:0").isOk());
  ASSERT_NE(m.port(), 0);
  std::string cmd = "curl -fsS http://127.0.0.1:" + std::to_string(m.port()) + "/metrics";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string body;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) body.append(buf, n);
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_TRUE(has(body, "qabox_deploys_total{outcome=\"ok\",step=\"\"} 1")) << body;
  m.stopListening();
}

TEST(Metrics, ListenOnAnAddressInUseNamesTheKey) {
  Metrics a, b;
  ASSERT_TRUE(a.listen("127.0.0.1:0").isOk());
  Status s = b.listen("127.0.0.1:" + std::to_string(a.port()));
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("metrics.listen"), std::string::npos) << s.message();
}

TEST(MetricsConfig, KeysAreCheckedAndNamed) {
  auto ok = parseConfig("[metrics]\nlisten = \"\"\n[log]\nformat = \"json\"\n");
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  EXPECT_EQ(ok->metrics.listen, "");
  EXPECT_EQ(ok->log.format, "json");
  EXPECT_EQ(parseConfig("").value().metrics.listen, "127.0.0.1:9464");
  auto bad = parseConfig("[metrics]\nlisten = \"nowhere\"\n");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("metrics.listen"), std::string::npos);
  auto fmt = parseConfig("[log]\nformat = \"xml\"\n");
  ASSERT_FALSE(fmt.isOk());
  EXPECT_NE(fmt.status().message().find("log.format"), std::string::npos);
  auto unknown = parseConfig("[metrics]\nport = 1\n");
  EXPECT_FALSE(unknown.isOk());
}

TEST(JsonLog, AnyMessageIsOneValidJsonLine) {
  std::string text = "say \"hi\"\nsecond line\r\t\x01\x1b[31m \xff end";
  spdlog::details::log_msg msg("qaboxd", spdlog::level::warn, text);
  spdlog::memory_buf_t out;
  JsonLogFormatter().format(msg, out);
  std::string line(out.data(), out.size());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  for (char c : line.substr(0, line.size() - 1)) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["logger"], "qaboxd");
  EXPECT_EQ(j["message"].get<std::string>().substr(0, 28), text.substr(0, 28));
  std::string time = j["time"];
  ASSERT_EQ(time.size(), 24u) << time;  // 2026-12-01T20:18:24.123Z
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time[19], '.');
  EXPECT_EQ(time.back(), 'Z');
}

}  // namespace
}  // namespace qabox
