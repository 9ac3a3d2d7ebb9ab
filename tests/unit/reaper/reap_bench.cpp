// Times reap passes over a real SQLite store with environments spread over a
// few local bare repos, with a reclaim callback that does nothing (so every
// pass sees the same environments). Run by scripts/bench/reap.sh.
//
//   reap_bench [--envs 500] [--repos 4] [--passes 5]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/ticket.h"
#include "daemon/options.h"
#include "fakes/fake_time.h"
#include "reaper/reaper.h"
#include "store/paths.h"
#include "unit/reaper/git_fixture.h"

namespace qabox {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::hours;
using std::chrono::minutes;

const TimePoint kNow = fromUnixMillis(1'700'000'000'000);

double msBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Runs the real thing; counts git processes and spans the fetches of a pass.
class TimingRunner : public ProcessRunner {
 public:
  Result<ProcessResult> run(const ProcessSpec& spec) override {
    bool fetch = spec.argv.size() > 2 && spec.argv[2] == "fetch";
    auto start = SteadyClock::now();
    auto r = real_.run(spec);
    auto end = SteadyClock::now();
    std::lock_guard lock(mu_);
    ++processes_;
    if (fetch) {
      ++fetches_;
      if (!fetchSeen_ || start < fetchStart_) fetchStart_ = start;
      if (!fetchSeen_ || end > fetchEnd_) fetchEnd_ = end;
      fetchSeen_ = true;
    }
    return r;
  }

  struct Figures {
    int processes = 0;
    int fetches = 0;
    double fetchMs = 0;  // from the first fetch's start to the last one's end
  };
  Figures take() {
    std::lock_guard lock(mu_);
    Figures f{processes_, fetches_, fetchSeen_ ? msBetween(fetchStart_, fetchEnd_) : 0.0};
    processes_ = fetches_ = 0;
    fetchSeen_ = false;
    return f;
  }

 private:
  RealProcessRunner real_;
  std::mutex mu_;
  int processes_ = 0;
  int fetches_ = 0;
  bool fetchSeen_ = false;
  SteadyClock::time_point fetchStart_, fetchEnd_;
};

std::string data(const std::string& s) { return "data " + std::to_string(s.size()) + "\n" + s; }

// A bare remote with develop and `branches` feature branches of one commit
// each, the first `merged` of them merged into develop, made in one
// fast-import. Returns each branch's head.
std::vector<std::string> makeRemote(test::GitCli& git, const std::string& bare, int branches,
                                    int merged) {
  git({"init", "--quiet", "--bare", "--initial-branch=develop", bare});
  std::string s;
  s += "blob\nmark :1\n" + data("base\n") + "\n";
  s += "commit refs/heads/develop\nmark :2\ncommitter Dev <dev@example.com> 1700000000 +0000\n" +
       data("base") + "\nM 100644 :1 README\n\n";
  for (int i = 0; i < branches; ++i) {
    std::string n = std::to_string(i);
    s += "commit refs/heads/feature/B-" + n + "\nmark :" + std::to_string(100 + i) +
         "\ncommitter Dev <dev@example.com> 1700000100 +0000\n" + data("work " + n) +
         "\nfrom :2\nM 100644 inline f" + n + ".txt\n" + data(n + "\n") + "\n";
  }
  if (merged > 0) {
    s += "commit refs/heads/develop\nmark :3\ncommitter Dev <dev@example.com> 1700000200 +0000\n" +
         data("merge") + "\nfrom :2\n";
    for (int i = 0; i < merged; ++i) s += "merge :" + std::to_string(100 + i) + "\n";
    s += "\n";
  }
  git({"--git-dir=" + bare, "fast-import", "--quiet"}, s);
  std::vector<std::string> heads;
  for (int i = 0; i < branches; ++i) {
    heads.push_back(
        git({"--git-dir=" + bare, "rev-parse", "refs/heads/feature/B-" + std::to_string(i)}));
  }
  return heads;
}

int intArg(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return std::max(1, std::atoi(argv[i + 1]));
  }
  return fallback;
}

