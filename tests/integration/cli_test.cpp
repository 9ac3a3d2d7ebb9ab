// Issue: the qabox CLI for ops and Jenkins. The real CLI binary against the
// real daemon on real LXC: every command, every output format, every exit
// code a script branches on, and the shell idioms Jenkins jobs use.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "harness.h"
#include "sys/process.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kAppToml = R"([app]
start = "echo app starting; exec httpd -f -vv -p 8080 -h /srv/app/www"
port = 8080
health = "/health.txt"
[hooks]
build = "sh build.sh"
)";

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::set<std::string> lineSet(const std::string& text) {
  auto l = lines(text);
  return {l.begin(), l.end()};
}

// Strict on purpose: an unknown field means the CLI printed something other
// than the proto message, which a client generated from proto/ would reject.
template <typename Message>
Message parseJson(const std::string& json) {
  Message m;
  auto s = google::protobuf::util::JsonStringToMessage(json, &m);
  EXPECT_TRUE(s.ok()) << s.ToString() << " in: " << json;
  return m;
}

// One JSON object per line, as streams print them.
template <typename Message>
std::vector<Message> parseJsonLines(const std::string& text) {
  std::vector<Message> out;
  for (const auto& l : lines(text)) out.push_back(parseJson<Message>(l));
  return out;
}

// The recipes in the tree's images/ (each folder with an image.toml), one a
// line in name order, as `qabox image ls -o name` lists them unbuilt.
std::string shippedRecipes() {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(sourceDir() + "/images")) {
    if (std::filesystem::exists(e.path() / "image.toml")) names.insert(e.path().filename());
  }
  std::string out;
  for (const auto& n : names) out += n + "\n";
  return out;
}

std::string cliBinary() { return binDir() + "/agent/cli/qabox"; }

