// Crash points: every named failpoint (core/failpoint.h) an operation passes
// is, in turn, where the agent is SIGKILLed in the middle of it. After each
// crash the agent starts again and the host must hold no half-made thing:
// the invariant checker is clean, the operation either happened whole or
// left nothing, and whatever an earlier call was told it did still holds.
// Then kill -9 at random moments while clients deploy and delete.
//
// QABOX_TORTURE_POINTS: how many crash points (spread over every scenario;
// default 30, "all" for every one: scripts/torture/crash.sh).
// QABOX_TORTURE_ROUNDS: rounds of kill -9 under load (default 3).
// QABOX_TORTURE_SEED: the random rounds' seed (default: the time; printed).
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kHookApp = R"([app]
start = "exec httpd -f -p 8080 -h /srv/app/www"
port = 8080
health = "/health.txt"
[hooks]
build = "mkdir -p www && echo ok > www/health.txt && cat version.txt > www/index.html"
migrate = "echo migrating"
seed = "echo seeded > www/seed.txt"
)";

template <typename M>
std::optional<M> parseJson(const std::string& text) {
  M m;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(text, &m, opts).ok()) return std::nullopt;
  return m;
}

size_t envSize(const char* name, size_t fallback, bool* all = nullptr) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  if (std::string(v) == "all") {
    if (all) *all = true;
    return SIZE_MAX;
  }
  return static_cast<size_t>(std::stoul(v));
}

// One hit of one failpoint: its name and its number among that name's hits.
struct Point {
  std::string name;
  uint64_t n = 0;
  std::string spec() const { return name + "@" + std::to_string(n); }
};

class Torture;

// An operation to crash in: what it needs first (on an agent without
// failpoints), the CLI call, and what must hold after the restart.
struct Scenario {
  std::string name;
  std::function<void(Torture&)> setup;
  std::function<std::vector<std::string>(Torture&)> call;
  // `acked`: the call answered OK before the agent died.
  std::function<void(Torture&, bool acked)> verify;
};

