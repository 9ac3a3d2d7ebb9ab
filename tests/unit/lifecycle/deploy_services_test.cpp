// A deploy's services and processes against the fakes: the image check at
// the merge, the passwords (in app.env and nowhere else), supervise.json,
// and the services step reading a status.json the test plays qabox-init
// with, forged ones included.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <mutex>
#include <regex>
#include <thread>

#include "init/contract.h"
#include "lifecycle/logs.h"
#include "lifecycle/services.h"
#include "unit/lifecycle/deploy_fixture.h"

namespace qabox {
namespace {

using namespace deploy_test;  // NOLINT: the fixture's names
namespace sv = supervise;

constexpr const char* kAppToml = R"(
[app]
process = "web"
port = 8000
[hooks]
migrate = "migrate up"
[services.postgres]
[services.redis]
[processes]
web = "exec gunicorn app:app -b 0.0.0.0:8000"
worker = "exec python3 worker.py"
)";

TEST(Services, PasswordsAreFreshHexAndExpandedEverywhereInTheEnv) {
  auto a = newServicePassword(), b = newServicePassword();
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_TRUE(std::regex_match(*a, std::regex("[0-9a-f]{48}"))) << *a;
  EXPECT_NE(*a, *b);
  ServiceDef s;
  s.env = {
      {"URL", "x://u:${password}@h/${password}"}, {"PLAIN", "no password"}, {"P", "${password}"}};
  auto env = serviceEnv(s, "pw");
  EXPECT_EQ(env, (std::map<std::string, std::string>{
                     {"URL", "x://u:pw@h/pw"}, {"PLAIN", "no password"}, {"P", "pw"}}));
}

TEST(Services, TheirStateIsTheFirstNotReadyOrTheFirstFailed) {
  sv::InitStatus st;
  auto add = [&](const std::string& name, sv::ProcState state, const std::string& msg = "") {
    sv::ProcessStatus p;
    p.name = name;
    p.state = state;
    p.message = msg;
    st.processes.push_back(p);
  };
  add("a", sv::ProcState::kReady);
  add("b", sv::ProcState::kStarting);
  add("web", sv::ProcState::kBackoff, "not a service");
  auto s = servicesState(st, {"a", "b", "c"});
  EXPECT_EQ(s.failed, "");
  EXPECT_EQ(s.waiting, "b is starting");
  EXPECT_EQ(s.waitingName, "b");
  EXPECT_EQ(servicesState(st, {"c"}).waiting, "c is not started yet");
  EXPECT_TRUE(servicesState(st, {"a"}).waiting.empty());
  add("c", sv::ProcState::kStopped, "killed\x07");
  s = servicesState(st, {"a", "b", "c"});
  EXPECT_EQ(s.failed, "c is stopped (killed?)");
  EXPECT_EQ(s.failedName, "c");
  EXPECT_EQ(printable(std::string(300, 'x'), 200), std::string(200, 'x') + "...");
}

class ServicesDeployTest : public DeployTest {
 protected:
  void SetUp() override {
    DeployTest::SetUp();
    ASSERT_TRUE(store_->putImage({"debian", 1, Clock::now(), true, ""}).isOk());
    ImageManifest debian;
    debian.name = "debian";
    debian.init = kSupervisorInit;
    ServiceDef pg{"postgres",
                  "exec postgres",
                  "pg_isready",
                  "psql -c setup",
                  "postgres",
                  {{"DATABASE_URL", "postgresql://app:${password}@127.0.0.1:5432/app"},
                   {"PGPASSWORD", "${password}"}},
                  "/var/lib/postgresql/15/main"};
    ServiceDef redis{"redis",
                     "exec redis-server",
                     "redis-cli ping",
                     "",
                     "redis",
                     {{"REDIS_PASSWORD", "${password}"}},
                     ""};
    debian.services = {{"postgres", pg}, {"redis", redis}};
    images_.addRecipe(debian);
    git_.files["qabox.toml"] = kAppToml;
    runtime_.onStart = [this](const std::string& name) {
      if (!status_.empty()) put(name, "run/qabox/status.json", status_);
    };
  }