class LxcCli : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    git_ = std::make_unique<GitFixture>(host_->stateDir() + "/src");
    git_->write("qabox.toml", kAppToml);
    git_->write("build.sh",
                "set -e\nmkdir -p www\necho ok > www/health.txt\necho built the widgets\n");
    git_->write("www/shared.txt", "from develop\n");
    git_->commit("app");
    git_->push("develop");
    git_->checkout("feature/EXMP-113", true);
    git_->write("www/feature.txt", "feature\n");
    git_->commit("feature");
    git_->push("feature/EXMP-113");
    git_->checkout("develop");

    TestHost::Options o;
    o.repos = {{"shop", git_->bare()}};
    o.healthTimeout = "5s";
    host_->writeConfig(o);
    host_->startDaemon();
    auto r = host_->cli({"image", "build", "busybox"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
  }

  std::string endpoint() const { return "unix://" + host_->socket(); }

  // The router listens on a free port, not 80, so URLs name it.
  std::string url(const std::string& slug) const {
    return "http://" + slug + "." + host_->domain() + ":" + std::to_string(host_->routerPort());
  }

  // The CLI with exactly these arguments: unlike TestHost::cli nothing is
  // prepended, so tests choose where global options go.
  CliResult qabox(const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& extraEnv = {}) {
    std::vector<std::string> argv = {cliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, extraEnv);
  }

  // A bash script with $Q the CLI and $E this host's endpoint, as a Jenkins
  // `sh` step would run it.
  CliResult shell(const std::string& script) {
    return run(
        {"bash", "-c", "set -eu; Q=\"$1\"; E=\"$2\"; " + script, "bash", cliBinary(), endpoint()},
        {});
  }

  CliResult run(const std::vector<std::string>& argv,
                const std::map<std::string, std::string>& extraEnv) {
    RealProcessRunner runner;
    ProcessSpec spec;
    spec.argv = argv;
    spec.timeout = std::chrono::seconds(120);
    std::map<std::string, std::string> env = {
        {"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}, {"HOME", host_->stateDir()}, {"NO_COLOR", "1"}};
    for (const auto& [k, v] : extraEnv) env[k] = v;
    spec.env = env;
    auto r = runner.run(spec);
    if (!r) return {-1, "", r.status().toString()};
    return {r->exitCode, r->out, r->err};
  }

  CliResult deployRepo(const std::string& ticket, const std::string& source,
                       std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"deploy",   ticket, "--repo",   "shop",
                                     "--source", source, "--target", "develop"};
    args.insert(args.end(), extra.begin(), extra.end());
    return host_->cli(args);
  }

  // A unix socket file that nothing listens on: connecting is refused.
  std::string deadSocket() {
    std::string path = host_->stateDir() + "/dead.sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
    return path;
  }

  std::unique_ptr<TestHost> host_;
  std::unique_ptr<GitFixture> git_;
};

TEST_F(LxcCli, DeployListGetInEveryOutputFormat) {
  // Table: the environment's line on stdout, progress and timing on stderr.
  auto table = host_->cli({"deploy", "EXMP-1", "--image", "busybox"});
  ASSERT_EQ(table.exitCode, 0) << table.err << host_->logText();
  EXPECT_EQ(table.out, "EXMP-1 READY " + url("exmp-1") + "\n");
  EXPECT_TRUE(contains(table.err, "deployed in")) << table.err;

  // JSON: only the final Environment on stdout, progress still on stderr.
  auto json = deployRepo("EXMP-113", "feature/EXMP-113", {"-o", "json"});
  ASSERT_EQ(json.exitCode, 0) << json.err << host_->logText();
  auto deployed = parseJson<v1::Environment>(json.out);
  EXPECT_EQ(deployed.ticket(), "EXMP-113");
  EXPECT_EQ(deployed.state(), v1::Environment::READY);
  EXPECT_EQ(deployed.repo(), "shop");
  EXPECT_EQ(deployed.commit().size(), 40u);
  EXPECT_EQ(deployed.url(), url("exmp-113"));
  EXPECT_TRUE(contains(json.err, "health")) << json.err;

  auto name = host_->cli({"deploy", "EXMP-2", "-o", "name"});
  ASSERT_EQ(name.exitCode, 0) << name.err;
  EXPECT_EQ(name.out, "EXMP-2\n");

  std::set<std::string> tickets = {"EXMP-1", "EXMP-113", "EXMP-2"};

  auto list = host_->cli({"list"});
  ASSERT_EQ(list.exitCode, 0) << list.err;
  auto rows = lines(list.out);
  ASSERT_EQ(rows.size(), 4u) << list.out;
  EXPECT_EQ(rows[0].rfind("TICKET", 0), 0u) << rows[0];
  for (const char* column : {"STATE", "URL", "IMAGE", "COMMIT", "AGE", "LAST USED"}) {
    EXPECT_TRUE(contains(rows[0], column)) << rows[0];
  }
  for (const auto& t : tickets) EXPECT_TRUE(contains(list.out, t + " ")) << list.out;
  EXPECT_TRUE(contains(list.out, "READY"));
  EXPECT_TRUE(contains(list.out, deployed.commit().substr(0, 7))) << list.out;

  auto listJson = host_->cli({"ls", "-o", "json"});
  ASSERT_EQ(listJson.exitCode, 0) << listJson.err;
  auto all = parseJson<v1::ListEnvironmentsResponse>(listJson.out);
  std::set<std::string> listed;
  for (const auto& e : all.environments()) {
    listed.insert(e.ticket());
    EXPECT_EQ(e.state(), v1::Environment::READY) << e.ticket();
    EXPECT_FALSE(e.ip().empty()) << e.ticket();
  }
  EXPECT_EQ(listed, tickets);

  auto names = host_->cli({"ls", "-o", "name"});
  ASSERT_EQ(names.exitCode, 0) << names.err;
  EXPECT_EQ(lineSet(names.out), tickets);
  EXPECT_EQ(lines(names.out).size(), 3u) << names.out;

  auto get = host_->cli({"get", "EXMP-113"});
  ASSERT_EQ(get.exitCode, 0) << get.err;
  for (const auto& field :
       {"ticket:", "state:", "url:", "ip:", "commit:", "repo:", "source_branch:"}) {
    EXPECT_TRUE(contains(get.out, field)) << field << " missing in:\n" << get.out;
  }
  EXPECT_TRUE(contains(get.out, deployed.commit())) << get.out;
  EXPECT_TRUE(contains(get.out, "feature/EXMP-113")) << get.out;
  // The last events come with the table view.
  EXPECT_TRUE(contains(get.out, "deploy")) << get.out;

  auto getJson = host_->cli({"get", "EXMP-113", "-o", "json"});
  ASSERT_EQ(getJson.exitCode, 0) << getJson.err;
  auto got = parseJson<v1::Environment>(getJson.out);
  EXPECT_EQ(got.commit(), deployed.commit());
  EXPECT_EQ(got.ip(), deployed.ip());
  EXPECT_EQ(lines(getJson.out).size(), 1u) << "one JSON document, no events: " << getJson.out;

  auto getName = host_->cli({"get", "EXMP-113", "-o", "name"});
  EXPECT_EQ(getName.exitCode, 0);
  EXPECT_EQ(getName.out, "EXMP-113\n");
}

TEST_F(LxcCli, PinLogsExecDeleteInEveryOutputFormat) {
  ASSERT_EQ(deployRepo("EXMP-113", "feature/EXMP-113").exitCode, 0) << host_->logText();
  ASSERT_EQ(host_->cli({"deploy", "EXMP-2"}).exitCode, 0);

  auto pin = host_->cli({"pin", "EXMP-113"});
  ASSERT_EQ(pin.exitCode, 0) << pin.err;
  EXPECT_EQ(pin.out, "EXMP-113 pinned\n");
  EXPECT_TRUE(host_->env("EXMP-113")->pinned());
  auto pinJson = host_->cli({"pin", "EXMP-2", "-o", "json"});
  ASSERT_EQ(pinJson.exitCode, 0) << pinJson.err;
  EXPECT_TRUE(parseJson<v1::Environment>(pinJson.out).pinned());
  auto unpin = host_->cli({"unpin", "EXMP-113", "-o", "name"});
  ASSERT_EQ(unpin.exitCode, 0) << unpin.err;
  EXPECT_EQ(unpin.out, "EXMP-113\n");
  EXPECT_FALSE(host_->env("EXMP-113")->pinned());
  auto unpinTable = host_->cli({"unpin", "EXMP-2"});
  EXPECT_EQ(unpinTable.out, "EXMP-2 unpinned\n");
  auto unpinJson = host_->cli({"unpin", "EXMP-2", "-o", "json"});
  EXPECT_FALSE(parseJson<v1::Environment>(unpinJson.out).pinned());

  // The app's log raw; the deploy's hook output; JSON chunks carry bytes.
  auto appLog = host_->cli({"logs", "EXMP-113"});
  ASSERT_EQ(appLog.exitCode, 0) << appLog.err;
  EXPECT_TRUE(contains(appLog.out, "app starting")) << appLog.out;
  auto deployLog = host_->cli({"logs", "EXMP-113", "--deploy"});
  ASSERT_EQ(deployLog.exitCode, 0) << deployLog.err;
  EXPECT_TRUE(contains(deployLog.out, "built the widgets")) << deployLog.out;
  auto logJson = host_->cli({"logs", "EXMP-113", "--deploy", "-o", "json"});
  ASSERT_EQ(logJson.exitCode, 0) << logJson.err;
  std::string joined;
  for (const auto& chunk : parseJsonLines<v1::LogChunk>(logJson.out)) joined += chunk.data();
  EXPECT_EQ(joined, deployLog.out);
  auto tail = host_->cli({"logs", "EXMP-113", "--deploy", "--tail", "1"});
  EXPECT_EQ(lines(tail.out).size(), 1u) << tail.out;

  // exec: the command's streams and exit code become the CLI's.
  auto exec = host_->cli({"exec", "EXMP-113", "--", "sh", "-c",
                          "cat /srv/app/www/feature.txt; echo oops >&2; exit 5"});
  EXPECT_EQ(exec.exitCode, 5);
  EXPECT_EQ(exec.out, "feature\n");
  EXPECT_TRUE(contains(exec.err, "oops")) << exec.err;
  auto execJson =
      host_->cli({"exec", "EXMP-113", "-o", "json", "--", "sh", "-c", "echo hi; exit 3"});
  EXPECT_EQ(execJson.exitCode, 3);
  auto outputs = parseJsonLines<v1::ExecOutput>(execJson.out);
  ASSERT_FALSE(outputs.empty()) << execJson.out;
  std::string stdoutText;
  for (const auto& o : outputs) stdoutText += o.stdout();
  EXPECT_EQ(stdoutText, "hi\n");
  EXPECT_TRUE(outputs.back().exited());
  EXPECT_EQ(outputs.back().exit_code(), 3);

  auto del = host_->cli({"delete", "EXMP-2"});
  ASSERT_EQ(del.exitCode, 0) << del.err;
  EXPECT_EQ(del.out, "EXMP-2 deleted\n");
  auto rm = host_->cli({"rm", "EXMP-113", "-o", "json"});
  ASSERT_EQ(rm.exitCode, 0) << rm.err;
  EXPECT_EQ(parseJson<v1::DeleteEnvironmentResponse>(rm.out).ticket(), "EXMP-113");
  ASSERT_EQ(host_->cli({"deploy", "EXMP-3"}).exitCode, 0);
  auto rmName = host_->cli({"rm", "EXMP-3", "-o", "name"});
  ASSERT_EQ(rmName.exitCode, 0) << rmName.err;
  EXPECT_EQ(rmName.out, "EXMP-3\n");

  EXPECT_EQ(host_->cli({"list", "-o", "name"}).out, "");
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);
}

