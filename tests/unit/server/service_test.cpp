// QaboxService over an in-process gRPC channel, without LXC: the real
// EnvironmentManager over a fake runtime and a real SQLite store, the real
// Authorizer behind the auth interceptor, bearer tokens in the metadata.
// What is checked is the transport's part: the proto each RPC answers with,
// and the status code of each class of error.
#include "server/service.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <type_traits>

#include "daemon/options.h"
#include "fakes/fake_images.h"
#include "fakes/fake_runtime.h"
#include "fakes/fake_time.h"
#include "lifecycle/input_check.h"
#include "reaper/reaper.h"
#include "store/paths.h"
#include "sys/process.h"
#include "unit/server/tokens.h"
#include "unit/store/temp_dir.h"

namespace qabox {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;
using Stub = v1::Qabox::Stub;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.stateDir = dir_.path();
    config_.imagesDir = imagesDir_;
    config_.network.subnet = "10.9.0.0/29";  // 5 addresses for containers
    config_.limits.maxEnvironments = 3;
    config_.routing.domain = "qa.example.test";
    runtime_.upperRoot = dir_.path() + "/upper";
    auto s = openSqliteStore(dir_.path() + "/qabox.db");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->putImage({"busybox", 1, Clock::now(), true, ""}).isOk());
    images_ = std::make_unique<ImageBuilder>(config_, *store_, runner_, layers_, "");
    envs_ = std::make_unique<EnvironmentManager>(
        lifecycleOptions(config_), *store_, runtime_, bridge_, *images_, nullptr, routes_,
        [this](const std::string&, uint16_t, const std::string&, std::chrono::milliseconds) {
          return healthy_ ? Status::ok() : deadlineExceeded("health check: no answer");
        });
    auth_ = std::make_unique<Authorizer>(*store_, peers_, std::nullopt);
    HostInfo host;
    host.requestsRouted = [] { return uint64_t{42}; };
    service_ =
        std::make_unique<QaboxService>(config_, *envs_, *images_, *store_, *auth_, host, time_);
    startServer();
    ops_ = token("ops-1", "ops");
    ci_ = token("ci-1", "ci");
    reaperToken_ = token("reaper-1", "reaper");
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  void startServer() {
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
    f.push_back(std::make_unique<AuthInterceptorFactory>(*auth_));
    builder.experimental().SetInterceptorCreators(std::move(f));
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
    stub_ = v1::Qabox::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  std::string token(const std::string& name, const std::string& role) {
    return test::putToken(*store_, name, role, Clock::now());
  }

  // A client context that presents `secret` (none when empty).
  static std::unique_ptr<grpc::ClientContext> as(const std::string& secret) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!secret.empty()) ctx->AddMetadata("authorization", "Bearer " + secret);
    return ctx;
  }

  // One unary call as the holder of `secret`.
  template <typename Req, typename Resp>
  grpc::Status call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                    const std::string& secret, const std::type_identity_t<Req>& req, Resp* resp) {
    auto ctx = as(secret);
    return (stub_.get()->*rpc)(ctx.get(), req, resp);
  }

  // One server-streaming call read to its end: what came, and how it ended.
  template <typename Msg>
  struct Streamed {
    grpc::Status status;
    std::vector<Msg> messages;
  };
  template <typename Req, typename Msg>
  Streamed<Msg> stream(std::unique_ptr<grpc::ClientReader<Msg>> (Stub::*rpc)(grpc::ClientContext*,
                                                                             const Req&),
                       const std::string& secret, const std::type_identity_t<Req>& req) {
    auto ctx = as(secret);
    auto reader = (stub_.get()->*rpc)(ctx.get(), req);
    Streamed<Msg> out;
    Msg m;
    while (reader->Read(&m)) out.messages.push_back(m);
    out.status = reader->Finish();
    return out;
  }

  Streamed<v1::DeployEvent> deploy(const v1::DeployRequest& req, const std::string& secret = "") {
    return stream(&Stub::Deploy, secret.empty() ? ci_ : secret, req);
  }
  Streamed<v1::DeployEvent> deploy(const std::string& ticket) {
    v1::DeployRequest req;
    req.set_ticket(ticket);
    return deploy(req);
  }

  grpc::Status get(const std::string& ticket, v1::Environment* out = nullptr) {
    v1::GetEnvironmentRequest req;
    req.set_ticket(ticket);
    v1::Environment env;
    auto s = call(&Stub::GetEnvironment, ci_, req, &env);
    if (out) *out = env;
    return s;
  }

  struct Logs {
    grpc::Status status;
    std::string data;
  };
  Logs logs(const std::string& ticket, uint32_t tail, bool deployLog = false) {
    v1::StreamLogsRequest req;
    req.set_ticket(ticket);
    req.set_tail(tail);
    req.set_deploy(deployLog);
    auto r = stream(&Stub::StreamLogs, ci_, req);
    Logs out{r.status, ""};
    for (const auto& chunk : r.messages) out.data += chunk.data();
    return out;
  }

  std::string appLog(const std::string& container) {
    return runtime_.upperDir(container) + paths::kAppLog;
  }

  std::vector<Event> events(const std::string& ticket = "") {
    auto e = store_->listEvents(ticket, 0);
    EXPECT_TRUE(e.isOk());
    return e.isOk() ? *e : std::vector<Event>{};
  }

  const Event* findEvent(const std::string& action) {
    events_ = events();
    for (const auto& e : events_) {
      if (e.action == action) return &e;
    }
    return nullptr;
  }

  test::TempDir dir_;
  std::string imagesDir_ = std::string(QABOX_SOURCE_DIR) + "/images";
  Config config_;
  RealProcessRunner runner_;
  fakes::FakeLayerMounter layers_;
  fakes::FakeRuntime runtime_;
  fakes::FakeBridge bridge_;
  RouteTable routes_;
  FakeTime time_{Clock::now()};
  LocalPeers peers_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ImageBuilder> images_;
  std::unique_ptr<EnvironmentManager> envs_;
  std::unique_ptr<Authorizer> auth_;
  std::unique_ptr<QaboxService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Qabox::Stub> stub_;
  std::string ops_, ci_, reaperToken_;
  std::vector<Event> events_;
  bool healthy_ = true;
};

