#include "cli/endpoint.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace qabox::cli {
namespace {

EnvLookup envFrom(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Connection endpointOf(std::string_view endpoint, bool ca = false) {
  Connection c;
  Status s = applyEndpoint(endpoint, ca, c);
  EXPECT_TRUE(s.isOk()) << endpoint << ": " << s.message();
  return c;
}

TEST(Endpoint, UnixSocketsAreNeverTls) {
  auto c = endpointOf("unix:///run/qabox/qabox.sock", true);
  EXPECT_EQ(c.target, "unix:///run/qabox/qabox.sock");
  EXPECT_TRUE(c.unixSocket);
  EXPECT_FALSE(c.tls);
  auto p = endpointOf("/tmp/agent.sock");
  EXPECT_EQ(p.target, "unix:///tmp/agent.sock");
  EXPECT_TRUE(p.unixSocket);
}

TEST(Endpoint, TlsFromSchemeCaOrPort443) {
  auto https = endpointOf("https://qa1.company.int:8443/");
  EXPECT_EQ(https.target, "qa1.company.int:8443");
  EXPECT_TRUE(https.tls);
  EXPECT_EQ(endpointOf("grpcs://qa1:9000").target, "qa1:9000");
  EXPECT_TRUE(endpointOf("grpcs://qa1:9000").tls);
  EXPECT_EQ(endpointOf("https://qa1").target, "qa1:443");
  EXPECT_FALSE(endpointOf("qa1:50051").tls);
  EXPECT_TRUE(endpointOf("qa1:50051", true).tls);
  EXPECT_TRUE(endpointOf("qa1:443").tls);
  EXPECT_FALSE(endpointOf("http://qa1:50051", true).tls) << "an explicit http:// wins";
  EXPECT_EQ(endpointOf("http://qa1:50051").target, "qa1:50051");
  EXPECT_EQ(endpointOf("dns:///qa1:50051").target, "dns:///qa1:50051");
  EXPECT_EQ(endpointOf("[::1]:50051").target, "[::1]:50051");
}

TEST(Endpoint, RejectsWithTheRule) {
  for (const char* bad : {"", "qa1", "qa1:", "qa1:http", "http://qa1/path", "[::1]"}) {
    Connection c;
    Status s = applyEndpoint(bad, false, c);
    EXPECT_FALSE(s.isOk()) << bad;
    EXPECT_NE(s.message().find("endpoint \""), std::string::npos) << s.message();
  }
}

TEST(Resolve, DefaultIsTheLocalSocket) {
  auto c = resolveConnection({}, envFrom({}), std::nullopt);
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->endpoint, "unix:///run/qabox/qabox.sock");
  EXPECT_EQ(c->endpointSource, "the default local socket; set --endpoint or QABOX_ENDPOINT");
  EXPECT_TRUE(c->token.empty());
}

TEST(Resolve, FlagsThenEnvironmentThenConfigThenDefault) {
  ConfigFile file;
  file.path = "/home/u/.config/qabox/config.toml";
  file.endpoint = "file:1";
  file.token = "file-token";
  file.caCert = "/file/ca.pem";
  auto env = envFrom({{"QABOX_ENDPOINT", "env:2"},
                      {"QABOX_TOKEN", "env-token"},
                      {"QABOX_CA_CERT", "/env/ca.pem"}});
  ConnectionFlags flags{"flag:3", "flag-token", "/flag/ca.pem"};

  auto all = resolveConnection(flags, env, file);
  ASSERT_TRUE(all.isOk());
  EXPECT_EQ(all->endpoint, "flag:3");
  EXPECT_EQ(all->endpointSource, "from --endpoint");
  EXPECT_EQ(all->token, "flag-token");
  EXPECT_EQ(all->caCert, "/flag/ca.pem");

  auto noFlags = resolveConnection({}, env, file);
  ASSERT_TRUE(noFlags.isOk());
  EXPECT_EQ(noFlags->endpoint, "env:2");
  EXPECT_EQ(noFlags->endpointSource, "from QABOX_ENDPOINT");
  EXPECT_EQ(noFlags->token, "env-token");
  EXPECT_EQ(noFlags->caCert, "/env/ca.pem");

  auto fileOnly = resolveConnection({}, envFrom({}), file);
  ASSERT_TRUE(fileOnly.isOk());
  EXPECT_EQ(fileOnly->endpoint, "file:1");
  EXPECT_EQ(fileOnly->endpointSource, "from endpoint in /home/u/.config/qabox/config.toml");
  EXPECT_EQ(fileOnly->token, "file-token");
  EXPECT_TRUE(fileOnly->tls) << "a CA certificate makes host:port TLS";

  // Settings resolve one by one: a flag endpoint still takes the file's token.
  auto mixed = resolveConnection({"flag:3", std::nullopt, std::nullopt}, envFrom({}), file);
  ASSERT_TRUE(mixed.isOk());
  EXPECT_EQ(mixed->endpoint, "flag:3");
  EXPECT_EQ(mixed->token, "file-token");

  // Empty values count as unset.
  auto empty = resolveConnection({"", "", ""}, envFrom({{"QABOX_ENDPOINT", ""}}), std::nullopt);
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->endpoint, "unix:///run/qabox/qabox.sock");
}