  DeployInput debianDeploy(const std::string& ticket) {
    DeployInput in = fromRepo(ticket);
    in.spec.image = "debian";
    return in;
  }
  void put(const std::string& container, const std::string& relative, const std::string& text) {
    const std::string path = upper(container) + "/" + relative;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }
  static std::string statusOf(const std::vector<std::pair<std::string, sv::ProcState>>& procs,
                              const std::string& message = "") {
    sv::InitStatus s;
    s.bootMs = 1;
    for (const auto& [name, state] : procs) {
      sv::ProcessStatus p;
      p.name = name;
      p.state = state;
      p.pid = state == sv::ProcState::kReady ? 42 : 0;
      p.restarts = state == sv::ProcState::kBackoff ? 3 : 0;
      p.lastExit = state == sv::ProcState::kBackoff ? 1 : 0;
      p.sinceMs = 1700000000000;
      if (state == sv::ProcState::kBackoff) p.message = message;
      s.processes.push_back(p);
    }
    return sv::toJson(s);
  }
  static std::string allReady() {
    return statusOf({{"postgres", sv::ProcState::kReady},
                     {"redis", sv::ProcState::kReady},
                     {"web", sv::ProcState::kWaiting},
                     {"worker", sv::ProcState::kWaiting}});
  }
  // Every file beneath `dir`, whole, for a grep.
  static std::string everything(const std::string& dir) {
    std::string all;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.is_regular_file()) all += readAll(e.path().string());
    }
    return all;
  }
  // The passwords app.env gave the services.
  std::map<std::string, std::string> passwords(const std::string& container) {
    std::string env = readAll(upper(container) + "/etc/qabox/app.env");
    std::map<std::string, std::string> out;
    std::smatch m;
    if (std::regex_search(env, m, std::regex("PGPASSWORD='([0-9a-f]*)'"))) out["postgres"] = m[1];
    if (std::regex_search(env, m, std::regex("REDIS_PASSWORD='([0-9a-f]*)'"))) out["redis"] = m[1];
    return out;
  }

  std::string status_;
};

