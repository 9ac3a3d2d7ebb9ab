// Issue: API access. The real daemon with a TLS listener that requires
// client certificates (a throwaway CA made with the openssl CLI for each
// test) beside its unix socket; real gRPC calls with real tokens of each
// role against every RPC, and the CLI's TLS and token flags end to end.
#include <grpcpp/grpcpp.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"
#include "qabox/v1/qabox.grpc.pb.h"
#include "sys/process.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
using grpc::StatusCode;

// A CA, a server certificate for localhost and 127.0.0.1, a client
// certificate from that CA, and one from a CA the agent does not trust.
void makeCertificates(const std::string& dir) {
  TestPki pki(dir);
  ASSERT_NO_FATAL_FAILURE(pki.ca("ca"));
  ASSERT_NO_FATAL_FAILURE(pki.ca("rogue-ca"));
  ASSERT_NO_FATAL_FAILURE(
      pki.leaf("server", "ca",
               "subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n"));
  ASSERT_NO_FATAL_FAILURE(pki.leaf("client", "ca", "extendedKeyUsage = clientAuth\n"));
  ASSERT_NO_FATAL_FAILURE(pki.leaf("rogue", "rogue-ca", "extendedKeyUsage = clientAuth\n"));
}

class LxcAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    tls_ = host_->stateDir() + "/tls";
    ASSERT_NO_FATAL_FAILURE(makeCertificates(tls_));
    port_ = freeTcpPort();
    TestHost::Options o;
    // Every refused call is counted below: none held back by the rate limit.
    o.extraToml = "[events]\nrefused_burst = 100000\n";
    o.extraListen = {"127.0.0.1:" + std::to_string(port_)};
    o.apiToml = "tls_cert = \"" + tls_ + "/server.crt\"\ntls_key = \"" + tls_ +
                "/server.key\"\nclient_ca = \"" + tls_ + "/ca.crt\"\n";
    host_->writeConfig(o);
    host_->startDaemon();
  }

  std::string endpoint() const { return "localhost:" + std::to_string(port_); }

  // A TLS channel presenting the client certificate `client` ("" for none).
  std::unique_ptr<v1::Qabox::Stub> tlsStub(const std::string& client = "client") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = readFile(tls_ + "/ca.crt");
    if (!client.empty()) {
      o.pem_cert_chain = readFile(tls_ + "/" + client + ".crt");
      o.pem_private_key = readFile(tls_ + "/" + client + ".key");
    }
    return v1::Qabox::NewStub(grpc::CreateChannel(endpoint(), grpc::SslCredentials(o)));
  }

  std::unique_ptr<v1::Qabox::Stub> unixStub() {
    return v1::Qabox::NewStub(
        grpc::CreateChannel("unix://" + host_->socket(), grpc::InsecureChannelCredentials()));
  }

  std::string createToken(const std::string& name, const std::string& role,
                          const std::string& ttl = "") {
    return host_->createToken(name, role, ttl);
  }

  std::vector<v1::Event> events() {
    auto stub = unixStub();
    grpc::ClientContext ctx;
    v1::ListEventsRequest req;
    req.set_limit(1000);
    v1::ListEventsResponse resp;
    EXPECT_TRUE(stub->ListEvents(&ctx, req, &resp).ok());
    return {resp.events().begin(), resp.events().end()};
  }

  std::unique_ptr<TestHost> host_;
  std::string tls_;
  uint16_t port_ = 0;
};

// Calls one RPC with harmless arguments (a ticket that does not exist, a dry
// run) and returns the status; what matters is whether it got past auth.
using Call = std::function<grpc::Status(v1::Qabox::Stub&, grpc::ClientContext&)>;

