#include "deploy/git.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "store/paths.h"
#include "unit/deploy/passthrough_runner.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

class GitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qabox-git-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    state_ = root_ + "/state";
    fs::create_directories(state_);
    remote_ = root_ + "/remote.git";
    scratch_ = root_ + "/scratch";
    repo_ = RepoConfig{"shop", remote_};
    sh({"git", "init", "--quiet", "--bare", "--initial-branch=develop", remote_});
    sh({"git", "clone", "--quiet", remote_, scratch_});
    sh({"git", "-C", scratch_, "checkout", "--quiet", "-b", "develop"});
    write("README", "shop\n");
    write("a.txt", "one\ntwo\nthree\n");
    write("dir/b.txt", "b\n");
    commit("base");
    sh({"git", "-C", scratch_, "push", "--quiet", "origin", "develop"});
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Test-side git: its own config-free environment, a fixed identity.
  std::string sh(std::vector<std::string> argv, bool mustSucceed = true) {
    ProcessSpec spec;
    spec.argv = std::move(argv);
    spec.env = std::map<std::string, std::string>{
        {"PATH", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"},
        {"HOME", root_},
        {"GIT_CONFIG_NOSYSTEM", "1"},
        {"GIT_CONFIG_GLOBAL", "/dev/null"},
        {"GIT_AUTHOR_NAME", "Dev"},
        {"GIT_AUTHOR_EMAIL", "dev@example.test"},
        {"GIT_COMMITTER_NAME", "Dev"},
        {"GIT_COMMITTER_EMAIL", "dev@example.test"},
        {"LC_ALL", "C"}};
    spec.timeout = milliseconds(30'000);
    auto r = real_.run(spec);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    if (!r) return "";
    if (mustSucceed) {
      EXPECT_TRUE(r->ok()) << spec.argv[0] << " " << (spec.argv.size() > 3 ? spec.argv[3] : "")
                           << ": " << r->err;
    }
    std::string out = r->out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::string git(std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", scratch_});
    return sh(std::move(args));
  }
  void write(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(scratch_ + "/" + path).parent_path());
    std::ofstream(scratch_ + "/" + path) << content;
  }
  std::string commit(const std::string& message) {
    git({"add", "-A"});
    git({"commit", "--quiet", "-m", message});
    return git({"rev-parse", "HEAD"});
  }
  void checkout(const std::string& branch, bool create = false) {
    if (create) {
      git({"checkout", "--quiet", "-b", branch});
    } else {
      git({"checkout", "--quiet", branch});
    }
  }
  void push(const std::string& branch) { git({"push", "--quiet", "--force", "origin", branch}); }
  std::string remoteHead(const std::string& branch) {
    return sh({"git", "--git-dir=" + remote_, "rev-parse", "refs/heads/" + branch});
  }
  std::string mirrorGit(std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "--git-dir=" + paths::gitMirror(state_, "shop")});
    return sh(std::move(args));
  }

  // develop: base -> tgt.txt; feature/x: base -> src.txt.
  void divergentBranches() {
    checkout("feature/x", true);
    write("src.txt", "from source\n");
    commit("source work");
    push("feature/x");
    checkout("develop");
    write("tgt.txt", "from target\n");
    commit("target work");
    push("develop");
  }

  std::string root_, state_, remote_, scratch_;
  RepoConfig repo_;
  RealProcessRunner real_;
  testing::PassthroughRunner runner_;
};

bool exists(const std::string& p) { return fs::exists(p); }

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(GitTest, MergesSourceIntoTargetAndExportsBoth) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));

  auto t0 = std::chrono::steady_clock::now();
  auto m = repos.merge(repo_, "feature/x", "develop");
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_FALSE(m->fastForward);
  EXPECT_FALSE(m->alreadyMerged);
  EXPECT_EQ(m->sourceHead, remoteHead("feature/x"));
  EXPECT_EQ(m->targetHead, remoteHead("develop"));
  EXPECT_NE(m->commit, m->sourceHead);
  EXPECT_NE(m->commit, m->targetHead);
  EXPECT_EQ(mirrorGit({"rev-list", "--parents", "-n1", m->commit}),
            m->commit + " " + m->targetHead + " " + m->sourceHead);
  EXPECT_EQ(
      mirrorGit({"log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", m->commit}),
      "qabox <qabox@localhost>|qabox <qabox@localhost>|Merge branch 'feature/x' into develop");
  // Pinned so gc keeps it until export.
  EXPECT_EQ(mirrorGit({"rev-parse", std::string(GitRepos::kPinPrefix) + m->commit}), m->commit);
  // Nothing is ever pushed.
  EXPECT_EQ(sh({"git", "--git-dir=" + remote_, "for-each-ref", "--format=%(refname)"}),
            "refs/heads/develop\nrefs/heads/feature/x");

  std::string dest = root_ + "/export";
  auto t2 = std::chrono::steady_clock::now();
  auto s = repos.exportTree(repo_, m->commit, dest);
  auto t3 = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(slurp(dest + "/src.txt"), "from source\n");
  EXPECT_EQ(slurp(dest + "/tgt.txt"), "from target\n");
  EXPECT_EQ(slurp(dest + "/dir/b.txt"), "b\n");
  EXPECT_FALSE(exists(dest + "/.git"));
  // The archive is scratch: nothing is left in work/.
  EXPECT_TRUE(fs::is_empty(paths::workDir(state_)));

  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); };
  std::cout << "[timing] first merge (mirror init + fetch + merge): " << ms(t1 - t0) / 1000.0
            << " ms; export: " << ms(t3 - t2) / 1000.0 << " ms\n";
}