TEST_F(LxcCli, ImagesStatusEventsVersionInEveryOutputFormat) {
  // SetUp built version 1 with the table output.
  auto buildJson = host_->cli({"image", "build", "busybox", "--force", "-o", "json"});
  ASSERT_EQ(buildJson.exitCode, 0) << buildJson.err;
  auto v2 = parseJson<v1::Image>(buildJson.out);
  EXPECT_EQ(v2.name(), "busybox");
  EXPECT_EQ(v2.version(), 2u);
  EXPECT_TRUE(v2.current());
  EXPECT_TRUE(contains(buildJson.err, "building busybox")) << buildJson.err;
  auto buildName = host_->cli({"image", "build", "busybox", "--force", "-o", "name"});
  ASSERT_EQ(buildName.exitCode, 0) << buildName.err;
  EXPECT_EQ(buildName.out, "busybox\n");
  auto buildTable = host_->cli({"image", "build", "busybox", "--force"});
  ASSERT_EQ(buildTable.exitCode, 0) << buildTable.err;
  EXPECT_EQ(buildTable.out, "busybox version 4 built, now current\n");
  // Unchanged and not forced: no new version.
  auto cached = host_->cli({"image", "build", "busybox"});
  ASSERT_EQ(cached.exitCode, 0) << cached.err;
  EXPECT_EQ(cached.out, "busybox version 4 (current), cached: recipe unchanged\n");

  auto ls = host_->cli({"image", "ls"});
  ASSERT_EQ(ls.exitCode, 0) << ls.err;
  auto lsRows = lines(ls.out);
  ASSERT_GE(lsRows.size(), 5u) << ls.out;
  for (const char* column : {"IMAGE", "VERSION", "BUILT", "ENVS", "CURRENT", "DESCRIPTION"}) {
    EXPECT_TRUE(contains(lsRows[0], column)) << lsRows[0];
  }
  auto lsJson = host_->cli({"image", "list", "-o", "json"});
  ASSERT_EQ(lsJson.exitCode, 0) << lsJson.err;
  auto images = parseJson<v1::ListImagesResponse>(lsJson.out);
  std::set<uint32_t> versions;
  for (const auto& im : images.images()) {
    if (im.name() == "busybox") versions.insert(im.version());
  }
  EXPECT_EQ(versions, (std::set<uint32_t>{1, 2, 3, 4}));
  std::set<std::string> recipes(images.recipes().begin(), images.recipes().end());
  EXPECT_EQ(recipes.count("busybox"), 1u);
  auto lsName = host_->cli({"image", "ls", "-o", "name"});
  ASSERT_EQ(lsName.exitCode, 0);
  EXPECT_EQ(lineSet(lsName.out), recipes) << lsName.out;

  ASSERT_EQ(host_->cli({"deploy", "ON-3"}).exitCode, 0);  // on version 4, the current one
  auto rmOne = host_->cli({"image", "rm", "busybox", "--version", "1", "-o", "json"});
  ASSERT_EQ(rmOne.exitCode, 0) << rmOne.err;
  auto deleted = parseJson<v1::DeleteImageResponse>(rmOne.out);
  ASSERT_EQ(deleted.deleted_size(), 1);
  EXPECT_EQ(deleted.deleted(0).version(), 1u);
  auto rmUnused = host_->cli({"image", "rm", "busybox", "-o", "name"});
  ASSERT_EQ(rmUnused.exitCode, 0) << rmUnused.err;
  EXPECT_EQ(lineSet(rmUnused.out), (std::set<std::string>{"busybox:2", "busybox:3"}));
  auto rmNothing = host_->cli({"image", "delete", "busybox"});
  ASSERT_EQ(rmNothing.exitCode, 0) << rmNothing.err;
  EXPECT_TRUE(contains(rmNothing.out, "Nothing deleted")) << rmNothing.out;
  EXPECT_TRUE(fs::exists(host_->stateDir() + "/images/busybox-v4"));
  EXPECT_FALSE(fs::exists(host_->stateDir() + "/images/busybox-v1"));

  auto status = host_->cli({"status"});
  ASSERT_EQ(status.exitCode, 0) << status.err;
  for (const char* key : {"agent version", "environments", "capacity left", "bridge", "domain"}) {
    EXPECT_TRUE(contains(status.out, key)) << key << " missing in:\n" << status.out;
  }
  EXPECT_TRUE(contains(status.out, host_->bridge())) << status.out;
  auto statusJson = host_->cli({"status", "-o", "json"});
  ASSERT_EQ(statusJson.exitCode, 0) << statusJson.err;
  auto hs = parseJson<v1::HostStatus>(statusJson.out);
  EXPECT_EQ(hs.environments(), 1u);
  EXPECT_EQ(hs.max_environments(), 20u);
  EXPECT_EQ(hs.capacity_left(), 19u);
  EXPECT_EQ(hs.bridge(), host_->bridge());
  EXPECT_EQ(hs.subnet(), host_->subnet());
  EXPECT_EQ(hs.domain(), host_->domain());
  EXPECT_FALSE(hs.version().empty());
  // A host has no name: -o name still prints something a person can read.
  auto statusName = host_->cli({"status", "-o", "name"});
  EXPECT_EQ(statusName.exitCode, 0);
  EXPECT_TRUE(contains(statusName.out, host_->bridge()));

  auto events = host_->cli({"events"});
  ASSERT_EQ(events.exitCode, 0) << events.err;
  auto eventRows = lines(events.out);
  ASSERT_GE(eventRows.size(), 2u) << events.out;
  for (const char* column : {"WHEN", "TICKET", "ACTION", "OUTCOME", "ACTOR", "DETAIL"}) {
    EXPECT_TRUE(contains(eventRows[0], column)) << eventRows[0];
  }
  EXPECT_TRUE(contains(events.out, "ON-3")) << events.out;
  auto eventsJson = host_->cli({"events", "ON-3", "-o", "json", "--limit", "5"});
  ASSERT_EQ(eventsJson.exitCode, 0) << eventsJson.err;
  auto ev = parseJson<v1::ListEventsResponse>(eventsJson.out);
  ASSERT_GE(ev.events_size(), 1);
  EXPECT_LE(ev.events_size(), 5);
  bool deployOk = false;
  for (const auto& e : ev.events()) {
    EXPECT_EQ(e.ticket(), "ON-3");
    deployOk = deployOk || (e.action() == "deploy" && e.outcome() == "ok");
  }
  EXPECT_TRUE(deployOk) << eventsJson.out;
  auto eventsName = host_->cli({"events", "-o", "name"});
  EXPECT_EQ(eventsName.exitCode, 0);
  EXPECT_EQ(lineSet(eventsName.out), (std::set<std::string>{"ON-3"})) << eventsName.out;

  auto version = host_->cli({"version"});
  ASSERT_EQ(version.exitCode, 0) << version.err;
  EXPECT_EQ(version.out, std::string("qabox ") + QABOX_VERSION + "\nqaboxd " + hs.version() +
                             " at " + endpoint() + "\n");
  auto versionJson = host_->cli({"version", "-o", "json"});
  ASSERT_EQ(versionJson.exitCode, 0) << versionJson.err;
  // Not a proto message, so any JSON object will do: Struct takes them all.
  auto versions2 = parseJson<google::protobuf::Struct>(versionJson.out);
  EXPECT_EQ(versions2.fields().at("agent_version").string_value(), hs.version());
  EXPECT_EQ(versions2.fields().at("client_version").string_value(), QABOX_VERSION);
}

