#include "cli/cli.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "unit/cli/fake_agent.h"
#include "unit/contains.h"

namespace qabox::cli {
namespace {

using fake::FakeAgent;

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

size_t lineCount(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

const char* const kIsolatedVars[] = {"HOME",        "XDG_CONFIG_HOME", "QABOX_ENDPOINT",
                                     "QABOX_TOKEN", "QABOX_CA_CERT",   "QABOX_CERT",
                                     "QABOX_KEY",   "NO_COLOR",        "QABOX_TEST_SECRET"};

// Every test gets its own agent, HOME and environment, so nothing on the
// developer's machine (a real agent, a config file) leaks in.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kIsolatedVars) {
      if (const char* old = getenv(v)) saved_[v] = old;
      unsetenv(v);
    }
    char tmpl[] = "/tmp/qabox-cli-home-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    setenv("HOME", home_.c_str(), 1);
    agent_ = std::make_unique<FakeAgent>();
    setenv("QABOX_ENDPOINT", agent_->endpoint().c_str(), 1);
  }

  void TearDown() override {
    agent_.reset();
    for (const char* v : kIsolatedVars) unsetenv(v);
    for (const auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
    std::filesystem::remove_all(home_);
  }

  CliRun run(std::vector<std::string> args, const RunOptions& options = {}) {
    args.insert(args.begin(), "qabox");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::ostringstream out, err;
    CliRun r;
    r.code = runCli(static_cast<int>(args.size()), argv.data(), out, err, options);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  template <typename M>
  M parseJson(const CliRun& r) {
    EXPECT_EQ(lineCount(r.out), 1u) << "one JSON document and nothing else: " << r.out;
    M message;
    auto status = google::protobuf::util::JsonStringToMessage(r.out, &message);
    EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << r.out;
    return message;
  }

  std::string home_;
  std::map<std::string, std::string> saved_;
  std::unique_ptr<FakeAgent> agent_;
};

// -- environments -----------------------------------------------------------

TEST_F(CliTest, ListTable) {
  CliRun r = run({"list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  ASSERT_EQ(lineCount(r.out), 3u) << r.out;
  EXPECT_EQ(r.out.rfind("TICKET", 0), 0u);
  EXPECT_TRUE(contains(r.out, "LAST USED"));
  EXPECT_TRUE(contains(r.out, "EXMP-113"));
  EXPECT_TRUE(contains(r.out, "http://exmp-113.qa.company.int"));
  EXPECT_TRUE(contains(r.out, "0123456789 "));
  EXPECT_TRUE(contains(r.out, "3m ago"));
  EXPECT_FALSE(contains(r.out, "\x1b[")) << "no colours off a terminal";
}

TEST_F(CliTest, ListJsonIsTheResponseMessage) {
  CliRun r = run({"list", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"environments\":[", 0), 0u) << r.out;
  auto list = parseJson<v1::ListEnvironmentsResponse>(r);
  ASSERT_EQ(list.environments_size(), 2);
  EXPECT_EQ(list.environments(0).ticket(), "EXMP-113");
  EXPECT_EQ(list.environments(1).state(), v1::Environment::FAILED);
  EXPECT_TRUE(contains(r.out, "\"pinned\":false")) << "zero values are printed";
  EXPECT_TRUE(contains(r.out, "\"source_branch\"")) << "proto field names";
}

TEST_F(CliTest, ListNamesAndAlias) {
  CliRun r = run({"ls", "-o", "name"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "EXMP-113\nEXMP-7\n");
}

TEST_F(CliTest, GlobalOptionsBeforeAndAfterTheCommand) {
  // QABOX_ENDPOINT points nowhere: only the flag can reach the agent.
  setenv("QABOX_ENDPOINT", ("unix://" + home_ + "/nothing.sock").c_str(), 1);
  const std::string e = agent_->endpoint();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-o", "json", "--endpoint", e, "list"},
           {"list", "-o", "json", "--endpoint", e},
           {"--endpoint", e, "list", "--output", "json"},
           {"--output=json", "ls", "--endpoint=" + e},
       }) {
    CliRun r = run(args);
    ASSERT_EQ(r.code, 0) << args[0] << " " << args[1] << ": " << r.err;
    EXPECT_EQ(parseJson<v1::ListEnvironmentsResponse>(r).environments_size(), 2);
  }
  // Nested commands too.
  CliRun before = run({"-o", "name", "--endpoint", e, "image", "ls"});
  CliRun after = run({"image", "ls", "--endpoint", e, "-o", "name"});
  ASSERT_EQ(before.code, 0) << before.err;
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(before.out, "busybox\nalpine\n");
  EXPECT_EQ(after.out, before.out);
  // And the token.
  CliRun token = run({"status", "--token", "t0k", "--endpoint", e});
  ASSERT_EQ(token.code, 0) << token.err;
  EXPECT_EQ(agent_->seen().authorizations.back(), "Bearer t0k");
}

TEST_F(CliTest, GetShowsFieldsAndTheLastTenEvents) {
  CliRun r = run({"get", "EXMP-113"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "ticket:"));
  EXPECT_TRUE(contains(r.out, "source_branch:"));
  EXPECT_TRUE(contains(r.out, "feature/EXMP-113"));
  EXPECT_TRUE(contains(r.out, "\nEvents:\n"));
  EXPECT_TRUE(contains(r.out, "token:jenkins"));
  auto seen = agent_->seen();
  EXPECT_EQ(seen.events.ticket(), "EXMP-113");
  EXPECT_EQ(seen.events.limit(), 10u);
}

TEST_F(CliTest, GetJsonIsTheEnvironmentOnly) {
  CliRun r = run({"get", "EXMP-7", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto env = parseJson<v1::Environment>(r);
  EXPECT_EQ(env.ticket(), "EXMP-7");
  EXPECT_EQ(env.message(), "hook build exited with 2");
  EXPECT_FALSE(contains(r.out, "Events"));
}

TEST_F(CliTest, NotFoundExits3WithTheAgentsMessage) {
  CliRun r = run({"get", "NOPE-1"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "qabox: environment \"NOPE-1\": not found\n");
}

TEST_F(CliTest, EveryErrorCodeMapsToItsExitCode) {
  const std::map<std::string, int> expected = {
      {"DENIED-1", 5},   {"BAD-1", 1},  {"FULL-1", 1}, {"TAKEN-1", 4},
      {"CONFLICT-1", 4}, {"BUSY-1", 4}, {"DOWN-1", 6}, {"NOPE-1", 3},
  };
  for (const auto& [ticket, code] : expected) {
    CliRun r = run({"get", ticket});
    EXPECT_EQ(r.code, code) << ticket << ": " << r.err;
    EXPECT_EQ(r.err.rfind("qabox: ", 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // An UNAVAILABLE from an agent that answered is not "cannot reach".
  CliRun down = run({"get", "DOWN-1"});
  EXPECT_EQ(down.err, "qabox: canned DOWN-1 error\n");
}

TEST_F(CliTest, DeleteAndAlias) {
  CliRun r = run({"delete", "EXMP-113"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "EXMP-113 deleted\n");
  CliRun name = run({"rm", "EXMP-113", "-o", "name"});
  ASSERT_EQ(name.code, 0) << name.err;
  EXPECT_EQ(name.out, "EXMP-113\n");
  CliRun json = run({"rm", "EXMP-113", "-o", "json"});
  EXPECT_EQ(parseJson<v1::DeleteEnvironmentResponse>(json).ticket(), "EXMP-113");
  EXPECT_EQ(run({"rm", "NOPE-1"}).code, 3);
}

TEST_F(CliTest, PinUnpinSleepWake) {
  CliRun pin = run({"pin", "EXMP-113"});
  ASSERT_EQ(pin.code, 0) << pin.err;
  EXPECT_EQ(pin.out, "EXMP-113 pinned\n");
  EXPECT_TRUE(agent_->seen().pinned.pinned());
  CliRun unpin = run({"unpin", "EXMP-113", "-o", "json"});
  ASSERT_EQ(unpin.code, 0) << unpin.err;
  EXPECT_FALSE(parseJson<v1::Environment>(unpin).pinned());
  EXPECT_FALSE(agent_->seen().pinned.pinned());
  CliRun sleep = run({"sleep", "EXMP-113"});
  ASSERT_EQ(sleep.code, 0) << sleep.err;
  EXPECT_TRUE(contains(sleep.out, "EXMP-113 SLEEPING"));
  CliRun wake = run({"wake", "EXMP-113", "-o", "name"});
  ASSERT_EQ(wake.code, 0) << wake.err;
  EXPECT_EQ(wake.out, "EXMP-113\n");
  EXPECT_EQ(run({"wake", "NOPE-1"}).code, 3);
}

// -- deploy -----------------------------------------------------------------

TEST_F(CliTest, DeploySendsTheRequestAndPrintsOnlyTheFinalEnvironmentAsJson) {
  setenv("QABOX_TEST_SECRET", "from-env", 1);
  CliRun r = run({"deploy",   "EXMP-200",
                  "--image",  "busybox",
                  "--repo",   "shop",
                  "--source", "feature/EXMP-200",
                  "--target", "develop",
                  "--env",    "A=1",
                  "--env",    "B=x=y",
                  "--secret", "API_KEY=k",
                  "--secret", "QABOX_TEST_SECRET",
                  "--ttl",    "48h",
                  "--force",  "-o",
                  "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto env = parseJson<v1::Environment>(r);
  EXPECT_EQ(env.ticket(), "EXMP-200");
  EXPECT_EQ(env.state(), v1::Environment::READY);
  // Progress on stderr, plain lines off a terminal.
  EXPECT_TRUE(contains(r.err, "clone 0.02s\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "fetch 0.30s\n"));
  EXPECT_TRUE(contains(r.err, "merge 0.04s  feature/x into develop\n"));
  EXPECT_FALSE(contains(r.err, "\r"));

  auto req = agent_->seen().deploy;
  EXPECT_EQ(req.ticket(), "EXMP-200");
  EXPECT_EQ(req.image(), "busybox");
  EXPECT_EQ(req.repo(), "shop");
  EXPECT_EQ(req.source_branch(), "feature/EXMP-200");
  EXPECT_EQ(req.target_branch(), "develop");
  EXPECT_EQ(req.env().at("A"), "1");
  EXPECT_EQ(req.env().at("B"), "x=y");
  EXPECT_EQ(req.secrets().at("API_KEY"), "k");
  EXPECT_EQ(req.secrets().at("QABOX_TEST_SECRET"), "from-env");
  EXPECT_EQ(req.ttl().seconds(), 48 * 3600);
  EXPECT_TRUE(req.force());
}

TEST_F(CliTest, DeployTableAndNameOutput) {
  CliRun table = run({"deploy", "EXMP-200"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_EQ(table.out, "EXMP-200 READY http://exmp-200.qa.company.int (commit 0123456789)\n");
  EXPECT_TRUE(contains(table.err, "deployed in "));
  EXPECT_FALSE(agent_->seen().deploy.has_ttl()) << "no ttl unless asked";
  // Each --env takes one value, so the ticket may come after it.
  CliRun after = run({"deploy", "--env", "A=1", "EXMP-201"});
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(agent_->seen().deploy.ticket(), "EXMP-201");
  EXPECT_EQ(agent_->seen().deploy.env().size(), 1u);
  CliRun name = run({"deploy", "EXMP-200", "-o", "name"});
  ASSERT_EQ(name.code, 0) << name.err;
  EXPECT_EQ(name.out, "EXMP-200\n");
}

TEST_F(CliTest, DeployThatEndsFailedExits7AndStillPrintsTheEnvironment) {
  CliRun r = run({"deploy", "BROKEN-1", "-o", "json"});
  EXPECT_EQ(r.code, 7);
  auto env = parseJson<v1::Environment>(r);
  EXPECT_EQ(env.state(), v1::Environment::FAILED);
  EXPECT_TRUE(contains(r.err, "qabox: deploy of BROKEN-1 failed: hook build exited with 2"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "qabox logs BROKEN-1 --deploy"));
}

TEST_F(CliTest, DeployMergeConflictExits4) {
  CliRun r = run({"deploy", "CONFLICT-1", "-o", "json"});
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.err, "clone 0.02s"));
  EXPECT_TRUE(contains(r.err,
                       "qabox: merge feature/CONFLICT-1 into develop: conflict in "
                       "app/models.py\n"))
      << r.err;
}

TEST_F(CliTest, DeployNoWaitReturnsOnceStarted) {
  auto start = std::chrono::steady_clock::now();
  CliRun r = run({"deploy", "SLOW-1", "--no-wait", "-o", "json"});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_LT(took, std::chrono::seconds(4));
  EXPECT_EQ(parseJson<v1::Environment>(r).state(), v1::Environment::DEPLOYING);
  auto methods = agent_->seen().methods;
  EXPECT_EQ(methods.back(), "GetEnvironment");
}

TEST_F(CliTest, DeployTimeoutSaysTheDeployGoesOn) {
  CliRun r = run({"deploy", "SLOW-1", "--timeout", "1s"});
  EXPECT_EQ(r.code, 6);
  EXPECT_TRUE(contains(r.err, "gave up waiting after 1s")) << r.err;
  EXPECT_TRUE(contains(r.err, "qabox get SLOW-1"));
}

TEST_F(CliTest, DeployOnATerminalShowsLivePhasesAndColoursUnlessNoColor) {
  RunOptions terminal;
  terminal.stderrIsTerminal = true;
  terminal.stdoutIsTerminal = true;
  CliRun r = run({"deploy", "EXMP-200"}, terminal);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "\r\x1b[K")) << "a live line is redrawn";
  EXPECT_TRUE(contains(r.err, "deploying EXMP-200"));
  EXPECT_TRUE(contains(r.err, "clone     0.02s")) << "phases in columns";
  EXPECT_TRUE(contains(r.err, "\x1b[32m")) << "colours on a terminal";
  EXPECT_TRUE(contains(r.out, "\x1b[32mREADY"));

  setenv("NO_COLOR", "1", 1);
  CliRun plain = run({"deploy", "EXMP-200"}, terminal);
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_FALSE(contains(plain.err, "\x1b[32m"));
  EXPECT_FALSE(contains(plain.out, "\x1b["));
}

TEST_F(CliTest, DeployRejectsBadValuesLocally) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"deploy", "EXMP-1", "--ttl", "2 days"},
           {"deploy", "EXMP-1", "--timeout", "0"},
           {"deploy", "EXMP-1", "--env", "=x"},
           {"deploy", "EXMP-1", "--secret", "QABOX_UNSET_SECRET_X"},
       }) {
    CliRun r = run(args);
    EXPECT_EQ(r.code, 2) << args[2] << " " << args[3];
    EXPECT_TRUE(contains(r.err, "Usage: qabox deploy")) << r.err;
    EXPECT_TRUE(contains(r.err, "qabox: " + args[2])) << r.err;
  }
  EXPECT_TRUE(agent_->seen().methods.empty()) << "nothing reached the agent";
}

// -- logs and exec ------------------------------------------------------------

TEST_F(CliTest, LogsStreamRawAndPassFlags) {
  CliRun r = run({"logs", "EXMP-113", "-f", "--tail", "50", "--deploy"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "line one\nline two\n");
  auto req = agent_->seen().logs;
  EXPECT_TRUE(req.follow());
  EXPECT_TRUE(req.deploy());
  EXPECT_EQ(req.tail(), 50u);
  EXPECT_EQ(req.process(), "");
  ASSERT_EQ(run({"logs", "EXMP-113", "--process", "postgres"}).code, 0);
  EXPECT_EQ(agent_->seen().logs.process(), "postgres");
  CliRun json = run({"logs", "EXMP-113", "-o", "json"});
  ASSERT_EQ(json.code, 0);
  // One LogChunk message per line.
  std::istringstream lines(json.out);
  std::string all;
  for (std::string line; std::getline(lines, line);) {
    v1::LogChunk chunk;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &chunk).ok()) << line;
    all += chunk.data();
  }
  EXPECT_EQ(all, "line one\nline two\n");
  EXPECT_EQ(run({"logs", "NOPE-1"}).code, 3);
}

TEST_F(CliTest, ExecPassesArgvStreamsOutputAndExitCode) {
  CliRun ok = run({"exec", "EXMP-113", "--", "ls", "-la", "--endpoint", "/srv/app"});
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.out, "ran: ls -la --endpoint /srv/app\n");
  EXPECT_EQ(ok.err, "a warning\n");
  auto req = agent_->seen().exec;
  ASSERT_EQ(req.argv_size(), 4);
  EXPECT_EQ(req.argv(1), "-la");
  EXPECT_FALSE(req.has_timeout());

  CliRun failed = run({"exec", "EXMP-113", "--timeout", "5m", "--env", "X=1", "--", "false"});
  EXPECT_EQ(failed.code, 42);
  EXPECT_EQ(agent_->seen().exec.timeout().seconds(), 300);
  EXPECT_EQ(agent_->seen().exec.env().at("X"), "1");
  EXPECT_EQ(run({"exec", "NOPE-1", "--", "true"}).code, 3);
}

TEST_F(CliTest, ExecSendsStdinOnlyWhenAsked) {
  std::istringstream in("hello\n");
  RunOptions options;
  options.in = &in;
  CliRun without = run({"exec", "EXMP-113", "--", "cat"}, options);
  EXPECT_EQ(without.out, "ran: cat\n");
  CliRun with = run({"exec", "EXMP-113", "-i", "--", "cat"}, options);
  ASSERT_EQ(with.code, 0) << with.err;
  EXPECT_EQ(with.out, "ran: cat\nhello\n");
}

TEST_F(CliTest, ExecNeedsACommand) {
  CliRun r = run({"exec", "EXMP-113"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "Usage: qabox exec")) << r.err;
}

// -- reap, images, status, events, tokens --------------------------------------

TEST_F(CliTest, Reap) {
  CliRun r = run({"reap", "--dry-run", "--policy", "merged"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "EXMP-7"));
  EXPECT_TRUE(contains(r.out, "would reclaim"));
  EXPECT_TRUE(contains(r.err, "qabox: warning: repo shop: fetch failed"));
  auto req = agent_->seen().reap;
  EXPECT_TRUE(req.dry_run());
  EXPECT_EQ(req.policy(), "merged");
  CliRun json = run({"reap", "-o", "json"});
  ASSERT_EQ(json.code, 0);
  auto resp = parseJson<v1::ReapResponse>(json);
  EXPECT_TRUE(resp.reclaimed(0).done());
  CliRun bad = run({"reap", "--policy", "sometimes"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(contains(bad.err, "Usage: qabox reap"));
}

TEST_F(CliTest, Images) {
  CliRun ls = run({"image", "ls"});
  ASSERT_EQ(ls.code, 0) << ls.err;
  EXPECT_EQ(ls.out.rfind("IMAGE     VERSION   BUILT    ENVS   CURRENT   DESCRIPTION\n", 0), 0u)
      << ls.out;
  EXPECT_TRUE(contains(ls.out, "busybox   2         5h ago   3      yes       -")) << ls.out;
  EXPECT_TRUE(contains(ls.out, "alpine"));
  auto images = parseJson<v1::ListImagesResponse>(run({"image", "ls", "-o", "json"}));
  EXPECT_EQ(images.images_size(), 2);

  CliRun build = run({"image", "build", "alpine"});
  ASSERT_EQ(build.code, 0) << build.err;
  EXPECT_EQ(build.out, "alpine version 3 built, now current\n");
  CliRun cached = run({"image", "build", "busybox"});
  ASSERT_EQ(cached.code, 0) << cached.err;
  EXPECT_EQ(cached.out, "busybox version 2 (current), cached: recipe unchanged\n");
  CliRun forced = run({"image", "build", "busybox", "--force", "-o", "json"});
  ASSERT_EQ(forced.code, 0) << forced.err;
  auto built = parseJson<v1::Image>(forced);
  EXPECT_EQ(built.version(), 3u);
  EXPECT_FALSE(built.cached());
  EXPECT_EQ(run({"image", "build", "nope"}).code, 3);

  CliRun rm = run({"image", "rm", "busybox", "--version", "1"});
  ASSERT_EQ(rm.code, 0) << rm.err;
  EXPECT_EQ(rm.out, "deleted busybox:1\n");
  EXPECT_EQ(agent_->seen().deleteImage.version(), 1u);
  CliRun rmAll = run({"image", "rm", "busybox", "-o", "json"});
  ASSERT_EQ(rmAll.code, 0);
  EXPECT_EQ(agent_->seen().deleteImage.version(), 0u);
  EXPECT_EQ(parseJson<v1::DeleteImageResponse>(rmAll).deleted_size(), 1);

  CliRun none = run({"image"});
  EXPECT_EQ(none.code, 2);
}

TEST_F(CliTest, Status) {
  CliRun r = run({"status"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {"agent version:", "9.8.7", "uptime:", "3h", "2 of 200",
                           "FAILED 1, READY 1", "capacity left:", "198", "addresses left:", "251",
                           "40.0 GiB free of 100.0 GiB", "6.0 GiB available of 8.0 GiB"}) {
    EXPECT_TRUE(contains(r.out, want)) << want << "\n" << r.out;
  }
  auto status = parseJson<v1::HostStatus>(run({"status", "-o", "json"}));
  EXPECT_EQ(status.capacity_left(), 198u);
}

TEST_F(CliTest, Events) {
  CliRun all = run({"events"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(lineCount(all.out), 4u) << all.out;
  EXPECT_EQ(all.out.rfind("WHEN", 0), 0u);
  EXPECT_EQ(agent_->seen().events.limit(), 50u);
  CliRun one = run({"events", "EXMP-7", "--limit", "5", "-o", "json"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(parseJson<v1::ListEventsResponse>(one).events_size(), 1);
  EXPECT_EQ(agent_->seen().events.ticket(), "EXMP-7");
  EXPECT_EQ(agent_->seen().events.limit(), 5u);
  CliRun names = run({"events", "-o", "name"});
  EXPECT_EQ(names.out, "EXMP-113\nEXMP-7\n");
  EXPECT_EQ(run({"events", "--limit", "many"}).code, 2);
}

TEST_F(CliTest, Tokens) {
  CliRun create = run({"token", "create", "--role", "ci", "--name", "jenkins2", "--ttl", "90d"});
  ASSERT_EQ(create.code, 0) << create.err;
  EXPECT_EQ(create.out, "qbx_s3cret\n") << "the secret alone on stdout";
  EXPECT_TRUE(contains(create.err, "shown only once"));
  auto req = agent_->seen().createToken;
  EXPECT_EQ(req.role(), "ci");
  EXPECT_EQ(req.ttl().seconds(), 90 * 86400);
  auto json = parseJson<v1::CreateTokenResponse>(
      run({"token", "create", "--role", "ops", "--name", "x", "-o", "json"}));
  EXPECT_EQ(json.secret(), "qbx_s3cret");
  EXPECT_EQ(run({"token", "create", "--role", "ci", "--name", "jenkins"}).code, 4);
  EXPECT_EQ(run({"token", "create", "--role", "admin", "--name", "x"}).code, 2);
  EXPECT_EQ(run({"token", "create", "--role", "ci"}).code, 2);

  CliRun ls = run({"token", "ls"});
  ASSERT_EQ(ls.code, 0) << ls.err;
  EXPECT_TRUE(contains(ls.out, "jenkins   ci     3d ago    never     2h ago      no")) << ls.out;
  CliRun revoke = run({"token", "revoke", "jenkins"});
  ASSERT_EQ(revoke.code, 0) << revoke.err;
  EXPECT_EQ(revoke.out, "token jenkins revoked\n");
  EXPECT_EQ(run({"token", "revoke", "nobody"}).code, 3);
}

// -- connection, auth, usage ----------------------------------------------------

TEST_F(CliTest, TokenReachesTheAgentAsBearerMetadata) {
  agent_->requireToken("s3cret");
  CliRun none = run({"list"});
  EXPECT_EQ(none.code, 5);
  EXPECT_TRUE(contains(none.err, "qabox: missing or unknown token\n")) << none.err;
  EXPECT_TRUE(contains(none.err, "QABOX_TOKEN")) << "says how to give one";
  EXPECT_EQ(agent_->seen().authorizations.back(), "");

  CliRun flag = run({"list", "--token", "s3cret"});
  EXPECT_EQ(flag.code, 0) << flag.err;
  EXPECT_EQ(agent_->seen().authorizations.back(), "Bearer s3cret");

  setenv("QABOX_TOKEN", "s3cret", 1);
  EXPECT_EQ(run({"list"}).code, 0);
  EXPECT_EQ(run({"list", "--token", "wrong"}).code, 5) << "the flag wins over the environment";

  unsetenv("QABOX_TOKEN");
  std::filesystem::create_directories(home_ + "/.config/qabox");
  std::ofstream(home_ + "/.config/qabox/config.toml") << "token = \"s3cret\"\n";
  EXPECT_EQ(run({"list"}).code, 0);
  // Streams carry it too.
  EXPECT_EQ(run({"logs", "EXMP-113"}).code, 0);
  EXPECT_EQ(agent_->seen().authorizations.back(), "Bearer s3cret");
}

TEST_F(CliTest, UnreachableAgentExits6AndNamesTheEndpointAndWhy) {
  std::string nowhere = "unix://" + home_ + "/nothing.sock";
  CliRun flag = run({"list", "--endpoint", nowhere});
  EXPECT_EQ(flag.code, 6);
  EXPECT_EQ(flag.out, "");
  EXPECT_EQ(
      flag.err.rfind("qabox: cannot reach the agent at " + nowhere + " (from --endpoint): ", 0), 0u)
      << flag.err;

  setenv("QABOX_ENDPOINT", nowhere.c_str(), 1);
  CliRun env = run({"deploy", "EXMP-1"});
  EXPECT_EQ(env.code, 6);
  EXPECT_TRUE(contains(env.err, "(from QABOX_ENDPOINT)")) << env.err;

  unsetenv("QABOX_ENDPOINT");
  std::filesystem::create_directories(home_ + "/.config/qabox");
  std::string config = home_ + "/.config/qabox/config.toml";
  std::ofstream(config) << "endpoint = \"" << nowhere << "\"\n";
  CliRun file = run({"logs", "EXMP-1"});
  EXPECT_EQ(file.code, 6);
  EXPECT_TRUE(contains(file.err, "(from endpoint in " + config + ")")) << file.err;

  // With none of them the default socket is chosen and named the same way
  // (Resolve.DefaultIsTheLocalSocket); it is not dialled here, since an agent
  // on this host may well be listening there.
}

TEST_F(CliTest, BadConfigOrCaIsAnErrorNotACrash) {
  unsetenv("QABOX_ENDPOINT");
  std::filesystem::create_directories(home_ + "/.config/qabox");
  std::ofstream(home_ + "/.config/qabox/config.toml") << "endpoint = [\n";
  CliRun r = run({"list"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "config.toml")) << r.err;
  // --help needs no config.
  EXPECT_EQ(run({"--help"}).code, 0);

  std::filesystem::remove(home_ + "/.config/qabox/config.toml");
  CliRun ca = run({"list", "--endpoint", "qa1:50051", "--ca-cert", home_ + "/missing.pem"});
  EXPECT_EQ(ca.code, 1);
  EXPECT_TRUE(contains(ca.err, "missing.pem")) << ca.err;
  CliRun endpoint = run({"list", "--endpoint", "qa1"});
  EXPECT_EQ(endpoint.code, 1);
  EXPECT_TRUE(contains(endpoint.err, "endpoint \"qa1\": give a port")) << endpoint.err;
}

TEST_F(CliTest, UsageErrorsExit2WithUsageOnStderr) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {"list", "--bogus"},
           {"frobnicate"},
           {"get"},
           {"get", "A", "B"},
           {"-o", "yaml", "list"},
           {"logs", "EXMP-113", "--tail", "-3"},
           {"token"},
           {"completion", "fish"},
       }) {
    CliRun r = run(args);
    std::string shown = args.empty() ? "(nothing)" : args[0];
    EXPECT_EQ(r.code, 2) << shown << ": " << r.err;
    EXPECT_EQ(r.out, "") << shown;
    EXPECT_EQ(r.err.rfind("qabox: ", 0), 0u) << r.err;
    EXPECT_TRUE(contains(r.err, "Usage: qabox")) << r.err;
  }
  EXPECT_TRUE(contains(run({"get"}).err, "Usage: qabox get"));
  EXPECT_TRUE(agent_->seen().methods.empty());
}

TEST_F(CliTest, HelpShowsExamplesAndExitCodes) {
  CliRun main = run({"--help"});
  EXPECT_EQ(main.code, 0);
  EXPECT_TRUE(contains(main.out, "Exit codes:"));
  EXPECT_TRUE(contains(main.out, "7  deploy failed"));
  for (const auto& cmd : std::vector<std::vector<std::string>>{{"deploy"},
                                                               {"list"},
                                                               {"get"},
                                                               {"delete"},
                                                               {"logs"},
                                                               {"exec"},
                                                               {"reap"},
                                                               {"pin"},
                                                               {"unpin"},
                                                               {"sleep"},
                                                               {"wake"},
                                                               {"image", "build"},
                                                               {"image", "ls"},
                                                               {"image", "rm"},
                                                               {"status"},
                                                               {"events"},
                                                               {"token", "create"},
                                                               {"token", "ls"},
                                                               {"token", "revoke"},
                                                               {"version"},
                                                               {"completion", "bash"}}) {
    auto args = cmd;
    args.push_back("--help");
    CliRun r = run(args);
    EXPECT_EQ(r.code, 0) << cmd[0];
    std::string path = "qabox";
    for (const auto& c : cmd) path += " " + c;
    EXPECT_TRUE(contains(r.out, "Example:\n")) << r.out;
    EXPECT_TRUE(contains(r.out, path)) << r.out;
    EXPECT_TRUE(contains(r.out, "Global options")) << cmd[0];
  }
}

TEST_F(CliTest, VersionWithAndWithoutAnAgent) {
  CliRun r = run({"version"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("qabox ") + QABOX_VERSION + "\nqaboxd 9.8.7 at " +
                       agent_->endpoint() + "\n");
  CliRun json = run({"version", "-o", "json"});
  ASSERT_EQ(json.code, 0);
  EXPECT_EQ(json.out, std::string("{\"client_version\":\"") + QABOX_VERSION +
                          "\",\"agent_version\":\"9.8.7\"}\n");

  setenv("QABOX_ENDPOINT", ("unix://" + home_ + "/nothing.sock").c_str(), 1);
  CliRun alone = run({"version"});
  EXPECT_EQ(alone.code, 0);
  EXPECT_EQ(alone.out, std::string("qabox ") + QABOX_VERSION + "\n");
  EXPECT_TRUE(contains(alone.err, "cannot reach the agent"));
  CliRun aloneJson = run({"version", "-o", "json"});
  EXPECT_TRUE(contains(aloneJson.out, "\"agent_version\":\"\""));
}

// -- completion -------------------------------------------------------------------

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs the script in bash the way completion does and returns COMPREPLY.
std::string complete(const std::string& script, const std::vector<std::string>& words) {
  char tmpl[] = "/tmp/qabox-completion-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return "mkstemp failed";
  close(fd);
  std::ofstream(tmpl) << script;
  std::string array;
  for (const auto& w : words) array += shellQuote(w) + " ";
  std::string command = "bash -c " +
                        shellQuote(std::string("source ") + tmpl + "; COMP_WORDS=(" + array +
                                   "); COMP_CWORD=" + std::to_string(words.size() - 1) +
                                   "; _qabox; printf '%s\\n' \"${COMPREPLY[@]}\" | sort") +
                        " 2>&1";
  std::string output;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
    pclose(p);
  }
  std::remove(tmpl);
  return output;
}

TEST_F(CliTest, BashCompletionCompletesCommandsFlagsAndTicketsFromTheAgent) {
  CliRun r = run({"completion", "bash"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "complete -F _qabox qabox"));
  const std::string bin = QABOX_CLI_BINARY;

  std::string top = complete(r.out, {bin, "im"});
  EXPECT_EQ(top, "image\n");
  EXPECT_EQ(complete(r.out, {bin, "image", ""}), "build\ndelete\nlist\nls\nrm\n");
  EXPECT_EQ(complete(r.out, {bin, "list", "-o", ""}), "json\nname\ntable\n");
  EXPECT_EQ(complete(r.out, {bin, "reap", "--policy", "m"}), "max_age\nmerged\n");
  std::string logsFlags = complete(r.out, {bin, "logs", "--f"});
  EXPECT_EQ(logsFlags, "--follow\n");
  EXPECT_TRUE(contains(complete(r.out, {bin, "deploy", "--"}), "--no-wait\n"));
  EXPECT_TRUE(contains(complete(r.out, {bin, "deploy", "--"}), "--endpoint\n"))
      << "global options are offered after the command too";

  // Tickets come from the agent named on the line; bash splits the
  // endpoint at ':' the way COMP_WORDBREAKS does.
  setenv("QABOX_ENDPOINT", ("unix://" + home_ + "/nothing.sock").c_str(), 1);
  std::string sock = agent_->endpoint().substr(std::string("unix:").size());
  EXPECT_EQ(complete(r.out, {bin, "--endpoint", "unix", ":", sock, "get", ""}),
            "EXMP-113\nEXMP-7\n");
  EXPECT_EQ(complete(r.out, {bin, "rm", "--endpoint=unix", ":", sock, "EXMP-1"}), "EXMP-113\n");
  EXPECT_EQ(complete(r.out, {bin, "--endpoint", "unix", ":", sock, "get", "EXMP-7", ""}), "\n")
      << "only the first positional is a ticket";
  EXPECT_EQ(complete(r.out, {bin, "--endpoint", "unix", ":", sock, "image", "rm", "b"}),
            "busybox\n");
}

}  // namespace
}  // namespace qabox::cli