class Torture : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = host_->appRepo({{"qabox.toml", kHookApp}, {"version.txt", "v0\n"}});
    base_.repos = {{"shop", git_->bare()}};
    base_.healthTimeout = "10s";
    // No schedule may write on its own: a point's number must mean the
    // same hit in the run that lists the points and the run that crashes.
    base_.extraToml = "[reaper]\ninterval = \"0\"\nsleep_after = \"0\"\n";
    host_->writeConfig(base_);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  }

 public:
  // The agent again, with these failpoint variables (none: a plain start).
  void restart(const std::map<std::string, std::string>& env) {
    if (host_->daemonRunning()) host_->killDaemon();
    TestHost::Options o = base_;
    o.daemonEnv = env;
    host_->writeConfig(o);
    host_->startDaemon();
  }

  CliResult cli(const std::vector<std::string>& args) { return host_->cli(args, seconds(90)); }

  std::optional<v1::Environment> env(const std::string& ticket) { return host_->env(ticket); }

  std::vector<v1::Environment> rows() {
    auto r = cli({"list", "-o", "json"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    auto list = parseJson<v1::ListEnvironmentsResponse>(r.out);
    if (!list) return {};
    return {list->environments().begin(), list->environments().end()};
  }

  HttpReply viaRouter(const std::string& slug, const std::string& path = "/") {
    return httpGet("127.0.0.1", host_->routerPort(), path, slug + "." + host_->domain());
  }

  // READY, and the router reaches its app.
  void expectServed(const std::string& ticket, const std::string& slug,
                    const std::string& path = "/") {
    auto e = env(ticket);
    ASSERT_TRUE(e) << ticket << " is gone";
    EXPECT_EQ(e->state(), v1::Environment::READY) << ticket << ": " << e->message();
    HttpReply page;
    for (int i = 0; i < 50; ++i) {
      page = viaRouter(slug, path);
      if (page.status == 200) break;
      std::this_thread::sleep_for(milliseconds(100));
    }
    EXPECT_EQ(page.status, 200) << ticket << " through the router: " << page.error << page.body;
  }

  void expectGone(const std::string& ticket) {
    auto r = cli({"get", ticket});
    EXPECT_NE(r.exitCode, 0) << ticket << " should be gone: " << r.out;
  }

  // What must never be on the host once the agent recovered: the checker's
  // violations, and what the harness sees itself (kept also after the
  // checker merged: it needs no agent code to be right).
  std::vector<std::string> leaks() {
    std::vector<std::string> out;
    for (const auto& v : host_->violations()) {
      // Before `qaboxd --check` exists the harness's own view stands alone.
      if (v.rfind("check failed", 0) == 0 && v.find("--check") != std::string::npos) continue;
      out.push_back(v);
    }
    std::set<std::string> owned;
    size_t leased = 0, running = 0;
    for (const auto& e : rows()) {
      owned.insert(e.container());
      if (!e.ip().empty()) ++leased;
      if (e.state() != v1::Environment::SLEEPING) ++running;
      if (e.state() == v1::Environment::CREATING || e.state() == v1::Environment::DEPLOYING ||
          e.state() == v1::Environment::DELETING) {
        out.push_back("row " + e.ticket() + ": still " + v1::Environment::State_Name(e.state()) +
                      " after recovery");
      }
    }
    for (const auto& c : host_->containers()) {
      if (!owned.count(c)) out.push_back("container " + c + ": no environment owns it");
    }
    for (const auto& c : owned) {
      if (!fs::exists(host_->lxcPath() + "/" + c)) {
        out.push_back("container " + c + ": its environment has none");
      }
    }
    const int leases = host_->leaseCount();
    if (leases != static_cast<int>(leased)) {
      out.push_back("leases: " + std::to_string(leases) + " for " + std::to_string(leased) +
                    " environments with an address");
    }
    if (host_->bridgePorts().size() > running) {
      out.push_back("bridge: " + std::to_string(host_->bridgePorts().size()) + " ports for " +
                    std::to_string(running) + " environments that may run");
    }
    auto open = runOrDie({"sqlite3", host_->stateDir() + "/qabox.db",
                          "SELECT count(*) FROM operations WHERE finished_at IS NULL"});
    if (open.exitCode == 0 && std::stoi(open.out) != 0) {
      out.push_back("journal: " + open.out.substr(0, open.out.find('\n')) +
                    " operation(s) left open after recovery");
    }
    auto images = parseJson<v1::ListImagesResponse>(cli({"image", "ls", "-o", "json"}).out);
    std::set<std::string> versions;
    if (images) {
      for (const auto& im : images->images()) {
        versions.insert(im.name() + "-v" + std::to_string(im.version()));
      }
    }
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(host_->stateDir() + "/images", ec)) {
      const std::string n = d.path().filename();
      if (!versions.count(n)) out.push_back("image dir " + n + ": no image version owns it");
    }
    std::set<std::string> slugs;
    for (const auto& e : rows()) {
      // qabox-<slug>, or qabox-<slug>_<n> after a redeploy.
      std::string c = e.container().substr(std::string("qabox-").size());
      slugs.insert(c.substr(0, c.find('_')));
    }
    for (const auto& d : fs::directory_iterator(host_->stateDir() + "/logs", ec)) {
      const std::string slug = d.path().filename();
      if (!slugs.count(slug)) out.push_back("log dir " + slug + ": no environment owns it");
    }
    return out;
  }

  // What acknowledged calls made: checked after every crash, from one
  // listing each (a call per check would cost more than the crashes).
  void keepsExisting(const std::string& ticket) { kept_.insert(ticket); }
  void staysGone(const std::string& ticket) { gone_.insert(ticket); }
  void staysRevoked(const std::string& token) { revoked_.insert(token); }
  void staysBuilt(const std::string& dir) { built_.insert(dir); }
  void checkHolds() {
    std::set<std::string> present;
    for (const auto& e : rows()) present.insert(e.ticket());
    for (const auto& t : kept_) EXPECT_TRUE(present.count(t)) << "deployed earlier: " << t;
    for (const auto& t : gone_) EXPECT_FALSE(present.count(t)) << "deleted earlier: " << t;
    if (!revoked_.empty()) {
      auto ls = parseJson<v1::ListTokensResponse>(cli({"token", "ls", "-o", "json"}).out);
      ASSERT_TRUE(ls);
      std::set<std::string> still;
      for (const auto& tk : ls->tokens()) {
        if (tk.revoked()) still.insert(tk.name());
      }
      for (const auto& t : revoked_) EXPECT_TRUE(still.count(t)) << "revoked earlier: " << t;
    }
    for (const auto& d : built_) EXPECT_TRUE(fs::exists(d)) << "built earlier: " << d;
  }

  std::vector<Point> listPoints(Scenario& s);
  // One crash at `p`; false when the agent was not killed there (the point
  // was not reached this time).
  bool crashAt(Scenario& s, const Point& p);

  std::vector<Scenario> scenarios();
  GitFixture& git() { return *git_; }
  TestHost& host() { return *host_; }
  int next() { return ++counter_; }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
  TestHost::Options base_;
  std::set<std::string> kept_, gone_, revoked_, built_;
  int counter_ = 0;
  std::string ticket_;  // the scenario's ticket of this round
  std::string pushed_;  // the commit a redeploy moves to
};

