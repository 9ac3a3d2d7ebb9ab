#include "deploy/manifest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace qabox {
namespace {

TEST(AppManifest, ReadsEveryKey) {
  auto m = parseAppManifest(R"(
[app]
start = "exec ./server --port 8080"
port = 8080
health = "/healthz"
[hooks]
build = "make"
migrate = "./manage migrate"
seed = "./manage seed"
)");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->start, "exec ./server --port 8080");
  ASSERT_TRUE(m->port.has_value());
  EXPECT_EQ(*m->port, 8080u);
  EXPECT_EQ(m->health, "/healthz");
  EXPECT_EQ(m->build, "make");
  EXPECT_EQ(m->migrate, "./manage migrate");
  EXPECT_EQ(m->seed, "./manage seed");
}

TEST(AppManifest, EverythingIsOptional) {
  for (const char* text : {"", "[app]\n", "[hooks]\n", "# only a comment\n"}) {
    auto m = parseAppManifest(text);
    ASSERT_TRUE(m.isOk()) << text << ": " << m.status().toString();
    EXPECT_EQ(m->start, "");
    EXPECT_FALSE(m->port.has_value());
    EXPECT_EQ(m->health, "");
    EXPECT_EQ(m->build, "");
    EXPECT_EQ(m->migrate, "");
    EXPECT_EQ(m->seed, "");
  }
}

TEST(AppManifest, PortBounds) {
  EXPECT_TRUE(parseAppManifest("[app]\nport = 1\n").isOk());
  EXPECT_TRUE(parseAppManifest("[app]\nport = 65535\n").isOk());
  for (const char* p : {"0", "65536", "-1", "99999999999"}) {
    auto m = parseAppManifest(std::string("[app]\nport = ") + p + "\n");
    ASSERT_FALSE(m.isOk()) << p;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(m.status().message(), "qabox.toml: app.port: must be between 1 and 65535") << p;
  }
}

struct BadCase {
  const char* toml;
  const char* message;
};

TEST(AppManifest, EveryErrorNamesTheKey) {
  const BadCase cases[] = {
      {"[app]\nprot = 80\n", "qabox.toml: app.prot: unknown key"},
      {"[hooks]\nbiuld = \"make\"\n", "qabox.toml: hooks.biuld: unknown key"},
      {"start = \"x\"\n", "qabox.toml: start: unknown key"},
      {"[limits]\nmemory = \"1G\"\n", "qabox.toml: limits: unknown key"},
      {"app = 3\n", "qabox.toml: app: must be a table ([app])"},
      {"hooks = \"make\"\n", "qabox.toml: hooks: must be a table ([hooks])"},
      {"[app]\nstart = 3\n", "qabox.toml: app.start: must be a string"},
      {"[app]\nstart = [\"a\", \"b\"]\n", "qabox.toml: app.start: must be a string"},
      {"[app]\nport = \"80\"\n", "qabox.toml: app.port: must be a whole number"},
      {"[app]\nport = 80.5\n", "qabox.toml: app.port: must be a whole number"},
      {"[app]\nhealth = 200\n", "qabox.toml: app.health: must be a string"},
      {"[app]\nhealth = \"healthz\"\n", "qabox.toml: app.health \"healthz\": must start with '/'"},
      {"[app]\nhealth = \"/a b\"\n",
       "qabox.toml: app.health \"/a b\": must not contain spaces or control characters"},
      {"[hooks]\nbuild = true\n", "qabox.toml: hooks.build: must be a string"},
      {"[hooks]\nmigrate = 1\n", "qabox.toml: hooks.migrate: must be a string"},
      {"[hooks]\nseed = {}\n", "qabox.toml: hooks.seed: must be a string"},
  };
  for (const auto& c : cases) {
    auto m = parseAppManifest(c.toml);
    ASSERT_FALSE(m.isOk()) << c.toml;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << c.toml;
    EXPECT_EQ(m.status().message(), c.message) << c.toml;
  }
}

TEST(AppManifest, SyntaxErrorsSayWhere) {
  auto m = parseAppManifest("[app]\nstart = \n");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(m.status().message().rfind("qabox.toml: line 2, column ", 0), 0u)
      << m.status().message();
}

constexpr const char* kBusybox = R"(
description = "Debian's busybox-static: a tiny init, an HTTP server on port 80 serving /srv/app"
provision = "provision.sh"
[app]
start = "httpd -f -p 80 -h /srv/app"
port = 80
health = "/"
[limits]
memory = "256M"
pids = 256
)";

TEST(ImageManifest, ReadsEveryKey) {
  auto m = parseImageManifest(kBusybox, "busybox");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->name, "busybox");
  EXPECT_EQ(m->description,
            "Debian's busybox-static: a tiny init, an HTTP server on port 80 serving /srv/app");
  EXPECT_EQ(m->provision, "provision.sh");
  EXPECT_EQ(m->defaults.start, "httpd -f -p 80 -h /srv/app");
  EXPECT_EQ(m->defaults.port, 80u);
  EXPECT_EQ(m->defaults.health, "/");
  EXPECT_EQ(m->memory, "256M");
  EXPECT_EQ(m->pids, 256u);
  EXPECT_EQ(m->cpus, 0u);

  auto full = parseImageManifest(R"(
provision = "setup.sh"
[hooks]
build = "true"
migrate = "m"
seed = "s"
[limits]
cpus = 2
memory = "1G"
)",
                                 "node-18");
  ASSERT_TRUE(full.isOk()) << full.status().toString();
  EXPECT_EQ(full->provision, "setup.sh");
  EXPECT_EQ(full->defaults.build, "true");
  EXPECT_EQ(full->defaults.migrate, "m");
  EXPECT_EQ(full->defaults.seed, "s");
  EXPECT_EQ(full->cpus, 2u);
  EXPECT_EQ(full->memory, "1G");
}