TEST_F(ServicesDeployTest, WaitsForItsServicesBeforeTheHooksAndKeepsThePasswordsSecret) {
  status_ = allReady();
  std::map<std::string, std::string> hookEnv;
  runtime_.onExec = [&](const std::string&, const ExecSpec& ex) -> Result<ProcessResult> {
    if (ex.argv.back() == "migrate up") {
      hookEnv = ex.env;
      // A hook that prints its password: the deploy log must not keep it.
      ex.onOutput(false, "connecting to " + ex.env.at("DATABASE_URL") + "\n");
    }
    return exited(0);
  };
  auto env = deploy(debianDeploy("SVC-1"));
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  ASSERT_EQ(env->state, EnvState::kReady) << env->message;
  EXPECT_EQ(phaseNames(), (std::vector<std::string>{"merge", "clone", "export", "start", "services",
                                                    "migrate", "app", "health", "ready"}));
  EXPECT_EQ(phases_[4].detail, "postgres, redis ready");
  EXPECT_EQ(healthAsked_, "10.9.0.2:8000/");

  // One password a service, 24 random bytes in hex, in the hooks' env and app.env.
  auto pw = passwords("qabox-svc-1");
  ASSERT_EQ(pw.size(), 2u);
  EXPECT_EQ(pw["postgres"].size(), 48u);
  EXPECT_EQ(pw["redis"].size(), 48u);
  EXPECT_NE(pw["postgres"], pw["redis"]);
  EXPECT_EQ(hookEnv.at("DATABASE_URL"),
            "postgresql://app:" + pw["postgres"] + "@127.0.0.1:5432/app");
  EXPECT_EQ(hookEnv.at("REDIS_PASSWORD"), pw["redis"]);
  struct stat st {};
  ASSERT_EQ(stat((upper("qabox-svc-1") + "/etc/qabox/app.env").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // supervise.json: services in name order, then the routed process, then the others.
  auto file = sv::parseSuperviseFile(readAll(upper("qabox-svc-1") + "/etc/qabox/supervise.json"));
  ASSERT_TRUE(file.isOk()) << file.status().toString();
  EXPECT_EQ(file->logMax, 8u << 20);
  ASSERT_EQ(file->processes.size(), 4u);
  const auto& p = file->processes;
  EXPECT_EQ(p[0].name, "postgres");
  EXPECT_EQ(p[0].stage, sv::Stage::kService);
  EXPECT_EQ(p[0].command, "exec postgres");
  EXPECT_EQ(p[0].ready, "pg_isready");
  EXPECT_EQ(p[0].setup, "psql -c setup");
  EXPECT_EQ(p[0].user, "postgres");
  EXPECT_EQ(p[1].name, "redis");
  EXPECT_EQ(p[1].stage, sv::Stage::kService);
  EXPECT_EQ(p[2].name, "web");
  EXPECT_EQ(p[2].stage, sv::Stage::kApp);
  EXPECT_EQ(p[2].command, "exec gunicorn app:app -b 0.0.0.0:8000");
  EXPECT_EQ(p[3].name, "worker");
  EXPECT_EQ(p[3].command, "exec python3 worker.py");
  // No password in it: those are in app.env alone.
  std::string superviseText = readAll(upper("qabox-svc-1") + "/etc/qabox/supervise.json");
  EXPECT_EQ(superviseText.find(pw["postgres"]), std::string::npos);
  // The routed process's command is app.run's (pending while hooks run).
  EXPECT_EQ(readAll(upper("qabox-svc-1") + "/etc/qabox/app.run.pending"),
            "exec gunicorn app:app -b 0.0.0.0:8000\n");

  // Never stored, logged, streamed or returned.
  std::string log = readAll(paths::deployLog(dir_, "svc-1"));
  EXPECT_NE(log.find("connecting to postgresql://app:[secret postgres.password]@"),
            std::string::npos)
      << log;
  auto row = **store_->getEnvironment("svc-1");
  for (const auto& [service, password] : pw) {
    EXPECT_EQ(log.find(password), std::string::npos) << service;
    for (const char* f : {"/qabox.db", "/qabox.db-wal"}) {
      EXPECT_EQ(readAll(dir_ + f).find(password), std::string::npos) << service << f;
    }
    for (const auto& ph : phases_) EXPECT_EQ(ph.detail.find(password), std::string::npos);
    auto events = store_->listEvents("SVC-1", 0);
    ASSERT_TRUE(events.isOk());
    for (const auto& e : *events) EXPECT_EQ(e.detail.find(password), std::string::npos);
    for (const auto& [k, v] : row.spec.env) EXPECT_EQ(v.find(password), std::string::npos);
  }
  EXPECT_TRUE(row.spec.secretKeys.empty());

  // A redeploy makes new ones.
  auto again = deploy([&] {
    DeployInput in = debianDeploy("SVC-1");
    in.force = true;
    return in;
  }());
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  ASSERT_EQ(again->state, EnvState::kReady) << again->message;
  auto pw2 = passwords(again->container);
  EXPECT_NE(pw2["postgres"], pw["postgres"]);
  EXPECT_NE(pw2["redis"], pw["redis"]);
}

TEST_F(ServicesDeployTest, AServiceInBackoffFailsTheDeployWithItsLogsTail) {
  status_ = statusOf({{"postgres", sv::ProcState::kBackoff}, {"redis", sv::ProcState::kReady}},
                     "exited with code 1");
  runtime_.onStart = [this](const std::string& name) {
    put(name, "run/qabox/status.json", status_);
    // The service printed its password (from app.env) before it died.
    std::string env = readAll(upper(name) + "/etc/qabox/app.env");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(env, m, std::regex("PGPASSWORD='([0-9a-f]*)'")));
    std::string lines;
    for (int i = 1; i <= 12; ++i) lines += "line " + std::to_string(i) + "\n";
    put(name, "var/log/qabox/postgres.log",
        lines + "FATAL: password " + std::string(m[1]) + " refused\n");
  };
  auto r = deploy(debianDeploy("BACK-1"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  expectKeptFailed(*r,
                   "services failed: postgres is backoff (exited with code 1); last lines of "
                   "postgres.log:\nline 4\nline 5\n");
  EXPECT_NE(r->message.find("FATAL: password [secret postgres.password] refused"),
            std::string::npos)
      << r->message;
  EXPECT_EQ(r->message.find("line 3\n"), std::string::npos) << r->message;
  for (const auto& [service, password] : passwords("qabox-back-1")) {
    EXPECT_EQ(r->message.find(password), std::string::npos);
    EXPECT_EQ(readAll(dir_ + "/qabox.db-wal").find(password), std::string::npos);
  }
  // The hooks never ran.
  EXPECT_EQ(countCalls("exec qabox-back-1 migrate up"), 0u);
}

TEST_F(ServicesDeployTest, AServiceNotReadyInTimeFailsTheDeploy) {
  config_.deploy.hookTimeout = milliseconds(1000);
  makeManager();
  status_ = statusOf({{"postgres", sv::ProcState::kReady}, {"redis", sv::ProcState::kStarting}});
  auto began = std::chrono::steady_clock::now();
  auto r = deploy(debianDeploy("SLOW-1"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_GE(std::chrono::steady_clock::now() - began, milliseconds(1000));
  expectKeptFailed(*r,
                   "services failed: redis is starting, not ready within 1s; last lines of "
                   "redis.log:\n(nothing)");

  // No status.json at all: qabox-init never ran.
  status_.clear();
  auto none = deploy(debianDeploy("NONE-1"));
  ASSERT_TRUE(none.isOk()) << none.status().toString();
  EXPECT_EQ(none->message,
            "services failed: qabox-init wrote no /run/qabox/status.json, not ready within 1s; "
            "last lines of postgres.log:\n(nothing)");
}

TEST_F(ServicesDeployTest, AForgedStatusFileFailsOnlyThisDeployAtOnce) {
  config_.deploy.hookTimeout = std::chrono::minutes(10);  // a refusal must not wait for it
  makeManager();
  const std::string outside = dir_ + "/outside.json";
  std::ofstream(outside) << allReady();
  struct Case {
    const char* ticket;
    std::function<void(const std::string& container)> plant;
    const char* message;
  };
  const Case cases[] = {
      {"GARBLED-1", [&](const std::string& c) { put(c, "run/qabox/status.json", "{\"proc"); },
       "services failed: /run/qabox/status.json is not qabox-init's: status.json: not valid "
       "JSON"},
      {"WRONG-1",
       [&](const std::string& c) {
         put(c, "run/qabox/status.json", "{\"processes\":[{\"name\":\"postgres\",\"state\":9}]}");
       },
       "services failed: /run/qabox/status.json is not qabox-init's: status.json: "
       "processes[0].state: must be a string"},
      {"HUGE-1",
       [&](const std::string& c) {
         put(c, "run/qabox/status.json", std::string(sv::kMaxStatusBytes + 1, ' ') + "{}");
       },
       "services failed: /run/qabox/status.json: longer than 65536 bytes"},
      {"LINK-1",
       [&](const std::string& c) {
         fs::create_directories(upper(c) + "/run/qabox");
         fs::create_symlink(outside, upper(c) + "/run/qabox/status.json");
       },
       nullptr},
      {"DIRLINK-1",
       [&](const std::string& c) {
         fs::create_directories(upper(c) + "/run");
         fs::create_symlink(dir_, upper(c) + "/run/qabox");
         std::ofstream(dir_ + "/status.json") << allReady();
       },
       nullptr},
      {"FIFO-1",
       [&](const std::string& c) {
         fs::create_directories(upper(c) + "/run/qabox");
         ASSERT_EQ(mkfifo((upper(c) + "/run/qabox/status.json").c_str(), 0644), 0);
       },
       nullptr},
  };
  for (const Case& c : cases) {
    runtime_.onStart = c.plant;
    auto began = std::chrono::steady_clock::now();
    auto r = deploy(debianDeploy(c.ticket));
    ASSERT_TRUE(r.isOk()) << c.ticket << ": " << r.status().toString();
    EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5)) << c.ticket;
    EXPECT_EQ(r->state, EnvState::kFailed) << c.ticket;
    EXPECT_EQ(r->message.rfind("services failed: ", 0), 0u) << c.ticket << ": " << r->message;
    if (c.message) {
      EXPECT_EQ(r->message, c.message) << c.ticket;
    }
    EXPECT_EQ(countCalls("exec " + r->container + " migrate up"), 0u) << c.ticket;
    ASSERT_TRUE(envs_->remove(c.ticket, "alice").isOk()) << c.ticket;
  }
}

TEST_F(ServicesDeployTest, ALinkedServiceLogIsNotReadForTheTail) {
  const std::string secretFile = dir_ + "/host-secret";
  std::ofstream(secretFile) << "host secret\n";
  status_ = statusOf({{"postgres", sv::ProcState::kBackoff}}, "exited with code 2");
  runtime_.onStart = [&](const std::string& name) {
    put(name, "run/qabox/status.json", status_);
    fs::create_directories(upper(name) + "/var/log/qabox");
    fs::create_symlink(secretFile, upper(name) + "/var/log/qabox/postgres.log");
  };
  auto r = deploy(debianDeploy("TAIL-1"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->message,
            "services failed: postgres is backoff (exited with code 2); last lines of "
            "postgres.log:\n(nothing)");
}

TEST_F(ServicesDeployTest, WhatTheAppAsksOfItsImageIsCheckedBeforeAnythingIsMade) {
  // busybox has no qabox-init and no services.
  DeployInput in = fromRepo("BUSY-1");
  auto r = deploy(in);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "qabox.toml: services.postgres: image busybox has no service postgres (it has none)");
  ImageManifest busybox = *images_.manifest("busybox");
  busybox.services = images_.manifest("debian")->services;
  images_.addRecipe(busybox);
  r = deploy(in);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(),
            "qabox.toml: services: image busybox has no init = \"qabox-init\" to supervise "
            "them: it runs only [app] start");
  // A service the image lacks.
  git_.files["qabox.toml"] = "[app]\nstart = \"x\"\n[services.mysql]\n";
  r = deploy(debianDeploy("MY-1"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(),
            "qabox.toml: services.mysql: image debian has no service mysql (it has: postgres, "
            "redis)");
  // Nothing was made.
  EXPECT_TRUE(runtime_.calls.empty());
  EXPECT_TRUE(store_->listEnvironments()->empty());
  EXPECT_TRUE(store_->listLeases()->empty());
}

TEST_F(ServicesDeployTest, AnImageWithoutQaboxInitGetsNoSuperviseFile) {
  git_.files["qabox.toml"] = "[app]\nstart = \"./serve\"\n";
  auto env = deploy(fromRepo("PLAIN-1"));
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->state, EnvState::kReady) << env->message;
  EXPECT_FALSE(fs::exists(upper("qabox-plain-1") + "/etc/qabox/supervise.json"));
  EXPECT_EQ(readAll(upper("qabox-plain-1") + "/etc/qabox/app.run"), "./serve\n");
  // No services: no services step.
  EXPECT_EQ(phaseNames(),
            (std::vector<std::string>{"merge", "clone", "export", "start", "health", "ready"}));
}

TEST_F(ServicesDeployTest, AnAppWithoutProcessesOnQaboxInitRunsAsApp) {
  git_.files["qabox.toml"] = "[app]\nstart = \"./serve\"\nport = 8000\n";
  auto env = deploy(debianDeploy("ONE-1"));
  ASSERT_TRUE(env.isOk()) << env.status().toString();
  EXPECT_EQ(env->state, EnvState::kReady) << env->message;
  auto file = sv::parseSuperviseFile(readAll(upper("qabox-one-1") + "/etc/qabox/supervise.json"));
  ASSERT_TRUE(file.isOk()) << file.status().toString();
  ASSERT_EQ(file->processes.size(), 1u);
  EXPECT_EQ(file->processes[0].name, "app");
  EXPECT_EQ(file->processes[0].command, "./serve");
}

// ---------------------------------------------------------------------------
// What get and logs show of the processes.

TEST_F(ServicesDeployTest, GetShowsEachProcessFromStatusJsonAndMarksTheServices) {
  status_ = allReady();
  auto env = deploy(debianDeploy("GET-1"));
  ASSERT_TRUE(env.isOk() && env->state == EnvState::kReady) << env->message;
  put(env->container, "run/qabox/status.json",
      statusOf({{"postgres", sv::ProcState::kReady},
                {"redis", sv::ProcState::kBackoff},
                {"web", sv::ProcState::kReady},
                {"worker", sv::ProcState::kStarting}},
               "exited with code 1\x1b[31m"));
  auto procs = envs_->processesOf(*env);
  ASSERT_EQ(procs.size(), 4u);
  EXPECT_EQ(procs[0].status.name, "postgres");
  EXPECT_TRUE(procs[0].service);
  EXPECT_EQ(procs[0].status.pid, 42);
  EXPECT_EQ(procs[1].status.state, sv::ProcState::kBackoff);
  EXPECT_EQ(procs[1].status.restarts, 3u);
  EXPECT_EQ(procs[1].status.message, "exited with code 1?[31m");  // no terminal escapes
  EXPECT_TRUE(procs[1].service);
  EXPECT_EQ(procs[2].status.name, "web");
  EXPECT_FALSE(procs[2].service);
  EXPECT_FALSE(procs[3].service);

  // A garbled, linked or missing one shows nothing, and get still answers.
  put(env->container, "run/qabox/status.json", "garbage");
  EXPECT_TRUE(envs_->processesOf(*env).empty());
  fs::remove(upper(env->container) + "/run/qabox/status.json");
  fs::create_symlink(dir_ + "/qabox.db", upper(env->container) + "/run/qabox/status.json");
  EXPECT_TRUE(envs_->processesOf(*env).empty());
  fs::remove(upper(env->container) + "/run/qabox/status.json");
  EXPECT_TRUE(envs_->processesOf(*env).empty());
  EXPECT_TRUE(envs_->get("GET-1").isOk());
}

TEST_F(ServicesDeployTest, LogsOfAProcessAreItsOwnAndTheDefaultIsTheRoutedOnes) {
  status_ = allReady();
  auto env = deploy(debianDeploy("LOG-1"));
  ASSERT_TRUE(env.isOk() && env->state == EnvState::kReady) << env->message;
  const std::string root = upper(env->container);
  put(env->container, "var/log/qabox/web.log", "web says hi\n");
  put(env->container, "var/log/qabox/postgres.log", "pg says hi\n");
  put(env->container, "var/log/qabox/app.log", "not this one\n");

  auto read = [&](const std::string& process,
                  const std::string& ticket = "LOG-1") -> Result<std::string> {
    LogQuery q;
    q.ticket = ticket;
    q.process = process;
    std::string all;
    LogSink sink;
    sink.write = [&](std::string chunk) {
      all += chunk;
      return true;
    };
    QABOX_RETURN_IF_ERROR(streamLogs(*envs_, q, sink, milliseconds(5)));
    return all;
  };
  EXPECT_EQ(*read(""), "web says hi\n");
  EXPECT_EQ(*read("web"), "web says hi\n");
  EXPECT_EQ(*read("postgres"), "pg says hi\n");
  EXPECT_EQ(*read("worker"), "");  // not written yet

  auto unknown = read("mysql");
  ASSERT_FALSE(unknown.isOk());
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  EXPECT_EQ(unknown.status().message(),
            "ticket LOG-1: no process mysql (it has: postgres, redis, web, worker)");
  auto bad = read("../../etc/shadow");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);

  // A log the app made a link is refused, not followed.
  fs::remove(root + "/var/log/qabox/worker.log");
  fs::create_symlink(dir_ + "/qabox.db", root + "/var/log/qabox/worker.log");
  auto linked = read("worker");
  ASSERT_FALSE(linked.isOk());
  EXPECT_EQ(linked.status().code(), Code::kFailedPrecondition) << linked.status().toString();

  // Without qabox-init: app.log, and "app" is the one process.
  git_.files["qabox.toml"] = "[app]\nstart = \"./serve\"\n";
  auto plain = deploy(fromRepo("LOG-2"));
  ASSERT_TRUE(plain.isOk() && plain->state == EnvState::kReady) << plain->message;
  put(plain->container, "var/log/qabox/app.log", "plain app\n");
  EXPECT_EQ(*read("", "LOG-2"), "plain app\n");
  auto web = read("web", "LOG-2");
  ASSERT_FALSE(web.isOk());
  EXPECT_EQ(web.status().code(), Code::kNotFound) << web.status().toString();
}

// ---------------------------------------------------------------------------
// [data]: the dataset's build, its layer, and its reuse.

constexpr const char* kDataToml = R"(
[data]
seed = "seed it"
depends = ["seed.py", "migrations"]
)";