std::map<std::string, Call> everyRpc() {
  std::map<std::string, Call> calls;
  int n = 0;
  calls["Deploy"] = [](auto& s, auto& c) {
    v1::DeployRequest r;  // no ticket: INVALID_ARGUMENT once past auth
    return drain(s.Deploy(&c, r));
  };
  calls["GetEnvironment"] = [](auto& s, auto& c) {
    v1::GetEnvironmentRequest r;
    r.set_ticket("NOPE-1");
    v1::Environment e;
    return s.GetEnvironment(&c, r, &e);
  };
  calls["ListEnvironments"] = [](auto& s, auto& c) {
    v1::ListEnvironmentsResponse e;
    return s.ListEnvironments(&c, {}, &e);
  };
  calls["DeleteEnvironment"] = [](auto& s, auto& c) {
    v1::DeleteEnvironmentRequest r;
    r.set_ticket("NOPE-1");
    v1::DeleteEnvironmentResponse e;
    return s.DeleteEnvironment(&c, r, &e);
  };
  calls["StreamLogs"] = [](auto& s, auto& c) {
    v1::StreamLogsRequest r;
    r.set_ticket("NOPE-1");
    return drain(s.StreamLogs(&c, r));
  };
  calls["Exec"] = [](auto& s, auto& c) {
    v1::ExecRequest r;
    r.set_ticket("NOPE-1");
    r.add_argv("true");
    return drain(s.Exec(&c, r));
  };
  calls["Reap"] = [](auto& s, auto& c) {
    v1::ReapRequest r;
    r.set_dry_run(true);
    v1::ReapResponse e;
    return s.Reap(&c, r, &e);
  };
  calls["SetPinned"] = [](auto& s, auto& c) {
    v1::SetPinnedRequest r;
    r.set_ticket("NOPE-1");
    v1::Environment e;
    return s.SetPinned(&c, r, &e);
  };
  calls["SleepEnvironment"] = [](auto& s, auto& c) {
    v1::SleepEnvironmentRequest r;
    r.set_ticket("NOPE-1");
    v1::Environment e;
    return s.SleepEnvironment(&c, r, &e);
  };
  calls["WakeEnvironment"] = [](auto& s, auto& c) {
    v1::WakeEnvironmentRequest r;
    r.set_ticket("NOPE-1");
    v1::Environment e;
    return s.WakeEnvironment(&c, r, &e);
  };
  calls["ListImages"] = [](auto& s, auto& c) {
    v1::ListImagesResponse e;
    return s.ListImages(&c, {}, &e);
  };
  calls["BuildImage"] = [](auto& s, auto& c) {
    v1::BuildImageRequest r;
    r.set_name("no-such-recipe");
    v1::Image e;
    return s.BuildImage(&c, r, &e);
  };
  calls["DeleteImage"] = [](auto& s, auto& c) {
    v1::DeleteImageRequest r;
    r.set_name("no-such-image");
    v1::DeleteImageResponse e;
    return s.DeleteImage(&c, r, &e);
  };
  calls["GetHostStatus"] = [](auto& s, auto& c) {
    v1::HostStatus e;
    return s.GetHostStatus(&c, {}, &e);
  };
  calls["ListEvents"] = [](auto& s, auto& c) {
    v1::ListEventsResponse e;
    return s.ListEvents(&c, {}, &e);
  };
  calls["CreateToken"] = [n](auto& s, auto& c) mutable {
    v1::CreateTokenRequest r;
    r.set_name("made-" + std::to_string(reinterpret_cast<uintptr_t>(&c)) + "-" +
               std::to_string(++n));
    r.set_role("ci");
    v1::CreateTokenResponse e;
    return s.CreateToken(&c, r, &e);
  };
  calls["ListTokens"] = [](auto& s, auto& c) {
    v1::ListTokensResponse e;
    return s.ListTokens(&c, {}, &e);
  };
  calls["RevokeToken"] = [](auto& s, auto& c) {
    v1::RevokeTokenRequest r;
    r.set_name("nobody");
    v1::RevokeTokenResponse e;
    return s.RevokeToken(&c, r, &e);
  };
  return calls;
}

// README "API access": what each role may call; written out here on its
// own so a change to the agent's table has to be made twice.
const std::map<std::string, std::set<std::string>> kAllowed = {
    {"ci",
     {"Deploy", "GetEnvironment", "ListEnvironments", "DeleteEnvironment", "StreamLogs",
      "SleepEnvironment", "WakeEnvironment", "GetHostStatus", "ListEvents"}},
    {"reaper", {"Reap", "ListEnvironments", "GetHostStatus", "ListEvents"}},
};

grpc::Status callWith(v1::Qabox::Stub& stub, const Call& call, const std::string& token) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  return call(stub, ctx);
}

bool passedAuth(const grpc::Status& s) {
  return s.error_code() != StatusCode::UNAUTHENTICATED &&
         s.error_code() != StatusCode::PERMISSION_DENIED &&
         s.error_code() != StatusCode::UNAVAILABLE;
}

