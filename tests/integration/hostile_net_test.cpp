// Issue 12 (items 4 and 5): an environment's code is hostile on the network
// too. From inside a container it must reach neither another environment
// (IPv4, IPv6, ARP), nor take another's address or MAC, nor any host port but
// the router's, nor the cloud's metadata service under any egress policy; and
// it reaches the outside only as [network] egress allows, through NAT. Real
// containers, the real daemon, and network namespaces the test makes itself
// (removed also when a test fails), standing in for the metadata service and
// for "the internet".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "harness.h"

extern char** environ;

namespace qabox::testing {
namespace {
namespace fs = std::filesystem;

std::string shortId() {
  std::random_device rd;
  const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 5; ++i) id += hex[rd() % 16];
  return id;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Every IPv4 forwarding switch on the host, put back as it was when this
// goes (the agent turns some on for egress; the tests must leave none on).
class ForwardingRestorer {
 public:
  ForwardingRestorer() {
    saved_["/proc/sys/net/ipv4/ip_forward"] = trim(readFile("/proc/sys/net/ipv4/ip_forward"));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc/sys/net/ipv4/conf", ec)) {
      std::string p = e.path().string() + "/forwarding";
      saved_[p] = trim(readFile(p));
    }
  }
  ~ForwardingRestorer() {
    // ip_forward first: writing it rewrites every interface's switch.
    auto put = [](const std::string& path, const std::string& value) {
      if (value.empty() || !fs::exists(path) || trim(readFile(path)) == value) return;
      std::ofstream(path) << value << "\n";
    };
    put("/proc/sys/net/ipv4/ip_forward", saved_["/proc/sys/net/ipv4/ip_forward"]);
    for (const auto& [path, value] : saved_) put(path, value);
  }