// --- the proto mapping ---

TEST_F(ServiceTest, DeployStreamsItsPhasesAndEndsWithTheEnvironment) {
  v1::DeployRequest req;
  req.set_ticket("EXMP-7");
  (*req.mutable_env())["GREETING"] = "hello";
  (*req.mutable_secrets())["API_KEY"] = "s3cret";
  *req.mutable_ttl() = TimeUtil::SecondsToDuration(7200);
  req.mutable_limits()->set_memory("256M");
  auto d = deploy(req);
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  ASSERT_GE(d.messages.size(), 2u);
  for (size_t i = 0; i + 1 < d.messages.size(); ++i) {
    EXPECT_FALSE(d.messages[i].phase().empty());
    EXPECT_NE(d.messages[i].phase(), "failed");
    EXPECT_FALSE(d.messages[i].has_environment());
  }
  const auto& last = d.messages.back();
  EXPECT_EQ(last.phase(), "done");
  ASSERT_TRUE(last.has_environment());
  const v1::Environment& e = last.environment();
  EXPECT_EQ(e.ticket(), "EXMP-7");
  EXPECT_EQ(e.hostname(), "exmp-7.qa.example.test");
  EXPECT_EQ(e.url(), config_.urlFor("exmp-7"));
  EXPECT_EQ(e.state(), v1::Environment::READY);
  EXPECT_EQ(e.ip(), "10.9.0.2");
  EXPECT_EQ(e.image(), "busybox");
  EXPECT_EQ(e.image_version(), 1u);
  EXPECT_EQ(e.container(), "qabox-exmp-7");
  EXPECT_EQ(e.env().at("GREETING"), "hello");
  ASSERT_EQ(e.secret_keys_size(), 1);
  EXPECT_EQ(e.secret_keys(0), "API_KEY");
  EXPECT_EQ(e.asked_limits().memory(), "256M");
  EXPECT_GT(e.port(), 0u);
  EXPECT_FALSE(e.pinned());
  EXPECT_GT(TimeUtil::TimestampToMilliseconds(e.created_at()), 0);
  EXPECT_GT(TimeUtil::TimestampToMilliseconds(e.deployed_at()), 0);
  ASSERT_TRUE(e.has_expires_at());
  EXPECT_NEAR(static_cast<double>(TimeUtil::TimestampToMilliseconds(e.expires_at()) -
                                  TimeUtil::TimestampToMilliseconds(e.deployed_at())),
              7'200'000.0, 60'000.0);
  EXPECT_FALSE(e.has_last_access_at());
  // The secret's value appears nowhere in the answer.
  EXPECT_EQ(last.DebugString().find("s3cret"), std::string::npos);

  // GetEnvironment and ListEnvironments answer with the same mapping.
  v1::Environment got;
  ASSERT_TRUE(get("EXMP-7", &got).ok());
  EXPECT_EQ(got.ticket(), e.ticket());
  EXPECT_EQ(got.url(), e.url());
  EXPECT_EQ(got.ip(), e.ip());
  EXPECT_EQ(got.state(), v1::Environment::READY);
  v1::ListEnvironmentsResponse list;
  ASSERT_TRUE(call(&Stub::ListEnvironments, reaperToken_, {}, &list).ok());
  ASSERT_EQ(list.environments_size(), 1);
  EXPECT_EQ(list.environments(0).hostname(), "exmp-7.qa.example.test");
}

TEST_F(ServiceTest, AFailedHealthCheckEndsWithPhaseFailed) {
  healthy_ = false;
  auto d = deploy("SICK-1");
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  ASSERT_FALSE(d.messages.empty());
  EXPECT_EQ(d.messages.back().phase(), "failed");
  EXPECT_EQ(d.messages.back().environment().state(), v1::Environment::FAILED);
  EXPECT_NE(d.messages.back().detail().find("health failed"), std::string::npos)
      << d.messages.back().detail();
}

TEST_F(ServiceTest, DeleteAnswersWithTheTicketAndTheEnvironmentIsGone) {
  ASSERT_TRUE(deploy("DEL-1").status.ok());
  v1::DeleteEnvironmentRequest req;
  req.set_ticket("DEL-1");
  v1::DeleteEnvironmentResponse resp;
  ASSERT_TRUE(call(&Stub::DeleteEnvironment, ci_, req, &resp).ok());
  EXPECT_EQ(resp.ticket(), "DEL-1");
  EXPECT_EQ(get("DEL-1").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, PinSleepAndWakeAnswerWithTheEnvironment) {
  ASSERT_TRUE(deploy("NAP-1").status.ok());
  v1::SleepEnvironmentRequest sleep;
  sleep.set_ticket("NAP-1");
  v1::Environment e;
  ASSERT_TRUE(call(&Stub::SleepEnvironment, ci_, sleep, &e).ok());
  EXPECT_EQ(e.state(), v1::Environment::SLEEPING);
  EXPECT_EQ(runtime_.containers.at("qabox-nap-1").state, ContainerState::kStopped);
  v1::WakeEnvironmentRequest wake;
  wake.set_ticket("NAP-1");
  ASSERT_TRUE(call(&Stub::WakeEnvironment, ci_, wake, &e).ok());
  EXPECT_EQ(e.state(), v1::Environment::READY);
  v1::SetPinnedRequest pin;
  pin.set_ticket("NAP-1");
  pin.set_pinned(true);
  ASSERT_TRUE(call(&Stub::SetPinned, ops_, pin, &e).ok());
  EXPECT_TRUE(e.pinned());
  EXPECT_EQ(e.ticket(), "NAP-1");
}

TEST_F(ServiceTest, ExecEndsWithTheExitCode) {
  ASSERT_TRUE(deploy("RUN-1").status.ok());
  runtime_.execExitCode = 3;
  v1::ExecRequest req;
  req.set_ticket("RUN-1");
  req.add_argv("false");
  auto r = stream(&Stub::Exec, ops_, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_FALSE(r.messages.empty());
  EXPECT_TRUE(r.messages.back().exited());
  EXPECT_EQ(r.messages.back().exit_code(), 3);
}

TEST_F(ServiceTest, HostStatusCountsTheStoreAndReportsTheHost) {
  ASSERT_TRUE(deploy("HOST-1").status.ok());
  ASSERT_TRUE(deploy("HOST-2").status.ok());
  ASSERT_TRUE(envs_->sleep("HOST-2", "test").isOk());
  v1::HostStatus st;
  ASSERT_TRUE(call(&Stub::GetHostStatus, reaperToken_, {}, &st).ok());
  EXPECT_EQ(st.version(), QABOX_VERSION);
  EXPECT_EQ(st.environments(), 2u);
  EXPECT_EQ(st.environments_by_state().at("READY"), 1u);
  EXPECT_EQ(st.environments_by_state().at("SLEEPING"), 1u);
  EXPECT_EQ(st.sleeping(), 1u);
  EXPECT_EQ(st.max_environments(), 3u);
  EXPECT_EQ(st.capacity_left(), 1u);
  EXPECT_EQ(st.addresses_left(), 3u);  // 5 in the /29, 2 leased
  EXPECT_EQ(st.state_dir(), dir_.path());
  EXPECT_EQ(st.bridge(), config_.network.bridge);
  EXPECT_EQ(st.subnet(), "10.9.0.0/29");
  EXPECT_EQ(st.domain(), "qa.example.test");
  EXPECT_EQ(st.requests_routed(), 42u);
  EXPECT_GT(st.disk_total_bytes(), 0u);
  EXPECT_LE(st.disk_free_bytes(), st.disk_total_bytes());
  EXPECT_GT(st.memory_total_bytes(), 0u);
  EXPECT_LE(st.memory_available_bytes(), st.memory_total_bytes());
  EXPECT_GE(TimeUtil::DurationToMilliseconds(st.uptime()), 0);
}

TEST_F(ServiceTest, ListEventsMapsEveryFieldAndFiltersByTicket) {
  ASSERT_TRUE(deploy("EV-1").status.ok());
  ASSERT_TRUE(deploy("EV-2").status.ok());
  v1::ListEventsRequest req;
  req.set_ticket("EV-1");
  v1::ListEventsResponse resp;
  ASSERT_TRUE(call(&Stub::ListEvents, reaperToken_, req, &resp).ok());
  ASSERT_GE(resp.events_size(), 2);  // deploy started, deploy ok
  auto stored = events("EV-1");
  ASSERT_EQ(static_cast<size_t>(resp.events_size()), stored.size());
  for (int i = 0; i < resp.events_size(); ++i) {
    const auto& e = resp.events(i);
    const auto& s = stored[static_cast<size_t>(i)];
    EXPECT_EQ(e.ticket(), "EV-1");
    EXPECT_EQ(e.id(), s.id);
    EXPECT_EQ(TimeUtil::TimestampToMilliseconds(e.at()), toUnixMillis(s.at));
    EXPECT_EQ(e.action(), s.action);
    EXPECT_EQ(e.actor(), "token:ci-1");
    EXPECT_EQ(e.outcome(), s.outcome);
    EXPECT_EQ(e.detail(), s.detail);
  }
}

TEST_F(ServiceTest, ListImagesCountsTheEnvironmentsOfEachVersion) {
  ASSERT_TRUE(deploy("IMG-1").status.ok());
  ASSERT_TRUE(store_->putImage({"busybox", 2, Clock::now(), false, "next"}).isOk());
  v1::ListImagesResponse resp;
  ASSERT_TRUE(call(&Stub::ListImages, ops_, {}, &resp).ok());
  ASSERT_EQ(resp.images_size(), 2);
  std::map<uint32_t, v1::Image> byVersion;
  for (const auto& im : resp.images()) byVersion[im.version()] = im;
  EXPECT_EQ(byVersion.at(1).name(), "busybox");
  EXPECT_EQ(byVersion.at(1).environments(), 1u);
  EXPECT_TRUE(byVersion.at(1).current());
  EXPECT_EQ(byVersion.at(2).environments(), 0u);
  EXPECT_EQ(byVersion.at(2).description(), "next");
  EXPECT_NE(std::find(resp.recipes().begin(), resp.recipes().end(), "busybox"),
            resp.recipes().end());
}

TEST_F(ServiceTest, CreateListAndRevokeATokenAreMappedAndAudited) {
  v1::CreateTokenRequest req;
  req.set_name("ci-2");
  req.set_role("ci");
  *req.mutable_ttl() = TimeUtil::SecondsToDuration(3600);
  v1::CreateTokenResponse created;
  ASSERT_TRUE(call(&Stub::CreateToken, ops_, req, &created).ok());
  EXPECT_EQ(created.secret().rfind("qbx_", 0), 0u);
  EXPECT_EQ(created.secret().size(), 4u + 64u);
  EXPECT_EQ(created.token().name(), "ci-2");
  EXPECT_EQ(created.token().role(), "ci");
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(created.token().created_at()),
            toUnixMillis(time_.now()));
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(created.token().expires_at()),
            toUnixMillis(time_.now()) + 3'600'000);
  EXPECT_FALSE(created.token().revoked());
  const Event* made = findEvent("token.create");
  ASSERT_NE(made, nullptr);
  EXPECT_EQ(made->actor, "token:ops-1");
  EXPECT_EQ(made->outcome, "ok");
  EXPECT_EQ(made->detail, "ci-2 (ci), expires in 1h");

  // The secret works at once, with its role.
  v1::ListEnvironmentsResponse list;
  EXPECT_TRUE(call(&Stub::ListEnvironments, created.secret(), {}, &list).ok());

  v1::ListTokensResponse tokens;
  ASSERT_TRUE(call(&Stub::ListTokens, ops_, {}, &tokens).ok());
  EXPECT_EQ(tokens.tokens_size(), 4);
  for (const auto& t : tokens.tokens()) EXPECT_FALSE(t.name().empty());

  v1::RevokeTokenRequest revoke;
  revoke.set_name("ci-2");
  v1::RevokeTokenResponse revoked;
  ASSERT_TRUE(call(&Stub::RevokeToken, ops_, revoke, &revoked).ok());
  EXPECT_TRUE(revoked.token().revoked());
  EXPECT_TRUE(revoked.token().has_revoked_at());
  const Event* gone = findEvent("token.revoke");
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(gone->actor, "token:ops-1");
  EXPECT_EQ(gone->detail, "ci-2");
  EXPECT_EQ(call(&Stub::ListEnvironments, created.secret(), {}, &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ServiceTest, ReapAnswersWithTheReportAndRecordsThePass) {
  v1::DeployRequest req;
  req.set_ticket("OLD-1");
  *req.mutable_ttl() = TimeUtil::SecondsToDuration(3600);
  ASSERT_TRUE(deploy(req).status.ok());
  FakeTime later(Clock::now() + std::chrono::hours(2));
  Reaper reaper(
      reaperOptions(config_), *store_, nullptr,
      [](const std::string&, const std::string&, const Reaper::StillDueFn&) {
        return internalError("a dry run deletes nothing");
      },
      later);
  service_->setReaper(&reaper);
  v1::ReapRequest reap;
  reap.set_dry_run(true);
  reap.set_policy("ttl");
  v1::ReapResponse resp;
  ASSERT_TRUE(call(&Stub::Reap, reaperToken_, reap, &resp).ok());
  EXPECT_TRUE(resp.dry_run());
  ASSERT_EQ(resp.reclaimed_size(), 1);
  EXPECT_EQ(resp.reclaimed(0).ticket(), "OLD-1");
  EXPECT_EQ(resp.reclaimed(0).policy(), "ttl");
  EXPECT_FALSE(resp.reclaimed(0).reason().empty());
  EXPECT_FALSE(resp.reclaimed(0).done());
  bool recorded = false;
  for (const auto& e : events()) {
    recorded |= e.action == "reap" && e.ticket.empty() && e.actor == "token:reaper-1" &&
                e.outcome == "ok" && e.detail == "dry run: 1 would be reclaimed (policy ttl)";
  }
  EXPECT_TRUE(recorded);
  service_->setReaper(nullptr);
}

// --- logs ---

TEST_F(ServiceTest, StreamLogsSendsTheLogOrItsLastLines) {
  ASSERT_TRUE(deploy("LOG-1").status.ok());
  EXPECT_EQ(logs("LOG-1", 0).data, "");  // no log yet: empty, not an error
  std::string path = appLog("qabox-log-1");
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "one\ntwo\nthree";  // the last line still being written
  auto all = logs("LOG-1", 0);
  ASSERT_TRUE(all.status.ok()) << all.status.error_message();
  EXPECT_EQ(all.data, "one\ntwo\nthree");
  EXPECT_EQ(logs("LOG-1", 2).data, "two\nthree");
  EXPECT_EQ(logs("LOG-1", 100).data, "one\ntwo\nthree");
  std::ofstream(path, std::ios::app) << "\nfour\n";
  EXPECT_EQ(logs("LOG-1", 2).data, "three\nfour\n");
  // The deploy's own log is another file.
  EXPECT_TRUE(logs("LOG-1", 0, true).status.ok());
}

// busybox as if its init were qabox-init.
class SupervisedServiceTest : public ServiceTest {
 protected:
  void SetUp() override {
    imagesDir_ = images_dir_.path();
    fs::copy(std::string(QABOX_SOURCE_DIR) + "/images/busybox", imagesDir_ + "/busybox",
             fs::copy_options::recursive);
    const std::string recipe = imagesDir_ + "/busybox/image.toml";
    std::stringstream text;
    text << std::ifstream(recipe).rdbuf();
    // Top-level, before any table.
    std::ofstream(recipe, std::ios::trunc) << "init = \"qabox-init\"\n" << text.str();
    ServiceTest::SetUp();
  }
  void putStatus(const std::string& container, const std::string& text) {
    std::string path = runtime_.upperDir(container) + "/run/qabox/status.json";
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << text;
  }
  test::TempDir images_dir_;
};

TEST_F(ServiceTest, GetShowsNoProcessesWithoutQaboxInit) {
  ASSERT_TRUE(deploy("PLAIN-1").status.ok());
  std::string path = runtime_.upperDir("qabox-plain-1") + "/run/qabox/status.json";
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << R"({"boot_ms":1,"processes":[{"name":"app","state":"ready"}]})";
  v1::Environment env;
  ASSERT_TRUE(get("PLAIN-1", &env).ok());
  EXPECT_TRUE(env.processes().empty());
}

TEST_F(SupervisedServiceTest, GetShowsEachProcessAndListDoesNot) {
  ASSERT_TRUE(deploy("SUP-1").status.ok());
  putStatus("qabox-sup-1",
            R"({"boot_ms":1,"processes":[{"name":"app","state":"backoff","pid":0,"restarts":2,)"
            R"("last_exit":1,"since_ms":1700000000000,"message":"exited with code 1"}]})");
  v1::Environment env;
  ASSERT_TRUE(get("SUP-1", &env).ok());
  ASSERT_EQ(env.processes_size(), 1);
  const v1::Process& p = env.processes(0);
  EXPECT_EQ(p.name(), "app");
  EXPECT_FALSE(p.service());
  EXPECT_EQ(p.state(), "backoff");
  EXPECT_EQ(p.restarts(), 2u);
  EXPECT_EQ(p.last_exit(), 1);
  EXPECT_EQ(p.message(), "exited with code 1");
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(p.since()), 1700000000000);
  v1::ListEnvironmentsResponse list;
  ASSERT_TRUE(call(&Stub::ListEnvironments, ci_, v1::ListEnvironmentsRequest(), &list).ok());
  ASSERT_EQ(list.environments_size(), 1);
  EXPECT_TRUE(list.environments(0).processes().empty());
  // A forged one: get still answers, without processes.
  putStatus("qabox-sup-1", std::string(70000, '['));
  ASSERT_TRUE(get("SUP-1", &env).ok());
  EXPECT_TRUE(env.processes().empty());
}

TEST_F(SupervisedServiceTest, StreamLogsTakesAProcessByName) {
  ASSERT_TRUE(deploy("SUP-2").status.ok());
  std::string log = runtime_.upperDir("qabox-sup-2") + "/var/log/qabox/app.log";
  fs::create_directories(fs::path(log).parent_path());
  std::ofstream(log) << "from app\n";
  v1::StreamLogsRequest req;
  req.set_ticket("SUP-2");
  req.set_process("app");
  auto r = stream(&Stub::StreamLogs, ci_, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].data(), "from app\n");
  req.set_process("worker");
  r = stream(&Stub::StreamLogs, ci_, req);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(r.status.error_message(), "ticket SUP-2: no process worker (it has: app)");
  req.set_process("../x");
  r = stream(&Stub::StreamLogs, ci_, req);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The app log itself, made a link by the container, is refused.
  fs::remove(log);
  fs::create_symlink(dir_.path() + "/qabox.db", log);
  req.set_process("app");
  r = stream(&Stub::StreamLogs, ci_, req);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServiceTest, StreamLogsRefusesAFifoOrALinkPlantedByTheContainer) {
  ASSERT_TRUE(deploy("LOG-2").status.ok());
  std::string path = appLog("qabox-log-2");
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_EQ(mkfifo(path.c_str(), 0644), 0);
  auto fifo = logs("LOG-2", 0);  // would block forever if the FIFO were opened
  EXPECT_EQ(fifo.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(fifo.status.error_message().rfind("logs of LOG-2: ", 0), 0u)
      << fifo.status.error_message();
  fs::remove(path);
  std::ofstream(dir_.path() + "/host-secret") << "not for the container\n";
  fs::create_symlink(dir_.path() + "/host-secret", path);
  auto link = logs("LOG-2", 0);
  EXPECT_EQ(link.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(link.data, "");
}

TEST_F(ServiceTest, FollowingSendsWhatIsAppendedAndEndsWhenTheEnvironmentIsDeleted) {
  ASSERT_TRUE(deploy("LOG-3").status.ok());
  std::string path = appLog("qabox-log-3");
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "first\n";
  v1::StreamLogsRequest req;
  req.set_ticket("LOG-3");
  req.set_follow(true);
  auto ctx = as(ci_);
  auto reader = stub_->StreamLogs(ctx.get(), req);
  v1::LogChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  EXPECT_EQ(chunk.data(), "first\n");
  std::ofstream(path, std::ios::app) << "second\n";
  ASSERT_TRUE(reader->Read(&chunk));
  EXPECT_EQ(chunk.data(), "second\n");
  ASSERT_TRUE(envs_->remove("LOG-3", "test").isOk());
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_TRUE(reader->Finish().ok());
}

// --- status codes ---

TEST_F(ServiceTest, BadFieldsAreInvalidArgumentNamingTheField) {
  auto expectInvalid = [](const grpc::Status& s, const std::string& field) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_NE(s.error_message().find(field), std::string::npos) << s.error_message();
  };
  v1::DeployRequest bad;
  bad.set_ticket("OK-1");
  (*bad.mutable_env())["1BAD"] = "x";
  expectInvalid(deploy(bad).status, "1BAD");
  v1::DeployRequest badTtl;
  badTtl.set_ticket("OK-1");
  *badTtl.mutable_ttl() = TimeUtil::SecondsToDuration(-5);
  expectInvalid(deploy(badTtl).status, "ttl");
  expectInvalid(get("../x"), "ticket");
  v1::StreamLogsRequest logsReq;
  logsReq.set_ticket("OK-1");
  logsReq.set_tail(kMaxLogTail + 1);
  expectInvalid(stream(&Stub::StreamLogs, ci_, logsReq).status, "tail");
  v1::ListEventsRequest eventsReq;
  eventsReq.set_limit(kMaxEventLimit + 1);
  v1::ListEventsResponse eventsResp;
  expectInvalid(call(&Stub::ListEvents, ci_, eventsReq, &eventsResp), "limit");
  v1::CreateTokenRequest tokenReq;
  tokenReq.set_name("x");
  tokenReq.set_role("boss");
  v1::CreateTokenResponse tokenResp;
  expectInvalid(call(&Stub::CreateToken, ops_, tokenReq, &tokenResp), "role");
  v1::ReapRequest reapReq;
  reapReq.set_policy("whenever");
  v1::ReapResponse reapResp;
  expectInvalid(call(&Stub::Reap, ops_, reapReq, &reapResp), "policy");
  // Nothing was looked up or changed.
  EXPECT_TRUE(runtime_.calls.empty());
  EXPECT_TRUE(store_->listEnvironments()->empty());
}

TEST_F(ServiceTest, AnUnknownTicketIsNotFound) {
  EXPECT_EQ(get("NOPE-1").error_code(), grpc::StatusCode::NOT_FOUND);
  v1::DeleteEnvironmentRequest del;
  del.set_ticket("NOPE-1");
  v1::DeleteEnvironmentResponse delResp;
  EXPECT_EQ(call(&Stub::DeleteEnvironment, ci_, del, &delResp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(logs("NOPE-1", 0).status.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::RevokeTokenRequest revoke;
  revoke.set_name("nobody");
  v1::RevokeTokenResponse revoked;
  EXPECT_EQ(call(&Stub::RevokeToken, ops_, revoke, &revoked).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, WhatTheStateForbidsIsFailedPrecondition) {
  ASSERT_TRUE(deploy("PIN-1").status.ok());
  ASSERT_TRUE(envs_->setPinned("PIN-1", true, "test").isOk());
  v1::SleepEnvironmentRequest sleep;
  sleep.set_ticket("PIN-1");
  v1::Environment e;
  auto s = call(&Stub::SleepEnvironment, ci_, sleep, &e);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("pinned"), std::string::npos) << s.error_message();
  // A container that is not running takes no exec.
  runtime_.containers.at("qabox-pin-1").state = ContainerState::kStopped;
  v1::ExecRequest exec;
  exec.set_ticket("PIN-1");
  exec.add_argv("true");
  EXPECT_EQ(stream(&Stub::Exec, ops_, exec).status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // An image version an environment uses cannot be deleted.
  v1::DeleteImageRequest del;
  del.set_name("busybox");
  del.set_version(1);
  v1::DeleteImageResponse delResp;
  EXPECT_EQ(call(&Stub::DeleteImage, ops_, del, &delResp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServiceTest, ADuplicateTokenNameIsAlreadyExists) {
  v1::CreateTokenRequest req;
  req.set_name("ci-1");
  req.set_role("ci");
  v1::CreateTokenResponse resp;
  EXPECT_EQ(call(&Stub::CreateToken, ops_, req, &resp).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(findEvent("token.create"), nullptr);
}

TEST_F(ServiceTest, CallsWithoutAGoodTokenAreUnauthenticated) {
  v1::ListEnvironmentsResponse list;
  auto s = call(&Stub::ListEnvironments, "", {}, &list);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("no token"), std::string::npos) << s.error_message();
  EXPECT_EQ(call(&Stub::ListEnvironments, "qbx_" + std::string(64, '0'), {}, &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto malformed = std::make_unique<grpc::ClientContext>();
  malformed->AddMetadata("authorization", "Basic abc");
  EXPECT_EQ(stub_->ListEnvironments(malformed.get(), {}, &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A refused deploy changes nothing.
  v1::DeployRequest req;
  req.set_ticket("SNEAK-1");
  auto refused = stream(&Stub::Deploy, "", req);
  EXPECT_TRUE(refused.messages.empty());
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(runtime_.calls.empty());
}

TEST_F(ServiceTest, ARoleCallingBeyondItsRightsIsPermissionDenied) {
  v1::ExecRequest exec;
  exec.set_ticket("ANY-1");
  exec.add_argv("id");
  auto r = stream(&Stub::Exec, ci_, exec);
  EXPECT_TRUE(r.messages.empty());
  const auto& s = r.status;
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("may not call Exec"), std::string::npos) << s.error_message();
  v1::DeployRequest deployReq;
  deployReq.set_ticket("ANY-1");
  EXPECT_EQ(deploy(deployReq, reaperToken_).status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::CreateTokenRequest tokenReq;
  tokenReq.set_name("mine");
  tokenReq.set_role("ops");
  v1::CreateTokenResponse tokenResp;
  EXPECT_EQ(call(&Stub::CreateToken, ci_, tokenReq, &tokenResp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(runtime_.calls.empty());
}

TEST_F(ServiceTest, AFullHostIsResourceExhausted) {
  ASSERT_TRUE(deploy("FULL-1").status.ok());
  ASSERT_TRUE(deploy("FULL-2").status.ok());
  ASSERT_TRUE(deploy("FULL-3").status.ok());
  auto d = deploy("FULL-4");
  EXPECT_EQ(d.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(d.messages.empty() || d.messages.back().phase() != "done");
  EXPECT_EQ(runtime_.containers.size(), 3u);
}

TEST_F(ServiceTest, AShuttingDownAgentIsUnavailable) {
  ASSERT_TRUE(deploy("UP-1").status.ok());
  envs_->beginShutdown();
  EXPECT_EQ(deploy("UP-2").status.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::SleepEnvironmentRequest sleep;
  sleep.set_ticket("UP-1");
  v1::Environment e;
  EXPECT_EQ(call(&Stub::SleepEnvironment, ci_, sleep, &e).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Reads still answer.
  EXPECT_TRUE(get("UP-1").ok());
}

TEST_F(ServiceTest, ReapWithoutAReaperIsUnavailable) {
  v1::ReapRequest req;
  v1::ReapResponse resp;
  auto s = call(&Stub::Reap, reaperToken_, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("reaper is not running"), std::string::npos);
}

}  // namespace
}  // namespace qabox
