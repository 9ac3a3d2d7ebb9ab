#pragma once

// The deploy tests' fixture: fakes the shared ones do not cover (a runtime
// whose execs and starts a test scripts, a bridge that can fail, a store
// that can refuse a write) and a manager over them with a real SQLite file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "daemon/options.h"
#include "fakes/fake_git.h"
#include "fakes/fake_images.h"
#include "fakes/fake_runtime.h"
#include "fakes/fake_time.h"
#include "lifecycle/deploy_steps.h"
#include "lifecycle/manager.h"
#include "store/paths.h"

namespace qabox::deploy_test {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// Fakes that the shared ones do not cover: a runtime whose execs a test
// scripts, a bridge that can fail, and a store that can refuse a write.

class ScriptedRuntime : public fakes::FakeRuntime {
 public:
  // Answers exec when set; `argv.back()` names the command.
  std::function<Result<ProcessResult>(const std::string&, const ExecSpec&)> onExec;
  std::set<std::string> failStop;
  // Runs once a container started: where a test plays its qabox-init.
  std::function<void(const std::string&)> onStart;

  Status start(const std::string& name) override {
    Status s = FakeRuntime::start(name);
    if (s.isOk() && onStart) onStart(name);
    return s;
  }
  Result<ProcessResult> exec(const std::string& name, const ExecSpec& spec) override {
    auto r = FakeRuntime::exec(name, spec);
    if (onExec) return onExec(name, spec);
    return r;
  }
  Status stop(const std::string& name) override {
    Status s = FakeRuntime::stop(name);
    if (failStop.count(name)) return internalError("stop " + name + ": injected");
    return s;
  }
};

class FailingBridge : public fakes::FakeBridge {
 public:
  bool failForget = false;
  Status forgetNeighbor(const std::string&, const std::string& ip) override {
    if (failForget) return internalError("forgetting " + ip + ": injected");
    return Status::ok();
  }
};

// Forwards to a real store; refuses the writes a test names, and keeps
// every finished journal entry (outcome and detail) for the test to read.
class FlakyStore : public Store {
 public:
  explicit FlakyStore(std::unique_ptr<Store> inner) : s_(std::move(inner)) {}

  std::set<JournalOutcome> failFinish;  // outcomes finishOperation() refuses
  std::string failRowOf;                // putEnvironment() of a row naming this container fails
  struct Finished {
    int64_t id;
    std::string outcome;  // as the journal names it
    std::string detail;
  };
  std::vector<Finished> finished;

