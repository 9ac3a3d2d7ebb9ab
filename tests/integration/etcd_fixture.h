#pragma once

// A real etcd cluster for a test: Debian's etcd-server, `members` members
// on `ip` (loopback unless a test's hosts live elsewhere) with TLS everywhere (clients and peers
// show certificates from the test's own CA), each member a child process with its own data dir and
// log under `dir`. Every member is killed and `dir` removed when the fixture goes, also when the
// test failed.

#include <string>
#include <vector>

#include "cluster/kv.h"

namespace qabox::testing {

// Fails unless Debian's etcd is installed: scripts/install-deps.sh installs
// it wherever the tests run.
bool etcdAvailable(std::string* why);
#define QABOX_REQUIRE_ETCD()                                                                      \
  do {                                                                                            \
    std::string why_;                                                                             \
    if (!::qabox::testing::etcdAvailable(&why_)) {                                                \
      FAIL() << "needs etcd (scripts/install-deps.sh, or apt-get install etcd-server): " << why_; \
    }                                                                                             \
  } while (0)

class EtcdFixture {
 public:
  explicit EtcdFixture(std::string dir, int members = 3, std::string ip = "127.0.0.1");
  ~EtcdFixture();
  EtcdFixture(const EtcdFixture&) = delete;
  EtcdFixture& operator=(const EtcdFixture&) = delete;

  // Starts every member and waits until each answers (test failure if not).
  void start();
  void stopMember(int i);   // SIGTERM, and waits for it
  void killMember(int i);   // SIGKILL
  void startMember(int i);  // again, with its data dir (does not wait)
  void waitReady();         // every running member answers (test failure if not)

  int members() const { return static_cast<int>(members_.size()); }
  std::vector<std::string> endpoints() const;  // https://IP:PORT, one per member
  std::string endpoint(int i) const;
  // A client certificate the members trust (serverAuth and clientAuth).
  std::string caFile() const { return dir_ + "/pki/ca.crt"; }
  std::string certFile() const { return dir_ + "/pki/client.crt"; }
  std::string keyFile() const { return dir_ + "/pki/client.key"; }
  std::string log(int i) const;  // a member's output, for failure messages
  // A client of every member, with the client certificate.
  cluster::EtcdKvOptions kvOptions() const;

 private:
  struct Member {
    std::string name;
    int clientPort = 0;
    int peerPort = 0;
    int pid = -1;
  };
  void spawn(Member& m);
  void waitUntilAnswering(int i);

  std::string dir_;
  std::string ip_;
  std::vector<Member> members_;
};

}  // namespace qabox::testing
