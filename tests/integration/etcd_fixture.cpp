#include "etcd_fixture.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "cluster/kv.h"
#include "harness.h"
#include "sys/fd.h"

namespace qabox::testing {
namespace {

namespace fs = std::filesystem;
constexpr const char* kEtcd = "/usr/bin/etcd";

// `n` distinct loopback ports below the kernel's ephemeral range (32768 and
// up on Debian): a port from that range can be taken as the source port of
// a connection between two members before the third binds it.
std::vector<int> reservePorts(int n) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(20000, 32000);
  std::vector<int> ports;
  std::vector<UniqueFd> held;
  while (static_cast<int>(ports.size()) < n) {
    int port = pick(rng);
    if (std::find(ports.begin(), ports.end(), port) != ports.end()) continue;
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) continue;
    ports.push_back(port);
    held.push_back(std::move(fd));
  }
  return ports;
}

}  // namespace

bool etcdAvailable(std::string* why) {
  if (access(kEtcd, X_OK) != 0) {
    *why = std::string(kEtcd) + " is missing";
    return false;
  }
  return true;
}

EtcdFixture::EtcdFixture(std::string dir, int members, std::string ip)
    : dir_(std::move(dir)), ip_(std::move(ip)) {
  std::vector<int> ports = reservePorts(2 * members);
  for (size_t i = 0; i < static_cast<size_t>(members); ++i)
    members_.push_back({"m" + std::to_string(i), ports[2 * i], ports[2 * i + 1], -1});
}

EtcdFixture::~EtcdFixture() {
  for (auto& m : members_) {
    stopChild(m.pid, SIGKILL);
    m.pid = -1;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string EtcdFixture::endpoint(int i) const {
  return "https://" + ip_ + ":" + std::to_string(members_.at(i).clientPort);
}

std::vector<std::string> EtcdFixture::endpoints() const {
  std::vector<std::string> out;
  for (int i = 0; i < members(); ++i) out.push_back(endpoint(i));
  return out;
}

std::string EtcdFixture::log(int i) const {
  std::ifstream in(dir_ + "/" + members_.at(i).name + ".log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

void EtcdFixture::start() {
  TestPki pki(dir_ + "/pki");
  ASSERT_NO_FATAL_FAILURE(pki.ca("ca"));
  // One certificate for members and clients alike: etcd checks a peer's
  // client certificate against the same CA, with both usages.
  ASSERT_NO_FATAL_FAILURE(pki.leaf("client", "ca",
                                   "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:" + ip_ +
                                       "\n"
                                       "extendedKeyUsage = serverAuth, clientAuth\n"));
  for (auto& m : members_) ASSERT_NO_FATAL_FAILURE(spawn(m));
  waitReady();
}

void EtcdFixture::waitReady() {
  for (int i = 0; i < members(); ++i) {
    if (members_[static_cast<size_t>(i)].pid > 0) {
      ASSERT_NO_FATAL_FAILURE(waitUntilAnswering(i));
    }
  }
}

void EtcdFixture::spawn(Member& m) {
  std::string cluster;
  for (const auto& o : members_)
    cluster += (cluster.empty() ? "" : ",") + o.name + "=https://" + ip_ + ":" +
               std::to_string(o.peerPort);
  const std::string client = "https://" + ip_ + ":" + std::to_string(m.clientPort);
  const std::string peer = "https://" + ip_ + ":" + std::to_string(m.peerPort);
  const std::string pki = dir_ + "/pki";
  // setpriv: a member dies with the test even when the test is killed
  // (a ctest timeout), instead of holding its ports and data dir.
  m.pid = spawnLogged({"/usr/bin/setpriv",
                       "--pdeathsig",
                       "KILL",
                       "--",
                       kEtcd,
                       "--name",
                       m.name,
                       "--data-dir",
                       dir_ + "/" + m.name + ".etcd",
                       "--listen-client-urls",
                       client,
                       "--advertise-client-urls",
                       client,
                       "--listen-peer-urls",
                       peer,
                       "--initial-advertise-peer-urls",
                       peer,
                       "--initial-cluster",
                       cluster,
                       "--initial-cluster-state",
                       "new",
                       "--initial-cluster-token",
                       fs::path(dir_).filename(),
                       "--cert-file",
                       pki + "/client.crt",
                       "--key-file",
                       pki + "/client.key",
                       "--trusted-ca-file",
                       pki + "/ca.crt",
                       "--client-cert-auth",
                       "--peer-cert-file",
                       pki + "/client.crt",
                       "--peer-key-file",
                       pki + "/client.key",
                       "--peer-trusted-ca-file",
                       pki + "/ca.crt",
                       "--peer-client-cert-auth",
                       "--heartbeat-interval",
                       "50",
                       "--election-timeout",
                       "500",
                       "--logger",
                       "zap",
                       "--log-level",
                       "warn"},
                      dir_ + "/" + m.name + ".log");
  ASSERT_GT(m.pid, 0) << "cannot start " << kEtcd;
}

cluster::EtcdKvOptions EtcdFixture::kvOptions() const {
  cluster::EtcdKvOptions o;
  o.endpoints = endpoints();
  o.caFile = caFile();
  o.certFile = certFile();
  o.keyFile = keyFile();
  return o;
}

void EtcdFixture::waitUntilAnswering(int i) {
  cluster::EtcdKvOptions o = kvOptions();
  o.endpoints = {endpoint(i)};
  o.callTimeout = std::chrono::milliseconds(500);
  // One client all along, as an agent has: it must reconnect by itself.
  auto kv = cluster::makeEtcdKv(o);
  ASSERT_TRUE(kv.isOk()) << kv.status().toString();
  std::string last;
  for (int attempt = 0; attempt < 60; ++attempt) {
    auto r = (*kv)->get("/health-probe");
    if (r.isOk()) return;
    int status = 0;
    auto& m = members_.at(i);
    if (waitpid(m.pid, &status, WNOHANG) == m.pid) {
      m.pid = -1;
      FAIL() << "etcd member " << i << " exited at start:\n" << log(i);
    }
    last = r.status().toString();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  FAIL() << "etcd member " << i << " did not answer within 15 s: " << last << "\n" << log(i);
}

void EtcdFixture::stopMember(int i) {
  stopChild(members_.at(i).pid, SIGTERM);
  members_.at(i).pid = -1;
}

void EtcdFixture::killMember(int i) {
  stopChild(members_.at(i).pid, SIGKILL);
  members_.at(i).pid = -1;
}

void EtcdFixture::startMember(int i) {
  ASSERT_LT(members_.at(i).pid, 0) << "member " << i << " is running";
  ASSERT_NO_FATAL_FAILURE(spawn(members_.at(i)));
}

}  // namespace qabox::testing