std::vector<Point> Torture::listPoints(Scenario& s) {
  s.setup(*this);
  const std::string trace = host_->stateDir() + "/trace-" + s.name;
  fs::remove(trace);
  restart({{"QABOX_FAILPOINT_TRACE", trace}});
  const size_t startup = [&] {
    std::ifstream in(trace);
    size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }();
  auto r = cli(s.call(*this));
  EXPECT_EQ(r.exitCode, 0) << s.name << ": " << r.err;
  std::this_thread::sleep_for(milliseconds(200));  // what runs after the answer
  restart({});
  s.verify(*this, r.exitCode == 0);
  std::vector<Point> points;
  std::map<std::string, uint64_t> seen;
  std::ifstream in(trace);
  size_t line = 0;
  for (std::string name; std::getline(in, name); ++line) {
    const uint64_t n = ++seen[name];
    if (line >= startup) points.push_back({name, n});
  }
  return points;
}

bool Torture::crashAt(Scenario& s, const Point& p) {
  s.setup(*this);
  restart({{"QABOX_FAILPOINT", p.spec()}});
  auto r = cli(s.call(*this));
  auto status = host_->waitDaemon(r.exitCode == 0 ? milliseconds(1500) : seconds(10));
  const bool killed = status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL;
  if (!status) host_->killDaemon();
  if (killed && r.exitCode == 0) {
    // Killed after it answered: what it answered must hold.
    SCOPED_TRACE("answered before the crash");
  }
  if (!status) {
    EXPECT_EQ(r.exitCode, 0) << "the call failed but the agent lives on: " << r.err;
  } else {
    EXPECT_TRUE(killed) << "the agent ended otherwise (status " << *status << ")\n"
                        << host_->logText();
  }
  restart({});
  auto found = leaks();
  EXPECT_TRUE(found.empty()) << "after a crash at " << p.spec() << ":\n"
                             <<
      [&] {
        std::string all;
        for (const auto& f : found) all += "  " + f + "\n";
        return all;
      }() << host_->logText();
  s.verify(*this, r.exitCode == 0);
  checkHolds();
  return killed;
}

