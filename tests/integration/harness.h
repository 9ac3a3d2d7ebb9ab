#pragma once

// What every integration test stands on: its own state dir, lxcpath, bridge,
// subnet, socket and router port; the real qaboxd started as a process; the
// real qabox CLI; real HTTP. Everything a test makes is destroyed when its
// TestHost goes, also when the test fails.

#include <grpcpp/support/sync_stream.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qabox/v1/qabox.pb.h"
#include "sys/process.h"

namespace qabox::testing {

// Fails (CI=true) or skips (a developer's machine) unless this process is
// root and LXC can run containers.
bool lxcAvailable(std::string* why);
#define QABOX_REQUIRE_LXC()                                                         \
  do {                                                                              \
    std::string why_;                                                               \
    if (!::qabox::testing::lxcAvailable(&why_)) {                                   \
      if (::qabox::testing::inCi()) FAIL() << "needs root and LXC in CI: " << why_; \
      GTEST_SKIP() << "needs root and LXC: " << why_;                               \
    }                                                                               \
  } while (0)
bool inCi();

struct CliResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string error;
};

// GET http://ip:port/path with the given Host header, over a new connection.
HttpReply httpGet(const std::string& ip, uint16_t port, const std::string& path,
                  const std::string& host = "",
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));

uint16_t freeTcpPort();

// Six random hex digits: names a test's own bridge, namespace, state dir.
std::string randomId();
// A BASE.N.0/24 ("10.213") that no interface on the host has an address
// in, so test hosts running side by side (or a bridge a crashed run left)
// never share a route. Random among the free ones, so two hosts made at
// once rarely pick the same one either.
std::string unusedSubnet(const std::string& base);

// A /proc/PID/status field in kB ("VmRSS"); -1 when it cannot be read.
long procStatusKb(int pid, const std::string& field);