TEST_F(LxcAuth, EachRoleAgainstEachRpcOverMutualTls) {
  std::map<std::string, std::string> secrets = {{"ci", createToken("jenkins", "ci")},
                                                {"reaper", createToken("cron", "reaper")},
                                                {"ops", createToken("alice", "ops")}};
  auto stub = tlsStub();
  auto calls = everyRpc();
  ASSERT_EQ(calls.size(), 18u);
  for (const auto& [role, secret] : secrets) {
    for (const auto& [rpc, call] : calls) {
      grpc::Status s = callWith(*stub, call, secret);
      bool allowed = role == "ops" || kAllowed.at(role).count(rpc) > 0;
      if (allowed) {
        EXPECT_TRUE(passedAuth(s))
            << role << " " << rpc << ": " << s.error_code() << " " << s.error_message();
      } else {
        EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED)
            << role << " " << rpc << ": " << s.error_message();
        EXPECT_TRUE(contains(s.error_message(), "may not call " + rpc)) << s.error_message();
      }
    }
  }
  // Each denial is an event naming the token and the RPC.
  std::set<std::string> denied;
  for (const auto& e : events()) {
    if (e.action() == "auth" && e.outcome() == "permission_denied") {
      denied.insert(e.actor() + " " + e.detail().substr(0, e.detail().find(':')));
    }
  }
  EXPECT_TRUE(denied.count("token:jenkins Exec")) << ::testing::PrintToString(denied);
  EXPECT_TRUE(denied.count("token:jenkins CreateToken"));
  EXPECT_TRUE(denied.count("token:cron Deploy"));
  EXPECT_EQ(denied.size(), 9u + 14u) << ::testing::PrintToString(denied);
  // The agent knows when a token was last used, and never shows a secret.
  auto ls = host_->cli({"token", "ls", "-o", "json"});
  ASSERT_EQ(ls.exitCode, 0) << ls.err;
  EXPECT_TRUE(contains(ls.out, "\"last_used_at\"")) << ls.out;
  for (const auto& [role, secret] : secrets) EXPECT_FALSE(contains(ls.out, secret));
  EXPECT_FALSE(contains(readFile(host_->stateDir() + "/qabox.db"), secrets["ops"]))
      << "only the hash is stored";
}

TEST_F(LxcAuth, NoBadExpiredOrRevokedTokenIsUnauthenticated) {
  std::string expiring = createToken("short", "ops", "1s");
  std::string revoked = createToken("gone", "ops");
  auto stub = tlsStub();
  auto calls = everyRpc();
  // Before: both work.
  EXPECT_TRUE(callWith(*stub, calls["ListTokens"], expiring).ok());
  EXPECT_TRUE(callWith(*stub, calls["ListTokens"], revoked).ok());
  auto r = host_->cli({"token", "revoke", "gone"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));

  for (const auto& [rpc, call] : calls) {
    for (const std::string& token : {std::string(), std::string("qbx_wrong"), expiring, revoked}) {
      grpc::Status s = callWith(*stub, call, token);
      EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED)
          << rpc << " with token \"" << token << "\": " << s.error_message();
    }
  }
  grpc::Status s = callWith(*stub, calls["GetHostStatus"], expiring);
  EXPECT_TRUE(contains(s.error_message(), "token short has expired")) << s.error_message();
  s = callWith(*stub, calls["GetHostStatus"], revoked);
  EXPECT_TRUE(contains(s.error_message(), "token gone is revoked")) << s.error_message();

  std::map<std::string, int> byActor;
  for (const auto& e : events()) {
    if (e.action() == "auth" && e.outcome() == "unauthenticated") byActor[e.actor()]++;
  }
  EXPECT_GE(byActor["token:short"], 18);
  EXPECT_GE(byActor["token:gone"], 18);
  int anonymous = 0;
  for (const auto& [actor, n] : byActor) {
    if (actor.rfind("ipv4:127.0.0.1:", 0) == 0 || actor.rfind("ipv6:", 0) == 0) anonymous += n;
  }
  EXPECT_EQ(anonymous, 36) << ::testing::PrintToString(byActor);

  // The CLI says the same and exits 5.
  auto cli = host_->cliRaw({"--endpoint", endpoint(), "--ca-cert", tls_ + "/ca.crt", "--cert",
                            tls_ + "/client.crt", "--key", tls_ + "/client.key", "list"});
  EXPECT_EQ(cli.exitCode, 5) << cli.err;
  EXPECT_TRUE(contains(cli.err, "no token")) << cli.err;
}