 private:
  std::map<std::string, std::string> saved_;
};

// A process of the test's (a server in a namespace), killed when this goes.
class Background {
 public:
  explicit Background(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Background() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

 private:
  pid_t pid_ = -1;
};

// A network namespace joined to the host by a veth pair: the host's end gets
// hostCidr (and hostCidr6), the far end farCidr (and farCidr6). Deleting the
// namespace deletes the pair and the routes through it.
class FarSide {
 public:
  FarSide(const std::string& tag, const std::string& hostCidr, const std::string& farCidr,
          const std::string& hostCidr6 = "", const std::string& farCidr6 = "") {
    std::string id = shortId();
    ns_ = "qbt" + tag + id;
    hostIf_ = "qbt" + tag + id + "h";
    farIf_ = "qbt" + tag + id + "f";
    const std::string& farIf = farIf_;
    ok_ =
        run({"ip", "netns", "add", ns_}) &&
        run({"ip", "link", "add", hostIf_, "type", "veth", "peer", "name", farIf, "netns", ns_}) &&
        run({"ip", "addr", "add", hostCidr, "dev", hostIf_}) &&
        run({"ip", "link", "set", hostIf_, "up"}) &&
        run({"ip", "-n", ns_, "addr", "add", farCidr, "dev", farIf}) &&
        run({"ip", "-n", ns_, "link", "set", farIf, "up"}) &&
        run({"ip", "-n", ns_, "link", "set", "lo", "up"});
    if (ok_ && !hostCidr6.empty()) {
      ok_ = run({"ip", "addr", "add", hostCidr6, "dev", hostIf_, "nodad"}) &&
            run({"ip", "-n", ns_, "addr", "add", farCidr6, "dev", farIf, "nodad"});
    }
    dir_ = "/tmp/" + ns_;
    fs::create_directories(dir_ + "/cgi-bin");
  }
  ~FarSide() {
    servers_.clear();
    (void)runOrDie({"ip", "netns", "del", ns_});
    if (fs::exists("/sys/class/net/" + hostIf_)) (void)runOrDie({"ip", "link", "del", hostIf_});
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  bool ok() const { return ok_; }
  // Another pair of addresses on the same link.
  bool addAddresses(const std::string& hostCidr, const std::string& farCidr) {
    return run({"ip", "addr", "add", hostCidr, "dev", hostIf_}) &&
           run({"ip", "-n", ns_, "addr", "add", farCidr, "dev", farIf_});
  }
  ProcessResult exec(const std::vector<std::string>& argv) {
    std::vector<std::string> all = {"ip", "netns", "exec", ns_};
    all.insert(all.end(), argv.begin(), argv.end());
    return runOrDie(all);
  }
  const std::string& hostIf() const { return hostIf_; }

  // busybox httpd on `port` in the namespace, serving `files` (executable
  // below cgi-bin/); waits until it listens.
  void serve(uint16_t port, const std::map<std::string, std::string>& files) {
    std::string root = dir_ + "/" + std::to_string(port);
    for (const auto& [path, content] : files) {
      fs::create_directories(fs::path(root + "/" + path).parent_path());
      std::ofstream(root + "/" + path) << content;
      if (path.rfind("cgi-bin/", 0) == 0) {
        fs::permissions(root + "/" + path, fs::perms::owner_all | fs::perms::group_exec |
                                               fs::perms::others_exec | fs::perms::others_read);
      }
    }
    servers_.push_back(std::make_unique<Background>(
        std::vector<std::string>{"ip", "netns", "exec", ns_, "busybox", "httpd", "-f", "-p",
                                 std::to_string(port), "-h", root}));
    for (int i = 0; i < 100; ++i) {
      auto r = runOrDie({"ip", "netns", "exec", ns_, "busybox", "nc", "-w", "1", "127.0.0.1",
                         std::to_string(port), "-e", "true"});
      if (r.exitCode == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "httpd on port " << port << " in " << ns_ << " did not listen";
  }

 private:
  static bool run(const std::vector<std::string>& argv) {
    auto r = runOrDie(argv);
    EXPECT_EQ(r.exitCode, 0) << argv[0] << " " << argv[1] << " " << argv[2] << ": " << r.err;
    return r.exitCode == 0;
  }

  std::string ns_, hostIf_, farIf_, dir_;
  bool ok_ = false;
  std::vector<std::unique_ptr<Background>> servers_;
};

// A TCP listener of the test's on the host, on every address.
class HostListener {
 public:
  HostListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0) {
      ADD_FAILURE() << "cannot listen on 0.0.0.0";
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~HostListener() { ::close(fd_); }
  std::string port() const { return std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class LxcHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    host_ = std::make_unique<TestHost>();
    // The router on every address, as in production, so a container can
    // reach it on the gateway.
    options_.routerHost = "0.0.0.0";
    host_->writeConfig(options_);
  }

  void startWith(const std::string& egress) {
    options_.egress = egress;
    host_->writeConfig(options_);
    if (host_->daemonRunning()) {
      ASSERT_EQ(host_->stopDaemon(), 0);
    }
    host_->startDaemon();
  }

  void deployBoth() {
    ASSERT_EQ(host_->cli({"image", "build", "busybox"}).exitCode, 0);
    for (const char* t : {"V-1", "V-2"}) {
      CliResult r = host_->cli({"deploy", t});
      ASSERT_EQ(r.exitCode, 0) << r.err;
    }
    v1_ = *host_->env("V-1");
    v2_ = *host_->env("V-2");
    gateway_ = host_->subnet().substr(0, host_->subnet().rfind(".0/")) + ".1";
  }

  CliResult sh(const std::string& ticket, const std::string& script) {
    return host_->cli({"exec", ticket, "--", "sh", "-c", script});
  }

  // The host's neighbour entry for ip on the bridge: its MAC, or "".
  std::string neighbourMac(const std::string& ip) {
    auto r = runOrDie({"ip", "neigh", "show", ip, "dev", host_->bridge()});
    auto at = r.out.find("lladdr ");
    return at == std::string::npos ? "" : r.out.substr(at + 7, 17);
  }

  std::string macOf(const std::string& ticket) {
    return trim(sh(ticket, "cat /sys/class/net/eth0/address").out);
  }

  std::unique_ptr<TestHost> host_;
  TestHost::Options options_;
  v1::Environment v1_, v2_;
  std::string gateway_;
};

TEST_F(LxcHostile, ContainersCannotReachEachOtherOverIpv4Ipv6OrArp) {
  startWith("\"none\"");
  deployBoth();
  // IPv4: ping and TCP to the neighbour fail.
  CliResult ping = sh("V-2", "ping -c 2 -W 2 " + v1_.ip());
  EXPECT_NE(ping.exitCode, 0) << ping.out << ping.err;
  CliResult tcp = sh("V-2", "nc -w 2 " + v1_.ip() + " 80 -e true");
  EXPECT_NE(tcp.exitCode, 0) << tcp.out << tcp.err;

  // IPv6: V-1's link-local address (there with no configuration at all).
  CliResult addr6 = sh("V-1", "ip -6 addr show dev eth0");
  auto at = addr6.out.find("inet6 fe80::");
  ASSERT_NE(at, std::string::npos) << addr6.out << addr6.err;
  std::string ll = addr6.out.substr(at + 6, addr6.out.find('/', at) - at - 6);
  EXPECT_EQ(sh("V-1", "ping -6 -c 1 -W 2 " + ll + "%eth0").exitCode, 0) << "V-1 answers itself";
  CliResult ping6 = sh("V-2", "ping -6 -c 2 -W 2 " + ll + "%eth0");
  EXPECT_NE(ping6.exitCode, 0) << ll << ": " << ping6.out << ping6.err;
  // Nor over the all-nodes multicast group, which every neighbour would
  // answer: only V-2 itself does.
  CliResult own6 = sh("V-2", "ip -6 addr show dev eth0");
  auto own = own6.out.find("inet6 fe80::");
  ASSERT_NE(own, std::string::npos) << own6.out;
  const std::string ownLl = own6.out.substr(own + 6, own6.out.find('/', own) - own - 6);
  CliResult all6 = sh("V-2", "ping -6 -c 2 -W 2 ff02::1%eth0");
  std::istringstream replies(all6.out);
  for (std::string line; std::getline(replies, line);) {
    auto from = line.find("bytes from ");
    if (from == std::string::npos) continue;
    from += 11;
    EXPECT_EQ(line.substr(from, line.find(": ", from) - from), ownLl) << all6.out;
  }
  // ARP: V-1 never sees V-2's request, so no unicast reply comes back.
  CliResult arp = sh("V-2", "arping -c 2 -w 3 -I eth0 " + v1_.ip());
  EXPECT_EQ(arp.out.find("Unicast reply"), std::string::npos) << arp.out << arp.err;
  EXPECT_NE(arp.exitCode, 0) << arp.out << arp.err;
  // The gateway answers ARP (the containers' way out and the router's way in).
  CliResult gw = sh("V-2", "arping -c 1 -w 3 -I eth0 " + gateway_);
  EXPECT_EQ(gw.exitCode, 0) << gw.out << gw.err;
  EXPECT_EQ(httpGet(v1_.ip(), 80, "/").status, 200);
  EXPECT_EQ(httpGet(v2_.ip(), 80, "/").status, 200);
}

// A frame sender for inside a container (busybox has none that forges a
// source address: its arping binds to the address it claims): sends the
// frame given in hex on eth0, COUNT times 200 ms apart. What a process with
// CAP_NET_RAW, which containers keep, can do.
constexpr const char* kRawSend = R"(#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char** argv) {
  if (argc != 3) return 2;
  unsigned char frame[1514];
  size_t n = strlen(argv[1]) / 2;
  if (n > sizeof frame) return 2;
  for (size_t i = 0; i < n; i++) sscanf(argv[1] + 2 * i, "%2hhx", &frame[i]);
  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) { perror("socket"); return 1; }
  struct sockaddr_ll to = {0};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = if_nametoindex("eth0");
  to.sll_halen = 6;
  memcpy(to.sll_addr, frame, 6);
  for (int i = 0; i < atoi(argv[2]); i++) {
    if (sendto(fd, frame, n, 0, (struct sockaddr*)&to, sizeof to) != (ssize_t)n) {
      perror("sendto");
      return 1;
    }
    usleep(200000);
  }
  return 0;
}
)";

std::string hexMac(const std::string& mac) {
  std::string h;
  for (char c : mac) {
    if (c != ':') h += c;
  }
  return h;
}

std::string hexIp(const std::string& ip) {
  in_addr a{};
  inet_pton(AF_INET, ip.c_str(), &a);
  char out[9];
  std::snprintf(out, sizeof out, "%08x", ntohl(a.s_addr));
  return out;
}

// An Ethernet ARP frame: op 1 (request) or 2 (reply).
std::string arpFrame(const std::string& dst, const std::string& src, int op,
                     const std::string& senderMac, const std::string& senderIp,
                     const std::string& targetMac, const std::string& targetIp) {
  return hexMac(dst) + hexMac(src) + "0806" + "0001080006040" + std::to_string(op) +
         hexMac(senderMac) + hexIp(senderIp) + hexMac(targetMac) + hexIp(targetIp);
}

TEST_F(LxcHostile, AContainerCannotTakeAnotherEnvironmentsAddressOrMac) {
  startWith("\"none\"");
  deployBoth();
  ASSERT_EQ(sh("V-1", "echo one > /srv/app/who.txt").exitCode, 0);
  ASSERT_EQ(httpGet(v1_.ip(), 80, "/who.txt").body, "one\n");
  const std::string mac1 = neighbourMac(v1_.ip());
  const std::string mac2 = macOf("V-2");
  const std::string bridgeMac = trim(readFile("/sys/class/net/" + host_->bridge() + "/address"));
  ASSERT_FALSE(mac1.empty());
  ASSERT_NE(mac1, mac2);

  // The sender, built here and put in a new directory of V-2's upper
  // layer, owned by its root.
  const std::string src = host_->stateDir() + "/rawsend.c";
  std::ofstream(src) << kRawSend;
  const std::string dir = host_->lxcPath() + "/" + v2_.container() + "/overlay/delta/qbt";
  fs::create_directories(dir);
  ASSERT_EQ(runOrDie({"gcc", "-static", "-O1", "-o", dir + "/rawsend", src}).exitCode, 0);
  ASSERT_EQ(runOrDie({"chown", "-R", "100000:100000", dir}).exitCode, 0);
  // Each forged frame (5 a kind) is refused at V-2's port by the binding
  // check: the count of what from_port dropped grows by at least that.
  auto refused = [&] {
    auto chain =
        runOrDie({"nft", "list", "chain", "bridge", "qabox_" + host_->bridge(), "from_port"});
    auto at = chain.out.find("counter packets ");
    return at == std::string::npos ? -1L : std::stol(chain.out.substr(at + 16));
  };
  auto send = [&](const std::string& frame) {
    long before = refused();
    CliResult r = sh("V-2", "/qbt/rawsend " + frame + " 5");
    EXPECT_EQ(r.exitCode, 0) << r.out << r.err;
    EXPECT_GE(refused() - before, 5) << "not dropped by the binding check: " << frame;
  };
  const std::string bcast = "ff:ff:ff:ff:ff:ff", zero = "00:00:00:00:00:00";
  // Past the neighbour entry's lock time (1 s), so a forged ARP is taken.
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));

