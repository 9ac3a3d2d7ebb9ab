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

// ---------------------------------------------------------------------------
// Services and processes (image.toml init and [services.NAME]; qabox.toml
// [services.NAME], [processes], [app] process).

constexpr const char* kDebianServices = R"(
init = "qabox-init"
[services.postgres]
run = "exec postgres -D /var/lib/postgresql"
ready = "pg_isready -q -h 127.0.0.1 -p 5432"
setup = "printf \"ALTER ROLE app PASSWORD '%s';\\n\" \"$PGPASSWORD\" | psql"
user = "postgres"
[services.postgres.env]
DATABASE_URL = "postgresql://app:${password}@127.0.0.1:5432/app"
PGPASSWORD = "${password}"
PGHOST = "127.0.0.1"
[services.redis]
run = "exec redis-server --requirepass \"$REDIS_PASSWORD\""
)";

TEST(ImageManifest, ReadsInitAndServices) {
  auto m = parseImageManifest(kDebianServices, "debian-app");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->init, "qabox-init");
  ASSERT_EQ(m->services.size(), 2u);
  const ServiceDef& pg = m->services.at("postgres");
  EXPECT_EQ(pg.name, "postgres");
  EXPECT_EQ(pg.run, "exec postgres -D /var/lib/postgresql");
  EXPECT_EQ(pg.ready, "pg_isready -q -h 127.0.0.1 -p 5432");
  EXPECT_EQ(pg.setup, "printf \"ALTER ROLE app PASSWORD '%s';\\n\" \"$PGPASSWORD\" | psql");
  EXPECT_EQ(pg.user, "postgres");
  EXPECT_EQ(pg.env, (std::map<std::string, std::string>{
                        {"DATABASE_URL", "postgresql://app:${password}@127.0.0.1:5432/app"},
                        {"PGHOST", "127.0.0.1"},
                        {"PGPASSWORD", "${password}"}}));
  const ServiceDef& redis = m->services.at("redis");
  EXPECT_EQ(redis.run, "exec redis-server --requirepass \"$REDIS_PASSWORD\"");
  EXPECT_EQ(redis.ready, "");
  EXPECT_EQ(redis.user, "");
  EXPECT_TRUE(redis.env.empty());
  // Neither: the image's own init.
  auto plain = parseImageManifest(kBusybox, "busybox");
  ASSERT_TRUE(plain.isOk());
  EXPECT_EQ(plain->init, "");
  EXPECT_TRUE(plain->services.empty());
}