TEST(ImageManifest, Defaults) {
  auto m = parseImageManifest("", "tiny");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->provision, "provision.sh");
  EXPECT_EQ(m->description, "");
  EXPECT_EQ(m->memory, "");
  EXPECT_EQ(m->cpus, 0u);
  EXPECT_EQ(m->pids, 0u);
  EXPECT_FALSE(m->defaults.port.has_value());
}

TEST(ImageManifest, EveryErrorNamesTheKey) {
  const BadCase cases[] = {
      {"descripton = \"x\"\n", "descripton: unknown key"},
      {"[limits]\nmemroy = \"1G\"\n", "limits.memroy: unknown key"},
      {"[app]\nprot = 80\n", "app.prot: unknown key"},
      {"[app]\nport = 0\n", "app.port: must be between 1 and 65535"},
      {"[app]\nhealth = \"x\"\n", "app.health \"x\": must start with '/'"},
      {"description = 1\n", "description: must be a string"},
      {"provision = \"../evil.sh\"\n",
       "provision \"../evil.sh\": must be the name of a script in the image's folder, such as "
       "provision.sh"},
      {"provision = \"\"\n",
       "provision \"\": must be the name of a script in the image's folder, such as provision.sh"},
      {"provision = \".hidden\"\n",
       "provision \".hidden\": must be the name of a script in the image's folder, such as "
       "provision.sh"},
      {"limits = 1\n", "limits: must be a table ([limits])"},
      {"[limits]\nmemory = 256\n", "limits.memory: must be a string"},
      {"[limits]\nmemory = \"lots\"\n",
       "limits.memory \"lots\": must be a size such as 256M, 1G or 524288K"},
      {"[limits]\nmemory = \"0M\"\n",
       "limits.memory \"0M\": must be a size such as 256M, 1G or 524288K"},
      {"[limits]\nmemory = \"256MB\"\n",
       "limits.memory \"256MB\": must be a size such as 256M, 1G or 524288K"},
      {"[limits]\ncpus = 0\n", "limits.cpus: must be between 1 and 1024"},
      {"[limits]\ncpus = \"2\"\n", "limits.cpus: must be a whole number"},
      {"[limits]\npids = 0\n", "limits.pids: must be between 1 and 4194304"},
      {"[hooks]\nbuild = 1\n", "hooks.build: must be a string"},
  };
  for (const auto& c : cases) {
    auto m = parseImageManifest(c.toml, "busybox");
    ASSERT_FALSE(m.isOk()) << c.toml;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << c.toml;
    EXPECT_EQ(m.status().message(), c.message) << c.toml;
  }
}

TEST(ImageManifest, NameIsChecked) {
  auto m = parseImageManifest(kBusybox, "../etc");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
  EXPECT_NE(m.status().message().find("image"), std::string::npos);
}

TEST(ImageManifest, ParsesTheShippedRecipes) {
  // Every recipe in the tree must stay parseable.
  namespace fs = std::filesystem;
  size_t parsed = 0;
  for (const auto& dir : fs::directory_iterator(std::string(QABOX_SOURCE_DIR) + "/images")) {
    std::ifstream in(dir.path() / "image.toml");
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    auto m = parseImageManifest(text.str(), dir.path().filename().string());
    EXPECT_TRUE(m.isOk()) << dir.path() << ": " << m.status().toString();
    ++parsed;
  }
  EXPECT_GE(parsed, 1u);
}

TEST(Manifests, AppOverridesImageDefaults) {
  auto image = parseImageManifest(R"(
[app]
start = "httpd -f -p 80 -h /srv/app"
port = 80
health = "/"
[hooks]
build = "true"
seed = "image-seed"
)",
                                  "busybox");
  ASSERT_TRUE(image.isOk());
  auto app = parseAppManifest(R"(
[app]
port = 8080
health = "/healthz"
[hooks]
build = "make"
migrate = "./migrate"
)");
  ASSERT_TRUE(app.isOk());
  AppManifest m = mergeManifests(*image, *app);
  EXPECT_EQ(m.start, "httpd -f -p 80 -h /srv/app");  // from the image
  EXPECT_EQ(m.port, 8080u);                          // the app's
  EXPECT_EQ(m.health, "/healthz");
  EXPECT_EQ(m.build, "make");
  EXPECT_EQ(m.migrate, "./migrate");
  EXPECT_EQ(m.seed, "image-seed");
  EXPECT_TRUE(checkRunnable(m).isOk());

  // An app without qabox.toml runs on the image's defaults alone.
  AppManifest bare = mergeManifests(*image, AppManifest{});
  EXPECT_EQ(bare.start, "httpd -f -p 80 -h /srv/app");
  EXPECT_EQ(bare.port, 80u);
  EXPECT_EQ(bare.health, "/");
}

TEST(Manifests, RunnableNeedsStartAndAPortForHealth) {
  AppManifest m;
  auto s = checkRunnable(m);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_EQ(s.message(), "qabox.toml: app.start: not set by the app nor by its image");
  m.start = "./run";
  EXPECT_TRUE(checkRunnable(m).isOk());  // a worker: no port, no health check
  m.health = "/";
  s = checkRunnable(m);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("app.port"), std::string::npos);
  m.port = 80;
  EXPECT_TRUE(checkRunnable(m).isOk());
}

}  // namespace
}  // namespace qabox
