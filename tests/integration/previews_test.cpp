// Issue: previews behind a login. The real daemon, its router and a real
// container whose app echoes the request head it got, so the test sees
// exactly what of qabox's credentials reaches an app: nothing.
#include <optional>
#include <string>
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "harness.h"

namespace qabox::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

// One shell per connection: the request head back as the body, and a
// cookie for the whole domain that tries to pass for qabox's session.
constexpr const char* kEchoServer = R"(#!/bin/sh
cr=$(printf '\r')
head=
while read -r h; do
  h=${h%"$cr"}
  [ -z "$h" ] && break
  head="$head$h
"
done
printf 'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\nSet-Cookie: qabox_session=from-the-app; Domain=qa.test; Path=/\r\n\r\n%s' ${#head} "$head"
)";

constexpr const char* kAppToml =
    "[app]\nstart = \"exec nc -ll -p 8080 -e /srv/app/echo.sh\"\nport = 8080\nhealth = \"/\"\n";

struct Reply {
  int status = 0;
  std::string body;
  std::string location;
  std::string setCookie;
};

class LxcPreviews : public ::testing::Test {
 protected:
  void start(std::string routingToml, bool tls = false) {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    if (tls) {
      // A self-signed wildcard certificate for the test's domain.
      const std::string dir = host_->stateDir();
      auto r = runOrDie({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                         "-subj", "/CN=*.qa.test", "-addext", "subjectAltName=DNS:*.qa.test",
                         "-keyout", dir + "/tls.key", "-out", dir + "/tls.crt"});
      ASSERT_EQ(r.exitCode, 0) << r.err;
      tlsPort_ = freeTcpPort();
      routingToml += "tls_listen = \"127.0.0.1:" + std::to_string(tlsPort_) + "\"\ntls_cert = \"" +
                     dir + "/tls.crt\"\ntls_key = \"" + dir + "/tls.key\"\n";
    }
    git_ = host_->appRepo({{"qabox.toml", kAppToml}, {"echo.sh", kEchoServer}});
    git_->makeExecutable("echo.sh");
    git_->commit("executable");
    git_->push("develop");
    TestHost::Options o;
    o.repos = {{"app", git_->bare()}};
    o.routingToml = routingToml;
    host_->writeConfig(o);
    host_->startDaemon();
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0) << host_->logText();
  }

  void deploy(const std::string& ticket, const std::string& access = "") {
    std::vector<std::string> args = {"deploy",   ticket,    "--repo",   "app",
                                     "--source", "develop", "--target", "develop"};
    if (!access.empty()) args.insert(args.end(), {"--access", access});
    auto r = host_->cli(args);
    ASSERT_EQ(r.exitCode, 0) << r.err << host_->logText();
  }

  std::string token(const std::string& name, const std::string& role) {
    auto r = host_->cli({"token", "create", "--role", role, "--name", name});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    std::string secret = r.out;
    while (!secret.empty() && secret.back() == '\n') secret.pop_back();
    return secret;
  }

  std::string hostOf(const std::string& slug) {
    return slug + "." + host_->domain() + ":" + std::to_string(host_->routerPort());
  }

  // One request through the router, with these extra header fields.
  Reply get(const std::string& slug, const std::string& target,
            const std::vector<std::pair<std::string, std::string>>& fields = {},
            http::verb method = http::verb::get) {
    asio::io_context ioc;
    asio::ip::tcp::socket sock(ioc);
    sock.connect({asio::ip::make_address("127.0.0.1"), host_->routerPort()});
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, hostOf(slug));
    for (const auto& [k, v] : fields) req.insert(k, v);
    req.prepare_payload();
    http::write(sock, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res);
    Reply r;
    r.status = res.result_int();
    r.body = res.body();
    r.location = std::string(res[http::field::location]);
    r.setCookie = std::string(res[http::field::set_cookie]);
    return r;
  }

  // curl over the TLS listener: the head and body it printed.
  std::string curlTls(const std::string& slug, const std::string& path,
                      const std::vector<std::string>& extra = {}) {
    std::string name = slug + "." + host_->domain();
    std::string port = std::to_string(tlsPort_);
    std::vector<std::string> argv = {
        "curl",       "-sk", "-D",        "-",
        "--max-time", "10",  "--resolve", name + ":" + port + ":127.0.0.1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("https://" + name + ":" + port + path);
    return runOrDie(argv).out;
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
  uint16_t tlsPort_ = 0;
};

TEST_F(LxcPreviews, WithoutALoginABrowserIsSentToTheDashboardAndAnApiClientRefused) {
  ASSERT_NO_FATAL_FAILURE(start("access = \"login\"\n"));
  ASSERT_NO_FATAL_FAILURE(deploy("LOCK-1"));
  auto env = host_->env("LOCK-1");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->access(), "login");

  auto r = get("lock-1", "/orders?id=3");
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.location, "http://" + hostOf("qabox") + "/auth/preview?to=" + "http%3A%2F%2F" +
                            "lock-1.qa.test%3A" + std::to_string(host_->routerPort()) +
                            "%2Forders%3Fid%3D3");
  EXPECT_EQ(r.body.find("Host:"), std::string::npos);  // the app never answered
  EXPECT_EQ(get("lock-1", "/", {}, http::verb::post).status, 401);
  // Forged values of qabox's cookies are no way in.
  for (std::string forged :
       {"qabox_preview=x.y", "qabox_preview=", "qabox_session=from-the-app",
        "qabox_preview=cTF8cHxhbGljZXxsb2NrLTF8MHw5OTk5OTk5OTk5OTk5fDAw.AAAA"}) {
    EXPECT_EQ(get("lock-1", "/", {{"Cookie", forged}}).status, 302) << forged;
  }
}