class DataDeployTest : public ServicesDeployTest {
 protected:
  void SetUp() override {
    ServicesDeployTest::SetUp();
    git_.files["qabox.toml"] = std::string(kAppToml) + kDataToml;
    git_.files["seed.py"] = "v1";
    git_.files["migrations"] = "001";
    status_ = allReady();
    // The build container's migrate and seed write the database's files,
    // and some a data layer must not keep.
    runtime_.onExec = [this](const std::string& name, const ExecSpec& ex) -> Result<ProcessResult> {
      if (name.rfind("qabox-data-", 0) != 0) return exited(0);
      {
        std::lock_guard l(mu_);
        buildExecs_.push_back(ex.argv.back());
        buildEnv_ = ex.env;
      }
      if (ex.argv.back() == "seed it" && seedFails_) {
        return exited(1, "", "psql: relation \"items\" does not exist\n");
      }
      put(name, "var/lib/postgresql/15/main/base/" + ex.argv.back(), git_.files["seed.py"]);
      put(name, "var/lib/other/file", "x");
      put(name, "srv/app/out", "x");
      put(name, "root/.psql_history", "x");
      return exited(0, "seeded\n");
    };
  }
  std::string layerDir(const std::string& hash) const { return dir_ + "/layers/data-" + hash; }
  std::vector<std::string> buildExecs() {
    std::lock_guard l(mu_);
    return buildExecs_;
  }
  size_t dataLayers() {
    size_t n = 0;
    auto layers = store_->listLayers();  // held: the loop reads into it
    for (const auto& l : *layers) n += l.kind == LayerKind::kData;
    return n;
  }
  std::string phaseDetail(const std::string& name) const {
    for (const auto& p : phases_) {
      if (p.phase == name) return p.detail;
    }
    return "";
  }