TEST(ImageManifest, EveryServiceErrorNamesTheKey) {
  const BadCase cases[] = {
      {"init = \"systemd\"\n",
       "init \"systemd\": must be \"qabox-init\" (or unset: the image's own init, which runs "
       "only app.run)"},
      {"init = 1\n", "init: must be a string"},
      {"services = 1\n", "services: must be a table ([services])"},
      {"[services]\npostgres = \"x\"\n",
       "services.postgres: must be a table ([services.postgres])"},
      {"[services.Postgres]\nrun = \"x\"\n",
       "services \"Postgres\": a name must match [a-z][a-z0-9_-]{0,31}"},
      {"[services.\"../x\"]\nrun = \"x\"\n",
       "services \"../x\": a name must match [a-z][a-z0-9_-]{0,31}"},
      {"[services.pg]\n", "services.pg.run: must be set: the service's command, in the foreground"},
      {"[services.pg]\nrun = 1\n", "services.pg.run: must be a string"},
      {"[services.pg]\nrun = \"x\"\nreddy = \"y\"\n", "services.pg.reddy: unknown key"},
      {"[services.pg]\nrun = \"x\"\nuser = \"Root User\"\n",
       "services.pg.user \"Root User\": must be a user name ([a-z_][a-z0-9_.-]{0,31})"},
      {"[services.pg]\nrun = \"x --password ${password}\"\n",
       "services.pg.run \"x --password ${password}\": ${...} is not expanded here; ${password} "
       "is expanded only in the service's env values, which the command sees as variables"},
      {"[services.pg]\nrun = \"x\"\nready = \"check ${password}\"\n",
       "services.pg.ready \"check ${password}\": ${...} is not expanded here; ${password} is "
       "expanded only in the service's env values, which the command sees as variables"},
      {"[services.pg]\nrun = \"x\"\nsetup = \"${HOME}/s\"\n",
       "services.pg.setup \"${HOME}/s\": ${...} is not expanded here; ${password} is expanded "
       "only in the service's env values, which the command sees as variables"},
      {"[services.pg]\nrun = \"x\"\n[services.pg.env]\nURL = \"x:${pasword}@h\"\n",
       "services.pg.env.URL \"x:${pasword}@h\": only ${password} is expanded"},
      {"[services.pg]\nrun = \"x\"\n[services.pg.env]\nURL = \"${password\"\n",
       "services.pg.env.URL \"${password\": only ${password} is expanded"},
      {"[services.pg]\nrun = \"x\"\n[services.pg.env]\n\"BAD-NAME\" = \"x\"\n",
       "services.pg.env.BAD-NAME: must be a variable name ([A-Za-z_][A-Za-z0-9_]*)"},
      {"[services.pg]\nrun = \"x\"\n[services.pg.env]\nPORT = 5432\n",
       "services.pg.env.PORT: must be a string"},
      {"[services.pg]\nrun = \"x\"\nenv = \"A=1\"\n",
       "services.pg.env: must be a table ([services.pg.env])"},
      // The image names no processes: that is the app's.
      {"[app]\nprocess = \"web\"\n", "app.process: unknown key"},
      {"[processes]\nweb = \"x\"\n", "processes: unknown key"},
  };
  for (const auto& c : cases) {
    auto m = parseImageManifest(c.toml, "debian");
    ASSERT_FALSE(m.isOk()) << c.toml;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << c.toml;
    EXPECT_EQ(m.status().message(), c.message) << c.toml;
  }
}

TEST(AppManifest, ReadsServicesProcessesAndTheRoutedOne) {
  auto m = parseAppManifest(R"(
[app]
process = "web"
port = 8000
[services.redis]
[services.postgres]
[processes]
web = "exec gunicorn app:app -b 0.0.0.0:8000"
worker = "exec python3 worker.py"
)");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->services, (std::vector<std::string>{"postgres", "redis"}));  // sorted
  EXPECT_EQ(m->processes,
            (std::map<std::string, std::string>{{"web", "exec gunicorn app:app -b 0.0.0.0:8000"},
                                                {"worker", "exec python3 worker.py"}}));
  EXPECT_EQ(m->process, "web");
  EXPECT_EQ(routedProcess(*m), "web");
  EXPECT_EQ(routedCommand(*m), "exec gunicorn app:app -b 0.0.0.0:8000");
  // [app] start may be unset with [app] process.
  EXPECT_TRUE(checkRunnable(*m).isOk());

  // Without [app] process: [app] start, as "app", besides the others.
  auto plain = parseAppManifest("[app]\nstart = \"./serve\"\n[processes]\nworker = \"./work\"\n");
  ASSERT_TRUE(plain.isOk()) << plain.status().toString();
  EXPECT_EQ(routedProcess(*plain), "app");
  EXPECT_EQ(routedCommand(*plain), "./serve");
}