std::vector<Scenario> Torture::scenarios() {
  std::vector<Scenario> out;
  auto fresh = [](const std::string& prefix) {
    return [prefix](Torture& t) { t.ticket_ = prefix + "-" + std::to_string(t.next()); };
  };
  auto slugOf = [](std::string t) {
    std::transform(t.begin(), t.end(), t.begin(), ::tolower);
    return t;
  };
  // Either whole and served, or nothing; gone for good once deleted.
  auto createdOrNothing = [slugOf](const std::string& path) {
    return [slugOf, path](Torture& t, bool acked) {
      const std::string ticket = t.ticket_;
      if (acked || t.env(ticket)) t.expectServed(ticket, slugOf(ticket), path);
      // Next round's ticket is a new one: this one goes (and must stay gone).
      if (t.env(ticket)) {
        ASSERT_EQ(t.cli({"delete", ticket}).exitCode, 0);
      }
      t.staysGone(ticket);
    };
  };
  out.push_back({"create-image", fresh("CI"),
                 [](Torture& t) -> std::vector<std::string> {
                   return {"deploy", t.ticket_, "--image", "busybox"};
                 },
                 createdOrNothing("/")});
  out.push_back({"create-repo", fresh("CR"),
                 [](Torture& t) -> std::vector<std::string> {
                   return {"deploy",   t.ticket_, "--repo",   "shop",
                           "--source", "develop", "--target", "develop"};
                 },
                 createdOrNothing("/seed.txt")});
  // One environment redeployed at a new commit each round.
  out.push_back({"redeploy",
                 [](Torture& t) {
                   t.ticket_ = "RD-1";
                   if (!t.env("RD-1")) {
                     ASSERT_EQ(t.cli({"deploy", "RD-1", "--repo", "shop", "--source", "develop",
                                      "--target", "develop"})
                                   .exitCode,
                               0);
                   }
                   t.git().write("version.txt", "v" + std::to_string(t.next()) + "\n");
                   t.git().commit("next version");
                   t.git().push("develop");
                   t.pushed_ = t.git().head();
                 },
                 [](Torture&) -> std::vector<std::string> {
                   return {"redeploy", "RD-1"};
                 },
                 [](Torture& t, bool acked) {
                   auto before = t.env("RD-1");
                   ASSERT_TRUE(before) << "a crashed redeploy lost its environment";
                   t.expectServed("RD-1", "rd-1");
                   auto page = t.viaRouter("rd-1");
                   if (acked) {
                     EXPECT_EQ(page.body, t.git().git({"show", t.pushed_ + ":version.txt"}));
                   } else {
                     // The old commit or the new one, never a mix.
                     EXPECT_EQ(page.body.rfind("v", 0), 0u) << page.body;
                   }
                 }});
  out.push_back({"delete",
                 [](Torture& t) {
                   t.ticket_ = "DL-" + std::to_string(t.next());
                   ASSERT_EQ(t.cli({"deploy", t.ticket_, "--image", "busybox"}).exitCode, 0);
                 },
                 [](Torture& t) -> std::vector<std::string> {
                   return {"delete", t.ticket_};
                 },
                 [slugOf](Torture& t, bool acked) {
                   const std::string ticket = t.ticket_;
                   if (!acked && t.env(ticket)) {
                     // Never begun: untouched; else recovery finishes it.
                     t.expectServed(ticket, slugOf(ticket));
                     ASSERT_EQ(t.cli({"delete", ticket}).exitCode, 0);
                   }
                   t.expectGone(ticket);
                   t.staysGone(ticket);
                 }});
  // One environment slept and woken in turn.
  auto napper = [](Torture& t, bool asleep) {
    auto e = t.env("NAP-1");
    if (!e) {
      ASSERT_EQ(t.cli({"deploy", "NAP-1", "--image", "busybox"}).exitCode, 0);
      e = t.env("NAP-1");
    }
    ASSERT_TRUE(e);
    if (asleep && e->state() != v1::Environment::SLEEPING) {
      ASSERT_EQ(t.cli({"sleep", "NAP-1"}).exitCode, 0);
    }
    if (!asleep && e->state() == v1::Environment::SLEEPING) {
      ASSERT_EQ(t.cli({"wake", "NAP-1"}).exitCode, 0);
    }
  };
  auto sleptOrAwake = [](Torture& t, bool acked, bool wantAsleep) {
    auto e = t.env("NAP-1");
    ASSERT_TRUE(e) << "a crash lost NAP-1";
    if (acked) {
      EXPECT_EQ(e->state(), wantAsleep ? v1::Environment::SLEEPING : v1::Environment::READY)
          << e->message();
    }
    if (e->state() == v1::Environment::READY) {
      t.expectServed("NAP-1", "nap-1");
    } else {
      ASSERT_EQ(e->state(), v1::Environment::SLEEPING) << e->message();
      // Asleep for real: a wake brings it back.
      ASSERT_EQ(t.cli({"wake", "NAP-1"}).exitCode, 0);
      t.expectServed("NAP-1", "nap-1");
    }
  };
  out.push_back({"sleep", [napper](Torture& t) { napper(t, false); },
                 [](Torture&) -> std::vector<std::string> {
                   return {"sleep", "NAP-1"};
                 },
                 [sleptOrAwake](Torture& t, bool acked) { sleptOrAwake(t, acked, true); }});
  out.push_back({"wake", [napper](Torture& t) { napper(t, true); },
                 [](Torture&) -> std::vector<std::string> {
                   return {"wake", "NAP-1"};
                 },
                 [sleptOrAwake](Torture& t, bool acked) { sleptOrAwake(t, acked, false); }});
  out.push_back(
      {"reap-ttl",
       [](Torture& t) {
         t.ticket_ = "TTL-" + std::to_string(t.next());
         ASSERT_EQ(t.cli({"deploy", t.ticket_, "--image", "busybox", "--ttl", "1s"}).exitCode, 0);
         std::this_thread::sleep_for(milliseconds(1100));
       },
       [](Torture&) -> std::vector<std::string> {
         return {"reap", "--policy", "ttl"};
       },
       [](Torture& t, bool acked) {
         const std::string ticket = t.ticket_;
         if (!acked && t.env(ticket)) {
           auto e = t.env(ticket);
           EXPECT_EQ(e->state(), v1::Environment::READY) << e->message();
           ASSERT_EQ(t.cli({"delete", ticket}).exitCode, 0);
         }
         t.expectGone(ticket);
         t.staysGone(ticket);
       }});
  out.push_back(
      {"image-build", [](Torture&) {},
       [](Torture&) -> std::vector<std::string> {
         return {"image", "build", "busybox", "--force"};
       },
       [](Torture& t, bool acked) {
         auto images = parseJson<v1::ListImagesResponse>(t.cli({"image", "ls", "-o", "json"}).out);
         ASSERT_TRUE(images);
         uint32_t current = 0, newest = 0;
         for (const auto& im : images->images()) {
           if (im.name() != "busybox") continue;
           if (im.current()) current = im.version();
           newest = std::max(newest, im.version());
         }
         EXPECT_NE(current, 0u) << "busybox has no current version";
         EXPECT_EQ(current, newest);
         if (acked) {
           t.staysBuilt(t.host().stateDir() + "/images/busybox-v" + std::to_string(current) +
                        "/rootfs/bin");
         }
       }});
  out.push_back(
      {"token-revoke",
       [](Torture& t) {
         t.ticket_ = "tok-" + std::to_string(t.next());
         t.host().createToken(t.ticket_, "ci");
       },
       [](Torture& t) -> std::vector<std::string> {
         return {"token", "revoke", t.ticket_};
       },
       [](Torture& t, bool acked) {
         const std::string name = t.ticket_;
         auto revoked = [&t, name]() -> std::optional<bool> {
           auto ls = parseJson<v1::ListTokensResponse>(t.cli({"token", "ls", "-o", "json"}).out);
           if (!ls) return std::nullopt;
           for (const auto& tk : ls->tokens()) {
             if (tk.name() == name) return tk.revoked();
           }
           return std::nullopt;
         };
         auto now = revoked();
         ASSERT_TRUE(now) << "token " << name << " is gone";
         if (acked) {
           EXPECT_TRUE(*now) << name;
         }
         if (!*now) {
           ASSERT_EQ(t.cli({"token", "revoke", name}).exitCode, 0);
         }
         t.staysRevoked(name);
       }});
  return out;
}

