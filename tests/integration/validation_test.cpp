// Issue: security, input. The real daemon, real gRPC over its unix socket,
// real containers: every bad field of every RPC is INVALID_ARGUMENT naming
// the field, and changes nothing on the host; an oversized message is
// RESOURCE_EXHAUSTED; a secret reaches the hooks and the app and nothing
// else (logs, events, get, the state dir, process command lines).
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cctype>
#include <climits>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"
#include "qabox/v1/qabox.grpc.pb.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;
using grpc::StatusCode;

// Never quoted back in any message, even when the request is refused.
constexpr const char* kProbeSecret = "probe-never-echoed-0c1f9e";

// The app: its build hook prints the secret (split across two writes a
// second apart, so the agent sees it in pieces), and leaves a transformed
// copy for the test to check that the hook got it.
constexpr const char* kAppToml = R"([app]
start = "exec httpd -f -p 8080 -h /srv/app/www"
port = 8080
health = "/health.txt"
[hooks]
build = "sh build.sh"
)";
constexpr const char* kBuild = R"(set -e
mkdir -p www
echo ok > www/health.txt
echo "build sees API_KEY=$API_KEY"
echo "and on stderr: $API_KEY" >&2
head=${API_KEY%????????}
printf '%s' "cut on stderr: $head" >&2
sleep 1
printf '%s' "split: $head"
sleep 1
printf '%s\n' "${API_KEY#"$head"}"
printf '%s' "$API_KEY" | tr 'a-z' 'A-Z' > www/upper.txt
if [ -e fail ]; then echo "failing with $API_KEY"; exit 3; fi
echo built
)";

