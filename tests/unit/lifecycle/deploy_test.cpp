// The deploy's steps and every rollback path, against fakes (runtime, bridge,
// git, images, clock) and a real SQLite file: no LXC, no root. A failure is
// injected at each step in turn; the test checks that the rollback undid
// exactly what the steps before it did.
#include <gtest/gtest.h>

#include "unit/lifecycle/deploy_fixture.h"

namespace qabox {
namespace {

using namespace deploy_test;  // NOLINT: the fixture's names

// ---------------------------------------------------------------------------
// The rollback decision as a table.

TEST(DeployUndoTest, WhatAFailureUndoesDependsOnTheStepItFailedIn) {
  using S = DeployStep;
  using U = DeployUndo;
  struct Row {
    S failed;
    bool redeploy, hasRepo, full;
    U undo;
  };
  const Row rows[] = {
      // Before the intent is written nothing is undone, redeploy or not.
      {S::kCheck, false, false, false, U::kNothing},
      {S::kMerge, false, true, false, U::kNothing},
      {S::kReserve, true, true, true, U::kNothing},
      // A redeploy always goes back to the old container.
      {S::kClone, true, false, false, U::kRestoreOld},
      {S::kExport, true, true, false, U::kRestoreOld},
      {S::kServices, true, true, false, U::kRestoreOld},
      {S::kBuild, true, true, true, U::kRestoreOld},
      {S::kHealth, true, false, false, U::kRestoreOld},
      {S::kSwitch, true, false, true, U::kRestoreOld},
      // A new ticket: nothing to inspect after a failed clone...
      {S::kClone, false, false, false, U::kRollBackWhole},
      {S::kClone, false, true, false, U::kRollBackWhole},
      // ...which is where an image-only deploy's files belong.
      {S::kAppFiles, false, false, false, U::kRollBackWhole},
      {S::kAppFiles, false, true, false, U::kKeepFailed},
      {S::kExport, false, true, false, U::kKeepFailed},
      {S::kStart, false, false, false, U::kKeepFailed},
      {S::kServices, false, true, false, U::kKeepFailed},
      {S::kBuild, false, false, false, U::kKeepFailed},
      {S::kMigrate, false, true, false, U::kKeepFailed},
      {S::kSeed, false, false, false, U::kKeepFailed},
      {S::kApp, false, false, false, U::kKeepFailed},
      {S::kHealth, false, true, false, U::kKeepFailed},
      {S::kSwitch, false, false, false, U::kKeepFailed},
      // A full disk keeps nothing of a new ticket.
      {S::kStart, false, false, true, U::kRollBackWhole},
      {S::kServices, false, true, true, U::kRollBackWhole},
      {S::kHealth, false, true, true, U::kRollBackWhole},
      {S::kSwitch, false, false, true, U::kRollBackWhole},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(undoFor(r.failed, r.redeploy, r.hasRepo, r.full), r.undo)
        << stepName(r.failed, r.hasRepo) << " redeploy=" << r.redeploy << " repo=" << r.hasRepo
        << " full=" << r.full;
  }
}

TEST(DeployUndoTest, StepNamesAreWhatFailureMessagesSay) {
  EXPECT_EQ(stepName(DeployStep::kClone, true), "clone");
  EXPECT_EQ(stepName(DeployStep::kExport, true), "export");
  EXPECT_EQ(stepName(DeployStep::kAppFiles, true), "export");
  EXPECT_EQ(stepName(DeployStep::kAppFiles, false), "clone");
  EXPECT_EQ(stepName(DeployStep::kStart, false), "start");
  EXPECT_EQ(stepName(DeployStep::kServices, true), "services");
  EXPECT_EQ(stepName(DeployStep::kBuild, false), "build");
  EXPECT_EQ(stepName(DeployStep::kMigrate, false), "migrate");
  EXPECT_EQ(stepName(DeployStep::kSeed, false), "seed");
  EXPECT_EQ(stepName(DeployStep::kApp, false), "start");
  EXPECT_EQ(stepName(DeployStep::kHealth, false), "health");
  EXPECT_EQ(stepName(DeployStep::kSwitch, false), "switch");
}

// ---------------------------------------------------------------------------
// The steps when nothing fails.

TEST_F(DeployTest, AnImageDeployClonesWritesTheAppFilesStartsChecksAndSwitches) {
  DeployInput in;
  in.ticket = "OK-1";
  in.spec.env["GREETING"] = "it's me";
  in.secrets["API_KEY"] = "s3cr3t-value";
  auto env = deploy(in);
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(phaseNames(), (std::vector<std::string>{"clone", "start", "health", "ready"}));
  EXPECT_EQ(phases_[0].detail, "qabox-ok-1 from busybox v1 at 10.9.0.2");
  EXPECT_EQ(phases_.back().detail, config_.urlFor("ok-1"));
  EXPECT_EQ(runtime_.calls, (std::vector<std::string>{"clone qabox-ok-1", "start qabox-ok-1"}));
  EXPECT_EQ(healthAsked_, "10.9.0.2:80/");

  // app.env: owner-only, shell-quoted, with what the agent sets and the secret.
  const std::string appEnv = upper("qabox-ok-1") + "/etc/qabox/app.env";
  struct stat st {};
  ASSERT_EQ(stat(appEnv.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text = readAll(appEnv);
  EXPECT_NE(text.find("GREETING='it'\\''s me'\n"), std::string::npos) << text;
  EXPECT_NE(text.find("QABOX_TICKET='OK-1'\n"), std::string::npos) << text;
  EXPECT_NE(text.find("API_KEY='s3cr3t-value'\n"), std::string::npos) << text;
  EXPECT_NE(text.find("QABOX_LOG_MAX='8388608'\n"), std::string::npos) << text;
  // No hooks: the start command is in place from the start.
  EXPECT_EQ(readAll(upper("qabox-ok-1") + "/etc/qabox/app.run"), "httpd -f -p 80\n");
  EXPECT_FALSE(fs::exists(upper("qabox-ok-1") + "/etc/qabox/app.run.pending"));

  // The row, stamped by the manager's clock; the journal entry closed ok.
  EXPECT_EQ(env->state, EnvState::kReady);
  EXPECT_EQ(env->createdAt, time_.now());
  EXPECT_EQ(env->deployedAt, time_.now());
  EXPECT_EQ(env->spec.secretKeys, std::vector<std::string>{"API_KEY"});
  EXPECT_EQ((**store_->getEnvironment("ok-1")).state, EnvState::kReady);
  ASSERT_EQ(store_->finished.size(), 1u);
  EXPECT_EQ(store_->finished[0].outcome, "ok");
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  EXPECT_EQ(routes_.lookup("ok-1")->state, EnvState::kReady);
  EXPECT_EQ(events("OK-1"), (std::vector<std::string>{"deploy ok", "deploy started"}));
}

TEST_F(DeployTest, HooksRunInOrderBeforeTheAppStartsAndTheirTimeIsTheClocks) {
  withHooks();
  std::vector<std::string> ran;
  runtime_.onExec = [&](const std::string&, const ExecSpec& ex) -> Result<ProcessResult> {
    ran.push_back(ex.argv.back());
    if (ex.argv.back() == "make") {
      time_.advance(std::chrono::seconds(3));
      EXPECT_EQ(ex.cwd, "/srv/app");
      EXPECT_EQ(ex.env.at("HOME"), "/root");
      EXPECT_EQ(ex.env.at("QABOX_TICKET"), "HOOK-1");
      EXPECT_EQ(ex.timeout, config_.deploy.hookTimeout);
      ex.onOutput(false, "compiling\n");
      ex.onOutput(true, "warning: x\n");
    }
    return exited(0);
  };
  auto env = deploy("HOOK-1");
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(phaseNames(), (std::vector<std::string>{"clone", "start", "build", "migrate", "seed",
                                                    "app", "health", "ready"}));
  EXPECT_EQ(phases_[2].took, milliseconds(3000));
  EXPECT_EQ(phases_[3].took, milliseconds(0));
  EXPECT_EQ(ran,
            (std::vector<std::string>{"make", "migrate up", "seed demo", "/etc/qabox/app.run"}));
  // While hooks run the start command waits beside its final name.
  EXPECT_EQ(readAll(upper("qabox-hook-1") + "/etc/qabox/app.run.pending"), "httpd -f -p 80\n");
  std::string log = readAll(paths::deployLog(dir_, "hook-1"));
  EXPECT_EQ(log.rfind("==> build: make\n", 0), 0u) << log;
  EXPECT_NE(log.find("compiling\n"), std::string::npos) << log;
  EXPECT_NE(log.find("==> seed: seed demo\n"), std::string::npos) << log;
}

TEST_F(DeployTest, ARepoDeployMergesExportsAndTakesTheReposManifest) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: the export sets a trusted.* xattr";
  git_.files["qabox.toml"] = "[app]\nstart = \"./serve\"\nport = 8080\nhealth = \"/up\"\n";
  auto env = deploy(fromRepo("SHOP-1"));
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(phaseNames(),
            (std::vector<std::string>{"merge", "clone", "export", "start", "health", "ready"}));
  EXPECT_EQ(phases_[0].detail, "merge commit cccccccccccc");
  EXPECT_EQ(git_.calls, (std::vector<std::string>{
                            "merge shop feature/x develop",
                            "readFile shop " + git_.nextMerge.commit + " qabox.toml",
                            "exportTree shop " + git_.nextMerge.commit,
                            // how far the repo's other environments' targets moved
                            "targetStates shop",
                        }));
  EXPECT_EQ(readAll(upper("qabox-shop-1") + "/srv/app/index.html"), "<h1>shop</h1>\n");
  EXPECT_EQ(readAll(upper("qabox-shop-1") + "/etc/qabox/app.run"), "./serve\n");
  EXPECT_EQ(healthAsked_, "10.9.0.2:8080/up");
  EXPECT_EQ(env->commit, git_.nextMerge.commit);
  EXPECT_EQ(env->sourceCommit, git_.nextMerge.sourceHead);
  EXPECT_EQ(env->targetCommit, git_.nextMerge.targetHead);
  EXPECT_EQ(env->port, 8080u);

  // The same heads again: nothing to do.
  runtime_.calls.clear();
  auto again = deploy(fromRepo("SHOP-1"));
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(phaseNames(), (std::vector<std::string>{"merge", "ready"}));
  EXPECT_EQ(phases_.back().detail, "unchanged: cccccccccccc");
  EXPECT_TRUE(runtime_.calls.empty());
}

TEST_F(DeployTest, ARedeploySwitchesToTheNewContainerThenDestroysTheOld) {
  ASSERT_TRUE(deploy("RE-1").isOk());
  DeployInput in;
  in.ticket = "RE-1";
  in.spec.env["V"] = "2";
  time_.advance(std::chrono::minutes(5));
  auto env = deploy(in);
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->container, "qabox-re-1_1");
  EXPECT_EQ(env->ip, "10.9.0.3");
  EXPECT_EQ(env->deployedAt, time_.now());
  EXPECT_LT(env->createdAt, env->deployedAt);
  EXPECT_FALSE(runtime_.containers.count("qabox-re-1"));
  ASSERT_EQ(store_->listLeases()->size(), 1u);
  EXPECT_EQ(store_->listLeases()->at(0).owner, "qabox-re-1_1");
  EXPECT_EQ(routes_.lookup("re-1")->ip, "10.9.0.3");
  EXPECT_EQ(store_->finished.back().outcome, "ok");
  EXPECT_EQ(events("RE-1"), (std::vector<std::string>{"deploy ok", "deploy started", "redeploy ok",
                                                      "redeploy started"}));
}

TEST_F(DeployTest, TheRowKeepsTheDeploysPhasesAndTheRouteItsAccess) {
  DeployInput in;
  in.ticket = "PH-1";
  in.spec.access = "login";
  auto env = deploy(in);
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  std::vector<std::string> names;
  for (const auto& p : env->phases) names.push_back(p.phase);
  // Everything reported before the switch: "ready" comes after it.
  EXPECT_EQ(names, (std::vector<std::string>{"clone", "start", "health"}));
  EXPECT_EQ(store_->getEnvironment("ph-1")->value().phases, env->phases);
  EXPECT_TRUE(routes_.lookup("ph-1")->login);
  ASSERT_TRUE(deploy("PH-2").isOk());
  EXPECT_FALSE(routes_.lookup("ph-2")->login);  // the agent's default: open
}

TEST_F(DeployTest, RedeployTakesWhatTheEnvironmentWasDeployedFrom) {
  DeployInput in;
  in.ticket = "RD-1";
  in.spec.env["V"] = "1";
  ASSERT_TRUE(deploy(in).isOk());
  auto again = envs_->redeploy("RD-1", true, "token:alice", nullptr);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->container, "qabox-rd-1_1");
  EXPECT_EQ(again->spec.env.at("V"), "1");
  EXPECT_EQ(store_->listEvents("RD-1", 1)->front().actor, "token:alice");