  // 1. A unicast ARP reply to the host: "V-1's address is at V-2's MAC".
  send(arpFrame(bridgeMac, mac2, 2, mac2, v1_.ip(), bridgeMac, gateway_));
  EXPECT_EQ(neighbourMac(v1_.ip()), mac1)
      << "the host's entry for V-1 moved to V-2 (" << mac2 << ") after a forged ARP reply";
  // 2. Gratuitous ARP (a broadcast request for its own claimed address).
  send(arpFrame(bcast, mac2, 1, mac2, v1_.ip(), zero, v1_.ip()));
  EXPECT_EQ(neighbourMac(v1_.ip()), mac1) << "moved after a gratuitous ARP";
  // 3. A frame with V-1's MAC as its source: the bridge would learn V-1 on
  //    V-2's port and send it V-1's traffic.
  send(hexMac(bcast) + hexMac(mac1) + "88b5" + std::string(92, '0'));
  // The bridge's forwarding table: V-1's MAC stays on V-1's port.
  auto portOf = [&](const std::string& mac) {
    auto fdb = runOrDie({"bridge", "fdb", "show", "br", host_->bridge()});
    std::string port;
    std::istringstream lines(fdb.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(mac + " dev ", 0) == 0)
        port = line.substr(mac.size() + 5, line.find(' ', mac.size() + 5) - mac.size() - 5);
    }
    return port;
  };
  EXPECT_NE(portOf(mac1), portOf(mac2)) << "the bridge sends V-1's frames to V-2";
  // 4. Busybox's own tools, for what they can do unprivileged.
  (void)sh("V-2", "arping -U -c 2 -I eth0 " + v1_.ip() + "; arping -A -c 2 -I eth0 " + v1_.ip());
  EXPECT_EQ(neighbourMac(v1_.ip()), mac1);

  // The router (and the host) still reach V-1, not V-2.
  HttpReply routed =
      httpGet("127.0.0.1", host_->routerPort(), "/who.txt", "v-1." + host_->domain());
  EXPECT_EQ(routed.status, 200) << routed.error;
  EXPECT_EQ(routed.body, "one\n");
  EXPECT_EQ(httpGet(v1_.ip(), 80, "/who.txt").body, "one\n");
}