TEST_F(LxcCli, BashCompletionAsksTheRealAgentForTickets) {
  ASSERT_EQ(host_->cli({"deploy", "EXMP-1"}).exitCode, 0);
  ASSERT_EQ(host_->cli({"deploy", "EXMP-22"}).exitCode, 0);
  auto script = host_->cli({"completion", "bash"});
  ASSERT_EQ(script.exitCode, 0) << script.err;
  EXPECT_TRUE(contains(script.out, "complete -F _qabox qabox"));
  std::string file = host_->stateDir() + "/completion.bash";
  std::ofstream(file) << script.out;
  // COMP_WORDS as bash would split `qabox --endpoint E get EXMP-`, with the
  // line's --endpoint passed on to the agent query.
  auto r = shell("source " + file +
                 "; COMP_WORDS=(\"$Q\" --endpoint \"$E\" get EXMP-); COMP_CWORD=4; _qabox; "
                 "printf '%s\\n' \"${COMPREPLY[@]}\" | sort");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "EXMP-1\nEXMP-22\n");
  auto images = shell("source " + file +
                      "; COMP_WORDS=(\"$Q\" --endpoint \"$E\" image rm ''); COMP_CWORD=5; _qabox; "
                      "printf '%s\\n' \"${COMPREPLY[@]}\"");
  EXPECT_EQ(images.out, shippedRecipes()) << images.err;
}