  std::mutex mu_;
  std::vector<std::string> buildExecs_;
  std::map<std::string, std::string> buildEnv_;
  bool seedFails_ = false;
};

TEST_F(DataDeployTest, SeededOnceOnTheTargetThenEveryEnvironmentStartsFromItsLayer) {
  auto a = deploy(debianDeploy("DS-1"));
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  ASSERT_EQ(a->state, EnvState::kReady) << a->message;
  ASSERT_EQ(a->dataLayer.size(), 64u);
  EXPECT_EQ(phaseDetail("data").rfind("built " + a->dataLayer.substr(0, 12), 0), 0u)
      << phaseDetail("data");
  // The target's migrate, then the seed, in the build container, on the
  // target's head, with the services' env (a password of the build's own).
  EXPECT_EQ(buildExecs(), (std::vector<std::string>{"migrate up", "seed it"}));
  EXPECT_EQ(buildEnv_.at("QABOX_COMMIT"), git_.nextMerge.targetHead);
  EXPECT_EQ(buildEnv_.at("PGPASSWORD").size(), 48u);
  EXPECT_NE(buildEnv_.at("PGPASSWORD"), passwords(a->container)["postgres"]);
  EXPECT_EQ(countCalls("exportTree shop " + git_.nextMerge.targetHead), 0u);
  const std::string build = LayerCache::buildContainer(LayerKind::kData, a->dataLayer);
  EXPECT_FALSE(runtime_.containers.count(build));
  // Its layer: the data dir alone, the top of the clone's lowers.
  const std::string layer = layerDir(a->dataLayer);
  EXPECT_TRUE(fs::exists(layer + "/var/lib/postgresql/15/main/base/seed it"));
  EXPECT_FALSE(fs::exists(layer + "/var/lib/other"));
  EXPECT_FALSE(fs::exists(layer + "/srv"));
  EXPECT_FALSE(fs::exists(layer + "/root"));
  ASSERT_FALSE(runtime_.lowers[a->container].empty());
  EXPECT_EQ(runtime_.lowers[a->container][0], layer);

  // A second environment of the same target: no build, the same layer.
  auto b = deploy(debianDeploy("DS-2"));
  ASSERT_TRUE(b.isOk() && b->state == EnvState::kReady) << b.status().toString();
  EXPECT_EQ(b->dataLayer, a->dataLayer);
  EXPECT_EQ(phaseDetail("data"), "cached " + a->dataLayer.substr(0, 12));
  EXPECT_EQ(buildExecs().size(), 2u);
  EXPECT_EQ(runtime_.lowers[b->container][0], layer);
  EXPECT_EQ(dataLayers(), 1u);
}