TEST_F(LxcHostile, OnlyTheRoutersPortOnTheHostIsOpenToContainers) {
  // An API TCP listener on the gateway, TLS as the agent requires.
  const std::string tls = host_->stateDir() + "/tls";
  fs::create_directories(tls);
  ASSERT_EQ(
      runOrDie({"openssl", "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "1", "-subj",
                "/CN=localhost", "-keyout", tls + "/server.key", "-out", tls + "/server.crt"})
          .exitCode,
      0);
  const std::string net = host_->subnet().substr(0, host_->subnet().rfind(".0/"));
  const std::string apiPort = std::to_string(freeTcpPort());
  options_.extraListen = {net + ".1:" + apiPort};
  options_.apiToml =
      "tls_cert = \"" + tls + "/server.crt\"\ntls_key = \"" + tls + "/server.key\"\n";
  startWith("\"none\"");
  deployBoth();
  ASSERT_EQ(sh("V-1", "echo one > /srv/app/who.txt").exitCode, 0);
  HostListener other;
  const std::string router = std::to_string(host_->routerPort());

  // The host itself reaches both of its listeners.
  EXPECT_EQ(runOrDie({"busybox", "nc", "-w", "2", gateway_, other.port(), "-e", "true"}).exitCode,
            0);
  EXPECT_EQ(runOrDie({"busybox", "nc", "-w", "2", gateway_, apiPort, "-e", "true"}).exitCode, 0);
  // From V-2: the router's port answers, and through it V-1's URL (an app
  // calling another environment the way QA does) ...
  CliResult viaRouter =
      sh("V-2", "printf 'GET /who.txt HTTP/1.0\\r\\nHost: v-1." + host_->domain() +
                    "\\r\\n\\r\\n' | nc -w 3 " + gateway_ + " " + router);
  EXPECT_NE(viaRouter.out.find("200 OK"), std::string::npos) << viaRouter.out << viaRouter.err;
  EXPECT_NE(viaRouter.out.find("one"), std::string::npos) << viaRouter.out;
  // ... ping of the gateway is answered ...
  CliResult ping = sh("V-2", "ping -c 1 -W 2 " + gateway_);
  EXPECT_EQ(ping.exitCode, 0) << ping.out << ping.err;
  // ... and nothing else on the host: not the API, not a port bound to every
  // address, not ssh.
  CliResult api = sh("V-2", "nc -w 2 " + gateway_ + " " + apiPort + " -e true");
  EXPECT_NE(api.exitCode, 0) << api.out << api.err;
  CliResult any = sh("V-2", "nc -w 2 " + gateway_ + " " + other.port() + " -e true");
  EXPECT_NE(any.exitCode, 0) << any.out << any.err;
  CliResult ssh = sh("V-2", "nc -w 2 " + gateway_ + " 22 -e true");
  EXPECT_NE(ssh.exitCode, 0) << ssh.out << ssh.err;
  // The host's other addresses are the host too: its uplink's address.
  auto src = runOrDie({"ip", "-4", "-o", "addr", "show", "dev", "eth0"});
  auto inet = src.out.find("inet ");
  if (inet != std::string::npos) {
    std::string uplink = src.out.substr(inet + 5, src.out.find('/', inet) - inet - 5);
    CliResult up = sh("V-2", "nc -w 2 " + uplink + " " + other.port() + " -e true");
    EXPECT_NE(up.exitCode, 0) << uplink << ": " << up.out << up.err;
  }
}