TEST_F(LxcCli, NameOutputDrivesAShellLoop) {
  std::set<std::string> tickets = {"LOOP-1", "LOOP-2", "LOOP-3"};
  for (const auto& t : tickets) ASSERT_EQ(host_->cli({"deploy", t}).exitCode, 0) << t;

  auto r = shell(
      "for t in $(\"$Q\" --endpoint \"$E\" list -o name); do\n"
      "  \"$Q\" --endpoint \"$E\" get \"$t\" -o json\n"
      "done");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
  std::set<std::string> seen;
  for (const auto& env : parseJsonLines<v1::Environment>(r.out)) {
    seen.insert(env.ticket());
    EXPECT_EQ(env.state(), v1::Environment::READY);
  }
  EXPECT_EQ(seen, tickets);

  // The same idiom tears everything down, and exit codes stop the loop.
  auto del = shell(
      "for t in $(\"$Q\" --endpoint \"$E\" ls -o name); do\n"
      "  \"$Q\" --endpoint \"$E\" rm \"$t\" -o name\n"
      "done\n"
      "\"$Q\" --endpoint \"$E\" get LOOP-1 || echo \"exit $?\"");
  EXPECT_EQ(del.exitCode, 0) << del.err;
  auto out = lines(del.out);
  ASSERT_EQ(out.size(), 4u) << del.out;
  EXPECT_EQ(std::set<std::string>(out.begin(), out.end() - 1), tickets);
  EXPECT_EQ(out.back(), "exit 3");
  EXPECT_TRUE(host_->containers().empty());
}