// The lifecycle and the reaper hold a GitSource: its calls, defaults
// included, reach the mirrors as the GitRepos ones do.
TEST_F(GitTest, TheInterfaceReachesTheMirrors) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  GitSource& source = repos;
  auto m = source.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->sourceHead, remoteHead("feature/x"));
  auto text = source.readFile(repo_, m->commit, "src.txt");
  ASSERT_TRUE(text.isOk()) << text.status().toString();
  EXPECT_EQ(*text, "from source\n");
  ASSERT_TRUE(source.exportTree(repo_, m->commit, root_ + "/export").isOk());
  EXPECT_EQ(slurp(root_ + "/export/tgt.txt"), "from target\n");
  // branchState() fetches first unless told not to.
  size_t fetches = runner_.count("fetch");
  auto st = source.branchState(repo_, "feature/x", "develop");
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(runner_.count("fetch"), fetches + 1);
  EXPECT_FALSE(st->merged);
  st = source.branchState(repo_, "feature/x", "develop", GitSource::FetchFirst::kNo);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(runner_.count("fetch"), fetches + 1);
  auto many = source.branchStates(repo_, {{"feature/x", "develop", ""}});
  ASSERT_EQ(many.size(), 1u);
  ASSERT_TRUE(many[0].isOk()) << many[0].status().toString();
  EXPECT_EQ(many[0]->sourceHead, st->sourceHead);
  EXPECT_TRUE(source.maintain(repo_, {}).isOk());
  EXPECT_EQ(mirrorGit({"for-each-ref", "--format=%(refname)", GitRepos::kPinPrefix}), "");
}

TEST_F(GitTest, FastForwardGivesTheSourceHead) {
  checkout("feature/x", true);
  write("src.txt", "s\n");
  std::string head = commit("ahead");
  push("feature/x");
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_TRUE(m->fastForward);
  EXPECT_FALSE(m->alreadyMerged);
  EXPECT_EQ(m->commit, head);
  EXPECT_EQ(runner_.count("commit-tree"), 0u);
}

TEST_F(GitTest, AlreadyMergedGivesTheTargetHead) {
  checkout("feature/x", true);
  write("src.txt", "s\n");
  commit("feature");
  push("feature/x");
  checkout("develop");
  git({"merge", "--quiet", "--no-ff", "-m", "merge", "feature/x"});
  std::string head = git({"rev-parse", "HEAD"});
  push("develop");
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_TRUE(m->alreadyMerged);
  EXPECT_FALSE(m->fastForward);
  EXPECT_EQ(m->commit, head);
  EXPECT_EQ(m->targetHead, head);
}

TEST_F(GitTest, ConflictNamesEveryPathAndCreatesNothing) {
  checkout("feature/x", true);
  write("a.txt", "one\nTWO from source\nthree\n");
  write("dir/b.txt", "source b\n");
  write("clean.txt", "no conflict here\n");
  commit("source");
  push("feature/x");
  checkout("develop");
  write("a.txt", "one\ntwo from target\nthree\n");
  write("dir/b.txt", "target b\n");
  commit("target");
  push("develop");

  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "feature/x", "develop");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(m.status().message(), "merging feature/x into develop conflicts in: a.txt, dir/b.txt");
  EXPECT_EQ(runner_.count("commit-tree"), 0u);
  EXPECT_EQ(mirrorGit({"for-each-ref", "--format=%(refname)", "refs/qabox/"}), "");
}