google::protobuf::Duration duration(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

// Shows the app's environment.
constexpr const char* kEnvCgi = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

// What a refused request must leave as it was.
struct HostState {
  v1::ListEnvironmentsResponse envs;
  v1::ListEventsResponse events;
  v1::ListImagesResponse images;
  v1::ListTokensResponse tokens;
  std::vector<std::string> containers;
  int leases = -1;
  std::string rules;
};

class LxcValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = host_->appRepo(
        {{"qabox.toml", kAppToml}, {"build.sh", kBuild}, {"www/cgi-bin/env", kEnvCgi}});
    git_->checkout("feature/fail", true);
    git_->write("fail", "");
    git_->commit("make the build fail");
    git_->push("feature/fail");
    git_->checkout("develop");
    TestHost::Options o;
    // Every refused call is counted below: none held back by the rate limit.
    o.extraToml = "[events]\nrefused_burst = 100000\n";
    o.repos = {{"shop", git_->bare()}};
    o.healthTimeout = "10s";
    o.apiToml = "max_message_bytes = 1048576\n";
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0) << host_->logText();
  }

  std::unique_ptr<v1::Qabox::Stub> stub() {
    return v1::Qabox::NewStub(
        grpc::CreateChannel("unix://" + host_->socket(), grpc::InsecureChannelCredentials()));
  }

  static void deadline(grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  }

  HostState state() {
    HostState s;
    auto st = stub();
    {
      grpc::ClientContext c;
      EXPECT_TRUE(st->ListEnvironments(&c, {}, &s.envs).ok());
    }
    {
      grpc::ClientContext c;
      v1::ListEventsRequest r;
      r.set_limit(10000);
      EXPECT_TRUE(st->ListEvents(&c, r, &s.events).ok());
    }
    {
      grpc::ClientContext c;
      EXPECT_TRUE(st->ListImages(&c, {}, &s.images).ok());
    }
    {
      grpc::ClientContext c;
      EXPECT_TRUE(st->ListTokens(&c, {}, &s.tokens).ok());
    }
    s.containers = host_->containers();
    s.leases = host_->leaseCount();
    // Stateless: the rules and set elements, not the counters of what the
    // containers sent meanwhile.
    for (const char* family : {"inet", "bridge"}) {
      s.rules += runOrDie({"nft", "-s", "list", "table", family, "qabox_" + host_->bridge()}).out;
    }
    return s;
  }

  // What differs between two states, "" when nothing does.
  static std::string diff(const HostState& a, const HostState& b) {
    std::string d;
    if (!MessageDifferencer::Equals(a.envs, b.envs)) d += "environments; ";
    if (!MessageDifferencer::Equals(a.events, b.events)) d += "events; ";
    if (!MessageDifferencer::Equals(a.images, b.images)) d += "images; ";
    if (!MessageDifferencer::Equals(a.tokens, b.tokens)) d += "tokens; ";
    if (a.containers != b.containers) d += "containers; ";
    if (a.leases != b.leases) d += "leases; ";
    if (a.rules != b.rules) d += "nft rules; ";
    return d;
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

struct Case {
  std::string name;
  std::string field;  // the message starts with it
  std::function<grpc::Status(v1::Qabox::Stub&, grpc::ClientContext&)> call;
};

template <typename T>
using Fill = std::function<void(std::type_identity_t<T>&)>;

// A case calling a unary RPC with the request `fill` makes.
template <typename Req, typename Resp>
Case unary(std::string name, std::string field,
           grpc::Status (v1::Qabox::Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
           Fill<Req> fill) {
  return {std::move(name), std::move(field), [rpc, fill](auto& stub, auto& ctx) {
            Req req;
            fill(req);
            Resp resp;
            return (stub.*rpc)(&ctx, req, &resp);
          }};
}

// The same for an RPC that streams its answer.
template <typename Req, typename Msg>
Case streaming(std::string name, std::string field,
               std::unique_ptr<grpc::ClientReader<Msg>> (v1::Qabox::Stub::*rpc)(
                   grpc::ClientContext*, const Req&),
               Fill<Req> fill) {
  return {std::move(name), std::move(field), [rpc, fill](auto& stub, auto& ctx) {
            Req req;
            fill(req);
            return drain((stub.*rpc)(&ctx, req));
          }};
}

v1::DeployRequest goodDeploy() {
  v1::DeployRequest r;
  r.set_ticket("NEW-1");
  r.set_repo("shop");
  r.set_source_branch("develop");
  r.set_target_branch("develop");
  (*r.mutable_secrets())["PROBE"] = kProbeSecret;
  return r;
}

std::vector<Case> badInputs() {
  using Stub = v1::Qabox::Stub;
  std::vector<Case> cases;
  auto deploy = [&](const std::string& name, const std::string& field,
                    Fill<v1::DeployRequest> change) {
    cases.push_back(streaming("Deploy " + name, field, &Stub::Deploy, [change](auto& r) {
      r = goodDeploy();
      change(r);
    }));
  };
  const std::vector<std::string> badTickets = {
      "", "../x", "-lead", "trail-", "a b", "1abc", std::string(64, 'a'), "a_b", "a\nb", "X;rm"};
  for (const auto& t : badTickets) {
    deploy("ticket " + t, "ticket", [t](auto& r) { r.set_ticket(t); });
  }
  for (const auto& image : {std::string("BusyBox"), std::string("../etc"), std::string("a b"),
                            std::string(41, 'a'), std::string("1box")}) {
    deploy("image " + image, "image", [image](auto& r) { r.set_image(image); });
  }
  for (const auto& repo : {"nope", "https://evil.example/x.git", "/tmp/x", "SHOP"}) {
    deploy(std::string("repo ") + repo, "repo", [repo](auto& r) { r.set_repo(repo); });
  }
  deploy("branches without a repo", "repo", [](auto& r) { r.set_repo(""); });
  for (const auto& b : {std::string("-x"),      std::string("--upload-pack=touch /tmp/pwned"),
                        std::string("a..b"),    std::string("a b"),
                        std::string("a~1"),     std::string("a^"),
                        std::string("a:b"),     std::string("x.lock"),
                        std::string(".hidden"), std::string("a//b"),
                        std::string("/a"),      std::string("a/"),
                        std::string("@"),       std::string("a@{1}"),
                        std::string(""),        std::string("a\0b", 3),
                        std::string("a*"),      std::string("a?"),
                        std::string("a[b"),     std::string("a\\b"),
                        std::string("end."),    std::string(256, 'b')}) {
    deploy("source_branch " + b, "source_branch", [b](auto& r) { r.set_source_branch(b); });
  }
  for (const auto& b : {std::string("-develop"), std::string(""), std::string("a..b")}) {
    deploy("target_branch " + b, "target_branch", [b](auto& r) { r.set_target_branch(b); });
  }
  for (const auto& k : {"1X", "A-B", "", "A=B", "A B", "QABOX_URL"}) {
    deploy(std::string("env name ") + k, "env", [k](auto& r) { (*r.mutable_env())[k] = "v"; });
  }
  deploy("env value with NUL", "env A",
         [](auto& r) { (*r.mutable_env())["A"] = std::string("x\0y", 3); });
  deploy("env value of 33 KiB", "env A",
         [](auto& r) { (*r.mutable_env())["A"] = std::string(33 * 1024, 'x'); });
  for (const auto& k : {"2K", "QABOX_TICKET", "A.B"}) {
    deploy(std::string("secret name ") + k, "secret",
           [k](auto& r) { (*r.mutable_secrets())[k] = "v"; });
  }
  deploy("secret value with NUL", "secret S",
         [](auto& r) { (*r.mutable_secrets())["S"] = std::string("top\0secret", 10); });
  deploy("secret value of 40 KiB", "secret S",
         [](auto& r) { (*r.mutable_secrets())["S"] = std::string(40 * 1024, 's'); });
  deploy("secret also a plain env var", "secret PROBE",
         [](auto& r) { (*r.mutable_env())["PROBE"] = "plain"; });
  deploy("257 variables", "env", [](auto& r) {
    for (int i = 0; i < 257; ++i) (*r.mutable_env())["V" + std::to_string(i)] = "v";
  });
  deploy("300 KiB of variables", "env", [](auto& r) {
    for (int i = 0; i < 10; ++i)
      (*r.mutable_env())["V" + std::to_string(i)] = std::string(30000, 'v');
  });
  deploy("access neither open nor login", "access", [](auto& r) { r.set_access("closed"); });
  deploy("access in capitals", "access", [](auto& r) { r.set_access("LOGIN"); });
  deploy("ticket taking the dashboard's name", "ticket", [](auto& r) { r.set_ticket("qabox"); });
  deploy("ttl 0", "ttl", [](auto& r) { *r.mutable_ttl() = duration(0); });
  deploy("ttl negative", "ttl", [](auto& r) { *r.mutable_ttl() = duration(-3600); });
  deploy("ttl beyond max_age", "ttl", [](auto& r) { *r.mutable_ttl() = duration(400 * 3600); });
  deploy("ttl with mixed signs", "ttl", [](auto& r) { *r.mutable_ttl() = duration(10, -5); });
  deploy("ttl of INT64_MAX seconds", "ttl",
         [](auto& r) { *r.mutable_ttl() = duration(INT64_MAX); });
  deploy("ttl below a millisecond", "ttl", [](auto& r) { *r.mutable_ttl() = duration(0, 999); });
  for (const auto& m : {"lots", "3G", "0x10", "-1M", "1T"}) {
    deploy(std::string("limits.memory ") + m, "limits.memory",
           [m](auto& r) { r.mutable_limits()->set_memory(m); });
  }
  deploy("limits.pids above max_pids", "limits.pids",
         [](auto& r) { r.mutable_limits()->set_pids(5000); });

  // Every RPC that names a ticket.
  for (const auto& t : badTickets) {
    auto ticket = [t](auto& r) { r.set_ticket(t); };
    cases.push_back(unary("GetEnvironment " + t, "ticket", &Stub::GetEnvironment, ticket));
    cases.push_back(unary("DeleteEnvironment " + t, "ticket", &Stub::DeleteEnvironment, ticket));
    cases.push_back(unary("SleepEnvironment " + t, "ticket", &Stub::SleepEnvironment, ticket));
    cases.push_back(unary("WakeEnvironment " + t, "ticket", &Stub::WakeEnvironment, ticket));
    cases.push_back(streaming("StreamLogs " + t, "ticket", &Stub::StreamLogs, ticket));
    cases.push_back(unary("SetPinned " + t, "ticket", &Stub::SetPinned, [t](auto& r) {
      r.set_ticket(t);
      r.set_pinned(true);
    }));
    cases.push_back(streaming("Exec " + t, "ticket", &Stub::Exec, [t](auto& r) {
      r.set_ticket(t);
      r.add_argv("touch");
      r.add_argv("/tmp/changed");
    }));
    // An empty ticket is every ticket there.
    if (!t.empty()) cases.push_back(unary("ListEvents " + t, "ticket", &Stub::ListEvents, ticket));
  }

  // Exec on the environment that exists: each would have run something.
  auto exec = [&](const std::string& name, const std::string& field, Fill<v1::ExecRequest> change) {
    cases.push_back(streaming("Exec " + name, field, &Stub::Exec, [change](auto& r) {
      r.set_ticket("KEEP-1");
      r.add_argv("touch");
      r.add_argv("/srv/app/changed");
      change(r);
    }));
  };
  exec("without argv", "argv", [](auto& r) { r.clear_argv(); });
  exec("empty program", "argv[0]", [](auto& r) { r.set_argv(0, ""); });
  exec("argument with NUL", "argv[1]", [](auto& r) { r.set_argv(1, std::string("a\0b", 3)); });
  exec("257 arguments", "argv", [](auto& r) {
    for (int i = 0; i < 255; ++i) r.add_argv("/srv/app/x" + std::to_string(i));
  });
  exec("129 KiB argument", "argv", [](auto& r) { r.add_argv(std::string(129 * 1024, 'x')); });
  exec("env name 9X", "env", [](auto& r) { (*r.mutable_env())["9X"] = "v"; });
  exec("env name LD-PRELOAD", "env", [](auto& r) { (*r.mutable_env())["LD-PRELOAD"] = "v"; });
  exec("env value with NUL", "env A",
       [](auto& r) { (*r.mutable_env())["A"] = std::string("\0", 1); });
  exec("timeout 0", "timeout", [](auto& r) { *r.mutable_timeout() = duration(0); });
  exec("timeout negative", "timeout", [](auto& r) { *r.mutable_timeout() = duration(-1); });
  exec("timeout 25h", "timeout", [](auto& r) { *r.mutable_timeout() = duration(25 * 3600); });

  cases.push_back(streaming("StreamLogs tail 100001", "tail", &Stub::StreamLogs, [](auto& r) {
    r.set_ticket("KEEP-1");
    r.set_tail(100001);
  }));
  for (const std::string p : {"all", "MERGED", "max-age", " ttl", "idle;"}) {
    cases.push_back(
        unary("Reap policy " + p, "policy", &Stub::Reap, [p](auto& r) { r.set_policy(p); }));
  }
  for (const std::string name : {"", "BusyBox", "../busybox", "a b", "-x"}) {
    auto named = [name](auto& r) { r.set_name(name); };
    cases.push_back(unary("BuildImage " + name, "image", &Stub::BuildImage, named));
    cases.push_back(unary("DeleteImage " + name, "image", &Stub::DeleteImage, named));
  }
  cases.push_back(unary("ListEvents limit 10001", "limit", &Stub::ListEvents,
                        [](auto& r) { r.set_limit(10001); }));
  auto token = [&](const std::string& name, const std::string& field,
                   Fill<v1::CreateTokenRequest> change) {
    cases.push_back(unary("CreateToken " + name, field, &Stub::CreateToken, [change](auto& r) {
      r.set_name("jenkins");
      r.set_role("ci");
      change(r);
    }));
  };
  for (const auto& n : {std::string(""), std::string("-x"), std::string("a b"),
                        std::string(65, 'a'), std::string("a/b")}) {
    token("name " + n, "token name", [n](auto& r) { r.set_name(n); });
  }
  token("role admin", "role", [](auto& r) { r.set_role("admin"); });
  token("role empty", "role", [](auto& r) { r.set_role(""); });
  token("ttl 0", "ttl", [](auto& r) { *r.mutable_ttl() = duration(0); });
  token("ttl negative", "ttl", [](auto& r) { *r.mutable_ttl() = duration(-60); });
  token("ttl of INT64_MAX seconds", "ttl", [](auto& r) { *r.mutable_ttl() = duration(INT64_MAX); });
  for (const std::string n : {"", "../x", "a b"}) {
    cases.push_back(unary("RevokeToken " + n, "token name", &Stub::RevokeToken,
                          [n](auto& r) { r.set_name(n); }));
  }
  return cases;
}

TEST_F(LxcValidation, EveryBadFieldIsInvalidArgumentNamingItAndChangesNothing) {
  auto r = host_->cli(
      {"deploy", "KEEP-1", "--repo", "shop", "--source", "develop", "--target", "develop"});
  ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  // A token to revoke, so RevokeToken has something it could change.
  ASSERT_EQ(host_->cli({"token", "create", "--role", "ci", "--name", "jenkins"}).exitCode, 0);

  auto cases = badInputs();
  EXPECT_GE(cases.size(), 100u);
  auto st = stub();
  HostState before = state();
  ASSERT_FALSE(before.containers.empty());
  for (const auto& c : cases) {
    grpc::ClientContext ctx;
    deadline(ctx);
    grpc::Status s = c.call(*st, ctx);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << s.error_code() << " " << s.error_message();
    EXPECT_EQ(s.error_message().rfind(c.field, 0), 0u)
        << c.name << ": the message does not start with " << c.field << ": " << s.error_message();
    EXPECT_FALSE(contains(s.error_message(), kProbeSecret)) << c.name;
    HostState after = state();
    EXPECT_EQ(diff(before, after), "") << c.name << " changed something";
    before = after;
  }
  EXPECT_TRUE(host_->daemonRunning());
  EXPECT_NE(host_->cli({"exec", "KEEP-1", "--", "test", "-e", "/srv/app/changed"}).exitCode, 0);
  std::cout << cases.size() << " bad inputs refused\n";
}

TEST_F(LxcValidation, OversizedMessageIsResourceExhaustedAndChangesNothing) {
  HostState before = state();
  auto st = stub();
  {
    v1::DeployRequest r = goodDeploy();
    (*r.mutable_env())["BIG"] = std::string(2 * 1024 * 1024, 'x');  // max_message_bytes: 1 MiB
    grpc::ClientContext ctx;
    deadline(ctx);
    auto s = drain(st->Deploy(&ctx, r));
    EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  }
  auto execWithStdin = [&](size_t bytes) {
    v1::ExecRequest r;
    r.set_ticket("NEW-1");
    r.add_argv("cat");
    r.set_stdin(std::string(bytes, 'x'));
    grpc::ClientContext ctx;
    deadline(ctx);
    return drain(st->Exec(&ctx, r)).error_code();
  };
  EXPECT_EQ(execWithStdin(1024 * 1024 + 1), StatusCode::RESOURCE_EXHAUSTED);
  // Just under the maximum is an ordinary request (here: no such ticket).
  EXPECT_EQ(execWithStdin(1000 * 1000), StatusCode::NOT_FOUND);
  EXPECT_EQ(diff(before, state()), "");
  EXPECT_TRUE(host_->daemonRunning());
}

// Host processes whose command line holds `needle`, as "pid: cmdline".
std::vector<std::string> commandLinesWith(const std::string& needle) {
  std::vector<std::string> hits;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = readFile(e.path() / "cmdline");
    if (contains(cmdline, needle)) {
      for (char& c : cmdline) c = c == '\0' ? ' ' : c;
      hits.push_back(name + ": " + cmdline);
    }
  }
  return hits;
}

// Files under `dir` (but not below `skip`) whose bytes hold `needle`.
std::vector<std::string> filesWith(const std::string& dir, const std::set<std::string>& skip,
                                   const std::string& needle) {
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::end(it); it.increment(ec)) {
    if (skip.count(it->path())) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && !it->is_symlink(ec) && contains(readFile(it->path()), needle)) {
      hits.push_back(it->path());
    }
  }
  return hits;
}