  Status transaction(const std::function<Status()>& body) override { return s_->transaction(body); }
  Result<std::optional<Environment>> getEnvironment(const std::string& slug) override {
    return s_->getEnvironment(slug);
  }
  Result<std::vector<Environment>> listEnvironments() override { return s_->listEnvironments(); }
  Status putEnvironment(const Environment& env) override {
    if (!failRowOf.empty() && env.container == failRowOf) return internalError("disk I/O error");
    return s_->putEnvironment(env);
  }
  Status deleteEnvironment(const std::string& slug) override { return s_->deleteEnvironment(slug); }
  Result<uint32_t> countEnvironments() override { return s_->countEnvironments(); }
  Result<bool> setTargetState(const std::string& slug, const std::string& targetCommit,
                              const std::string& targetHead, uint32_t behind) override {
    return s_->setTargetState(slug, targetCommit, targetHead, behind);
  }
  Result<std::string> leaseAddress(const std::string& subnet, const std::string& owner) override {
    return s_->leaseAddress(subnet, owner);
  }
  Status restoreLease(const std::string& ip, const std::string& owner) override {
    return s_->restoreLease(ip, owner);
  }
  Status releaseAddress(const std::string& ip) override { return s_->releaseAddress(ip); }
  Status releaseAddressesOf(const std::string& owner) override {
    return s_->releaseAddressesOf(owner);
  }
  Result<std::vector<Lease>> listLeases() override { return s_->listLeases(); }
  Result<int64_t> beginOperation(const Operation& op) override { return s_->beginOperation(op); }
  Status finishOperation(int64_t id, JournalOutcome outcome, const std::string& detail) override {
    if (failFinish.count(outcome)) return internalError("database or disk is full");
    Status s = s_->finishOperation(id, outcome, detail);
    if (s.isOk()) finished.push_back({id, std::string(journalOutcomeName(outcome)), detail});
    return s;
  }
  Result<std::vector<Operation>> unfinishedOperations() override {
    return s_->unfinishedOperations();
  }
  Result<std::vector<std::string>> journalContainers() override { return s_->journalContainers(); }
  Status addEvent(const Event& event) override { return s_->addEvent(event); }
  Result<std::vector<Event>> listEvents(const std::string& ticket, uint32_t limit) override {
    return s_->listEvents(ticket, limit);
  }
  Result<uint64_t> pruneEvents(TimePoint olderThan, uint64_t keepRows, uint32_t batch) override {
    return s_->pruneEvents(olderThan, keepRows, batch);
  }
  Result<uint64_t> countEvents() override { return s_->countEvents(); }
  Status putImage(const ImageVersion& image) override { return s_->putImage(image); }
  Result<std::vector<ImageVersion>> listImages() override { return s_->listImages(); }
  Result<std::optional<ImageVersion>> currentImage(const std::string& name) override {
    return s_->currentImage(name);
  }
  Status deleteImage(const std::string& name, uint32_t version) override {
    return s_->deleteImage(name, version);
  }
  Status putLayer(const CachedLayer& layer) override { return s_->putLayer(layer); }
  Result<std::optional<CachedLayer>> getLayer(const std::string& hash) override {
    return s_->getLayer(hash);
  }
  Result<std::vector<CachedLayer>> listLayers() override { return s_->listLayers(); }
  Status touchLayer(const std::string& hash, TimePoint at) override {
    return s_->touchLayer(hash, at);
  }
  Status deleteLayer(const std::string& hash) override { return s_->deleteLayer(hash); }
  Status putToken(const TokenRecord& token) override { return s_->putToken(token); }
  Result<std::optional<TokenRecord>> findTokenByHash(const std::string& hash) override {
    return s_->findTokenByHash(hash);
  }
  Result<std::optional<TokenRecord>> getToken(const std::string& name) override {
    return s_->getToken(name);
  }
  Result<std::vector<TokenRecord>> listTokens() override { return s_->listTokens(); }
  Result<TokenRecord> revokeToken(const std::string& name, TimePoint at) override {
    return s_->revokeToken(name, at);
  }
  Status touchToken(const std::string& name, TimePoint at) override {
    return s_->touchToken(name, at);
  }
  Status putPooled(const PooledContainer& p) override { return s_->putPooled(p); }
  Result<std::vector<PooledContainer>> listPooled() override { return s_->listPooled(); }
  Result<bool> setPoolState(const std::string& container, PoolState from, PoolState to) override {
    return s_->setPoolState(container, from, to);
  }
  Status deletePooled(const std::string& container) override { return s_->deletePooled(container); }
  Result<std::optional<PooledContainer>> takePooled(const std::string& image, uint32_t version,
                                                    const ResourceLimits& limits) override {
    return s_->takePooled(image, version, limits);
  }
  Status recordAccess(const std::vector<AccessStats>& stats) override {
    return s_->recordAccess(stats);
  }