// The set of port bindings follows the containers: one per container, put
// back from the store when the agent restarts, gone with the container.
TEST_F(LxcHostile, PortBindingsFollowTheContainersAcrossRestartsAndDeletes) {
  startWith("\"none\"");
  deployBoth();
  auto bindings = [&] {
    return runOrDie({"nft", "list", "set", "bridge", "qabox_" + host_->bridge(), "bindings"}).out;
  };
  const std::string mac1 = macOf("V-1"), mac2 = macOf("V-2");
  EXPECT_EQ(mac1.rfind("02:71:", 0), 0u) << mac1;
  std::string set = bindings();
  EXPECT_NE(set.find(mac1 + " . " + v1_.ip()), std::string::npos) << set;
  EXPECT_NE(set.find(mac2 + " . " + v2_.ip()), std::string::npos) << set;
  // Each element names the container's port on this bridge.
  auto ports = host_->bridgePorts();
  ASSERT_EQ(ports.size(), 2u);
  for (const auto& p : ports) EXPECT_NE(set.find("\"" + p + "\""), std::string::npos) << p << set;

  // A restart replaces the rules and the set, and fills it from the rows.
  startWith("\"none\"");
  EXPECT_EQ(bindings(), set);
  EXPECT_EQ(httpGet(v1_.ip(), 80, "/").status, 200);

  // A redeploy's new container has its own; the old one's goes with it.
  ASSERT_EQ(host_->cli({"deploy", "V-2", "--force"}).exitCode, 0);
  auto v2b = host_->env("V-2");
  ASSERT_TRUE(v2b.has_value());
  ASSERT_NE(v2b->ip(), v2_.ip());
  set = bindings();
  EXPECT_EQ(set.find(" . " + v2_.ip() + "\n"), std::string::npos) << set;
  EXPECT_EQ(set.find(" . " + v2_.ip() + ","), std::string::npos) << set;
  EXPECT_NE(set.find(" . " + v2b->ip()), std::string::npos) << set;
  EXPECT_EQ(httpGet(v2b->ip(), 80, "/").status, 200);
  ASSERT_EQ(host_->cli({"delete", "V-1"}).exitCode, 0);
  set = bindings();
  EXPECT_EQ(set.find(v1_.ip()), std::string::npos) << set;
  EXPECT_EQ(set.find(mac1), std::string::npos) << set;
}