TEST_F(LxcValidation, SecretReachesHooksAndAppAndNothingElse) {
  // Random per run, so no file could hold it by chance; all lower-case
  // letters and digits, so the hook's upper-cased copy differs from it.
  std::string secret = "qbxs";
  {
    std::random_device rd;
    for (int i = 0; i < 24; ++i) secret += "abcdefghijklmnopqrstuvwxyz0123456789"[rd() % 36];
  }
  const std::string endpoint = "unix://" + host_->socket();
  // `--secret API_KEY` alone: the CLI takes the value from its environment,
  // so it is on no command line from the start.
  auto deploy = [&](const std::string& ticket, const std::string& source) {
    return host_->cliRaw({"--endpoint", endpoint, "deploy", ticket, "--repo", "shop", "--source",
                          source, "--target", "develop", "--secret", "API_KEY"},
                         {{"API_KEY", secret}});
  };

  // Every host process's command line, watched while the deploy runs.
  std::atomic<bool> done{false};
  std::vector<std::string> cmdlineHits;
  size_t scans = 0;
  std::thread watcher([&] {
    while (!done) {
      for (auto& h : commandLinesWith(secret)) cmdlineHits.push_back(h);
      ++scans;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  auto ok = deploy("SEC-1", "develop");
  auto failed = deploy("SEC-2", "feature/fail");
  done = true;
  watcher.join();
  ASSERT_EQ(ok.exitCode, 0) << ok.err << host_->logText();
  EXPECT_NE(failed.exitCode, 0) << failed.err;
  EXPECT_GT(scans, 10u);
  EXPECT_TRUE(cmdlineHits.empty()) << cmdlineHits.front();

  // It arrived: the hook had it, the app has it.
  auto env = host_->env("SEC-1");
  ASSERT_TRUE(env);
  ASSERT_EQ(env->state(), v1::Environment::READY) << env->message();
  std::string upper = secret;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto hookCopy = host_->cli({"exec", "SEC-1", "--", "cat", "/srv/app/www/upper.txt"});
  EXPECT_EQ(hookCopy.out, upper);
  auto page = httpGet(env->ip(), 8080, "/cgi-bin/env");
  EXPECT_TRUE(contains(page.body, "API_KEY=" + secret)) << page.status << page.error << page.body;
  EXPECT_EQ(env->secret_keys_size(), 1);
  EXPECT_EQ(env->secret_keys(0), "API_KEY");

  // The deploy log has the hook's output with the value redacted, even where
  // the value came in two pieces.
  auto log = host_->cli({"logs", "SEC-1", "--deploy"});
  ASSERT_EQ(log.exitCode, 0) << log.err;
  EXPECT_TRUE(contains(log.out, "build sees API_KEY=[secret API_KEY]")) << log.out;
  EXPECT_TRUE(contains(log.out, "and on stderr: [secret API_KEY]")) << log.out;
  EXPECT_TRUE(contains(log.out, "split: [secret API_KEY]")) << log.out;
  EXPECT_TRUE(contains(log.out, "cut on stderr: ")) << log.out;
  EXPECT_FALSE(contains(log.out, secret)) << log.out;
  auto failedLog = host_->cli({"logs", "SEC-2", "--deploy"});
  EXPECT_TRUE(contains(failedLog.out, "failing with [secret API_KEY]")) << failedLog.out;
  EXPECT_FALSE(contains(failedLog.out, secret));

  // A FAILED environment's message carries the hook's last output, redacted.
  auto failedEnv = host_->env("SEC-2");
  ASSERT_TRUE(failedEnv);
  EXPECT_EQ(failedEnv->state(), v1::Environment::FAILED);
  EXPECT_TRUE(contains(failedEnv->message(), "failing with [secret API_KEY]"))
      << failedEnv->message();

  // Nowhere else.
  EXPECT_FALSE(contains(ok.out + ok.err, secret)) << ok.err;
  EXPECT_FALSE(contains(failed.out + failed.err, secret)) << failed.err;
  for (const char* ticket : {"SEC-1", "SEC-2"}) {
    auto get = host_->cli({"get", ticket, "-o", "json"});
    EXPECT_FALSE(contains(get.out, secret)) << get.out;
    auto events = host_->cli({"events", ticket, "-o", "json"});
    EXPECT_EQ(events.exitCode, 0) << events.err;
    EXPECT_FALSE(contains(events.out, secret)) << events.out;
  }
  HostState now = state();
  EXPECT_GT(now.events.events_size(), 0);
  EXPECT_FALSE(contains(now.events.SerializeAsString(), secret));
  EXPECT_FALSE(contains(now.envs.SerializeAsString(), secret));
  EXPECT_FALSE(contains(host_->cli({"list", "-o", "json"}).out, secret));
  std::string daemonLog = readFile(host_->stateDir() + "/qaboxd.log");
  EXPECT_TRUE(contains(daemonLog, "SEC-2"));  // the failure is logged, without the value
  EXPECT_FALSE(contains(daemonLog, secret));
  for (const char* db : {"/qabox.db", "/qabox.db-wal"}) {
    EXPECT_FALSE(contains(readFile(host_->stateDir() + db), secret)) << db;
  }
  // The whole state dir but the containers' own files (app.env in each
  // container's rootfs is how the app gets it) and the test's git fixture.
  auto files = filesWith(host_->stateDir(), {host_->lxcPath(), host_->stateDir() + "/src"}, secret);
  EXPECT_TRUE(files.empty()) << files.front();
  // ... and the container's copy is for its root only.
  auto mode = host_->cli({"exec", "SEC-1", "--", "stat", "-c", "%a", "/etc/qabox/app.env"});
  EXPECT_EQ(mode.out, "600\n");
}

}  // namespace
}  // namespace qabox::testing