int run(int argc, char** argv) {
  const int envCount = intArg(argc, argv, "--envs", 500);
  const int repoCount = intArg(argc, argv, "--repos", 4);
  const int passes = intArg(argc, argv, "--passes", 5);
  spdlog::set_level(spdlog::level::warn);  // one line per reclaim would drown the figures

  test::TempDir tmp;
  test::GitCli cli(tmp.path());
  std::string state = tmp.path() + "/state";
  std::filesystem::create_directories(state);
  auto opened = openSqliteStore(paths::database(state));
  if (!opened) {
    std::cerr << opened.status().toString() << "\n";
    return 1;
  }
  Store& store = **opened;

  // Per repo: 2 branches merged, 1 deleted, 1 idle, 1 ttl, 1 max_age; the
  // rest fresh (most environments are not due).
  Config config;
  config.stateDir = state;
  const int perRepo = (envCount + repoCount - 1) / repoCount;
  const int mergedPerRepo = 2;
  int made = 0, due = 0;
  for (int r = 0; r < repoCount && made < envCount; ++r) {
    std::string name = "repo" + std::to_string(r);
    std::string bare = tmp.path() + "/" + name + ".git";
    auto heads = makeRemote(cli, bare, perRepo, mergedPerRepo);
    config.repos.push_back({name, bare});
    for (int i = 0; i < perRepo && made < envCount; ++i, ++made) {
      Environment e;
      e.ticket = "BENCH-" + std::to_string(made + 1);
      e.slug = parseTicket(e.ticket)->slug;
      e.container = containerNameFor(e.slug);
      e.state = EnvState::kReady;
      e.ip = "10.44." + std::to_string(made / 250) + "." + std::to_string(made % 250 + 2);
      e.spec.image = "busybox";
      e.spec.repo = name;
      e.spec.sourceBranch = "feature/B-" + std::to_string(i);
      e.spec.targetBranch = "develop";
      e.commit = heads[i];
      e.createdAt = e.updatedAt = e.deployedAt = kNow - hours(5);
      e.lastAccessAt = kNow - minutes(3);
      if (i < mergedPerRepo) {
        ++due;
      } else if (i == mergedPerRepo) {
        e.spec.sourceBranch = "feature/gone-" + std::to_string(i);
        ++due;
      } else if (i == mergedPerRepo + 1) {
        e.lastAccessAt = kNow - hours(100);
        e.createdAt = e.deployedAt = kNow - hours(120);
        ++due;
      } else if (i == mergedPerRepo + 2) {
        e.spec.ttl = hours(48);
        e.expiresAt = kNow - minutes(1);
        ++due;
      } else if (i == mergedPerRepo + 3) {
        e.createdAt = kNow - hours(400);
        ++due;
      }
      Status s = store.putEnvironment(e);
      if (!s.isOk()) {
        std::cerr << s.toString() << "\n";
        return 1;
      }
    }
  }

  TimingRunner runner;
  GitRepos git(runner, state, std::chrono::seconds(60));
  FakeTime time(kNow);
  Reaper reaper(
      reaperOptions(config), store, &git,
      [](const std::string&, const std::string&, const Reaper::StillDueFn&) {
        return Status::ok();
      },
      time);

  std::printf("reap bench: %d environments over %d repos, %d due per pass\n", made, repoCount, due);
  std::printf("%-22s %10s %10s %12s %10s %10s\n", "pass", "total ms", "fetch ms", "w/o fetch ms",
              "git procs", "reclaimed");
  auto pass = [&](const std::string& label, bool dryRun, const std::string& policy) {
    auto start = SteadyClock::now();
    auto r = reaper.runOnce(dryRun, policy, "bench");
    double total = msBetween(start, SteadyClock::now());
    auto f = runner.take();
    if (!r) {
      std::cerr << label << ": " << r.status().toString() << "\n";
      std::exit(1);
    }
    for (const auto& w : r->warnings) std::cerr << "warning: " << w << "\n";
    std::printf("%-22s %10.1f %10.1f %12.1f %10d %10zu\n", label.c_str(), total, f.fetchMs,
                total - f.fetchMs, f.processes, r->reclaimed.size());
    return total - f.fetchMs;
  };

  pass("first (makes mirrors)", true, "");
  std::vector<double> all, timeOnly;
  for (int i = 0; i < passes; ++i) all.push_back(pass("all policies", false, ""));
  for (int i = 0; i < passes; ++i) timeOnly.push_back(pass("--policy idle", false, "idle"));
  std::sort(all.begin(), all.end());
  std::sort(timeOnly.begin(), timeOnly.end());
  std::printf("median without fetches: all policies %.1f ms, time policy only %.1f ms\n",
              all[all.size() / 2], timeOnly[timeOnly.size() / 2]);
  return 0;
}

}  // namespace
}  // namespace qabox

int main(int argc, char** argv) {
  try {
    return qabox::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "reap_bench: " << e.what() << "\n";
    return 1;
  }
}