// isolate = false: containers reach each other, and still cannot spoof.
TEST_F(LxcHostile, WithoutIsolationContainersTalkButKeepTheirOwnAddresses) {
  options_.networkToml = "isolate = false";
  startWith("\"none\"");
  deployBoth();
  CliResult tcp = sh("V-2", "nc -w 2 " + v1_.ip() + " 80 -e true");
  EXPECT_EQ(tcp.exitCode, 0) << tcp.out << tcp.err;
  CliResult ping = sh("V-2", "ping -c 1 -W 2 " + v1_.ip());
  EXPECT_EQ(ping.exitCode, 0) << ping.out << ping.err;
  // Still no IPv6 between them, and no host port but the router's.
  CliResult addr6 = sh("V-1", "ip -6 addr show dev eth0");
  auto at = addr6.out.find("inet6 fe80::");
  ASSERT_NE(at, std::string::npos) << addr6.out;
  std::string ll = addr6.out.substr(at + 6, addr6.out.find('/', at) - at - 6);
  CliResult ping6 = sh("V-2", "ping -6 -c 2 -W 2 " + ll + "%eth0");
  EXPECT_NE(ping6.exitCode, 0) << ping6.out << ping6.err;
  HostListener other;
  CliResult any = sh("V-2", "nc -w 2 " + gateway_ + " " + other.port() + " -e true");
  EXPECT_NE(any.exitCode, 0) << any.out << any.err;
  // V-2 answers ARP for itself only: its unicast reply to V-1's arping
  // carries its own address and MAC.
  CliResult arp = sh("V-1", "arping -c 1 -w 3 -I eth0 " + v2_.ip());
  EXPECT_NE(arp.out.find("[" + macOf("V-2") + "]"), std::string::npos) << arp.out << arp.err;
}