  EXPECT_EQ(envs_->redeploy("NOPE-1", false, "token:alice", nullptr).status().code(),
            Code::kNotFound);
  DeployInput secret;
  secret.ticket = "RD-2";
  secret.secrets["API_KEY"] = "s3cret";
  ASSERT_TRUE(deploy(secret).isOk());
  auto refused = envs_->redeploy("RD-2", true, "token:alice", nullptr);
  EXPECT_EQ(refused.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("API_KEY"), std::string::npos);
  EXPECT_EQ(refused.status().message().find("s3cret"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Failures before the intent: nothing written, nothing to undo.

TEST_F(DeployTest, AFailureBeforeTheIntentLeavesNothingAtAll) {
  struct Case {
    std::string name;
    std::function<void(DeployInput&)> inject;
    Code code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"image not built", [](DeployInput& in) { in.spec.image = "alpine"; },
       Code::kFailedPrecondition, "image alpine: not built yet (run: qabox image build alpine)"},
      {"image recipe gone",
       [this](DeployInput&) { images_.fail["manifest"] = notFound("image busybox: gone"); },
       Code::kNotFound, "image busybox: gone"},
      {"limits above the maximum",
       [this](DeployInput& in) {
         config_.limits.maxCpus = 2;
         makeManager();
         in.spec.limits.cpus = 4;
       },
       Code::kInvalidArgument, ""},
      {"merge conflict",
       [this](DeployInput& in) {
         in = fromRepo(in.ticket);
         git_.fail["merge"] = failedPrecondition("merging feature/x into develop conflicts in: a");
       },
       Code::kFailedPrecondition, "merging feature/x into develop conflicts in: a"},
      {"bad qabox.toml",
       [this](DeployInput& in) {
         in = fromRepo(in.ticket);
         git_.files["qabox.toml"] = "[app]\nprot = 1\n";
       },
       Code::kInvalidArgument, ""},
      {"qabox.toml unreadable",
       [this](DeployInput& in) {
         in = fromRepo(in.ticket);
         git_.fail["readFile"] = internalError("git cat-file: exit 128");
       },
       Code::kInternal, "git cat-file: exit 128"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DeployInput in;
    in.ticket = "PRE-1";
    c.inject(in);
    auto r = deploy(in);
    ASSERT_FALSE(r.isOk());
    EXPECT_EQ(r.status().code(), c.code) << r.status().toString();
    if (!c.message.empty()) {
      EXPECT_EQ(r.status().message(), c.message);
    }
    expectNothingLeft("pre-1", "qabox-pre-1");
    EXPECT_TRUE(runtime_.calls.empty());
    EXPECT_TRUE(store_->finished.empty());
    EXPECT_TRUE(events("PRE-1").empty());
    for (const auto& p : phases_) EXPECT_NE(p.phase, Progress::kFailed);
    images_.fail.clear();
    git_.fail.clear();
    git_.files.erase("qabox.toml");
    config_.limits.maxCpus = 0;
    makeManager();
  }
}

TEST_F(DeployTest, TheMaximumOfEnvironmentsIsRefusedInTheIntentsTransaction) {
  ASSERT_TRUE(deploy("A-1").isOk());
  ASSERT_TRUE(deploy("A-2").isOk());
  ASSERT_TRUE(deploy("A-3").isOk());
  const size_t calls = runtime_.calls.size();
  auto r = deploy("A-4");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_NE(r.status().message().find("limits.max_environments"), std::string::npos);
  EXPECT_EQ(runtime_.calls.size(), calls);
  EXPECT_EQ(store_->listLeases()->size(), 3u);
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  EXPECT_TRUE(events("A-4").empty());
}

// ---------------------------------------------------------------------------
// A new ticket that fails in or right after its clone: rolled back whole.

TEST_F(DeployTest, ACloneFailureIsRolledBackWholeAndAnsweredWithTheClonesError) {
  runtime_.failOn.insert("clone qabox-bad-1");
  auto r = deploy("BAD-1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_EQ(r.status().message(), "clone qabox-bad-1: injected");
  expectNothingLeft("bad-1", "qabox-bad-1");
  // The clone may have left half a container: destroyed all the same.
  EXPECT_EQ(countCalls("destroy qabox-bad-1"), 1u);
  ASSERT_EQ(store_->finished.size(), 1u);
  EXPECT_EQ(store_->finished[0].outcome, "rolled-back");
  EXPECT_EQ(store_->finished[0].detail, "clone failed: clone qabox-bad-1: injected");
  EXPECT_EQ(events("BAD-1"), (std::vector<std::string>{"deploy error", "deploy started"}));
  // No progress event says failed: the answer does.
  for (const auto& p : phases_) EXPECT_NE(p.phase, Progress::kFailed);
  // Nothing was cloned to write hook output for; the (empty) log stays.
  EXPECT_TRUE(fs::exists(paths::deployLog(dir_, "bad-1")));
}

TEST_F(DeployTest, ANeighbourTableThatCannotBeClearedFailsTheCloneAndDestroysIt) {
  bridge_.failForget = true;
  auto r = deploy("NB-1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "forgetting 10.9.0.2: injected");
  EXPECT_EQ(phaseNames(), std::vector<std::string>{"clone"});
  expectNothingLeft("nb-1", "qabox-nb-1");
  EXPECT_EQ(store_->finished.back().outcome, "rolled-back");
}

TEST_F(DeployTest, AnImageDeployWhoseFilesCannotBePlacedIsRolledBackLikeItsClone) {
  // The clone's upper dir holds a file where /etc must be a directory.
  fs::create_directories(upper("qabox-files-1"));
  std::ofstream(upper("qabox-files-1") + "/etc") << "not a directory";
  auto r = deploy("FILES-1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(store_->finished.back().outcome, "rolled-back");
  EXPECT_EQ(store_->finished.back().detail.rfind("clone failed: ", 0), 0u)
      << store_->finished.back().detail;
  EXPECT_EQ(r.status().message(), store_->finished.back().detail.substr(14));
  EXPECT_EQ(countCalls("start qabox-files-1"), 0u);
  expectNothingLeft("files-1", "qabox-files-1");
}

// ---------------------------------------------------------------------------
// A new ticket that fails later: kept FAILED for inspection.

TEST_F(DeployTest, ARepoDeployWhoseFilesCannotBePlacedKeepsAFailedEnvironment) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: the export sets a trusted.* xattr";
  fs::create_directories(upper("qabox-files-2"));
  std::ofstream(upper("qabox-files-2") + "/etc") << "not a directory";
  auto r = deploy(fromRepo("FILES-2"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  // After its export, what a repo deploy writes counts as the export.
  expectKeptFailed(*r, "export failed: ");
  EXPECT_TRUE(fs::exists(upper("qabox-files-2") + "/srv/app/index.html"));
  EXPECT_EQ(countCalls("start qabox-files-2"), 0u);
}

TEST_F(DeployTest, AnExportFailureKeepsAFailedEnvironment) {
  git_.fail["exportTree"] = internalError("repo shop: git archive cccccccccccc: exit 128");
  auto r = deploy(fromRepo("EXP-1"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "export failed: ");
  EXPECT_EQ(countCalls("start qabox-exp-1"), 0u);
  EXPECT_EQ(runtime_.containers.at("qabox-exp-1").state, ContainerState::kStopped);
  if (geteuid() == 0) {
    EXPECT_EQ(r->message, "export failed: repo shop: git archive cccccccccccc: exit 128");
  }
}

TEST_F(DeployTest, AStartFailureKeepsAFailedEnvironment) {
  runtime_.failOn.insert("start qabox-st-1");
  auto r = deploy("ST-1");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "start failed: start qabox-st-1: injected");
  EXPECT_EQ(phaseNames(), (std::vector<std::string>{"clone", Progress::kFailed}));
}

TEST_F(DeployTest, AFailingHookKeepsAFailedEnvironmentWithItsRedactedOutput) {
  withHooks();
  runtime_.onExec = [&](const std::string&, const ExecSpec& ex) -> Result<ProcessResult> {
    if (ex.argv.back() != "migrate up") return exited(0);
    ex.onOutput(true, "connecting with s3cr3t");
    ex.onOutput(true, "-value\n");
    return exited(3, "", "connecting with s3cr3t-value\nrefused\n");
  };
  DeployInput in;
  in.ticket = "MIG-1";
  in.secrets["DB_PASSWORD"] = "s3cr3t-value";
  auto r = deploy(in);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "migrate failed: hook migrate failed with exit code 3; last output:\n");
  EXPECT_EQ(r->message.find("s3cr3t-value"), std::string::npos) << r->message;
  EXPECT_NE(r->message.find("[secret DB_PASSWORD]"), std::string::npos) << r->message;
  std::string log = readAll(paths::deployLog(dir_, "mig-1"));
  EXPECT_EQ(log.find("s3cr3t-value"), std::string::npos) << log;
  EXPECT_NE(log.find("connecting with [secret DB_PASSWORD]\n"), std::string::npos) << log;
  // Seed never ran and the app never got its start command.
  EXPECT_EQ(countCalls("exec qabox-mig-1 seed demo"), 0u);
  EXPECT_EQ(countCalls("exec qabox-mig-1 /etc/qabox/app.run"), 0u);
  EXPECT_EQ(runtime_.containers.at("qabox-mig-1").state, ContainerState::kRunning);
}

TEST_F(DeployTest, AHookPastItsTimeoutSaysSo) {
  withHooks();
  runtime_.onExec = [&](const std::string&, const ExecSpec& ex) -> Result<ProcessResult> {
    ProcessResult r = exited(-1, "still building\n");
    r.timedOut = ex.argv.back() == "make";
    return r.timedOut ? r : exited(0);
  };
  auto r = deploy("SLOW-1");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r,
                   "build failed: hook build did not finish within 600s; last output:\n"
                   "still building");
}

TEST_F(DeployTest, AnAppThatCannotBeStartedAfterItsHooksKeepsAFailedEnvironment) {
  withHooks();
  runtime_.onExec = [&](const std::string&, const ExecSpec& ex) -> Result<ProcessResult> {
    if (ex.argv.back() == "/etc/qabox/app.run") return exited(1, "", "mv: cannot move\n");
    return exited(0);
  };
  auto r = deploy("MV-1");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "start failed: starting the app failed: mv: cannot move");
}

TEST_F(DeployTest, AHealthFailureKeepsAFailedEnvironment) {
  healthy_ = false;
  auto r = deploy("SICK-1");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "health failed: health check: no answer");
  EXPECT_EQ(runtime_.containers.at("qabox-sick-1").state, ContainerState::kRunning);
  // The deploy log stays for `qabox logs --deploy`.
  EXPECT_TRUE(fs::exists(paths::deployLog(dir_, "sick-1")));
}

TEST_F(DeployTest, AHookPastTheFileLimitStopsTheContainerAndKeepsItFailed) {
  withHooks();
  config_.limits.maxFiles = 5;
  makeManager();
  runtime_.onExec = [&](const std::string& name, const ExecSpec& ex) -> Result<ProcessResult> {
    if (ex.argv.back() == "make") {
      for (int i = 0; i < 20; ++i) std::ofstream(upper(name) + "/f" + std::to_string(i)) << i;
    }
    return exited(0);
  };
  auto r = deploy("FULL-1");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "build failed: limits.max_files: ");
  EXPECT_EQ(runtime_.containers.at("qabox-full-1").state, ContainerState::kStopped);
  EXPECT_GE(countCalls("stop qabox-full-1"), 1u);
  EXPECT_EQ(countCalls("exec qabox-full-1 migrate up"), 0u);
}

TEST_F(DeployTest, AContainerThatCannotBeStoppedPastItsLimitIsStillFailed) {
  withHooks();
  config_.limits.maxFiles = 5;
  makeManager();
  runtime_.failStop.insert("qabox-full-2");
  runtime_.onExec = [&](const std::string& name, const ExecSpec&) -> Result<ProcessResult> {
    for (int i = 0; i < 20; ++i) std::ofstream(upper(name) + "/f" + std::to_string(i)) << i;
    return exited(0);
  };
  auto r = deploy("FULL-2");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "build failed: limits.max_files: ");
}

TEST_F(DeployTest, ASwitchTheStoreRefusesKeepsAFailedEnvironment) {
  store_->failFinish.insert(JournalOutcome::kOk);
  auto r = deploy("SW-1");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r, "switch failed: database or disk is full");
  // The READY row of the refused transaction is not what is left.
  EXPECT_EQ(routes_.lookup("sw-1")->state, EnvState::kFailed);
}

TEST_F(DeployTest, AFailureThatCannotBeRecordedIsRolledBackWholeInstead) {
  healthy_ = false;
  store_->failFinish.insert(JournalOutcome::kError);
  auto r = deploy("REC-1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  EXPECT_EQ(r.status().message(),
            "health failed: health check: no answer (rolled back: nothing of it is left)");
  expectNothingLeft("rec-1", "qabox-rec-1");
  EXPECT_EQ(store_->finished.back().outcome, "rolled-back");
  EXPECT_EQ(store_->finished.back().detail, "health failed: health check: no answer");
  ASSERT_FALSE(phases_.empty());
  EXPECT_EQ(phases_.back().phase, Progress::kFailed);
  EXPECT_EQ(phases_.back().detail, "health failed: health check: no answer (rolled back)");
  // Its logs go with it.
  EXPECT_FALSE(fs::exists(paths::logDir(dir_, "rec-1")));
  EXPECT_EQ(events("REC-1"), (std::vector<std::string>{"deploy error", "deploy started"}));
}

// ---------------------------------------------------------------------------
// A redeploy that fails at any step: the old container serves on.

struct RedeployFailure {
  const char* name;
  std::function<void(DeployTest&)> inject;
  const char* message;  // how the row's message starts after "redeploy failed: "
};

void PrintTo(const RedeployFailure& f, std::ostream* os) { *os << f.name; }

// The command `command` (a hook, or the rename that starts the app) exits
// with `code`; every other exec succeeds.
std::function<void(DeployTest&)> failing(std::string command, int code) {
  return [command, code](DeployTest& t) {
    t.runtime_.onExec = [command, code](const std::string&, const ExecSpec& ex) {
      return Result<ProcessResult>(exited(ex.argv.back() == command ? code : 0, "cc: error\n"));
    };
  };
}

class RedeployFailureTest : public DeployTest,
                            public ::testing::WithParamInterface<RedeployFailure> {};

TEST_P(RedeployFailureTest, LeavesTheOldOneServingAndNothingOfTheNewOne) {
  withHooks();
  auto first = deploy("OLD-1");
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  ASSERT_EQ(first->state, EnvState::kReady);
  const size_t finishedBefore = store_->finished.size();

  GetParam().inject(*this);
  DeployInput in;
  in.ticket = "OLD-1";
  in.spec.env["V"] = "2";
  time_.advance(std::chrono::minutes(1));
  auto r = deploy(in);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const std::string expected = std::string("redeploy failed: ") + GetParam().message;
  EXPECT_EQ(r->message.rfind(expected, 0), 0u) << r->message;

  // The old container, row and route as they were.
  EXPECT_EQ(r->state, EnvState::kReady);
  EXPECT_EQ(r->container, "qabox-old-1");
  EXPECT_EQ(r->ip, first->ip);
  EXPECT_EQ(r->spec, first->spec);
  EXPECT_EQ(r->updatedAt, time_.now());
  auto row = **store_->getEnvironment("old-1");
  EXPECT_EQ(row.state, EnvState::kReady);
  EXPECT_EQ(row.container, "qabox-old-1");
  EXPECT_EQ(row.message, r->message);
  EXPECT_EQ(runtime_.containers.at("qabox-old-1").state, ContainerState::kRunning);
  ASSERT_TRUE(routes_.lookup("old-1"));
  EXPECT_EQ(routes_.lookup("old-1")->state, EnvState::kReady);
  EXPECT_EQ(routes_.lookup("old-1")->ip, first->ip);
  // The new container and its lease gone; the journal entry closed.
  EXPECT_FALSE(runtime_.containers.count("qabox-old-1_1"));
  ASSERT_EQ(store_->listLeases()->size(), 1u);
  EXPECT_EQ(store_->listLeases()->at(0).owner, "qabox-old-1");
  EXPECT_TRUE(store_->unfinishedOperations()->empty());
  ASSERT_EQ(store_->finished.size(), finishedBefore + 1);
  EXPECT_EQ(store_->finished.back().outcome, "error");
  EXPECT_EQ("redeploy failed: " + store_->finished.back().detail, r->message);
  ASSERT_FALSE(phases_.empty());
  EXPECT_EQ(phases_.back().phase, Progress::kFailed);
  EXPECT_EQ(events("OLD-1"), (std::vector<std::string>{"deploy ok", "deploy started",
                                                       "redeploy error", "redeploy started"}));
}

INSTANTIATE_TEST_SUITE_P(
    EachStep, RedeployFailureTest,
    ::testing::Values(
        RedeployFailure{"Clone",
                        [](DeployTest& t) { t.runtime_.failOn.insert("clone qabox-old-1_1"); },
                        "clone failed: clone qabox-old-1_1: injected"},
        RedeployFailure{"Start",
                        [](DeployTest& t) { t.runtime_.failOn.insert("start qabox-old-1_1"); },
                        "start failed: start qabox-old-1_1: injected"},
        RedeployFailure{"Build", failing("make", 2),
                        "build failed: hook build failed with exit code 2"},
        RedeployFailure{"Seed", failing("seed demo", 1),
                        "seed failed: hook seed failed with exit code 1"},
        RedeployFailure{"App", failing("/etc/qabox/app.run", 1),
                        "start failed: starting the app failed"},
        RedeployFailure{"Health", [](DeployTest& t) { t.healthy_ = false; },
                        "health failed: health check: no answer"},
        RedeployFailure{"Switch", [](DeployTest& t) { t.store_->failRowOf = "qabox-old-1_1"; },
                        "switch failed: disk I/O error"}),
    [](const ::testing::TestParamInfo<RedeployFailure>& info) { return info.param.name; });

TEST_F(DeployTest, AFailedRedeployWhoseContainerCannotBeDestroyedKeepsItsLease) {
  ASSERT_TRUE(deploy("KEEP-1").isOk());
  healthy_ = false;
  runtime_.failOn.insert("destroy qabox-keep-1_1");
  DeployInput in;
  in.ticket = "KEEP-1";
  in.force = true;
  auto r = deploy(in);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->container, "qabox-keep-1");
  EXPECT_EQ(r->message.rfind("redeploy failed: health failed: ", 0), 0u) << r->message;
  // Still there: its address is not handed out while it may run.
  EXPECT_TRUE(runtime_.containers.count("qabox-keep-1_1"));
  EXPECT_EQ(store_->listLeases()->size(), 2u);
  EXPECT_EQ(routes_.lookup("keep-1")->ip, "10.9.0.2");
}