TEST_F(DataDeployTest, AChangeOnTheTargetBuildsBehindWhileDeploysUseThePreviousOne) {
  auto a = deploy(debianDeploy("DS-1"));
  ASSERT_TRUE(a.isOk() && a->state == EnvState::kReady) << a.status().toString();
  git_.files["seed.py"] = "v2";
  time_.advance(std::chrono::minutes(1));
  auto b = deploy(debianDeploy("DS-2"));
  ASSERT_TRUE(b.isOk() && b->state == EnvState::kReady) << b.status().toString();
  EXPECT_EQ(b->dataLayer, a->dataLayer);
  EXPECT_EQ(runtime_.lowers[b->container][0], layerDir(a->dataLayer));
  EXPECT_TRUE(std::regex_match(
      phaseDetail("data"),
      std::regex("previous " + a->dataLayer.substr(0, 12) + " while [0-9a-f]{12} builds")))
      << phaseDetail("data");
  // The background build's outcome is an event.
  auto built = [&] {
    auto events = store_->listEvents("", 0);
    return events.isOk() && std::any_of(events->begin(), events->end(), [](const Event& e) {
             return e.action == "data.build" && e.outcome == "ok";
           });
  };
  for (int i = 0; i < 500 && !built(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(built());
  ASSERT_EQ(dataLayers(), 2u);

  auto c = deploy(debianDeploy("DS-3"));
  ASSERT_TRUE(c.isOk() && c->state == EnvState::kReady) << c.status().toString();
  EXPECT_NE(c->dataLayer, a->dataLayer);
  EXPECT_EQ(phaseDetail("data"), "cached " + c->dataLayer.substr(0, 12));
  EXPECT_EQ(readAll(layerDir(c->dataLayer) + "/var/lib/postgresql/15/main/base/seed it"), "v2");

  // The first one goes once no environment is on it: replaced, not aged.
  ASSERT_TRUE(envs_->remove("DS-1", "test", "").isOk());
  EXPECT_TRUE(fs::exists(layerDir(a->dataLayer)));  // DS-2 is on it
  ASSERT_TRUE(envs_->remove("DS-2", "test", "").isOk());
  EXPECT_FALSE(fs::exists(layerDir(a->dataLayer)));
  EXPECT_EQ(dataLayers(), 1u);
  EXPECT_TRUE(fs::exists(layerDir(c->dataLayer)));
}

TEST_F(DataDeployTest, AFailingSeedFailsTheDeployAtDataAndLeavesNothing) {
  seedFails_ = true;
  auto a = deploy(debianDeploy("DS-1"));
  ASSERT_FALSE(a.isOk());
  EXPECT_EQ(a.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE((a.status().message().find("data failed: [data] seed failed with exit code 1") !=
               std::string::npos))
      << a.status().message();
  EXPECT_TRUE(
      (a.status().message().find("relation \"items\" does not exist") != std::string::npos));
  expectNothingLeft("ds-1", "qabox-ds-1");
  EXPECT_EQ(dataLayers(), 0u);
  EXPECT_TRUE(runtime_.containers.empty());
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(dir_ + "/layers", ec) || !fs::exists(dir_ + "/layers"));
}

TEST_F(DataDeployTest, BadDataManifestsAreRefusedBeforeAnythingIsMade) {
  git_.files["qabox.toml"] = std::string(kAppToml) + "[data]\nseed = \"seed it\"\n";
  auto a = deploy(debianDeploy("DS-1"));
  ASSERT_FALSE(a.isOk());
  EXPECT_TRUE((a.status().message().find("data.depends: must name what the dataset is built") !=
               std::string::npos))
      << a.status().message();
  git_.files["qabox.toml"] = std::string(kAppToml) + kDataToml;
  git_.files.erase("migrations");
  auto b = deploy(debianDeploy("DS-1"));
  ASSERT_FALSE(b.isOk());
  EXPECT_TRUE(
      (b.status().message().find("data.depends \"migrations\": no such path") != std::string::npos))
      << b.status().message();
  git_.files["qabox.toml"] =
      "[app]\nprocess = \"web\"\n[services.redis]\n[processes]\nweb = \"x\"\n" +
      std::string(kDataToml);
  auto c = deploy(debianDeploy("DS-1"));
  ASSERT_FALSE(c.isOk());
  EXPECT_TRUE(
      (c.status().message().find("none of the app's services keeps data") != std::string::npos))
      << c.status().message();
  EXPECT_TRUE(runtime_.containers.empty());
  EXPECT_FALSE(store_->getEnvironment("ds-1")->has_value());
}

}  // namespace
}  // namespace qabox