TEST(AppManifest, EveryServiceAndProcessErrorNamesTheKey) {
  const BadCase cases[] = {
      {"services = [\"postgres\"]\n", "qabox.toml: services: must be a table ([services])"},
      {"[services]\npostgres = true\n",
       "qabox.toml: services.postgres: must be a table ([services.postgres])"},
      {"[services.postgres]\nversion = \"15\"\n",
       "qabox.toml: services.postgres.version: unknown key"},
      {"[services.PG]\n", "qabox.toml: services \"PG\": a name must match [a-z][a-z0-9_-]{0,31}"},
      {"processes = \"web\"\n", "qabox.toml: processes: must be a table ([processes])"},
      {"[processes]\nweb = 1\n", "qabox.toml: processes.web: must be a string"},
      {"[processes]\nweb = \"\"\n", "qabox.toml: processes.web: must be a command"},
      {"[processes]\n\"w/../x\" = \"x\"\n",
       "qabox.toml: processes \"w/../x\": a name must match [a-z][a-z0-9_-]{0,31}"},
      {"[processes]\n\"0web\" = \"x\"\n",
       "qabox.toml: processes \"0web\": a name must match [a-z][a-z0-9_-]{0,31}"},
      {"[processes]\nweb = { command = \"x\" }\n", "qabox.toml: processes.web: must be a string"},
      {"[app]\nprocess = 1\n", "qabox.toml: app.process: must be a string"},
      {"[app]\nprocess = \"web\"\n",
       "qabox.toml: app.process \"web\": names no [processes] entry (there are none)"},
      {"[app]\nprocess = \"web\"\n[processes]\nworker = \"x\"\nclock = \"y\"\n",
       "qabox.toml: app.process \"web\": names no [processes] entry (there are: clock, worker)"},
      // One name, one process (and one log).
      {"[services.postgres]\n[processes]\npostgres = \"x\"\n",
       "qabox.toml: processes.postgres: named twice: the service postgres runs under that name"},
      {"[app]\nstart = \"./serve\"\n[processes]\napp = \"x\"\n",
       "qabox.toml: processes.app: named twice: without app.process, [app] start runs as process "
       "\"app\""},
  };
  for (const auto& c : cases) {
    auto m = parseAppManifest(c.toml);
    ASSERT_FALSE(m.isOk()) << c.toml;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << c.toml;
    EXPECT_EQ(m.status().message(), c.message) << c.toml;
  }
  // TOML itself refuses a key twice.
  auto twice = parseAppManifest("[processes]\nweb = \"a\"\nweb = \"b\"\n");
  ASSERT_FALSE(twice.isOk());
  EXPECT_EQ(twice.status().message().rfind("qabox.toml: line 3", 0), 0u)
      << twice.status().message();
  // "app" may be a [processes] entry when it is the routed one.
  EXPECT_TRUE(parseAppManifest("[app]\nprocess = \"app\"\n[processes]\napp = \"x\"\n").isOk());
}

TEST(Manifests, TheAppsServicesAndProcessesAreCarriedAndCheckedAgainstTheImage) {
  auto image = parseImageManifest(kDebianServices, "debian-app");
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  image->defaults.start = "exec ./default";
  auto app = parseAppManifest(
      "[app]\nprocess = \"web\"\n[services.postgres]\n[processes]\nweb = \"./web\"\n");
  ASSERT_TRUE(app.isOk()) << app.status().toString();
  AppManifest m = mergeManifests(*image, *app);
  EXPECT_EQ(m.services, std::vector<std::string>{"postgres"});
  EXPECT_EQ(m.processes.at("web"), "./web");
  EXPECT_EQ(m.process, "web");
  EXPECT_EQ(m.start, "exec ./default");
  EXPECT_EQ(routedCommand(m), "./web");
  EXPECT_TRUE(checkImageFits(*image, m).isOk());

  // A service the image lacks: named, with what the image has.
  m.services = {"mysql", "postgres"};
  Status s = checkImageFits(*image, m);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "qabox.toml: services.mysql: image debian-app has no service mysql (it has: "
            "postgres, redis)");

  // Services or processes on an image without qabox-init.
  auto busybox = parseImageManifest(kBusybox, "busybox");
  ASSERT_TRUE(busybox.isOk());
  m.services = {"postgres"};
  s = checkImageFits(*busybox, m);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "qabox.toml: services.postgres: image busybox has no service postgres (it has none)");
  busybox->services = image->services;
  s = checkImageFits(*busybox, m);
  EXPECT_EQ(s.message(),
            "qabox.toml: services: image busybox has no init = \"qabox-init\" to supervise them: "
            "it runs only [app] start");
  m.services.clear();
  s = checkImageFits(*busybox, m);
  EXPECT_EQ(s.message(),
            "qabox.toml: processes: image busybox has no init = \"qabox-init\" to supervise "
            "them: it runs only [app] start");
  // Neither: any image will do.
  m.processes.clear();
  m.process.clear();
  EXPECT_TRUE(checkImageFits(*busybox, m).isOk());
}

