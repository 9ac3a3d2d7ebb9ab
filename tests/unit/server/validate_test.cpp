// Each rule of server/validate.h on its own: the field a message names, and
// that a good request passes.
#include "server/validate.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <type_traits>

namespace qabox {
namespace {

using std::chrono::milliseconds;

// INVALID_ARGUMENT whose message starts with `field`.
::testing::AssertionResult refused(const Status& s, const std::string& field) {
  if (s.code() != Code::kInvalidArgument) {
    return ::testing::AssertionFailure() << "not INVALID_ARGUMENT: " << s.toString();
  }
  if (s.message().rfind(field, 0) != 0) {
    return ::testing::AssertionFailure() << "does not name " << field << ": " << s.message();
  }
  return ::testing::AssertionSuccess();
}

google::protobuf::Duration duration(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

// `good` with one change, validated.
template <typename Req>
Status changed(const Req& good, const std::function<void(std::type_identity_t<Req>&)>& change,
               const Config& config) {
  Req r = good;
  change(r);
  return validate(r, config);
}

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.repos = {{"shop", "/srv/git/shop.git"}};
    config_.limits.maxMemory = "2G";
    config_.limits.maxCpus = 4;
    config_.limits.maxPids = 4096;
    config_.reaper.maxAge = std::chrono::hours(336);
    good_.set_ticket("EXMP-113");
    good_.set_image("busybox");
    good_.set_repo("shop");
    good_.set_source_branch("feature/EXMP-113");
    good_.set_target_branch("develop");
    (*good_.mutable_env())["GREETING"] = "hello";
    (*good_.mutable_secrets())["API_KEY"] = "s3cr3t";
    *good_.mutable_ttl() = duration(48 * 3600);
    good_.mutable_limits()->set_memory("512M");
    good_.mutable_limits()->set_cpus(2);
    good_.mutable_limits()->set_pids(256);
  }

  Status deploy(const std::function<void(v1::DeployRequest&)>& change) {
    return changed(good_, change, config_);
  }

  Config config_;
  v1::DeployRequest good_;
};

TEST_F(ValidateTest, AGoodDeployPasses) {
  EXPECT_TRUE(validate(good_, config_).isOk()) << validate(good_, config_).toString();
  v1::DeployRequest imageOnly;
  imageOnly.set_ticket("EXMP-1");
  EXPECT_TRUE(validate(imageOnly, config_).isOk());  // the default image
}

TEST_F(ValidateTest, DeployTicketImageRepoAndBranches) {
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_ticket(""); }), "ticket"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_ticket("../x"); }), "ticket \"../x\""));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_image("BusyBox"); }), "image"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_image("../etc"); }), "image"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_repo("nope"); }), "repo \"nope\""));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_repo("https://evil.example/x.git"); }), "repo"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_repo(""); }), "repo"));  // branches, no repo
  auto s = deploy([](auto& r) { r.set_source_branch("-x"); });
  EXPECT_TRUE(refused(s, "source_branch \"-x\""));
  EXPECT_EQ(s.message(), "source_branch \"-x\": must not start with '-'");
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_source_branch(""); }), "source_branch"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_target_branch(""); }), "target_branch"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_target_branch("a..b"); }), "target_branch"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_target_branch("x.lock"); }), "target_branch"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.set_target_branch(std::string("a\0b", 3)); }),
                      "target_branch"));
}