// Crash points that found a half-made state once (the first hit of the
// name in the scenario): part of every short run.
const std::pair<const char*, const char*> kRegressions[] = {
    // The deploy log of a create recovery rolled back stayed behind.
    {"create-image", "lxc.clone.after"},
    {"create-repo", "deploy.build.after"},
    // A delete completed by recovery, or killed after its last commit,
    // left logs/<slug> with no row.
    {"delete", "delete.destroyed"},
    {"delete", "delete.logs-removed"},
    // A delete killed after its destroy: recovery's destroy found no
    // container, so the address stayed bound in the bridge's set.
    {"delete", "lxc.destroy.after"},
    {"reap-ttl", "delete.destroyed"},
    // An image build killed after recording its version: recovery removed
    // the directory of the version the table called current.
    {"image-build", "image.build.recorded"},
    // A wake killed after the start: SLEEPING, its container running.
    {"wake", "wake.healthy"},
};

int failureCount() {
  const auto* result = ::testing::UnitTest::GetInstance()->current_test_info()->result();
  int n = 0;
  for (int i = 0; i < result->total_part_count(); ++i) {
    if (result->GetTestPartResult(i).failed()) ++n;
  }
  return n;
}

// `want` of `points`, evenly spread from the first to the last.
std::vector<Point> spread(const std::vector<Point>& points, size_t want) {
  if (want >= points.size()) return points;
  std::vector<Point> out;
  for (size_t i = 0; i < want; ++i) {
    out.push_back(points[want == 1 ? 0 : i * (points.size() - 1) / (want - 1)]);
  }
  return out;
}