TEST(Resolve, ClientCertificateAndKeyComeTogether) {
  ConfigFile file;
  file.path = "/home/u/.config/qabox/config.toml";
  file.cert = "/file/c.pem";
  file.key = "/file/k.pem";
  auto env = envFrom({{"QABOX_CERT", "/env/c.pem"}, {"QABOX_KEY", "/env/k.pem"}});
  ConnectionFlags flags{"qa1:7443", std::nullopt, std::nullopt, "/flag/c.pem", "/flag/k.pem"};
  auto all = resolveConnection(flags, env, file);
  ASSERT_TRUE(all.isOk()) << all.status().message();
  EXPECT_EQ(all->cert, "/flag/c.pem");
  EXPECT_EQ(all->key, "/flag/k.pem");
  EXPECT_TRUE(all->tls) << "a client certificate makes host:port TLS";
  auto fromEnv = resolveConnection({"qa1:7443", {}, {}}, env, file);
  ASSERT_TRUE(fromEnv.isOk());
  EXPECT_EQ(fromEnv->cert, "/env/c.pem");
  EXPECT_EQ(fromEnv->key, "/env/k.pem");
  auto fromFile = resolveConnection({"qa1:7443", {}, {}}, envFrom({}), file);
  ASSERT_TRUE(fromFile.isOk());
  EXPECT_EQ(fromFile->key, "/file/k.pem");

  auto half = resolveConnection({"qa1:7443", {}, {}, "/flag/c.pem"}, envFrom({}), std::nullopt);
  ASSERT_FALSE(half.isOk());
  EXPECT_NE(half.status().message().find("--cert and --key"), std::string::npos);
}

TEST(Resolve, BadEndpointIsAnError) {
  auto c = resolveConnection({"nonsense", {}, {}}, envFrom({}), std::nullopt);
  ASSERT_FALSE(c.isOk());
  EXPECT_NE(c.status().message().find("nonsense"), std::string::npos);
}

TEST(ConfigFileTest, ParsesKeysAndResolvesRelativeCa) {
  auto f = parseConfigFile(
      "endpoint = \"qa1:50051\"\ntoken = \"t\"\nca_cert = \"ca.pem\"\ncert = \"me.crt\"\n"
      "key = \"/k/me.key\"\n",
      "/etc/x/config.toml");
  ASSERT_TRUE(f.isOk()) << f.status().message();
  EXPECT_EQ(*f->cert, "/etc/x/me.crt");
  EXPECT_EQ(*f->key, "/k/me.key");
  EXPECT_EQ(*f->endpoint, "qa1:50051");
  EXPECT_EQ(*f->token, "t");
  EXPECT_EQ(*f->caCert, "/etc/x/ca.pem");
}

