#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include "netns_fixture.h"
#include "sys/process.h"

extern char** environ;

namespace qabox::testing {
namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

std::string binDir() { return QABOX_BINARY_DIR; }
std::string sourceDir() { return QABOX_SOURCE_DIR; }

bool inCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

bool lxcAvailable(std::string* why) {
  if (geteuid() != 0) {
    *why = "not running as root";
    return false;
  }
  if (!fs::exists("/usr/bin/lxc-start") || !fs::exists("/bin/busybox")) {
    *why = "lxc or busybox-static is not installed (scripts/install-deps.sh)";
    return false;
  }
  if (!fs::exists("/sys/fs/cgroup")) {
    *why = "no cgroup filesystem";
    return false;
  }
  return true;
}

std::string randomId() {
  std::random_device rd;
  std::mt19937 gen(rd() ^ static_cast<unsigned>(getpid()));
  const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 6; ++i) id += hex[gen() % 16];
  return id;
}

std::string maskedFrame(uint8_t opcode, const std::string& payload, uint32_t key) {
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  size_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else if (n <= 0xffff) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((n >> (8 * i)) & 0xff);
  }
  char k[4] = {static_cast<char>(key >> 24), static_cast<char>(key >> 16),
               static_cast<char>(key >> 8), static_cast<char>(key)};
  f.append(k, 4);
  for (size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ k[i % 4]);
  return f;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

long procStatusKb(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

RawClient::RawClient(uint16_t port) : RawClient("127.0.0.1", port) {}

RawClient::RawClient(const std::string& ip, uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(std::string_view bytes, std::chrono::milliseconds timeout) {
  while (!bytes.empty()) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string RawClient::recvSome(size_t max, std::chrono::milliseconds timeout) {
  if (!pending_.empty()) return std::exchange(pending_, {});
  if (eof_) return {};
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
  std::string buf(max, '\0');
  ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
  if (n <= 0) {
    eof_ = true;
    return {};
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

std::string RawClient::readUntil(std::string_view marker, std::chrono::milliseconds timeout) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (size_t at = got.find(marker); at != std::string::npos) {
      pending_ = got.substr(at + marker.size());
      got.resize(at + marker.size());
      return got;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    std::string more = recvSome(64 * 1024, std::max(left, std::chrono::milliseconds(1)));
    if (more.empty() && eof_) break;
    got += more;
  }
  return got;
}

std::string RawClient::readAll(std::chrono::milliseconds timeout) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!eof_ && std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    got += recvSome(64 * 1024, std::max(left, std::chrono::milliseconds(1)));
  }
  return got;
}

int spawnLogged(const std::vector<std::string>& argv, const std::string& log,
                const std::map<std::string, std::string>& env) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  std::vector<std::string> envText;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (!env.contains(std::string(kv.substr(0, kv.find('='))))) envText.emplace_back(kv);
  }
  for (const auto& [k, v] : env) envText.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : envText) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int stopChild(int pid, int signal) {
  if (pid <= 0) return -1;
  kill(pid, signal);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TestPki::TestPki(std::string dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }

void TestPki::openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  auto r = runOrDie(args, dir_);
  ASSERT_EQ(r.exitCode, 0) << "openssl " << args[1] << ": " << r.err;
}

void TestPki::ca(const std::string& name) {
  openssl({"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
           name + ".key"});
  openssl({"req", "-x509", "-new", "-key", name + ".key", "-out", name + ".crt", "-days", "2",
           "-subj", "/CN=" + name});
}

void TestPki::leaf(const std::string& name, const std::string& caName, const std::string& ext) {
  openssl({"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
           name + ".key"});
  openssl({"req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name});
  std::ofstream(path(name + ".ext")) << ext;
  openssl({"x509", "-req", "-in", name + ".csr", "-CA", caName + ".crt", "-CAkey", caName + ".key",
           "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext"});
}

ProcessResult runOrDie(const std::vector<std::string>& argv, const std::string& cwd) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = argv;
  if (!cwd.empty()) spec.cwd = cwd;
  spec.timeout = std::chrono::seconds(60);
  auto r = runner.run(spec);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  if (!r) return {};
  return *r;
}

uint16_t freeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

HttpReply httpGet(const std::string& ip, uint16_t port, const std::string& path,
                  const std::string& host, std::chrono::milliseconds timeout) {
  HttpReply reply;
  try {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address(ip), port));
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, host.empty() ? ip : host);
    req.set(http::field::connection, "close");
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    reply.status = static_cast<int>(res.result_int());
    reply.body = res.body();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(f.value());
    }
  } catch (const std::exception& e) {
    reply.error = e.what();
  }
  return reply;
}