TEST_F(ValidateTest, DeployVariables) {
  EXPECT_TRUE(refused(deploy([](auto& r) { (*r.mutable_env())["1X"] = "v"; }), "env \"1X\""));
  EXPECT_TRUE(refused(deploy([](auto& r) { (*r.mutable_env())["A-B"] = "v"; }), "env"));
  EXPECT_TRUE(refused(deploy([](auto& r) { (*r.mutable_env())[""] = "v"; }), "env"));
  EXPECT_TRUE(refused(deploy([](auto& r) { (*r.mutable_env())["QABOX_URL"] = "v"; }), "env"));
  EXPECT_TRUE(
      refused(deploy([](auto& r) { (*r.mutable_env())["A"] = std::string("x\0y", 3); }), "env A"));
  EXPECT_TRUE(refused(
      deploy([](auto& r) { (*r.mutable_env())["A"] = std::string(32 * 1024 + 1, 'x'); }), "env A"));
  EXPECT_TRUE(
      deploy([](auto& r) { (*r.mutable_env())["A"] = std::string(32 * 1024, 'x'); }).isOk());
  EXPECT_TRUE(refused(deploy([](auto& r) { (*r.mutable_secrets())["2K"] = "v"; }), "secret"));
  EXPECT_TRUE(
      refused(deploy([](auto& r) { (*r.mutable_secrets())["QABOX_TICKET"] = "v"; }), "secret"));
  EXPECT_TRUE(refused(deploy([](auto& r) { (*r.mutable_secrets())["GREETING"] = "v"; }),
                      "secret GREETING"));
  // The value of a secret is never quoted in a message.
  auto s = deploy([](auto& r) { (*r.mutable_secrets())["K"] = std::string(40000, 'q'); });
  EXPECT_TRUE(refused(s, "secret K"));
  EXPECT_EQ(s.message().find("qqq"), std::string::npos);
  s = deploy([](auto& r) { (*r.mutable_secrets())["K"] = std::string("top\0secret", 10); });
  EXPECT_TRUE(refused(s, "secret K"));
  EXPECT_EQ(s.message().find("top"), std::string::npos);
  // Counts and sizes are of env and secrets together.
  s = deploy([](auto& r) {
    for (int i = 0; i < 200; ++i) (*r.mutable_env())["E" + std::to_string(i)] = "v";
    for (int i = 0; i < 60; ++i) (*r.mutable_secrets())["S" + std::to_string(i)] = "v";
  });
  EXPECT_TRUE(refused(s, "env: at most 256 variables"));
  s = deploy([](auto& r) {
    for (int i = 0; i < 10; ++i)
      (*r.mutable_env())["E" + std::to_string(i)] = std::string(30000, 'x');
  });
  EXPECT_TRUE(refused(s, "env: names and values together"));
}