TEST(ConfigFileTest, ErrorsNameTheFileAndPlace) {
  auto bad = parseConfigFile("endpoint = \n", "/h/config.toml");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().message().rfind("config file /h/config.toml:1:", 0), 0u)
      << bad.status().message();
  auto wrongType = parseConfigFile("token = 3\n", "/h/config.toml");
  ASSERT_FALSE(wrongType.isOk());
  EXPECT_NE(wrongType.status().message().find("token: must be a string"), std::string::npos);
}

TEST(ConfigFileTest, PathFollowsXdgThenHome) {
  EXPECT_EQ(configFilePath(envFrom({{"HOME", "/home/u"}})), "/home/u/.config/qabox/config.toml");
  EXPECT_EQ(configFilePath(envFrom({{"HOME", "/home/u"}, {"XDG_CONFIG_HOME", "/x"}})),
            "/x/qabox/config.toml");
  EXPECT_EQ(configFilePath(envFrom({})), "");
}

// The real process environment and a real file under a temporary HOME.
class ResolveFromProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qabox-cli-home-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    for (const char* v :
         {"HOME", "XDG_CONFIG_HOME", "QABOX_ENDPOINT", "QABOX_TOKEN", "QABOX_CA_CERT"}) {
      const char* old = getenv(v);
      if (old != nullptr) saved_[v] = old;
      unsetenv(v);
    }
    setenv("HOME", home_.c_str(), 1);
  }
  void TearDown() override {
    for (const char* v :
         {"HOME", "XDG_CONFIG_HOME", "QABOX_ENDPOINT", "QABOX_TOKEN", "QABOX_CA_CERT"}) {
      unsetenv(v);
    }
    for (const auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
    std::filesystem::remove_all(home_);
  }
  void writeConfig(const std::string& text) {
    std::filesystem::create_directories(home_ + "/.config/qabox");
    std::ofstream(home_ + "/.config/qabox/config.toml") << text;
  }

  std::string home_;
  std::map<std::string, std::string> saved_;
};

TEST_F(ResolveFromProcess, Precedence) {
  auto none = resolveConnectionFromProcess({});
  ASSERT_TRUE(none.isOk());
  EXPECT_EQ(none->endpoint, kDefaultEndpoint);

  writeConfig("endpoint = \"unix:///file.sock\"\ntoken = \"file-token\"\n");
  auto file = resolveConnectionFromProcess({});
  ASSERT_TRUE(file.isOk());
  EXPECT_EQ(file->endpoint, "unix:///file.sock");
  EXPECT_EQ(file->token, "file-token");
  EXPECT_NE(file->endpointSource.find(home_ + "/.config/qabox/config.toml"), std::string::npos);

  setenv("QABOX_ENDPOINT", "unix:///env.sock", 1);
  setenv("QABOX_TOKEN", "env-token", 1);
  auto env = resolveConnectionFromProcess({});
  ASSERT_TRUE(env.isOk());
  EXPECT_EQ(env->endpoint, "unix:///env.sock");
  EXPECT_EQ(env->token, "env-token");

  auto flag = resolveConnectionFromProcess({"unix:///flag.sock", "flag-token", std::nullopt});
  ASSERT_TRUE(flag.isOk());
  EXPECT_EQ(flag->endpoint, "unix:///flag.sock");
  EXPECT_EQ(flag->token, "flag-token");
}

TEST_F(ResolveFromProcess, BrokenConfigIsReported) {
  writeConfig("endpoint = [\n");
  auto c = resolveConnectionFromProcess({});
  ASSERT_FALSE(c.isOk());
  EXPECT_NE(c.status().message().find(".config/qabox/config.toml"), std::string::npos);
}

}  // namespace
}  // namespace qabox::cli