TEST_F(LxcCli, GlobalOptionsGoBeforeOrAfterTheCommand) {
  ASSERT_EQ(host_->cli({"deploy", "GLOB-1"}).exitCode, 0);
  const std::string e = endpoint();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--endpoint", e, "-o", "json", "get", "GLOB-1"},
           {"get", "GLOB-1", "--endpoint", e, "-o", "json"},
           {"-o", "json", "get", "--endpoint=" + e, "GLOB-1"},
           {"--endpoint", e, "get", "GLOB-1", "--output", "json"},
           {"--output=json", "get", "GLOB-1", "--endpoint", e},
       }) {
    auto r = qabox(args);
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    ASSERT_EQ(r.exitCode, 0) << shown << ": " << r.err;
    EXPECT_EQ(parseJson<v1::Environment>(r.out).ticket(), "GLOB-1") << shown;
  }
  // Nested commands take them too.
  auto images = qabox({"image", "ls", "-o", "name", "--endpoint", e});
  EXPECT_EQ(images.exitCode, 0) << images.err;
  EXPECT_EQ(images.out, shippedRecipes());
  // The environment variable, and the flag over it.
  auto fromEnv = qabox({"list", "-o", "name"}, {{"QABOX_ENDPOINT", e}});
  EXPECT_EQ(fromEnv.exitCode, 0) << fromEnv.err;
  EXPECT_EQ(fromEnv.out, "GLOB-1\n");
  auto flagWins = qabox({"list", "-o", "name", "--endpoint", e},
                        {{"QABOX_ENDPOINT", "unix://" + host_->stateDir() + "/nothing.sock"}});
  EXPECT_EQ(flagWins.exitCode, 0) << flagWins.err;
  EXPECT_EQ(flagWins.out, "GLOB-1\n");
}