// The metadata service of a cloud, in a namespace of the test's: the host
// reaches it, a container never does, whatever egress allows.
TEST_F(LxcHostile, TheMetadataServiceIsUnreachableUnderEveryEgressPolicy) {
  ForwardingRestorer restore;
  FarSide meta("m", "169.254.169.253/30", "169.254.169.254/30", "fd00:ec2::1/64",
               "fd00:ec2::254/64");
  ASSERT_TRUE(meta.ok());
  // A control on the same link, outside link-local: egress does reach it.
  ASSERT_TRUE(meta.addAddresses("198.18.7.254/24", "198.18.7.1/24"));
  meta.serve(80, {{"latest/meta-data/iam", "secret-credentials\n"}});
  ASSERT_EQ(httpGet("169.254.169.254", 80, "/latest/meta-data/iam").body, "secret-credentials\n");
  HttpReply six = httpGet("fd00:ec2::254", 80, "/latest/meta-data/iam");
  ASSERT_EQ(six.body, "secret-credentials\n") << six.error;

  for (const std::string& egress :
       {std::string("\"all\""), std::string("[\"169.254.0.0/16\", \"0.0.0.0/0:80\"]")}) {
    SCOPED_TRACE("egress = " + egress);
    startWith(egress);
    if (v1_.ip().empty()) deployBoth();
    CliResult control = sh("V-2", "nc -w 3 198.18.7.1 80 -e true");
    EXPECT_EQ(control.exitCode, 0) << "egress works on that link: " << control.out << control.err;
    CliResult v4 = sh("V-2", "nc -w 3 169.254.169.254 80 -e true");
    EXPECT_NE(v4.exitCode, 0) << v4.out << v4.err;
    CliResult get = sh("V-2",
                       "printf 'GET /latest/meta-data/iam HTTP/1.0\\r\\n\\r\\n' | "
                       "nc -w 3 169.254.169.254 80");
    EXPECT_EQ(get.out.find("secret"), std::string::npos) << get.out << get.err;
    CliResult v6 = sh("V-2", "nc -w 3 fd00:ec2::254 80 -e true");
    EXPECT_NE(v6.exitCode, 0) << v6.out << v6.err;
    // Nor a port of the host's own on that link.
    HostListener other;
    CliResult otherPort = sh("V-2", "nc -w 3 169.254.169.253 " + other.port() + " -e true");
    EXPECT_NE(otherPort.exitCode, 0) << otherPort.out << otherPort.err;
    EXPECT_EQ(httpGet("169.254.169.254", 80, "/latest/meta-data/iam").body, "secret-credentials\n");
  }
}

// "The internet": a namespace at a TEST-NET address the host routes to.
TEST_F(LxcHostile, EgressFollowsThePolicyThroughNat) {
  ForwardingRestorer restore;
  FarSide inet("i", "198.51.100.254/24", "198.51.100.1/24");
  ASSERT_TRUE(inet.ok());
  const std::string peer =
      "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"peer=$REMOTE_ADDR\"\n";
  inet.serve(8080, {{"cgi-bin/peer", peer}});
  inet.serve(8081, {{"cgi-bin/peer", peer}});
  ASSERT_NE(
      httpGet("198.51.100.1", 8080, "/cgi-bin/peer").body.find("peer=[::ffff:198.51.100.254]"),
      std::string::npos);
  auto get = [&](uint16_t port) {
    return sh("V-2", "printf 'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n' | nc -w 3 198.51.100.1 " +
                         std::to_string(port));
  };
  const std::string bridgeForwarding = "/proc/sys/net/ipv4/conf/" + host_->bridge() + "/forwarding";

  startWith("\"none\"");
  deployBoth();
  CliResult none = get(8080);
  EXPECT_EQ(none.out.find("peer="), std::string::npos) << none.out << none.err;
  EXPECT_EQ(trim(readFile(bridgeForwarding)), "0") << "egress none turns no forwarding on";

  startWith("\"all\"");
  CliResult all = get(8080);
  // Through NAT: the far side sees the host's address on its link.
  EXPECT_NE(all.out.find("peer=[::ffff:198.51.100.254]"), std::string::npos) << all.out << all.err;
  EXPECT_NE(get(8081).out.find("peer=[::ffff:198.51.100.254]"), std::string::npos);
  EXPECT_EQ(trim(readFile(bridgeForwarding)), "1");
  // Egress does not open a way to the other container through the host.
  CliResult peerTcp = sh("V-2", "nc -w 2 " + v1_.ip() + " 80 -e true");
  EXPECT_NE(peerTcp.exitCode, 0) << peerTcp.out << peerTcp.err;

  startWith("[\"198.51.100.1/32:8080\"]");
  CliResult allowed = get(8080);
  EXPECT_NE(allowed.out.find("peer=[::ffff:198.51.100.254]"), std::string::npos)
      << allowed.out << allowed.err;
  CliResult denied = get(8081);
  EXPECT_EQ(denied.out.find("peer="), std::string::npos) << denied.out << denied.err;
  // Nor does the outside reach the containers through the host: only the
  // router does.
  ASSERT_EQ(inet.exec({"ip", "route", "add", host_->subnet(), "via", "198.51.100.254"}).exitCode,
            0);
  EXPECT_NE(inet.exec({"busybox", "nc", "-w", "2", v1_.ip(), "80", "-e", "true"}).exitCode, 0);
}

}  // namespace
}  // namespace qabox::testing