GitFixture::GitFixture(const std::string& dir) : work_(dir + "/work"), bare_(dir + "/remote.git") {
  fs::create_directories(work_);
  git({"init", "-q", "-b", "develop"});
  git({"config", "user.name", "Test"});
  git({"config", "user.email", "test@localhost"});
  runOrDie({"git", "init", "-q", "--bare", bare_});
  git({"remote", "add", "origin", bare_});
}

std::string GitFixture::git(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"git", "-C", work_};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = runOrDie(argv);
  EXPECT_EQ(r.exitCode, 0) << "git " << args.front() << ": " << r.err;
  return r.out;
}

void GitFixture::write(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(work_ + "/" + path).parent_path());
  std::ofstream(work_ + "/" + path) << content;
}

void GitFixture::makeExecutable(const std::string& path) {
  fs::permissions(work_ + "/" + path,
                  fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add);
}

void GitFixture::remove(const std::string& path) { git({"rm", "-q", path}); }

void GitFixture::commit(const std::string& message) {
  git({"add", "-A"});
  git({"commit", "-q", "-m", message});
}

void GitFixture::checkout(const std::string& branch, bool create) {
  if (create) {
    git({"checkout", "-q", "-b", branch});
  } else {
    git({"checkout", "-q", branch});
  }
}

void GitFixture::push(const std::string& branch) { git({"push", "-q", "-f", "origin", branch}); }

void GitFixture::deleteRemoteBranch(const std::string& branch) {
  git({"push", "-q", "origin", "--delete", branch});
}

std::string GitFixture::head() {
  std::string h = git({"rev-parse", "HEAD"});
  while (!h.empty() && h.back() == '\n') h.pop_back();
  return h;
}

std::string unusedSubnet(const std::string& base) {
  std::string used = runOrDie({"ip", "-4", "-o", "addr", "show"}).out;
  std::vector<int> free;
  for (int n = 1; n <= 250; ++n) {
    if (used.find(" " + base + "." + std::to_string(n) + ".") == std::string::npos) {
      free.push_back(n);
    }
  }
  std::random_device rd;
  int n = free.empty() ? static_cast<int>(rd() % 250 + 1) : free[rd() % free.size()];
  return base + "." + std::to_string(n) + ".0/24";
}

TestHost::TestHost() : TestHost(Options{}) {}

TestHost::TestHost(Options options) : options_(std::move(options)) {
  id_ = randomId();
  stateDir_ = options_.stateDirParent + "/qabox-it-" + id_;
  bridge_ = "qbt" + id_;
  subnet_ = unusedSubnet("10.213");
  routerPort_ = freeTcpPort();
  fs::create_directories(stateDir_);
  writeConfig(options_);
}

void TestHost::writeConfig(const Options& o) {
  options_ = o;
  std::ofstream cfg(stateDir_ + "/qaboxd.toml");
  cfg << "state_dir = \"" << stateDir_ << "\"\n"
      << "images_dir = \"" << sourceDir() << "/images\"\n"
      << "log_level = \"debug\"\n"
      << "[api]\nlisten = [\"unix://" << socket() << "\"";
  for (const auto& l : o.extraListen) cfg << ", \"" << l << "\"";
  cfg << "]\n"
      << o.apiToml << "\n"
      << "[network]\nbridge = \"" << bridge_ << "\"\nsubnet = \"" << subnet_ << "\"\n"
      << (o.egress.empty() ? "" : "egress = " + o.egress + "\n") << o.networkToml << "\n"
      << "[routing]\ndomain = \"" << domain_ << "\"\nlisten = \"" << o.routerHost << ":"
      << routerPort_ << "\"\nstats_flush_interval = \"1s\"\n"
      << o.routingToml << "\n"
      << "[limits]\nmax_environments = " << o.maxEnvironments << "\n"
      << o.limitsToml << "\n"
      << "[deploy]\nhealth_timeout = \"" << o.healthTimeout << "\"\n"
      << o.deployToml << "\n"
      << "[metrics]\nlisten = \"" << o.metricsListen << "\"\n";
  for (const auto& [name, url] : o.repos) {
    cfg << "[[repos]]\nname = \"" << name << "\"\nurl = \"" << url << "\"\n";
  }
  cfg << o.extraToml << "\n";
}

TestHost::~TestHost() { cleanup(); }

void TestHost::cleanup() {
  if (daemonPid_ > 0) killDaemon();
  std::string helper = binDir() + "/agent/runtime/qabox-lxc";
  std::error_code ec;
  for (const auto& path : {lxcPath(), stateDir_ + "/images"}) {
    for (const auto& e : fs::directory_iterator(path, ec)) {
      RealProcessRunner runner;
      ProcessSpec spec;
      spec.argv = inNetns(options_.netns, {helper, "destroy", path, e.path().filename()});
      spec.timeout = std::chrono::seconds(30);
      (void)runner.run(spec);
    }
  }
  // In a namespace of its own, the bridge and the firewall go with it.
  if (options_.netns.empty()) {
    if (fs::exists("/sys/class/net/" + bridge_)) runOrDie({"ip", "link", "del", bridge_});
    // The agent's firewall tables for the bridge (named after it; absent is fine).
    for (const char* family : {"inet", "bridge"}) {
      (void)runOrDie({"nft", "delete", "table", family, "qabox_" + bridge_});
    }
  }
  if (!std::getenv("QABOX_KEEP_TEST_STATE")) fs::remove_all(stateDir_, ec);
}