TEST_F(Torture, EveryCrashPointLeavesAllOrNothing) {
  bool all = false;
  const size_t budget = envSize("QABOX_TORTURE_POINTS", 30, &all);
  auto list = scenarios();
  // The keeper: deployed first, it must outlive every crash.
  ASSERT_EQ(cli({"deploy", "KEEP-1", "--image", "busybox"}).exitCode, 0);
  keepsExisting("KEEP-1");

  std::vector<std::vector<Point>> perScenario;
  size_t total = 0, run = 0, reached = 0, leaky = 0;
  const auto started = std::chrono::steady_clock::now();
  for (size_t i = 0; i < list.size(); ++i) {
    // Listed just before its crashes, on the same rows: the agent's start
    // passes failpoints too (a route per row), so a point's number holds
    // only while the host holds what it held when it was listed.
    perScenario.push_back(listPoints(list[i]));
    total += perScenario.back().size();
    ASSERT_FALSE(perScenario.back().empty()) << list[i].name << " passes no failpoint";
    // An equal share each, the remainder to the first scenarios.
    size_t share = all ? SIZE_MAX : budget / list.size() + (i < budget % list.size() ? 1 : 0);
    std::vector<Point> chosen = spread(perScenario[i], share);
    if (!all) {
      // The crashes that once found a leak run every time.
      for (const auto& [scenario, name] : kRegressions) {
        if (scenario != list[i].name) continue;
        for (const Point& p : perScenario[i]) {
          if (p.name != name) continue;
          if (std::none_of(chosen.begin(), chosen.end(),
                           [&](const Point& c) { return c.spec() == p.spec(); })) {
            chosen.push_back(p);
          }
          break;
        }
      }
    }
    for (const Point& p : chosen) {
      SCOPED_TRACE(list[i].name + " crashed at " + p.spec());
      ++run;
      const int before = failureCount();
      if (crashAt(list[i], p)) ++reached;
      if (failureCount() != before) {
        ++leaky;
        std::printf("crash: FAILED at %s %s\n", list[i].name.c_str(), p.spec().c_str());
      }
      if (HasFatalFailure()) return;
    }
  }
  const auto took = std::chrono::duration_cast<seconds>(std::chrono::steady_clock::now() - started);
  std::printf("crash points: %zu known, %zu run, %zu killed the agent, %zu leaked, %lld s\n", total,
              run, reached, leaky, static_cast<long long>(took.count()));
  for (size_t i = 0; i < list.size(); ++i) {
    std::printf("  %-13s %zu points\n", list[i].name.c_str(), perScenario[i].size());
  }
  EXPECT_GT(reached, run / 2) << "most points must kill the agent";
}