TEST_F(GitTest, SameInputsGiveTheSameCommit) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto a = repos.merge(repo_, "feature/x", "develop");
  auto b = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ(a->commit, b->commit);
  // The second answer came from memory: one merge computed, two pins written.
  EXPECT_EQ(runner_.count("merge-tree"), 1u);
  EXPECT_EQ(runner_.count("update-ref"), 2u);

  // A fresh mirror elsewhere, later, computes the same id too.
  std::this_thread::sleep_for(milliseconds(1100));
  fs::create_directories(root_ + "/state2");
  GitRepos other(runner_, root_ + "/state2", milliseconds(30'000));
  auto c = other.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->commit, a->commit);

  // A new push changes it.
  checkout("feature/x");
  write("more.txt", "more\n");
  commit("more");
  push("feature/x");
  auto d = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_NE(d->commit, a->commit);
}

TEST_F(GitTest, MissingBranchIsNotFoundNamingIt) {
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "feature/nope", "develop");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kNotFound);
  EXPECT_EQ(m.status().message(), "source_branch \"feature/nope\": no such branch on repo shop");

  // A prefix of an existing branch is not that branch.
  divergentBranches();
  m = repos.merge(repo_, "feature", "develop");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().message(), "source_branch \"feature\": no such branch on repo shop");

  m = repos.merge(repo_, "feature/x", "main");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kNotFound);
  EXPECT_EQ(m.status().message(), "target_branch \"main\": no such branch on repo shop");
}