void TestHost::startWithBusybox() {
  startDaemon();
  CliResult r = cli({"image", "build", "busybox"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
}

void TestHost::launchDaemon() {
  ASSERT_LT(daemonPid_, 0) << "daemon already running";
  std::string bin = binDir() + "/agent/daemon/qaboxd";
  std::vector<std::string> argv = inNetns(options_.netns, {bin, "--config=" + configPath()});
  int pid = spawnLogged(argv, stateDir_ + "/qaboxd.log", options_.daemonEnv);
  ASSERT_GT(pid, 0) << "cannot start " << bin;
  daemonPid_ = pid;
}

void TestHost::startDaemon() {
  launchDaemon();
  if (::testing::Test::HasFatalFailure()) return;
  for (int i = 0; i < 300; ++i) {
    if (cli({"status", "-o", "json"}).exitCode == 0) return;
    int status = 0;
    if (waitpid(daemonPid_, &status, WNOHANG) == daemonPid_) {
      daemonPid_ = -1;
      FAIL() << "qaboxd exited at start:\n" << logText();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL() << "qaboxd did not answer within 15s:\n" << logText();
}

bool TestHost::daemonRunning() {
  if (daemonPid_ <= 0) return false;
  int status = 0;
  return waitpid(daemonPid_, &status, WNOHANG) == 0;
}

void TestHost::killDaemon() {
  if (daemonPid_ <= 0) return;
  stopChild(daemonPid_, SIGKILL);
  daemonPid_ = -1;
}

std::optional<int> TestHost::waitDaemon(std::chrono::milliseconds timeout) {
  if (daemonPid_ <= 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    if (waitpid(daemonPid_, &status, WNOHANG) == daemonPid_) {
      daemonPid_ = -1;
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int TestHost::stopDaemon() {
  int code = stopChild(daemonPid_, SIGTERM);
  daemonPid_ = -1;
  return code;
}

std::vector<std::string> TestHost::violations() {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = inNetns(options_.netns,
                      {binDir() + "/agent/daemon/qaboxd", "--config=" + configPath(), "--check"});
  spec.timeout = std::chrono::seconds(60);
  auto r = runner.run(spec);
  if (!r) return {"check failed: " + r.status().message()};
  if (r->exitCode != 0 && r->exitCode != 1) {
    return {"check failed (exit " + std::to_string(r->exitCode) + "): " + r->err};
  }
  std::vector<std::string> lines;
  std::istringstream in(r->out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  if (r->exitCode == 1 && lines.empty()) return {"check failed: exit 1 with nothing named"};
  // Past the first 1000, stderr says how many more there were.
  if (size_t at = r->err.find("... and "); at != std::string::npos) {
    lines.push_back(r->err.substr(at, r->err.find('\n', at) - at));
  }
  return lines;
}

CliResult TestHost::cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> all = {"--endpoint", "unix://" + socket()};
  all.insert(all.end(), args.begin(), args.end());
  return cliRaw(all, {}, timeout);
}

CliResult TestHost::cliRaw(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& extraEnv,
                           std::chrono::milliseconds timeout) {
  RealProcessRunner runner;
  ProcessSpec spec;
  spec.argv = {binDir() + "/agent/cli/qabox"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.timeout = timeout;
  std::map<std::string, std::string> env;
  env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin";
  env["HOME"] = stateDir_;
  env["NO_COLOR"] = "1";
  for (const auto& [k, v] : extraEnv) env[k] = v;
  spec.env = env;
  auto r = runner.run(spec);
  if (!r) return {-1, "", r.status().toString()};
  return {r->exitCode, r->out, r->err};
}

int TestHost::cliAsync(const std::vector<std::string>& args) {
  std::vector<std::string> all = {binDir() + "/agent/cli/qabox", "--endpoint",
                                  "unix://" + socket()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

std::unique_ptr<GitFixture> TestHost::appRepo(const std::map<std::string, std::string>& files) {
  auto git = std::make_unique<GitFixture>(stateDir_ + "/src");
  for (const auto& [path, content] : files) {
    git->write(path, content);
    if (path.find("cgi-bin/") != std::string::npos) git->makeExecutable(path);
  }
  git->commit("app");
  git->push("develop");
  return git;
}

std::string TestHost::createToken(const std::string& name, const std::string& role,
                                  const std::string& ttl) {
  std::vector<std::string> args = {"token", "create", "--role", role, "--name", name};
  if (!ttl.empty()) args.insert(args.end(), {"--ttl", ttl});
  auto r = cli(args);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  std::string secret = r.out;
  while (!secret.empty() && secret.back() == '\n') secret.pop_back();
  EXPECT_EQ(secret.rfind("qbx_", 0), 0u) << secret;
  return secret;
}

std::optional<v1::Environment> TestHost::env(const std::string& ticket) {
  auto r = cli({"get", ticket, "-o", "json"});
  if (r.exitCode != 0) return std::nullopt;
  v1::Environment e;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto s = google::protobuf::util::JsonStringToMessage(r.out, &e, opts);
  EXPECT_TRUE(s.ok()) << "not protobuf JSON: " << r.out;
  return e;
}

std::vector<std::string> TestHost::containers() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(lxcPath(), ec)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> TestHost::bridgePorts() {
  std::vector<std::string> out;
  std::error_code ec;
  if (!options_.netns.empty()) {
    // This process's /sys is of its own namespace.
    auto r = runOrDie(inNetns(options_.netns, {"ls", "/sys/class/net/" + bridge_ + "/brif"}));
    std::istringstream in(r.out);
    for (std::string port; in >> port;) out.push_back(port);
    return out;
  }
  for (const auto& e : fs::directory_iterator("/sys/class/net/" + bridge_ + "/brif", ec)) {
    out.push_back(e.path().filename());
  }
  return out;
}

std::vector<std::string> TestHost::overlayDirs() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(lxcPath(), ec)) {
    if (fs::exists(e.path() / "overlay")) out.push_back(e.path() / "overlay");
  }
  return out;
}

int TestHost::leaseCount() {
  auto r = runOrDie({"sqlite3", stateDir_ + "/qabox.db", "SELECT count(*) FROM leases"});
  return r.exitCode == 0 ? std::stoi(r.out) : -1;
}

std::string TestHost::logText() {
  std::ifstream in(stateDir_ + "/qaboxd.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 6000 ? s.substr(s.size() - 6000) : s;
}

LoopExt4::LoopExt4(const std::string& prefix, const std::string& size) {
  std::random_device rd;
  dir_ = prefix + std::to_string(rd() % 1000000);
  fs::create_directories(dir_ + "/mnt");
  ok_ = runOrDie({"truncate", "-s", size, dir_ + "/img"}).exitCode == 0 &&
        runOrDie({"mkfs.ext4", "-q", "-F", "-m", "0", dir_ + "/img"}).exitCode == 0 &&
        runOrDie({"mount", "-o", "loop", dir_ + "/img", dir_ + "/mnt"}).exitCode == 0;
  mounted_ = ok_;
  // The containers' mapped root must traverse it.
  if (ok_) fs::permissions(mnt(), fs::perms(0755));
}

LoopExt4::~LoopExt4() {
  if (mounted_ && runOrDie({"umount", mnt()}).exitCode != 0) {
    (void)runOrDie({"umount", "-l", mnt()});
  }
  std::error_code ec;
  // Never through a filesystem still mounted.
  if (!mounted_ || runOrDie({"mountpoint", "-q", mnt()}).exitCode != 0) fs::remove_all(dir_, ec);
}

uint64_t LoopExt4::available() const {
  struct statvfs v {};
  if (statvfs(mnt().c_str(), &v) != 0) return 0;
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

LoopBtrfs::LoopBtrfs(const std::string& dir, const std::string& size) : dir_(dir) {
  fs::create_directories(mnt());
  fs::permissions(dir_, fs::perms(0711));
  if (runOrDie({"truncate", "-s", size, dir_ + "/pool.img"}).exitCode != 0) return;
  ProcessResult dev = runOrDie({"losetup", "--find", "--show", dir_ + "/pool.img"});
  if (dev.exitCode != 0) return;
  device_ = dev.out.substr(0, dev.out.find('\n'));
  if (runOrDie({"mkfs.btrfs", "-q", device_}).exitCode != 0) return;
  if (runOrDie({"mount", device_, mnt()}).exitCode != 0) return;
  mounted_ = true;
  fs::permissions(mnt(), fs::perms(0711));
}

LoopBtrfs::~LoopBtrfs() {
  bool unmounted = !mounted_ || runOrDie({"umount", mnt()}).exitCode == 0 ||
                   runOrDie({"umount", "-l", mnt()}).exitCode == 0;
  if (!device_.empty()) (void)runOrDie({"losetup", "-d", device_});
  std::error_code ec;
  // Never through a pool still mounted: its files are not ours to remove.
  if (unmounted) fs::remove_all(dir_, ec);
}

}  // namespace qabox::testing