TEST_F(ValidateTest, DeployTtl) {
  EXPECT_TRUE(refused(deploy([](auto& r) { *r.mutable_ttl() = duration(0); }), "ttl"));
  EXPECT_TRUE(refused(deploy([](auto& r) { *r.mutable_ttl() = duration(-5); }), "ttl"));
  EXPECT_TRUE(refused(deploy([](auto& r) { *r.mutable_ttl() = duration(0, 1000); }), "ttl"));
  EXPECT_TRUE(refused(deploy([](auto& r) { *r.mutable_ttl() = duration(5, -1); }), "ttl"));
  EXPECT_TRUE(
      refused(deploy([](auto& r) { *r.mutable_ttl() = duration(1, 1'000'000'000); }), "ttl"));
  EXPECT_TRUE(refused(deploy([](auto& r) { *r.mutable_ttl() = duration(INT64_MAX); }), "ttl"));
  EXPECT_TRUE(refused(deploy([](auto& r) { *r.mutable_ttl() = duration(INT64_MIN); }), "ttl"));
  auto s = deploy([](auto& r) { *r.mutable_ttl() = duration(337 * 3600); });
  EXPECT_TRUE(refused(s, "ttl"));
  EXPECT_NE(s.message().find("reaper.max_age"), std::string::npos) << s.message();
  EXPECT_TRUE(deploy([](auto& r) { *r.mutable_ttl() = duration(336 * 3600); }).isOk());
  // No max_age: still at most ten years.
  config_.reaper.maxAge = milliseconds(0);
  EXPECT_TRUE(deploy([](auto& r) { *r.mutable_ttl() = duration(3000LL * 86400); }).isOk());
  EXPECT_TRUE(refused(deploy([](auto& r) { *r.mutable_ttl() = duration(3651LL * 86400); }), "ttl"));
}

TEST_F(ValidateTest, DeployLimits) {
  EXPECT_TRUE(
      refused(deploy([](auto& r) { r.mutable_limits()->set_memory("lots"); }), "limits.memory"));
  EXPECT_TRUE(
      refused(deploy([](auto& r) { r.mutable_limits()->set_memory("-1M"); }), "limits.memory"));
  EXPECT_TRUE(
      refused(deploy([](auto& r) { r.mutable_limits()->set_memory("3G"); }), "limits.memory"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.mutable_limits()->set_cpus(5); }), "limits.cpus"));
  EXPECT_TRUE(refused(deploy([](auto& r) { r.mutable_limits()->set_pids(5000); }), "limits.pids"));
  EXPECT_TRUE(deploy([](auto& r) { r.mutable_limits()->set_memory("2G"); }).isOk());
}

TEST_F(ValidateTest, DeployInputRulesHoldWithoutGrpc) {
  DeployInput in = deployInputOf(good_);
  EXPECT_TRUE(checkDeployInput(in, config_).isOk());
  EXPECT_EQ(in.secrets.at("API_KEY"), "s3cr3t");
  EXPECT_EQ(in.spec.ttl, milliseconds(48LL * 3600 * 1000));
  in.spec.ttl = milliseconds(-1);
  EXPECT_TRUE(refused(checkDeployInput(in, config_), "ttl"));
}

TEST_F(ValidateTest, TicketOnlyRequests) {
  v1::GetEnvironmentRequest get;
  v1::DeleteEnvironmentRequest del;
  v1::SetPinnedRequest pin;
  v1::SleepEnvironmentRequest sleep;
  v1::WakeEnvironmentRequest wake;
  v1::StreamLogsRequest logs;
  v1::ListEventsRequest events;
  for (const char* bad : {"", "../x", "-a", "a-", "a b", "1abc"}) {
    get.set_ticket(bad);
    del.set_ticket(bad);
    pin.set_ticket(bad);
    sleep.set_ticket(bad);
    wake.set_ticket(bad);
    logs.set_ticket(bad);
    events.set_ticket(bad);
    EXPECT_TRUE(refused(validate(get, config_), "ticket")) << bad;
    EXPECT_TRUE(refused(validate(del, config_), "ticket")) << bad;
    EXPECT_TRUE(refused(validate(pin, config_), "ticket")) << bad;
    EXPECT_TRUE(refused(validate(sleep, config_), "ticket")) << bad;
    EXPECT_TRUE(refused(validate(wake, config_), "ticket")) << bad;
    EXPECT_TRUE(refused(validate(logs, config_), "ticket")) << bad;
    if (*bad) {
      EXPECT_TRUE(refused(validate(events, config_), "ticket")) << bad;  // "": every ticket
    }
  }
  get.set_ticket(std::string(64, 'a'));
  EXPECT_TRUE(refused(validate(get, config_), "ticket"));
  get.set_ticket("EXMP-113");
  EXPECT_TRUE(validate(get, config_).isOk());
}

// Counts a request asks for: at the bound passes, above it is refused.
TEST_F(ValidateTest, TailAndLimitHaveBounds) {
  v1::StreamLogsRequest logs;
  v1::ListEventsRequest events;
  logs.set_ticket("EXMP-1");
  events.set_ticket("EXMP-1");
  logs.set_tail(kMaxLogTail);
  events.set_limit(kMaxEventLimit);
  EXPECT_TRUE(validate(logs, config_).isOk());
  EXPECT_TRUE(validate(events, config_).isOk());
  logs.set_tail(kMaxLogTail + 1);
  events.set_limit(kMaxEventLimit + 1);
  EXPECT_TRUE(refused(validate(logs, config_), "tail"));
  EXPECT_TRUE(refused(validate(events, config_), "limit"));
  // Events of every ticket, and the default limit; logs need a ticket.
  EXPECT_TRUE(validate(v1::ListEventsRequest(), config_).isOk());
  EXPECT_TRUE(refused(validate(v1::StreamLogsRequest(), config_), "ticket"));
}

TEST_F(ValidateTest, Exec) {
  v1::ExecRequest good;
  good.set_ticket("EXMP-1");
  good.add_argv("ls");
  good.add_argv("-l");
  (*good.mutable_env())["LANG"] = "C";
  *good.mutable_timeout() = duration(60);
  EXPECT_TRUE(validate(good, config_).isOk());
  auto with = [&](auto change) { return changed(good, change, config_); };
  EXPECT_TRUE(refused(with([](auto& r) { r.set_ticket(""); }), "ticket"));
  EXPECT_TRUE(refused(with([](auto& r) { r.clear_argv(); }), "argv"));
  EXPECT_TRUE(refused(with([](auto& r) { r.set_argv(0, ""); }), "argv[0]"));
  EXPECT_TRUE(refused(with([](auto& r) { r.set_argv(1, std::string("a\0b", 3)); }), "argv[1]"));
  EXPECT_TRUE(refused(with([](auto& r) {
                        for (int i = 0; i < 255; ++i) r.add_argv("x");
                      }),
                      "argv: at most 256"));
  EXPECT_TRUE(with([](auto& r) {
                for (int i = 0; i < 254; ++i) r.add_argv("x");
              }).isOk());
  EXPECT_TRUE(refused(with([](auto& r) { r.add_argv(std::string(129 * 1024, 'x')); }), "argv"));
  EXPECT_TRUE(refused(with([](auto& r) { (*r.mutable_env())["9"] = "x"; }), "env"));
  EXPECT_TRUE(
      refused(with([](auto& r) { (*r.mutable_env())["A"] = std::string("\0", 1); }), "env A"));
  EXPECT_TRUE(refused(with([](auto& r) { *r.mutable_timeout() = duration(0); }), "timeout"));
  EXPECT_TRUE(refused(with([](auto& r) { *r.mutable_timeout() = duration(-1); }), "timeout"));
  EXPECT_TRUE(
      refused(with([](auto& r) { *r.mutable_timeout() = duration(25 * 3600); }), "timeout"));
  EXPECT_TRUE(with([](auto& r) { r.clear_timeout(); }).isOk());
  // The same rules for EnvironmentManager::exec.
  EXPECT_TRUE(refused(checkExecInput({}, {}), "argv"));
  EXPECT_TRUE(refused(checkExecInput({"ls"}, {{"A=B", "c"}}), "env"));
}

TEST_F(ValidateTest, Reap) {
  v1::ReapRequest r;
  for (const char* ok : {"", "merged", "idle", "ttl", "max_age"}) {
    r.set_policy(ok);
    EXPECT_TRUE(validate(r, config_).isOk()) << ok;
  }
  for (const char* bad : {"all", "MERGED", "max-age", " ttl"}) {
    r.set_policy(bad);
    EXPECT_TRUE(refused(validate(r, config_), "policy")) << bad;
  }
}

TEST_F(ValidateTest, Images) {
  v1::BuildImageRequest build;
  v1::DeleteImageRequest del;
  build.set_name("busybox");
  del.set_name("debian-12");
  EXPECT_TRUE(validate(build, config_).isOk());
  EXPECT_TRUE(validate(del, config_).isOk());
  for (const char* bad : {"", "Busybox", "../x", "1box", "a/b"}) {
    build.set_name(bad);
    del.set_name(bad);
    EXPECT_TRUE(refused(validate(build, config_), "image")) << bad;
    EXPECT_TRUE(refused(validate(del, config_), "image")) << bad;
  }
}

TEST_F(ValidateTest, Tokens) {
  v1::CreateTokenRequest c;
  c.set_name("jenkins");
  c.set_role("ci");
  *c.mutable_ttl() = duration(720 * 3600);
  EXPECT_TRUE(validate(c, config_).isOk());
  auto with = [&](auto change) { return changed(c, change, config_); };
  EXPECT_TRUE(refused(with([](auto& r) { r.set_name(""); }), "token name"));
  EXPECT_TRUE(refused(with([](auto& r) { r.set_name("-x"); }), "token name"));
  EXPECT_TRUE(refused(with([](auto& r) { r.set_name("a b"); }), "token name"));
  EXPECT_TRUE(refused(with([](auto& r) { r.set_name(std::string(65, 'a')); }), "token name"));
  EXPECT_TRUE(refused(with([](auto& r) { r.set_role("admin"); }), "role \"admin\""));
  EXPECT_TRUE(refused(with([](auto& r) { r.set_role(""); }), "role"));
  EXPECT_TRUE(refused(with([](auto& r) { *r.mutable_ttl() = duration(-1); }), "ttl"));
  EXPECT_TRUE(refused(with([](auto& r) { *r.mutable_ttl() = duration(INT64_MAX); }), "ttl"));
  EXPECT_TRUE(with([](auto& r) { r.clear_ttl(); }).isOk());
  v1::RevokeTokenRequest revoke;
  revoke.set_name("jenkins");
  EXPECT_TRUE(validate(revoke, config_).isOk());
  revoke.set_name("../etc");
  EXPECT_TRUE(refused(validate(revoke, config_), "token name"));
}

TEST(CheckTimeSpan, NamesTheFieldAndTheBound) {
  EXPECT_TRUE(checkTimeSpan("ttl", milliseconds(1), milliseconds(10), "48h").isOk());
  auto s = checkTimeSpan("ttl", milliseconds(0), milliseconds(10), "48h");
  EXPECT_EQ(s.message(), "ttl: must be positive, as 48h");
  s = checkTimeSpan("timeout", std::chrono::hours(25), std::chrono::hours(24), "10m");
  EXPECT_EQ(s.message(), "timeout 1d1h: at most 1d");
}

}  // namespace
}  // namespace qabox