TEST_F(LxcAuth, WrongOrMissingClientCertificateIsRefusedAtTheHandshake) {
  std::string ops = createToken("alice", "ops");
  auto calls = everyRpc();
  EXPECT_TRUE(callWith(*tlsStub("client"), calls["GetHostStatus"], ops).ok());
  for (const std::string& client : {std::string("rogue"), std::string()}) {
    grpc::Status s = callWith(*tlsStub(client), calls["GetHostStatus"], ops);
    EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE)
        << "client certificate \"" << client << "\": " << s.error_message();
  }
  // Plaintext on the TLS port gets nowhere either.
  auto plain =
      v1::Qabox::NewStub(grpc::CreateChannel(endpoint(), grpc::InsecureChannelCredentials()));
  EXPECT_EQ(callWith(*plain, calls["GetHostStatus"], ops).error_code(), StatusCode::UNAVAILABLE);
  auto cli =
      host_->cliRaw({"--endpoint", endpoint(), "--ca-cert", tls_ + "/ca.crt", "--cert",
                     tls_ + "/rogue.crt", "--key", tls_ + "/rogue.key", "--token", ops, "status"});
  EXPECT_EQ(cli.exitCode, 6) << cli.err;
}

TEST_F(LxcAuth, UnixSocketAsRootIsOpsAndNamedByUid) {
  auto stub = unixStub();
  auto calls = everyRpc();
  for (const auto& [rpc, call] : calls) {
    grpc::Status s = callWith(*stub, call, "");
    EXPECT_TRUE(passedAuth(s)) << rpc << ": " << s.error_code() << " " << s.error_message();
  }
  bool named = false;
  for (const auto& e : events()) {
    if (e.action() == "token.create" && e.actor() == "uid:0") named = true;
    EXPECT_NE(e.action(), "auth") << e.actor() << " " << e.detail();
  }
  EXPECT_TRUE(named);
  struct stat st {};
  ASSERT_EQ(::stat(host_->socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

// A person in the socket's group acts as ops without a token; anyone else
// is kept out by the socket's mode, and when that is loosened, by the
// peer credentials the agent reads.
TEST_F(LxcAuth, UnixSocketGroupMembersAreOpsOthersUnauthenticated) {
  const std::string group = "qbt" + fs::path(host_->stateDir()).filename().string().substr(9);
  ASSERT_EQ(runOrDie({"groupadd", "--system", group}).exitCode, 0);
  struct GroupGone {
    std::string name;
    ~GroupGone() { (void)runOrDie({"groupdel", name}); }
  } cleanup{group};
  std::string gid = runOrDie({"getent", "group", group}).out;
  gid = gid.substr(gid.find(':', gid.find(':') + 1) + 1);
  gid = gid.substr(0, gid.find(':'));
  host_->stopDaemon();
  TestHost::Options o;
  o.extraToml = "[events]\nrefused_burst = 100000\n";
  o.apiToml = "socket_group = \"" + group + "\"\n";
  host_->writeConfig(o);
  host_->startDaemon();
  struct stat st {};
  ASSERT_EQ(::stat(host_->socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(std::to_string(st.st_gid), gid);

  // nobody, with and without the group; the binaries must be reachable.
  auto asNobody = [&](const std::vector<std::string>& groups, std::vector<std::string> args) {
    std::vector<std::string> argv = {"setpriv", "--reuid=65534", "--regid=65534"};
    if (groups.empty()) {
      argv.push_back("--clear-groups");
    } else {
      argv.push_back("--groups=" + groups[0]);
    }
    argv.insert(argv.end(), {"env", "HOME=/tmp", "NO_COLOR=1", binDir() + "/agent/cli/qabox",
                             "--endpoint", "unix://" + host_->socket()});
    argv.insert(argv.end(), args.begin(), args.end());
    return runOrDie(argv);
  };
  auto member = asNobody({gid}, {"token", "create", "--role", "ci", "--name", "by-member"});
  ASSERT_EQ(member.exitCode, 0) << member.err;
  auto outsider = asNobody({}, {"list"});
  EXPECT_EQ(outsider.exitCode, 6) << "the socket's mode keeps others out: " << outsider.err;
  ASSERT_EQ(::chmod(host_->socket().c_str(), 0666), 0);
  outsider = asNobody({}, {"list"});
  EXPECT_EQ(outsider.exitCode, 5) << outsider.err;
  EXPECT_TRUE(contains(outsider.err, "uid 65534")) << outsider.err;

  std::set<std::string> seen;
  for (const auto& e : events()) seen.insert(e.action() + " " + e.outcome() + " " + e.actor());
  EXPECT_TRUE(seen.count("token.create ok uid:65534")) << ::testing::PrintToString(seen);
  EXPECT_TRUE(seen.count("auth unauthenticated uid:65534")) << ::testing::PrintToString(seen);
}

TEST_F(LxcAuth, ReflectionAndHealthNeedNoToken) {
  // Debian's python3-grpcio speaks raw bytes here: the reflection and health
  // protos are not compiled for it, and need not be.
  const std::string script = R"(
import sys, grpc
ca, cert, key, target = [open(p, 'rb').read() for p in sys.argv[1:4]] + [sys.argv[4]]
ch = grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert))
health = ch.unary_unary('/grpc.health.v1.Health/Check')(b'', timeout=10)
print('health', health.hex())
refl = ch.stream_stream('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo')
for reply in refl(iter([b'\x3a\x00']), timeout=10):
    print('services', b'qabox.v1.Qabox' in reply)
try:
    ch.unary_unary('/qabox.v1.Qabox/ListEnvironments')(b'', timeout=10)
    print('list ok')
except grpc.RpcError as e:
    print('list', e.code().name)
)";
  std::ofstream(host_->stateDir() + "/probe.py") << script;
  auto r = runOrDie({"/usr/bin/python3", host_->stateDir() + "/probe.py", tls_ + "/ca.crt",
                     tls_ + "/client.crt", tls_ + "/client.key", endpoint()});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "health 0801")) << r.out << "(SERVING)";
  EXPECT_TRUE(contains(r.out, "services True")) << r.out;
  EXPECT_TRUE(contains(r.out, "list UNAUTHENTICATED")) << r.out;
}