TEST(AppManifest, ReadsDepsAndCarriesThemOverTheImage) {
  auto m = parseAppManifest(
      "[deps]\nfiles = [\"requirements.txt\", \"constraints/prod.txt\"]\n"
      "install = \"pip install -r requirements.txt\"\n");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->deps.files, (std::vector<std::string>{"requirements.txt", "constraints/prod.txt"}));
  EXPECT_EQ(m->deps.install, "pip install -r requirements.txt");
  ImageManifest image;
  image.name = "python";
  EXPECT_EQ(mergeManifests(image, *m).deps, m->deps);
  // No [deps]: none.
  auto none = parseAppManifest("[app]\nstart = \"x\"\n");
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->deps.install.empty());
  EXPECT_TRUE(none->deps.files.empty());
}

TEST(AppManifest, EveryDepsErrorNamesTheKey) {
  auto deps = [](const std::string& files, const std::string& install = "\"make deps\"") {
    return "[deps]\nfiles = " + files + "\ninstall = " + install + "\n";
  };
  const std::string longPath(257, 'a');
  const std::string longInstall = "\"" + std::string(4097, 'x') + "\"";
  std::string many = "[";
  for (int i = 0; i < 33; ++i)
    many += (i ? ", " : "") + std::string("\"f") + std::to_string(i) + "\"";
  many += "]";
  struct DepsCase {
    std::string toml, message;
  };
  const DepsCase cases[] = {
      {"deps = 1\n", "qabox.toml: deps: must be a table ([deps])"},
      {"[deps]\nfiles = [\"a\"]\n", "qabox.toml: deps.install: must be a command"},
      {deps("[\"a\"]", "\"\""), "qabox.toml: deps.install: must be a command"},
      {deps("[\"a\"]", "1"), "qabox.toml: deps.install: must be a string"},
      {deps("[\"a\"]", longInstall),
       "qabox.toml: deps.install: at most 4096 characters are allowed"},
      {"[deps]\ninstall = \"x\"\n", "qabox.toml: deps.files: must name at least one file"},
      {deps("[]"), "qabox.toml: deps.files: must name at least one file"},
      {deps("\"requirements.txt\""), "qabox.toml: deps.files: must be a list of strings"},
      {deps("[1]"), "qabox.toml: deps.files: must be a list of strings"},
      {deps(many), "qabox.toml: deps.files: at most 32 files are allowed"},
      {deps("[\"\"]"), "qabox.toml: deps.files \"\": must not be empty"},
      {deps("[\"" + longPath + "\"]"), "qabox.toml: deps.files \"" + longPath.substr(0, 80) +
                                           "...\": at most 256 characters are allowed"},
      {deps("[\"/etc/passwd\"]"),
       "qabox.toml: deps.files \"/etc/passwd\": must be a path in the repo, not absolute"},
      {deps("[\"../x\"]"),
       "qabox.toml: deps.files \"../x\": must not hold empty, '.' or '..' parts"},
      {deps("[\"a/../../x\"]"),
       "qabox.toml: deps.files \"a/../../x\": must not hold empty, '.' or '..' parts"},
      {deps("[\"./a\"]"), "qabox.toml: deps.files \"./a\": must not hold empty, '.' or '..' parts"},
      {deps("[\"a//b\"]"),
       "qabox.toml: deps.files \"a//b\": must not hold empty, '.' or '..' parts"},
      {deps("[\"a/\"]"), "qabox.toml: deps.files \"a/\": must not hold empty, '.' or '..' parts"},
      {deps("[\".git/config\"]"), "qabox.toml: deps.files \".git/config\": must not name .git"},
      {deps("[\"a\\nb\"]"),
       "qabox.toml: deps.files \"a?b\": must not hold control characters or backslashes"},
      {deps("[\"a\\\\b\"]"),
       "qabox.toml: deps.files \"a\\b\": must not hold control characters or backslashes"},
      {deps("[\"a\", \"a\"]"), "qabox.toml: deps.files \"a\": named twice"},
      {"[deps]\nfiles = [\"a\"]\ninstall = \"x\"\ncache = true\n",
       "qabox.toml: deps.cache: unknown key"},
  };
  for (const auto& c : cases) {
    auto m = parseAppManifest(c.toml);
    ASSERT_FALSE(m.isOk()) << c.toml;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << c.toml;
    EXPECT_EQ(m.status().message(), c.message) << c.toml;
  }
}

}  // namespace
}  // namespace qabox