TEST_F(LxcCli, UsageErrorsExit2WithUsageOnStderrAndHelpDocumentsExitCodes) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"list", "--bogus"},
           {"--bogus", "list"},
           {"frobnicate"},
           {"get"},
           {"get", "A", "B"},
           {"-o", "yaml", "list"},
           {"deploy", "X-1", "--ttl", "soon"},
           {"image"},
           {"completion", "fish"},
           {},
       }) {
    auto r = host_->cli(args);
    std::string shown = args.empty() ? "(nothing)" : args[0];
    EXPECT_EQ(r.exitCode, 2) << shown << ": " << r.err;
    EXPECT_EQ(r.out, "") << shown;
    EXPECT_EQ(r.err.rfind("qabox: ", 0), 0u) << r.err;
    EXPECT_TRUE(contains(r.err, "Usage: qabox")) << r.err;
  }
  EXPECT_TRUE(contains(host_->cli({"get"}).err, "Usage: qabox get"));
  EXPECT_TRUE(contains(host_->cli({"frobnicate"}).err, "unknown command \"frobnicate\""));
  // Usage errors are caught before the agent is asked for anything.
  EXPECT_FALSE(contains(host_->cli({"deploy", "X-1", "--ttl", "soon"}).err, "X-1"));
  EXPECT_EQ(host_->cli({"list", "-o", "name"}).out, "");

  auto help = qabox({"--help"});
  EXPECT_EQ(help.exitCode, 0);
  for (const char* line :
       {"Exit codes:", "0  ok", "1  error", "2  usage", "3  not found", "4  conflict",
        "5  unauthenticated", "6  unavailable", "7  deploy failed"}) {
    EXPECT_TRUE(contains(help.out, line)) << line << " missing in --help:\n" << help.out;
  }
}

TEST_F(LxcCli, AgentErrorsExitWithTheirCodeAndMessage) {
  // 1: the agent judged the input.
  auto invalid = host_->cli({"deploy", "../x"});
  EXPECT_EQ(invalid.exitCode, 1) << invalid.err;
  EXPECT_EQ(invalid.out, "");
  EXPECT_TRUE(contains(invalid.err, "qabox: ticket \"../x\": only letters, digits and '-'"))
      << invalid.err;

  // 3: not found, whatever the command.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"get", "NOPE-1"},
           {"delete", "NOPE-1"},
           {"pin", "NOPE-1"},
           {"unpin", "NOPE-1"},
           {"logs", "NOPE-1"},
           {"exec", "NOPE-1", "--", "true"},
           {"get", "NOPE-1", "-o", "json"},
       }) {
    auto r = host_->cli(args);
    EXPECT_EQ(r.exitCode, 3) << args[0] << ": " << r.err;
    EXPECT_EQ(r.out, "") << args[0];
    EXPECT_EQ(r.err.rfind("qabox: ", 0), 0u) << r.err;
    EXPECT_TRUE(contains(r.err, "NOPE-1")) << args[0] << ": " << r.err;
  }
  auto branch = deployRepo("X-1", "feature/none");
  EXPECT_EQ(branch.exitCode, 3) << branch.err;
  EXPECT_TRUE(contains(branch.err, "feature/none")) << branch.err;

  // 4: the ticket exists with another spec.
  ASSERT_EQ(host_->cli({"deploy", "TAKEN-1"}).exitCode, 0);
  auto taken = deployRepo("TAKEN-1", "feature/EXMP-113", {"-o", "json"});
  EXPECT_EQ(taken.exitCode, 4) << taken.err;
  EXPECT_EQ(taken.out, "") << "no JSON on stdout when the deploy was refused";
  EXPECT_TRUE(contains(taken.err, "TAKEN-1")) << taken.err;
  EXPECT_TRUE(contains(taken.err, "already deployed")) << taken.err;

  // 4: a merge conflict, with the path named.
  git_->checkout("feature/clash", true);
  git_->write("www/shared.txt", "the feature's version\n");
  git_->commit("clash");
  git_->push("feature/clash");
  git_->checkout("develop");
  git_->write("www/shared.txt", "develop's version\n");
  git_->commit("clash on develop");
  git_->push("develop");
  auto clash = deployRepo("CLASH-1", "feature/clash");
  EXPECT_EQ(clash.exitCode, 4) << clash.err;
  EXPECT_TRUE(contains(clash.err, "www/shared.txt")) << clash.err;
  EXPECT_EQ(host_->cli({"get", "CLASH-1"}).exitCode, 3);
}