TEST_F(LxcPreviews, ABearerTokenOpensItUntilRevokedAndTheAppSeesNoneOfQaboxsCredentials) {
  ASSERT_NO_FATAL_FAILURE(start("access = \"login\"\n"));
  ASSERT_NO_FATAL_FAILURE(deploy("LOCK-2"));
  ASSERT_NO_FATAL_FAILURE(deploy("OPEN-2", "open"));
  std::string qa = token("alice", "qa");
  std::string reaper = token("cron", "reaper");

  auto r = get("lock-2", "/x",
               {{"Authorization", "Bearer " + qa},
                {"Cookie", "theme=dark; qabox_preview=p; qabox_session=s"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("GET /x HTTP/1.1"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("theme=dark"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("qabox_"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(qa), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("uthorization"), std::string::npos) << r.body;

  EXPECT_EQ(get("lock-2", "/", {{"Authorization", "Bearer " + reaper}}).status, 401);
  // An open environment needs nothing, and gets no qabox cookie either; the
  // app's own Authorization reaches it.
  r = get("open-2", "/", {{"Cookie", "qabox_preview=p"}, {"Authorization", "Basic YTpi"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("qabox_"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Basic YTpi"), std::string::npos) << r.body;

  ASSERT_EQ(host_->cli({"token", "revoke", "alice"}).exitCode, 0);
  EXPECT_EQ(get("lock-2", "/", {{"Authorization", "Bearer " + qa}}).status, 401);
}

TEST_F(LxcPreviews, AnAllowedNetworkNeedsNoLoginAndADeployMayCloseItsOwn) {
  ASSERT_NO_FATAL_FAILURE(start("access = \"open\"\naccess_allow = [\"127.0.0.0/8\"]\n"));
  ASSERT_NO_FATAL_FAILURE(deploy("MINE-3", "login"));
  auto env = host_->env("MINE-3");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->access(), "login");
  EXPECT_EQ(get("mine-3", "/").status, 200);  // loopback is in the allowlist
  auto bad = host_->cli({"deploy", "BAD-3", "--access", "closed"});
  EXPECT_NE(bad.exitCode, 0);
  EXPECT_NE(bad.err.find("--access"), std::string::npos) << bad.err;
}

TEST_F(LxcPreviews, OverTlsTheSignInIsHttpsAndTheAppSeesNoCredentialEither) {
  ASSERT_NO_FATAL_FAILURE(start("access = \"login\"\n", true));
  ASSERT_NO_FATAL_FAILURE(deploy("TLS-4"));
  std::string head = curlTls("tls-4", "/a?b=c");
  EXPECT_NE(head.find("HTTP/1.1 302"), std::string::npos) << head;
  EXPECT_NE(head.find("Location: https://qabox.qa.test:" + std::to_string(tlsPort_) +
                      "/auth/preview?to=https%3A%2F%2Ftls-4.qa.test%3A"),
            std::string::npos)
      << head;
  std::string qa = token("bob", "viewer");
  std::string got = curlTls(
      "tls-4", "/",
      {"-H", "Authorization: Bearer " + qa, "-H", "Cookie: __Host-qabox_preview=x; keep=1"});
  EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
  EXPECT_NE(got.find("X-Forwarded-Proto: https"), std::string::npos) << got;
  EXPECT_NE(got.find("keep=1"), std::string::npos) << got;
  EXPECT_EQ(got.find("qabox_preview"), std::string::npos) << got;
  EXPECT_EQ(got.find(qa), std::string::npos) << got;
}

}  // namespace
}  // namespace qabox::testing