// Four clients deploy and delete their own tickets while the agent is
// SIGKILLed at a random moment; what each was told must hold after the
// restart, and nothing may be left half-made.
TEST_F(Torture, KillNineUnderLoad) {
  const size_t rounds = envSize("QABOX_TORTURE_ROUNDS", 3);
  unsigned seed = static_cast<unsigned>(
      envSize("QABOX_TORTURE_SEED",
              static_cast<size_t>(std::chrono::system_clock::now().time_since_epoch().count() &
                                  0x7fffffff)));
  std::printf("kill -9 under load: seed %u (QABOX_TORTURE_SEED=%u repeats it)\n", seed, seed);
  std::mt19937 rng(seed);
  constexpr int kClients = 4;
  size_t acked = 0, lost = 0;
  for (size_t round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + " seed " + std::to_string(seed));
    // Per ticket: what the last acknowledged call made it, and whether a
    // call was in flight at the kill (then either is right).
    struct Ticket {
      bool exists = false;
      bool inFlight = false;
    };
    std::map<std::string, Ticket> tickets;
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        for (int i = 0; !stop; ++i) {
          const std::string ticket =
              "LD-" + std::to_string(round) + "-" + std::to_string(c) + "-" + std::to_string(i / 2);
          const bool deploy = i % 2 == 0;
          {
            std::lock_guard l(mu);
            tickets[ticket].inFlight = true;
          }
          auto r = deploy ? cli({"deploy", ticket, "--image", "busybox"}) : cli({"delete", ticket});
          std::lock_guard l(mu);
          if (r.exitCode != 0) {
            if (stop) return;  // the agent died under it: stays in flight
            ADD_FAILURE() << ticket << ": " << r.err;
            tickets[ticket].inFlight = false;
            continue;
          }
          tickets[ticket] = {deploy, false};
          ++acked;
        }
      });
    }
    std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(500, 5000)(rng)));
    stop = true;
    host_->killDaemon();
    for (auto& t : clients) t.join();
    restart({});
    auto found = leaks();
    EXPECT_TRUE(found.empty()) << [&] {
      std::string all;
      for (const auto& f : found) all += "  " + f + "\n";
      return all;
    }() << host_->logText();
    for (const auto& [ticket, t] : tickets) {
      auto e = env(ticket);
      if (t.inFlight) {
        if (e) {
          std::string slug = ticket;
          std::transform(slug.begin(), slug.end(), slug.begin(), ::tolower);
          expectServed(ticket, slug);
        }
      } else if (t.exists) {
        EXPECT_TRUE(e) << ticket << ": deployed (acknowledged), gone after the crash";
        if (!e) ++lost;
      } else {
        EXPECT_FALSE(e) << ticket << ": deleted (acknowledged), back after the crash";
        if (e) ++lost;
      }
      if (e) {
        EXPECT_EQ(cli({"delete", ticket}).exitCode, 0);
      }
    }
  }
  std::printf("kill -9 under load: %zu rounds, %zu acknowledged calls, %zu lost\n", rounds, acked,
              lost);
}

}  // namespace
}  // namespace qabox::testing