TEST_F(GitTest, UnreachableRemoteIsUnavailable) {
  GitRepos repos(runner_, state_, milliseconds(30'000));
  RepoConfig gone{"shop", root_ + "/no-such-repo.git"};
  auto m = repos.merge(gone, "feature/x", "develop");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kUnavailable);
  // git's own words, without the advice it prints after them.
  EXPECT_EQ(m.status().message(), "repo shop: cannot fetch " + gone.url + ": '" + gone.url +
                                      "' does not appear to be a git repository; Could not read "
                                      "from remote repository.");

  auto f = repos.fetch(gone);
  EXPECT_EQ(f.code(), Code::kUnavailable);
}

TEST_F(GitTest, FetchTimeoutIsUnavailableAndSaysSo) {
  runner_.fakeFetchTimeout = true;
  GitRepos repos(runner_, state_, milliseconds(2'000));
  auto m = repos.merge(repo_, "feature/x", "develop");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kUnavailable);
  EXPECT_EQ(m.status().message(), "repo shop: cannot fetch " + remote_ + ": no answer within 2s");
  // The configured timeout is what the fetch ran with.
  bool sawFetch = false;
  for (const auto& c : runner_.calls()) {
    if (c.argv.size() > 2 && c.argv[2] == "fetch") {
      sawFetch = true;
      EXPECT_EQ(c.timeout, milliseconds(2'000));
    }
  }
  EXPECT_TRUE(sawFetch);
}

TEST_F(GitTest, BadInputIsRejectedBeforeAnyProcessRuns) {
  testing::PassthroughRunner refusing;
  refusing.refuseAll = true;
  GitRepos repos(refusing, state_, milliseconds(30'000));
  for (std::string bad : {"-x", "--upload-pack=touch /tmp/pwned", "a..b", "a b", "x~1", "x^", "a:b",
                          "", "refs/../x", "x.lock", "/x", "x@{1}"}) {
    auto m = repos.merge(repo_, bad, "develop");
    ASSERT_FALSE(m.isOk()) << bad;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(m.status().message().rfind("source_branch", 0), 0u) << m.status().message();
    m = repos.merge(repo_, "feature/x", bad);
    ASSERT_FALSE(m.isOk()) << bad;
    EXPECT_EQ(m.status().message().rfind("target_branch", 0), 0u) << m.status().message();
    auto b = repos.branchState(repo_, bad, "develop");
    EXPECT_EQ(b.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(repos.readFile(repo_, "HEAD", "qabox.toml").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(repos.readFile(repo_, "--output=/tmp/x", "qabox.toml").status().code(),
            Code::kInvalidArgument);
  std::string sha(40, 'a');
  for (std::string path : {"", "/etc/passwd", "../x", "a/../../x", "a\nb", "a//b"}) {
    EXPECT_EQ(repos.readFile(repo_, sha, path).status().code(), Code::kInvalidArgument) << path;
  }
  EXPECT_EQ(repos.exportTree(repo_, "-o/tmp/x", root_ + "/e").code(), Code::kInvalidArgument);
  for (const RepoConfig& bad :
       {RepoConfig{"../etc", remote_}, RepoConfig{"", remote_}, RepoConfig{"Shop", remote_},
        RepoConfig{"shop", ""}, RepoConfig{"shop", "--upload-pack=touch /tmp/pwned"}}) {
    EXPECT_EQ(repos.merge(bad, "feature/x", "develop").status().code(), Code::kInvalidArgument)
        << bad.name << " " << bad.url;
    EXPECT_EQ(repos.fetch(bad).code(), Code::kInvalidArgument);
    EXPECT_EQ(repos.exportTree(bad, sha, root_ + "/e").code(), Code::kInvalidArgument);
    EXPECT_EQ(repos.readFile(bad, sha, "qabox.toml").status().code(), Code::kInvalidArgument);
    EXPECT_EQ(repos.maintain(bad, {}).code(), Code::kInvalidArgument);
  }
  EXPECT_EQ(repos.branchState(repo_, "feature/x", "develop", GitRepos::FetchFirst::kYes, "HEAD")
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(refusing.calls().empty());
}

TEST_F(GitTest, EveryGitCallIsAnArgvWithAClosedEnvironment) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  auto calls = runner_.calls();
  ASSERT_GE(calls.size(), 5u);
  for (const auto& c : calls) {
    ASSERT_FALSE(c.argv.empty());
    EXPECT_EQ(c.argv[0], "git");
    ASSERT_TRUE(c.env.has_value());
    const auto& env = *c.env;
    EXPECT_EQ(env.at("GIT_TERMINAL_PROMPT"), "0");
    EXPECT_EQ(env.at("GIT_CONFIG_NOSYSTEM"), "1");
    EXPECT_EQ(env.at("GIT_CONFIG_GLOBAL"), "/dev/null");
    EXPECT_EQ(env.at("LC_ALL"), "C");
    EXPECT_NE(env.at("GIT_SSH_COMMAND").find("BatchMode=yes"), std::string::npos);
    EXPECT_EQ(env.at("HOME").rfind(state_, 0), 0u);
    EXPECT_EQ(env.count("GIT_DIR"), 0u);
    EXPECT_GT(c.timeout.count(), 0);
  }
  // The user's branch names reach git only behind a fixed prefix, after "--".
  for (const auto& c : calls) {
    for (size_t i = 0; i < c.argv.size(); ++i) {
      if (c.argv[i].find("feature/x") == std::string::npos) continue;
      bool ok = c.argv[i].rfind("refs/remotes/origin/", 0) == 0 ||
                c.argv[i].rfind("Merge branch", 0) == 0;
      EXPECT_TRUE(ok) << c.argv[i];
    }
  }
}

TEST_F(GitTest, ConcurrentMergesOnOneRepoShareTheMirror) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  std::vector<std::thread> threads;
  std::vector<Result<Merge>> results(4, Result<Merge>(internalError("not run")));
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = repos.merge(repo_, "feature/x", "develop"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(r->commit, results[0]->commit);
  }
  // Waiting callers reuse a fetch that started after they asked.
  EXPECT_GE(runner_.count("fetch"), 1u);
  EXPECT_LE(runner_.count("fetch"), 4u);
  // One mirror, made once: init runs without --git-dir, so it is argv[1].
  size_t inits = 0;
  for (const auto& c : runner_.calls()) inits += c.argv.size() > 1 && c.argv[1] == "init";
  EXPECT_EQ(inits, 1u);
}

TEST_F(GitTest, ConcurrentMergesOnTwoReposRunInParallel) {
  divergentBranches();
  std::string remote2 = root_ + "/remote2.git";
  sh({"git", "clone", "--quiet", "--bare", remote_, remote2});
  RepoConfig repo2{"shop2", remote2};
  GitRepos repos(runner_, state_, milliseconds(30'000));
  std::vector<std::thread> threads;
  std::vector<Result<Merge>> results(4, Result<Merge>(internalError("not run")));
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = repos.merge(i % 2 ? repo2 : repo_, "feature/x", "develop"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(r->commit, results[0]->commit);  // same history, same merge
  }
  EXPECT_TRUE(exists(paths::gitMirror(state_, "shop2") + "/HEAD"));
}

TEST_F(GitTest, SequentialFetchesEachSeeNewPushes) {
  GitRepos repos(runner_, state_, milliseconds(30'000));
  ASSERT_TRUE(repos.fetch(repo_).isOk());
  write("new.txt", "new\n");
  std::string head = commit("new");
  push("develop");
  ASSERT_TRUE(repos.fetch(repo_).isOk());
  EXPECT_EQ(runner_.count("fetch"), 2u);
  EXPECT_EQ(mirrorGit({"rev-parse", "refs/remotes/origin/develop"}), head);
}

TEST_F(GitTest, BranchStateReportsMergedAndDeleted) {
  checkout("feature/x", true);
  write("src.txt", "s\n");
  std::string sourceHead = commit("feature");
  push("feature/x");
  checkout("develop");
  write("tgt.txt", "t\n");
  commit("target");
  push("develop");

  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto st = repos.branchState(repo_, "feature/x", "develop");
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_TRUE(st->sourceExists);
  EXPECT_FALSE(st->merged);
  EXPECT_EQ(st->sourceHead, sourceHead);
  EXPECT_EQ(st->containedIn, "");

  git({"merge", "--quiet", "--no-ff", "-m", "merge feature/x", "feature/x"});
  std::string mergeCommit = git({"rev-parse", "HEAD"});
  push("develop");
  // Without a fetch the mirror still has the old target.
  st = repos.branchState(repo_, "feature/x", "develop", GitRepos::FetchFirst::kNo);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_FALSE(st->merged);
  ASSERT_TRUE(repos.fetch(repo_).isOk());
  size_t fetches = runner_.count("fetch");
  st = repos.branchState(repo_, "feature/x", "develop", GitRepos::FetchFirst::kNo);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(runner_.count("fetch"), fetches);
  EXPECT_TRUE(st->sourceExists);
  EXPECT_TRUE(st->merged);
  EXPECT_EQ(st->targetHead, mergeCommit);
  EXPECT_EQ(st->containedIn, mergeCommit);

  git({"push", "--quiet", "origin", "--delete", "feature/x"});
  st = repos.branchState(repo_, "feature/x", "develop");
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_FALSE(st->sourceExists);
  EXPECT_FALSE(st->merged);  // nothing known to check
  EXPECT_EQ(st->sourceHead, "");
  // With the head that was deployed, a merged-then-deleted branch is still
  // recognised as merged.
  st = repos.branchState(repo_, "feature/x", "develop", GitRepos::FetchFirst::kNo, sourceHead);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_FALSE(st->sourceExists);
  EXPECT_TRUE(st->merged);
  EXPECT_EQ(st->containedIn, mergeCommit);
  // A head the mirror never saw: not known to be merged, and not an error.
  st = repos.branchState(repo_, "feature/x", "develop", GitRepos::FetchFirst::kNo,
                         std::string(40, 'b'));
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_FALSE(st->merged);

  auto missing = repos.branchState(repo_, "feature/x", "main", GitRepos::FetchFirst::kNo);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().message(), "target_branch \"main\": no such branch on repo shop");
}

TEST_F(GitTest, BranchStateWithoutAMirrorFetchesFirst) {
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto st = repos.branchState(repo_, "develop", "develop", GitRepos::FetchFirst::kNo);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(runner_.count("fetch"), 1u);
  EXPECT_TRUE(st->merged);
}

// The batch must say exactly what branchState() says, pair by pair.
void expectSameAnswer(const Result<BranchState>& batch, const Result<BranchState>& single,
                      const std::string& what) {
  ASSERT_EQ(batch.isOk(), single.isOk())
      << what << ": batch " << (batch ? "ok" : batch.status().toString()) << ", single "
      << (single ? "ok" : single.status().toString());
  if (!single.isOk()) {
    EXPECT_EQ(batch.status().code(), single.status().code()) << what;
    EXPECT_EQ(batch.status().message(), single.status().message()) << what;
    return;
  }
  EXPECT_EQ(batch->sourceExists, single->sourceExists) << what;
  EXPECT_EQ(batch->sourceHead, single->sourceHead) << what;
  EXPECT_EQ(batch->targetHead, single->targetHead) << what;
  EXPECT_EQ(batch->merged, single->merged) << what;
  EXPECT_EQ(batch->containedIn, single->containedIn) << what;
}

TEST_F(GitTest, BranchStatesAnswersLikeBranchStateForEveryKindOfPair) {
  // feature/merged: merged into develop. feature/open: not merged.
  // feature/gone-merged: merged, then deleted. feature/gone: deleted unmerged.
  // release/1: a second target that contains feature/open only.
  std::map<std::string, std::string> heads;
  for (std::string b : {"feature/merged", "feature/open", "feature/gone-merged", "feature/gone"}) {
    checkout("develop");
    checkout(b, true);
    write(b + ".txt", b + "\n");
    heads[b] = commit(b);
    push(b);
  }
  checkout("develop");
  for (std::string b : {"feature/merged", "feature/gone-merged"}) {
    git({"merge", "--quiet", "--no-ff", "-m", "merge " + b, b});
  }
  push("develop");
  checkout("feature/open");
  checkout("release/1", true);
  push("release/1");
  git({"push", "--quiet", "origin", "--delete", "feature/gone-merged", "feature/gone"});

  GitRepos repos(runner_, state_, milliseconds(30'000));
  ASSERT_TRUE(repos.fetch(repo_).isOk());
  const std::string never(40, 'b');
  std::vector<BranchQuery> queries = {
      {"feature/merged", "develop", ""},
      {"feature/merged", "develop", heads["feature/merged"]},
      {"feature/open", "develop", heads["feature/open"]},
      {"feature/open", "release/1", ""},
      {"feature/merged", "release/1", ""},
      {"feature/gone-merged", "develop", heads["feature/gone-merged"]},
      {"feature/gone-merged", "develop", ""},
      {"feature/gone", "develop", heads["feature/gone"]},
      {"feature/gone", "develop", never},
      {"feature/open", "main", ""},
      {"develop", "develop", ""},
      {"feature/open", "develop", ""},  // the same pair twice
      {"-x", "develop", ""},
      {"feature/open", "a..b", ""},
      {"feature/open", "develop", "HEAD"},
      {"feature", "develop", ""},  // a prefix of real branches, itself none
  };
  size_t before = runner_.calls().size();
  auto batch = repos.branchStates(repo_, queries);
  size_t batchProcesses = runner_.calls().size() - before;
  ASSERT_EQ(batch.size(), queries.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    const BranchQuery& q = queries[i];
    auto single =
        repos.branchState(repo_, q.source, q.target, GitRepos::FetchFirst::kNo, q.lastSourceHead);
    expectSameAnswer(batch[i], single, q.source + " -> " + q.target + " @" + q.lastSourceHead);
  }
  // Spot checks, so that two wrong answers that agree do not pass.
  EXPECT_TRUE(batch[0]->merged);
  EXPECT_FALSE(batch[2]->merged);
  EXPECT_TRUE(batch[3]->merged);
  EXPECT_FALSE(batch[4]->merged);
  EXPECT_TRUE(batch[5]->merged);
  EXPECT_FALSE(batch[5]->sourceExists);
  EXPECT_EQ(batch[5]->containedIn, remoteHead("develop"));
  EXPECT_FALSE(batch[6]->merged);
  EXPECT_FALSE(batch[7]->merged);
  EXPECT_FALSE(batch[7]->sourceExists);
  EXPECT_EQ(batch[9].status().code(), Code::kNotFound);
  EXPECT_EQ(batch[12].status().code(), Code::kInvalidArgument);
  EXPECT_EQ(batch[13].status().code(), Code::kInvalidArgument);
  EXPECT_EQ(batch[14].status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(batch[15]->sourceExists);
  // One listing, one --merged per distinct target (develop, release/1), one
  // ancestry check per deleted source with a head; no fetch.
  EXPECT_EQ(batchProcesses, 1u + 2u + 3u);
}

TEST_F(GitTest, BranchStatesCostsTheSameForOneOrManyPairs) {
  std::vector<BranchQuery> queries;
  for (int i = 0; i < 12; ++i) {
    std::string b = "feature/b" + std::to_string(i);
    checkout("develop");
    checkout(b, true);
    write(b + ".txt", b + "\n");
    commit(b);
    push(b);
    queries.push_back({b, "develop", ""});
  }
  checkout("develop");
  git({"merge", "--quiet", "--no-ff", "-m", "merge", "feature/b7"});
  push("develop");
  GitRepos repos(runner_, state_, milliseconds(30'000));
  ASSERT_TRUE(repos.fetch(repo_).isOk());
  size_t before = runner_.calls().size();
  auto batch = repos.branchStates(repo_, queries);
  EXPECT_EQ(runner_.calls().size() - before, 2u);
  EXPECT_EQ(runner_.count("fetch"), 1u);
  ASSERT_EQ(batch.size(), 12u);
  for (size_t i = 0; i < batch.size(); ++i) {
    ASSERT_TRUE(batch[i].isOk()) << batch[i].status().toString();
    EXPECT_EQ(batch[i]->merged, i == 7) << i;
    EXPECT_TRUE(batch[i]->sourceExists);
  }
  EXPECT_TRUE(repos.branchStates(repo_, {}).empty());
}

TEST_F(GitTest, BranchStatesWithoutAMirrorFetchesFirstAndABadRepoFailsEveryAnswer) {
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto st = repos.branchStates(repo_, {{"develop", "develop", ""}});
  ASSERT_EQ(st.size(), 1u);
  ASSERT_TRUE(st[0].isOk()) << st[0].status().toString();
  EXPECT_TRUE(st[0]->merged);
  EXPECT_EQ(runner_.count("fetch"), 1u);

  RepoConfig unreachable{"gone", root_ + "/no-such-remote.git"};
  auto down = repos.branchStates(unreachable, {{"feature/x", "develop", ""}, {"a", "b", ""}});
  ASSERT_EQ(down.size(), 2u);
  for (const auto& r : down) EXPECT_EQ(r.status().code(), Code::kUnavailable);

  testing::PassthroughRunner refusing;
  refusing.refuseAll = true;
  GitRepos none(refusing, state_, milliseconds(30'000));
  auto bad = none.branchStates(RepoConfig{"../etc", remote_}, {{"feature/x", "develop", ""}});
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(refusing.calls().empty());
}

TEST_F(GitTest, ReadFile) {
  write("qabox.toml", "[app]\nstart = \"./run\"\n");
  commit("manifest");
  push("develop");
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "develop", "develop");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  auto f = repos.readFile(repo_, m->commit, "qabox.toml");
  ASSERT_TRUE(f.isOk()) << f.status().toString();
  EXPECT_EQ(*f, "[app]\nstart = \"./run\"\n");
  auto nested = repos.readFile(repo_, m->commit, "dir/b.txt");
  ASSERT_TRUE(nested.isOk()) << nested.status().toString();
  EXPECT_EQ(*nested, "b\n");

  auto missing = repos.readFile(repo_, m->commit, "nope.toml");
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "repo shop: no file nope.toml at commit " + m->commit.substr(0, 12));
  EXPECT_EQ(repos.readFile(repo_, std::string(40, 'c'), "qabox.toml").status().code(),
            Code::kNotFound);
  auto dir = repos.readFile(repo_, m->commit, "dir");
  EXPECT_EQ(dir.status().code(), Code::kFailedPrecondition);
}

TEST_F(GitTest, UnrelatedHistoriesAreAPrecondition) {
  git({"checkout", "--quiet", "--orphan", "orphan"});
  write("other.txt", "other\n");
  commit("unrelated");
  push("orphan");
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "orphan", "develop");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(m.status().message(),
            "merging orphan into develop: the branches have no common history");
}

TEST_F(GitTest, MaintainDropsPinsNotKept) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto a = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  checkout("feature/x");
  write("more.txt", "more\n");
  commit("more");
  push("feature/x");
  auto b = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  ASSERT_NE(a->commit, b->commit);
  ASSERT_TRUE(repos.maintain(repo_, {b->commit}).isOk());
  EXPECT_EQ(mirrorGit({"for-each-ref", "--format=%(refname)", "refs/qabox/"}),
            std::string(GitRepos::kPinPrefix) + b->commit);
  // After maintenance merges are computed afresh, not handed out from memory.
  size_t computed = runner_.count("merge-tree");
  auto again = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->commit, b->commit);
  EXPECT_EQ(runner_.count("merge-tree"), computed + 1);
  // Maintaining a repo never fetched is a no-op.
  EXPECT_TRUE(repos.maintain(RepoConfig{"other", root_ + "/x.git"}, {}).isOk());
}

TEST_F(GitTest, RecreatesADeletedMirror) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto a = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  fs::remove_all(paths::gitMirror(state_, "shop"));
  // The merge remembered from the old mirror is made again in the new one.
  auto b = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(b.isOk()) << b.status().toString();
  EXPECT_EQ(b->commit, a->commit);
  EXPECT_EQ(runner_.count("merge-tree"), 2u);
  EXPECT_EQ(mirrorGit({"cat-file", "-t", b->commit}), "commit");
  EXPECT_TRUE(repos.exportTree(repo_, b->commit, root_ + "/export").isOk());
  EXPECT_TRUE(exists(root_ + "/export/src.txt"));
}

TEST_F(GitTest, TimesASmallRepoMergeAndExport) {
  // A small app: 200 files in 20 folders on both sides.
  for (int d = 0; d < 20; ++d) {
    for (int f = 0; f < 10; ++f) {
      write("src/d" + std::to_string(d) + "/f" + std::to_string(f) + ".txt",
            std::string(2000, static_cast<char>('a' + (d + f) % 26)) + "\n");
    }
  }
  commit("app");
  push("develop");
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  ASSERT_TRUE(repos.fetch(repo_).isOk());
  checkout("feature/x");
  write("src.txt", "changed\n");
  commit("change");
  push("feature/x");

  auto t0 = std::chrono::steady_clock::now();
  auto m = repos.merge(repo_, "feature/x", "develop");
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  auto again = repos.merge(repo_, "feature/x", "develop");
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_TRUE(again.isOk());
  std::string dest = root_ + "/export";
  ASSERT_TRUE(repos.exportTree(repo_, m->commit, dest).isOk());
  auto t3 = std::chrono::steady_clock::now();
  EXPECT_TRUE(exists(dest + "/src/d19/f9.txt"));
  EXPECT_EQ(slurp(dest + "/src.txt"), "changed\n");
  auto ms = [](auto d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count() / 1000.0;
  };
  std::cout << "[timing] 200-file repo: merge after a push " << ms(t1 - t0)
            << " ms, unchanged re-merge " << ms(t2 - t1) << " ms, export " << ms(t3 - t2)
            << " ms\n";
  // Generous bounds: a regression to seconds would show, a busy machine not.
  EXPECT_LT(ms(t1 - t0), 2000.0);
  EXPECT_LT(ms(t3 - t2), 2000.0);
}

TEST(GitUrl, RedactsCredentials) {
  EXPECT_EQ(redactUrl("https://user:token@git.example.test/shop.git"),
            "https://***@git.example.test/shop.git");
  EXPECT_EQ(redactUrl("https://git.example.test/shop.git"), "https://git.example.test/shop.git");
  EXPECT_EQ(redactUrl("ssh://git@git.example.test/a@b.git"), "ssh://***@git.example.test/a@b.git");
  EXPECT_EQ(redactUrl("git@git.example.test:shop.git"), "git@git.example.test:shop.git");
  EXPECT_EQ(redactUrl("/srv/git/shop.git"), "/srv/git/shop.git");
}

TEST(GitIds, CommitIds) {
  EXPECT_TRUE(isCommitId(std::string(40, 'a')));
  EXPECT_TRUE(isCommitId(std::string(64, '0')));
  EXPECT_FALSE(isCommitId(std::string(40, 'A')));
  EXPECT_FALSE(isCommitId(std::string(39, 'a')));
  EXPECT_FALSE(isCommitId("HEAD"));
}

TEST_F(GitTest, TargetStatesCountWhatTheTargetGainedSinceAMerge) {
  divergentBranches();
  GitRepos repos(runner_, state_, milliseconds(30'000));
  auto m = repos.merge(repo_, "feature/x", "develop");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  const std::string merged = m->targetHead;

  // Nothing moved yet: level with the head.
  auto level = repos.targetStates(repo_, {{"develop", merged}});
  ASSERT_EQ(level.size(), 1u);
  ASSERT_TRUE(level[0].isOk()) << level[0].status().toString();
  EXPECT_EQ(level[0]->head, merged);
  EXPECT_EQ(level[0]->behind, 0u);

  // Three commits land on develop (one of them a merge of another branch).
  checkout("develop");
  write("t1.txt", "1\n");
  commit("t1");
  checkout("feature/other", true);
  write("o.txt", "o\n");
  commit("other");
  checkout("develop");
  git({"merge", "--quiet", "--no-ff", "-m", "merge other", "feature/other"});
  push("develop");
  // Not seen before a fetch: the mirror is read as it is.
  auto stale = repos.targetStates(repo_, {{"develop", merged}});
  ASSERT_TRUE(stale[0].isOk());
  EXPECT_EQ(stale[0]->behind, 0u);
  ASSERT_TRUE(repos.fetch(repo_).isOk());

  const std::string never(40, 'e');
  std::vector<TargetQuery> queries = {
      {"develop", merged},  // t1, other, the merge
      {"develop", merged},  // the same pair: counted once
      {"develop", remoteHead("develop")},
      {"main", merged},     // no such branch
      {"-x", merged},       // a name git would read as an option
      {"develop", "HEAD"},  // not a full id
      {"develop", never},   // an id the mirror never had
  };
  size_t before = runner_.calls().size();
  auto st = repos.targetStates(repo_, queries);
  size_t processes = runner_.calls().size() - before;
  ASSERT_EQ(st.size(), queries.size());
  ASSERT_TRUE(st[0].isOk()) << st[0].status().toString();
  EXPECT_EQ(st[0]->head, remoteHead("develop"));
  EXPECT_EQ(st[0]->behind, 3u);
  ASSERT_TRUE(st[1].isOk());
  EXPECT_EQ(st[1]->behind, 3u);
  ASSERT_TRUE(st[2].isOk());
  EXPECT_EQ(st[2]->behind, 0u);
  EXPECT_EQ(st[3].status().code(), Code::kNotFound);
  EXPECT_EQ(st[4].status().code(), Code::kInvalidArgument);
  EXPECT_EQ(st[5].status().code(), Code::kInvalidArgument);
  EXPECT_EQ(st[6].status().code(), Code::kNotFound);
  // One listing, one count per distinct pair that differ (merged, never).
  EXPECT_EQ(processes, 1u + 2u);
  EXPECT_TRUE(repos.targetStates(repo_, {}).empty());

  testing::PassthroughRunner refusing;
  refusing.refuseAll = true;
  GitRepos none(refusing, state_, milliseconds(30'000));
  auto bad = none.targetStates(RepoConfig{"../etc", remote_}, {{"develop", merged}});
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(refusing.calls().empty());
}

}  // namespace
}  // namespace qabox