// The CLI over mutual TLS with tokens: deploy and delete as ci, exec as ops,
// reap as reaper; each event names the token.
TEST_F(LxcAuth, CliOverTlsNamesTheCallerInEvents) {
  ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
  std::string ci = createToken("jenkins", "ci", "720h");
  std::string ops = createToken("alice", "ops");
  std::string reaper = createToken("cron", "reaper");
  std::vector<std::string> tls = {
      "--endpoint", endpoint(),           "--ca-cert", tls_ + "/ca.crt",
      "--cert",     tls_ + "/client.crt", "--key",     tls_ + "/client.key"};
  auto cli = [&](std::vector<std::string> args, std::map<std::string, std::string> env) {
    args.insert(args.begin(), tls.begin(), tls.end());
    return host_->cliRaw(args, env);
  };
  auto deploy = cli({"deploy", "AUTH-1", "--image", "busybox"}, {{"QABOX_TOKEN", ci}});
  ASSERT_EQ(deploy.exitCode, 0) << deploy.err;
  auto exec = cli({"exec", "AUTH-1", "--", "echo", "hi"}, {{"QABOX_TOKEN", ops}});
  EXPECT_EQ(exec.exitCode, 0) << exec.err;
  EXPECT_EQ(exec.out, "hi\n");
  auto ciExec = cli({"exec", "AUTH-1", "--", "echo", "hi"}, {{"QABOX_TOKEN", ci}});
  EXPECT_EQ(ciExec.exitCode, 5) << ciExec.err;
  EXPECT_TRUE(contains(ciExec.err, "may not call Exec")) << ciExec.err;
  auto reap = cli({"reap", "--dry-run", "--token", reaper}, {});
  EXPECT_EQ(reap.exitCode, 0) << reap.err;
  auto del = cli({"delete", "AUTH-1"}, {{"QABOX_TOKEN", ci}});
  EXPECT_EQ(del.exitCode, 0) << del.err;

  std::map<std::string, std::set<std::string>> actors;
  for (const auto& e : events()) actors[e.action()].insert(e.actor());
  EXPECT_TRUE(actors["deploy"].count("token:jenkins")) << ::testing::PrintToString(actors);
  EXPECT_TRUE(actors["exec"].count("token:alice")) << ::testing::PrintToString(actors);
  EXPECT_TRUE(actors["reap"].count("token:cron")) << ::testing::PrintToString(actors);
  EXPECT_TRUE(actors["delete"].count("token:jenkins")) << ::testing::PrintToString(actors);
  EXPECT_TRUE(actors["auth"].count("token:jenkins")) << "the refused exec";
  EXPECT_TRUE(actors["image.build"].count("uid:0")) << ::testing::PrintToString(actors);

  auto ls = host_->cli({"token", "ls"});
  ASSERT_EQ(ls.exitCode, 0);
  EXPECT_TRUE(contains(ls.out, "LAST USED")) << ls.out;
}

}  // namespace
}  // namespace qabox::testing