TEST_F(LxcCli, FailedDeployExits7AndStillPrintsTheEnvironment) {
  git_->checkout("feature/broken", true);
  git_->write("build.sh", "echo compiling widgets\necho 'widget.c:3: missing ;' >&2\nexit 3\n");
  git_->commit("break the build");
  git_->push("feature/broken");
  git_->checkout("develop");

  auto r = deployRepo("BROKEN-1", "feature/broken", {"-o", "json"});
  EXPECT_EQ(r.exitCode, 7) << r.err;
  auto env = parseJson<v1::Environment>(r.out);
  EXPECT_EQ(env.ticket(), "BROKEN-1");
  EXPECT_EQ(env.state(), v1::Environment::FAILED);
  EXPECT_TRUE(contains(env.message(), "exit code 3")) << env.message();
  EXPECT_TRUE(contains(r.err, "qabox: deploy of BROKEN-1 failed")) << r.err;
  EXPECT_TRUE(contains(r.err, "qabox logs BROKEN-1 --deploy")) << r.err;
  auto logs = host_->cli({"logs", "BROKEN-1", "--deploy"});
  EXPECT_TRUE(contains(logs.out, "compiling widgets")) << logs.out;

  // A failing health check is a failed deploy too; the table names the state.
  git_->checkout("feature/sick", true);
  git_->write("build.sh", "mkdir -p www; echo built\n");
  git_->commit("no health page");
  git_->push("feature/sick");
  git_->checkout("develop");
  auto sick = deployRepo("SICK-1", "feature/sick");
  EXPECT_EQ(sick.exitCode, 7) << sick.err;
  EXPECT_EQ(sick.out.rfind("SICK-1 FAILED", 0), 0u) << sick.out;
  EXPECT_TRUE(contains(sick.err, "health")) << sick.err;
}

TEST_F(LxcCli, UnreachableAgentExits6AndNamesTheEndpoint) {
  const std::string dead = "unix://" + deadSocket();
  const std::string missing = "unix://" + host_->stateDir() + "/nothing-here.sock";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"list"}, {"get", "EXMP-1", "-o", "json"}, {"deploy", "EXMP-1"}, {"status"}}) {
    for (const auto& endpoint : {dead, missing}) {
      std::vector<std::string> all = {"--endpoint", endpoint};
      all.insert(all.end(), args.begin(), args.end());
      auto r = qabox(all);
      EXPECT_EQ(r.exitCode, 6) << args[0] << " " << endpoint << ": " << r.err;
      EXPECT_EQ(r.out, "") << args[0];
      EXPECT_EQ(
          r.err.rfind("qabox: cannot reach the agent at " + endpoint + " (from --endpoint)", 0), 0u)
          << r.err;
    }
  }
  auto fromEnv = qabox({"list"}, {{"QABOX_ENDPOINT", dead}});
  EXPECT_EQ(fromEnv.exitCode, 6);
  EXPECT_TRUE(contains(fromEnv.err, dead + " (from QABOX_ENDPOINT)")) << fromEnv.err;
  // version still answers for the CLI itself, and says why the agent's is missing.
  auto version = qabox({"version", "--endpoint", dead});
  EXPECT_EQ(version.exitCode, 0);
  EXPECT_EQ(version.out, std::string("qabox ") + QABOX_VERSION + "\n");
  EXPECT_TRUE(contains(version.err, "cannot reach the agent at " + dead)) << version.err;
  // The same agent, stopped, is unreachable the same way.
  host_->stopDaemon();
  auto stopped = host_->cli({"list"});
  EXPECT_EQ(stopped.exitCode, 6) << stopped.err;
  EXPECT_TRUE(contains(stopped.err, endpoint())) << stopped.err;
}

// README "Other clients": a client generated from proto/ in another language
// talks to the same socket.
TEST_F(LxcCli, PythonClientGeneratedFromTheProtoListsEnvironments) {
  ASSERT_EQ(host_->cli({"deploy", "PY-1"}).exitCode, 0);
  ASSERT_EQ(deployRepo("PY-2", "feature/EXMP-113").exitCode, 0) << host_->logText();
  const std::string script = sourceDir() + "/scripts/clients/python/list_environments.py";
  // Debian's interpreter: python3-grpcio is installed for it, not for others on PATH.
  auto r = run({"/usr/bin/python3", script, endpoint()}, {});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::string commit = host_->env("PY-2")->commit().substr(0, 12);
  EXPECT_EQ(lineSet(r.out), (std::set<std::string>{"PY-1\tREADY\t" + url("py-1") + "\t",
                                                   "PY-2\tREADY\t" + url("py-2") + "\t" + commit}))
      << r.out;
  auto dead = run({"/usr/bin/python3", script, "unix://" + deadSocket()}, {});
  EXPECT_EQ(dead.exitCode, 6);
  EXPECT_TRUE(contains(dead.err, "UNAVAILABLE")) << dead.err;
}

}  // namespace
}  // namespace qabox::testing