// A plain socket to the router on loopback, for bytes no HTTP library would
// send and for bodies too big to hold. Every wait is bounded.
class RawClient {
 public:
  explicit RawClient(uint16_t port);  // on loopback
  RawClient(const std::string& ip, uint16_t port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool eof() const { return eof_; }
  int fd() const { return fd_; }

  // False when the peer stopped taking bytes for `timeout`, or failed.
  bool send(std::string_view bytes, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // What arrives next (bytes already read past a readUntil first); empty at
  // EOF, on an error (both set eof()) or after `timeout` without a byte.
  std::string recvSome(size_t max, std::chrono::milliseconds timeout);
  // Up to and including `marker`; keeps what came after it for the next read.
  std::string readUntil(std::string_view marker,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Everything until the peer closes, or what came within `timeout`.
  std::string readAll(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  int fd_ = -1;
  bool eof_ = false;
  std::string pending_;
};

// A masked client websocket frame (RFC 6455 5.2).
std::string maskedFrame(uint8_t opcode, const std::string& payload, uint32_t key);

// A file's bytes; "" when it cannot be read.
std::string readFile(const std::string& path);
bool contains(const std::string& haystack, const std::string& needle);

// Reads a server stream to its end; its status.
template <typename Message>
grpc::Status drain(std::unique_ptr<grpc::ClientReader<Message>> reader) {
  Message m;
  while (reader->Read(&m)) {
  }
  return reader->Finish();
}

// Runs argv (in cwd when given) for at most a minute; a failure to run is a
// test failure. The exit code and output are the caller's to check.
ProcessResult runOrDie(const std::vector<std::string>& argv, const std::string& cwd = "");

// Starts argv[0] in the background: stdin /dev/null, stdout and stderr
// appended to `log`, the test's environment plus `env` ("K=V", replacing
// the same K). The pid, or -1 when it could not be started.
int spawnLogged(const std::vector<std::string>& argv, const std::string& log,
                const std::map<std::string, std::string>& env = {});
// Sends `signal` to a child from spawnLogged and reaps it: its exit code, or
// 128 + the signal that ended it.
int stopChild(int pid, int signal);

// A throwaway PKI made with the openssl CLI in `dir`: P-256 keys,
// certificates valid for two days. Failures are test failures.
class TestPki {
 public:
  explicit TestPki(std::string dir);
  void ca(const std::string& name);  // <name>.key and a self-signed <name>.crt
  // <name>.key and <name>.crt signed by `caName`, with `ext` as its
  // extensions (openssl x509 -extfile).
  void leaf(const std::string& name, const std::string& caName, const std::string& ext);
  std::string path(const std::string& file) const { return dir_ + "/" + file; }

 private:
  void openssl(std::vector<std::string> args);
  std::string dir_;
};

// A sparse file of `size` (truncate's units) on a loop device of its own,
// btrfs, mounted at `mnt()` (0711): a data pool (storage.data_pool) for a
// test. Unmounted and detached when it goes, also when the test failed,
// and `dir` removed. Keep `dir` out of a TestHost's state dir: the host
// removes that before the pool is unmounted.
class LoopBtrfs {
 public:
  explicit LoopBtrfs(const std::string& dir, const std::string& size = "1G");
  ~LoopBtrfs();
  LoopBtrfs(const LoopBtrfs&) = delete;
  LoopBtrfs& operator=(const LoopBtrfs&) = delete;
  bool ok() const { return mounted_; }
  std::string mnt() const { return dir_ + "/pool"; }

 private:
  std::string dir_, device_;
  bool mounted_ = false;
};

// A scratch git repository with helpers to build branches; `bare()` is the
// remote the agent fetches from.
// A small ext4 filesystem on a loop device (no reserved blocks, so "full"
// is real), mounted for one test at `<prefix><random>/mnt` and gone after
// it, also when the test fails.
class LoopExt4 {
 public:
  explicit LoopExt4(const std::string& prefix = "/tmp/qabox-disk-",
                    const std::string& size = "256M");
  ~LoopExt4();
  LoopExt4(const LoopExt4&) = delete;
  LoopExt4& operator=(const LoopExt4&) = delete;
  bool ok() const { return ok_; }
  std::string mnt() const { return dir_ + "/mnt"; }
  uint64_t available() const;  // bytes an unprivileged writer may still use

 private:
  std::string dir_;
  bool ok_ = false;
  bool mounted_ = false;
};

class GitFixture {
 public:
  explicit GitFixture(const std::string& dir);
  void write(const std::string& path, const std::string& content);
  void remove(const std::string& path);
  void makeExecutable(const std::string& path);
  void commit(const std::string& message);
  void checkout(const std::string& branch, bool create = false);
  void push(const std::string& branch);  // to the bare remote
  void deleteRemoteBranch(const std::string& branch);
  std::string head();
  std::string bare() const { return bare_; }
  std::string git(const std::vector<std::string>& args);

 private:
  std::string work_;
  std::string bare_;
};

class TestHost {
 public:
  struct Options {
    uint32_t maxEnvironments = 20;
    std::string extraToml;                 // appended to the generated config
    std::string routingToml;               // appended to its [routing] table
    std::vector<std::string> extraListen;  // api.listen addresses beside the unix socket
    std::string apiToml;                   // more keys for the [api] table
    std::vector<std::pair<std::string, std::string>> repos;  // name, url
    std::string healthTimeout = "20s";
    std::string limitsToml;  // more keys for the [limits] table
    std::string deployToml;  // more keys for the [deploy] table
    // Where the state dir is made (default /tmp): a test may put it on a
    // filesystem of its own, as a small loop mount. It must let the
    // containers' mapped root traverse it (0755).
    std::string stateDirParent = "/tmp";
    std::string routerHost = "127.0.0.1";  // the address [routing] listen binds
    // [network] egress, as TOML: none by default, so tests never turn on
    // forwarding unless they mean to (and restore it); "" leaves it unset.
    std::string egress = "\"none\"";
    std::string networkToml;  // more keys for the [network] table
    // [metrics] listen: off unless a test asks, so agents never race for 9464.
    std::string metricsListen;
    // Variables added to qaboxd's environment (QABOX_FAILPOINT, ...).
    std::map<std::string, std::string> daemonEnv;
    // A network namespace (Backbone::add) the daemon runs in, with its
    // bridge, firewall and containers; set routerHost to its address. The
    // host's clean-up and inspection run there too (liblxc's sockets are
    // abstract, so per namespace).
    std::string netns;
  };
  TestHost();
  explicit TestHost(Options options);
  ~TestHost();
  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  void startDaemon();  // and waits until the API answers
  // Starts qaboxd without waiting for its API: for an agent a failpoint may
  // end before it answers (waitDaemon then reaps it).
  void launchDaemon();
  // startDaemon(), then the busybox image built: what most tests start from.
  void startWithBusybox();
  void killDaemon();  // SIGKILL, no clean-up by the agent
  int stopDaemon();   // SIGTERM; returns the exit code
  // Waits up to `timeout` for the daemon to end by itself (a failpoint's
  // SIGKILL): its wait status, or nullopt while it still runs.
  std::optional<int> waitDaemon(std::chrono::milliseconds timeout);
  bool daemonRunning();

  // Runs the real CLI against this host's socket.
  CliResult cli(const std::vector<std::string>& args,
                std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // Runs the real CLI with exactly these arguments (no --endpoint added)
  // and these extra environment variables.
  CliResult cliRaw(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env = {},
                   std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // Starts the CLI without waiting; returns its pid.
  int cliAsync(const std::vector<std::string>& args);

  // A GitFixture in this host's state dir whose develop branch, committed
  // and pushed, holds `files` (executable below a cgi-bin/ directory).
  std::unique_ptr<GitFixture> appRepo(const std::map<std::string, std::string>& files);

  // `qabox token create` over the unix socket (as root: ops), with --ttl
  // when given; the secret (qbx_...).
  std::string createToken(const std::string& name, const std::string& role,
                          const std::string& ttl = "");

  // `qaboxd --check` over this host's config (it asks the agent when one
  // runs): one line per violation of the invariants ("KIND NAME: what"),
  // empty when every container, lease, mount, link and layer has its owner.
  // A check that could not run is one line starting "check failed".
  std::vector<std::string> violations();

  // `qabox get TICKET -o json`, parsed; nullopt when the CLI says no.
  std::optional<v1::Environment> env(const std::string& ticket);

  // What is on the host right now.
  std::vector<std::string> containers();  // in this host's lxcpath
  std::vector<std::string> bridgePorts();
  std::vector<std::string> overlayDirs();
  int leaseCount();

  void writeConfig(const Options& options);

  const std::string& stateDir() const { return stateDir_; }
  const std::string& bridge() const { return bridge_; }
  const std::string& subnet() const { return subnet_; }
  const std::string& domain() const { return domain_; }
  uint16_t routerPort() const { return routerPort_; }
  int daemonPid() const { return daemonPid_; }  // -1 when not running
  std::string socket() const { return stateDir_ + "/qabox.sock"; }
  std::string configPath() const { return stateDir_ + "/qaboxd.toml"; }
  std::string lxcPath() const { return stateDir_ + "/lxc"; }
  std::string logText();

 private:
  void cleanup();

  Options options_;
  std::string id_;
  std::string stateDir_;
  std::string bridge_;
  std::string subnet_;
  std::string domain_ = "qa.test";
  uint16_t routerPort_ = 0;
  int daemonPid_ = -1;
};

std::string binDir();
std::string sourceDir();

}  // namespace qabox::testing