 private:
  std::unique_ptr<Store> s_;
};

inline ProcessResult exited(int code, std::string out = "", std::string err = "") {
  ProcessResult r;
  r.exitCode = code;
  r.out = std::move(out);
  r.err = std::move(err);
  return r;
}

inline std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------------------

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qabox-deploy-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.stateDir = dir_;
    config_.network.subnet = "10.9.0.0/29";
    config_.limits.maxEnvironments = 3;
    config_.limits.diskCheckInterval = std::chrono::hours(1);  // measured at the steps' ends only
    config_.repos = {{"shop", "https://git.example/shop.git"}};
    runtime_.upperRoot = dir_ + "/upper";
    auto s = openSqliteStore(dir_ + "/qabox.db");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::make_unique<FlakyStore>(std::move(*s));
    ASSERT_TRUE(store_->putImage({"busybox", 1, Clock::now(), true, ""}).isOk());
    ImageManifest busybox;
    busybox.name = "busybox";
    busybox.defaults.start = "httpd -f -p 80";
    busybox.defaults.port = 80;
    images_.addRecipe(busybox);
    git_.files["index.html"] = "<h1>shop</h1>\n";
    makeManager();
  }
  // Again after a test changes config_: the manager keeps the options it
  // was built with.
  void makeManager() {
    envs_ = std::make_unique<EnvironmentManager>(
        lifecycleOptions(config_), *store_, runtime_, bridge_, images_, &git_, routes_,
        [this](const std::string& ip, uint16_t port, const std::string& path, milliseconds) {
          healthAsked_ = ip + ":" + std::to_string(port) + path;
          return healthy_ ? Status::ok() : deadlineExceeded("health check: no answer");
        },
        time_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<Environment> deploy(DeployInput in) {
    if (in.actor.empty()) in.actor = "alice";
    phases_.clear();
    return envs_->deploy(in, [this](const Progress& p) { phases_.push_back(p); });
  }
  Result<Environment> deploy(const std::string& ticket) {
    DeployInput in;
    in.ticket = ticket;
    return deploy(in);
  }
  DeployInput fromRepo(const std::string& ticket) {
    DeployInput in;
    in.ticket = ticket;
    in.spec.repo = "shop";
    in.spec.sourceBranch = "feature/x";
    in.spec.targetBranch = "develop";
    return in;
  }
  // With hooks: the image's defaults run build, migrate and seed.
  void withHooks() {
    ImageManifest m = *images_.manifest("busybox");
    m.defaults.build = "make";
    m.defaults.migrate = "migrate up";
    m.defaults.seed = "seed demo";
    images_.addRecipe(m);
  }

  std::vector<std::string> phaseNames() const {
    std::vector<std::string> out;
    for (const auto& p : phases_) out.push_back(p.phase);
    return out;
  }
  std::vector<std::string> events(const std::string& ticket) {
    auto all = store_->listEvents(ticket, 0);
    EXPECT_TRUE(all.isOk());
    std::vector<std::string> out;
    for (const auto& e : *all) out.push_back(e.action + " " + e.outcome);
    std::sort(out.begin(), out.end());
    return out;
  }
  size_t countCalls(const std::string& call) const {
    return std::count(runtime_.calls.begin(), runtime_.calls.end(), call);
  }
  std::string upper(const std::string& container) const {
    return runtime_.upperRoot + "/" + container;
  }

 public:  // what the parameterised failures below reach into
  // What a deploy that rolled back whole leaves: nothing of the ticket.
  void expectNothingLeft(const std::string& slug, const std::string& container) {
    EXPECT_FALSE(store_->getEnvironment(slug)->has_value());
    EXPECT_TRUE(store_->listLeases()->empty());
    EXPECT_TRUE(store_->unfinishedOperations()->empty());
    EXPECT_FALSE(runtime_.containers.count(container));
    EXPECT_FALSE(routes_.lookup(slug));
  }
  // What a new ticket's failure kept for inspection: a FAILED row with its
  // lease and container, its route FAILED, the journal entry closed.
  void expectKeptFailed(const Environment& env, const std::string& prefix) {
    EXPECT_EQ(env.state, EnvState::kFailed);
    EXPECT_EQ(env.message.rfind(prefix, 0), 0u) << env.message;
    auto row = **store_->getEnvironment(env.slug);
    EXPECT_EQ(row.state, EnvState::kFailed);
    EXPECT_EQ(row.message, env.message);
    EXPECT_TRUE(runtime_.containers.count(env.container));
    ASSERT_EQ(store_->listLeases()->size(), 1u);
    EXPECT_EQ(store_->listLeases()->at(0).owner, env.container);
    EXPECT_TRUE(store_->unfinishedOperations()->empty());
    ASSERT_FALSE(store_->finished.empty());
    EXPECT_EQ(store_->finished.back().outcome, "error");
    EXPECT_EQ(store_->finished.back().detail, env.message);
    ASSERT_TRUE(routes_.lookup(env.slug));
    EXPECT_EQ(routes_.lookup(env.slug)->state, EnvState::kFailed);
    ASSERT_FALSE(phases_.empty());
    EXPECT_EQ(phases_.back().phase, Progress::kFailed);
    EXPECT_EQ(phases_.back().detail, env.message);
    EXPECT_EQ(events(env.ticket), (std::vector<std::string>{"deploy error", "deploy started"}));
  }

  std::string dir_;
  Config config_;
  ScriptedRuntime runtime_;
  FailingBridge bridge_;
  fakes::FakeGit git_;
  fakes::FakeImages images_;
  FakeTime time_;
  RouteTable routes_;
  std::unique_ptr<FlakyStore> store_;
  std::unique_ptr<EnvironmentManager> envs_;
  std::vector<Progress> phases_;
  bool healthy_ = true;
  std::string healthAsked_;
};

}  // namespace qabox::deploy_test