TEST_F(DeployTest, ARedeployOfASleepingEnvironmentWakesItFirstAndItServesOnAfterAFailure) {
  ASSERT_TRUE(deploy("NAP-1").isOk());
  ASSERT_TRUE(envs_->sleep("NAP-1", "alice").isOk());
  ASSERT_EQ(runtime_.containers.at("qabox-nap-1").state, ContainerState::kStopped);
  runtime_.failOn.insert("start qabox-nap-1_1");
  DeployInput in;
  in.ticket = "NAP-1";
  in.force = true;
  auto r = deploy(in);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_FALSE(phases_.empty());
  EXPECT_EQ(phases_.front().phase, "wake");
  EXPECT_EQ(phases_.front().detail, "qabox-nap-1 awake");
  EXPECT_EQ(r->state, EnvState::kReady);
  EXPECT_EQ(runtime_.containers.at("qabox-nap-1").state, ContainerState::kRunning);
  EXPECT_EQ(routes_.lookup("nap-1")->state, EnvState::kReady);
  EXPECT_FALSE(runtime_.containers.count("qabox-nap-1_1"));
}

TEST_F(DeployTest, AnotherSourceIsRefusedBeforeAnythingIsWritten) {
  ASSERT_TRUE(deploy("SRC-1").isOk());
  const size_t calls = runtime_.calls.size();
  auto r = deploy(fromRepo("SRC-1"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(runtime_.calls.size(), calls);
  EXPECT_TRUE(git_.calls.empty());
  EXPECT_EQ(store_->listLeases()->size(), 1u);
}

TEST_F(DeployTest, EnvironmentsLearnHowFarTheirTargetMovedAndADeployBringsThemLevel) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: the export sets a trusted.* xattr";
  const std::string merged = git_.nextMerge.targetHead;
  git_.targetHeads["develop"] = merged;
  ASSERT_TRUE(deploy(fromRepo("SHOP-1")).isOk());
  DeployInput second = fromRepo("SHOP-2");
  second.spec.sourceBranch = "feature/y";
  ASSERT_TRUE(deploy(second).isOk());
  EXPECT_EQ(store_->getEnvironment("shop-1")->value().behind, 0u);
  EXPECT_EQ(store_->getEnvironment("shop-1")->value().targetHead, merged);

  // develop moves on by two commits; a push webhook fetches first.
  const std::string moved(40, 'f');
  git_.targetHeads["develop"] = moved;
  git_.behindOf[merged] = 2;
  git_.takeCalls();
  auto r = envs_->refreshBehind("shop", true);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(git_.takeCalls(), (std::vector<std::string>{"fetch shop", "targetStates shop"}));
  std::vector<std::string> told;
  for (const auto& m : *r)
    told.push_back(m.ticket + " " + m.target + " " + std::to_string(m.behind));
  EXPECT_EQ(told, (std::vector<std::string>{"SHOP-1 develop 2", "SHOP-2 develop 2"}));
  for (const char* slug : {"shop-1", "shop-2"}) {
    Environment e = store_->getEnvironment(slug)->value();
    EXPECT_EQ(e.behind, 2u) << slug;
    EXPECT_EQ(e.targetHead, moved) << slug;
    EXPECT_EQ(e.state, EnvState::kReady) << slug;
  }
  auto ev = store_->listEvents("SHOP-1", 0);
  ASSERT_TRUE(ev.isOk());
  auto behind =
      std::find_if(ev->begin(), ev->end(), [](const Event& e) { return e.action == "behind"; });
  ASSERT_NE(behind, ev->end());
  EXPECT_NE(behind->detail.find("develop moved to ffffffffffff: 2 commits"), std::string::npos)
      << behind->detail;

  // The same news again is no news: nothing moved, no event.
  auto again = envs_->refreshBehind("shop", false);
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(again->empty());

  // Deploying again merges the new head: SHOP-1 is level, SHOP-2 still behind.
  git_.nextMerge.targetHead = moved;
  git_.nextMerge.commit = std::string(40, '9');
  auto redeployed = envs_->redeploy("SHOP-1", false, "alice", {});
  ASSERT_TRUE(redeployed.isOk()) << redeployed.status().toString();
  EXPECT_EQ(store_->getEnvironment("shop-1")->value().behind, 0u);
  EXPECT_EQ(store_->getEnvironment("shop-1")->value().targetHead, moved);
  EXPECT_EQ(store_->getEnvironment("shop-2")->value().behind, 2u);

  // A target the mirror lost leaves the count as it was; a repo not in the
  // config is NOT_FOUND; nothing else changes.
  git_.targetHeads.erase("develop");
  EXPECT_TRUE(envs_->refreshBehind("shop", false).isOk());
  EXPECT_EQ(store_->getEnvironment("shop-2")->value().behind, 2u);
  EXPECT_EQ(envs_->refreshBehind("nope", false).status().code(), Code::kNotFound);
  git_.fail["fetch"] = unavailable("repo shop: cannot fetch");
  EXPECT_EQ(envs_->refreshBehind("shop", true).status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace qabox
