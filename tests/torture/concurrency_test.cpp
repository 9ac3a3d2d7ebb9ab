// Concurrency (issue 17): nproc x 8 clients call the real agent over its
// unix socket at once, at random, on an overlapping handful of tickets:
// deploy, redeploy, delete, exec, sleep, wake, reap, list, logs. Every
// answer must be one the API documents for its RPC, with a message a person
// can act on and no database error in it; the invariants must hold once the
// calls settle; the agent's descriptors, threads and memory must come back.
// QABOX_TORTURE_SECONDS sets the length (30 here; scripts/torture/
// concurrency.sh runs 300), QABOX_TORTURE_CLIENTS the clients.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <random>
#include <thread>

#include "harness.h"
#include "load.h"

namespace qabox::testing {
namespace {

using Clock = std::chrono::steady_clock;

void deadline(grpc::ClientContext& ctx, int seconds = 120) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// One client's calls; each answer goes to the tally.
class Client {
 public:
  Client(const std::string& socket, Tally& tally, unsigned seed)
      : stub_(unixStub(socket)), tally_(tally), rng_(seed) {}

  void deploy(const std::string& ticket) {
    grpc::ClientContext c;
    deadline(c);
    v1::DeployRequest r;
    r.set_ticket(ticket);
    r.set_image("busybox");
    r.set_force(coin(4));
    deployStream("deploy", stub_->Deploy(&c, r));
  }
  void redeploy(const std::string& ticket) {
    grpc::ClientContext c;
    deadline(c);
    v1::RedeployEnvironmentRequest r;
    r.set_ticket(ticket);
    r.set_force(coin(2));
    deployStream("redeploy", stub_->RedeployEnvironment(&c, r));
  }
  void remove(const std::string& ticket) {
    grpc::ClientContext c;
    deadline(c);
    v1::DeleteEnvironmentRequest r;
    r.set_ticket(ticket);
    v1::DeleteEnvironmentResponse resp;
    tally_.add("delete", stub_->DeleteEnvironment(&c, r, &resp));
  }
  void exec(const std::string& ticket) {
    grpc::ClientContext c;
    deadline(c);
    v1::ExecRequest r;
    r.set_ticket(ticket);
    r.add_argv("echo");
    r.add_argv("ok");
    auto reader = stub_->Exec(&c, r);
    v1::ExecOutput out, last;
    std::string stdoutText;
    while (reader->Read(&out)) {
      stdoutText += out.stdout();
      if (out.exited()) last = out;
    }
    grpc::Status s = reader->Finish();
    tally_.add("exec", s);
    // `echo ok` exits 0; a command cut short by a delete or redeploy is
    // FAILED_PRECONDITION saying so, never OK with the killed command's exit.
    if (s.ok() && !(last.exited() && last.exit_code() == 0)) {
      tally_.wrong("exec", "OK, but exit " + std::to_string(last.exit_code()) + " (" +
                               std::string(last.exited() ? "exited" : "no exit") +
                               "), stdout: " + stdoutText);
    }
  }
  void sleep(const std::string& ticket) {
    grpc::ClientContext c;
    deadline(c);
    v1::SleepEnvironmentRequest r;
    r.set_ticket(ticket);
    v1::Environment e;
    grpc::Status s = stub_->SleepEnvironment(&c, r, &e);
    tally_.add("sleep", s);
    if (s.ok() && e.state() != v1::Environment::SLEEPING) {
      tally_.wrong("sleep", "OK, but the environment is " + v1::Environment::State_Name(e.state()));
    }
  }
  void wake(const std::string& ticket) {
    grpc::ClientContext c;
    deadline(c);
    v1::WakeEnvironmentRequest r;
    r.set_ticket(ticket);
    v1::Environment e;
    grpc::Status s = stub_->WakeEnvironment(&c, r, &e);
    tally_.add("wake", s);
    if (s.ok() && e.state() == v1::Environment::SLEEPING) {
      tally_.wrong("wake", "OK, but the environment still sleeps");
    }
  }
  void reap() {
    grpc::ClientContext c;
    deadline(c);
    v1::ReapRequest r;
    r.set_dry_run(!coin(4));
    v1::ReapResponse resp;
    tally_.add("reap", stub_->Reap(&c, r, &resp));
    for (const auto& rc : resp.reclaimed()) {
      // Nothing here is due by any policy (no repo, no ttl, young).
      tally_.wrong("reap", "reclaimed " + rc.ticket() + " (" + rc.policy() + ")");
    }
  }
  void list() {
    grpc::ClientContext c;
    deadline(c);
    v1::ListEnvironmentsResponse resp;
    tally_.add("list", stub_->ListEnvironments(&c, {}, &resp));
  }
  void logs(const std::string& ticket) {
    grpc::ClientContext c;
    deadline(c);
    v1::StreamLogsRequest r;
    r.set_ticket(ticket);
    r.set_tail(20);
    r.set_deploy(coin(2));
    tally_.add("logs", drain(stub_->StreamLogs(&c, r)));
  }

  void random(const std::vector<std::string>& tickets) {
    const std::string& t = tickets[pick(tickets.size())];
    switch (pick(12)) {
      case 0:
      case 1: deploy(t); break;
      case 2: redeploy(t); break;
      case 3: remove(t); break;
      case 4:
      case 5: exec(t); break;
      case 6: sleep(t); break;
      case 7: wake(t); break;
      case 8: reap(); break;
      case 9: list(); break;
      default: logs(t); break;
    }
  }

 private:
  void deployStream(const std::string& op,
                    std::unique_ptr<grpc::ClientReader<v1::DeployEvent>> reader) {
    v1::DeployEvent ev, last;
    std::string failed;
    while (reader->Read(&ev)) {
      if (ev.phase() == "failed") failed = ev.detail();
      last = ev;
    }
    grpc::Status s = reader->Finish();
    tally_.add(op, s);
    if (!s.ok()) return;
    // A busybox environment has nothing that can fail: a FAILED one, or a
    // redeploy that kept the old one, is a wrong answer under load.
    if (!last.has_environment() || last.environment().state() != v1::Environment::READY) {
      tally_.wrong(op, "OK, but the environment is " +
                           v1::Environment::State_Name(last.environment().state()) + ": " +
                           last.environment().message());
    } else if (!failed.empty()) {
      tally_.wrong(op, "OK with a failed phase: " + failed);
    }
  }
  bool coin(int oneIn) { return pick(static_cast<size_t>(oneIn)) == 0; }
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::unique_ptr<v1::Qabox::Stub> stub_;
  Tally& tally_;
  std::mt19937 rng_;
};

class LxcConcurrency : public ::testing::Test {
 protected:
  void SetUp() override {
    QABOX_REQUIRE_LXC();
    TestHost::Options o;
    o.maxEnvironments = 40;
    o.healthTimeout = "30s";
    o.extraToml = "[reaper]\ninterval = \"0\"\nwake_timeout = \"30s\"\n";
    host_ = std::make_unique<TestHost>(o);
    host_->startWithBusybox();
  }

  // Deletes every environment and waits for the agent's threads to idle.
  void settle() {
    auto stub = unixStub(host_->socket());
    grpc::ClientContext c;
    deadline(c);
    v1::ListEnvironmentsResponse envs;
    ASSERT_TRUE(stub->ListEnvironments(&c, {}, &envs).ok());
    for (const auto& e : envs.environments()) {
      grpc::ClientContext d;
      deadline(d);
      v1::DeleteEnvironmentRequest r;
      r.set_ticket(e.ticket());
      v1::DeleteEnvironmentResponse resp;
      grpc::Status s = stub->DeleteEnvironment(&d, r, &resp);
      EXPECT_TRUE(s.ok()) << e.ticket() << ": " << s.error_message();
    }
  }

  // Waits up to `seconds` for the agent to come back within the allowance
  // of `base`; the last sample.
  AgentSample backToBase(const AgentSample& base, int seconds) {
    AgentSample now;
    for (int i = 0; i < seconds * 2; ++i) {
      now = sampleAgent(host_->daemonPid());
      if (now.fds <= base.fds + kFdAllowance && now.threads <= base.threads + kThreadAllowance &&
          now.rssKb <= base.rssKb + kRssAllowanceKb) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return now;
  }

  // Warm-up: one of each call, so gRPC's pool, the store's statements and
  // the allocator's arenas exist before the baseline is taken.
  AgentSample warmBaseline() {
    Tally warm;
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) {
      clients.emplace_back([&, i] {
        Client c(host_->socket(), warm, 1000 + i);
        const std::string t = "WARM-" + std::to_string(i);
        c.deploy(t);
        c.exec(t);
        c.sleep(t);
        c.wake(t);
        c.logs(t);
        c.list();
        c.remove(t);
      });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(warm.wrongCount(), 0) << warm.report();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    return sampleAgent(host_->daemonPid());
  }

  void expectClean(const Tally& tally) {
    std::cout << "answers (" << tally.total() << "):\n" << tally.report();
    for (const auto& w : tally.wrongAnswers()) ADD_FAILURE() << "wrong answer: " << w;
    EXPECT_EQ(tally.wrongCount(), 0);
  }

  // Descriptors: one per client connection the agent may still keep
  // half-closed, and the log files a late flush holds (+8, as LXD's fdleak
  // test). Threads: gRPC's sync server keeps up to its pollers idle (+4).
  // RSS: the allocator keeps arenas the clients' threads made (+32 MiB).
  static constexpr long kFdAllowance = 8;
  static constexpr long kThreadAllowance = 4;
  static constexpr long kRssAllowanceKb = 32 * 1024;

  std::unique_ptr<TestHost> host_;
};

// Regression: exec racing a sleep answered "container ... is not running
// (state READY)" and "qabox-lxc: attaching to ... failed" with no reason.
// Every exec runs (waking the environment when it sleeps); a sleep during
// one is refused, naming the command.
TEST_F(LxcConcurrency, ExecRacingSleepAndWakeAlwaysRunsOrSaysWhy) {
  Tally tally;
  {
    Client c(host_->socket(), tally, 1);
    c.deploy("RACE-1");
  }
  const auto end = Clock::now() + std::chrono::seconds(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&, i] {
      Client c(host_->socket(), tally, 10 + i);
      while (Clock::now() < end) {
        if (i < 4) {
          c.exec("RACE-1");
        } else if (i == 4) {
          c.sleep("RACE-1");
        } else {
          c.wake("RACE-1");
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  expectClean(tally);
  // No exec failed: each one either ran in an awake environment or woke it.
  std::string report = tally.report();
  EXPECT_EQ(report.find("exec: FAILED_PRECONDITION"), std::string::npos) << report;
  EXPECT_EQ(report.find("exec: NOT_FOUND"), std::string::npos) << report;
}

TEST_F(LxcConcurrency, RandomOperationsOnSharedTicketsAnswerOnlyWhatTheApiDocuments) {
  const AgentSample base = warmBaseline();
  const long seconds = envNumber("QABOX_TORTURE_SECONDS", 30);
  const long clients = envNumber("QABOX_TORTURE_CLIENTS", sysconf(_SC_NPROCESSORS_ONLN) * 8);
  const std::vector<std::string> tickets = {"LOAD-1", "LOAD-2", "LOAD-3",
                                            "LOAD-4", "LOAD-5", "LOAD-6"};
  Tally tally;
  AgentSample peak = base;
  std::atomic<bool> running{true};
  std::thread sampler([&] {
    while (running) {
      AgentSample s = sampleAgent(host_->daemonPid());
      peak.fds = std::max(peak.fds, s.fds);
      peak.threads = std::max(peak.threads, s.threads);
      peak.rssKb = std::max(peak.rssKb, s.rssKb);
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  const auto started = Clock::now();
  const auto end = started + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (long i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      Client c(host_->socket(), tally, static_cast<unsigned>(0x9e3779b9u * (i + 1)));
      while (Clock::now() < end) c.random(tickets);
    });
  }
  for (auto& t : threads) t.join();
  running = false;
  sampler.join();
  const double took = std::chrono::duration<double>(Clock::now() - started).count();
  std::cout << clients << " clients, " << seconds << " s: " << tally.total() << " calls in " << took
            << " s (" << static_cast<long>(tally.total() / took) << "/s), " << tally.wrongCount()
            << " wrong\n";
  expectClean(tally);

  // The calls have all returned: the state must be whole, with environments
  // still there and once they are gone.
  for (const auto& v : host_->violations()) ADD_FAILURE() << "after the load: " << v;
  settle();
  for (const auto& v : host_->violations()) ADD_FAILURE() << "after deleting all: " << v;
  EXPECT_TRUE(host_->containers().empty());
  EXPECT_EQ(host_->leaseCount(), 0);

  const AgentSample after = backToBase(base, 30);
  std::cout << "agent before: " << describe(base) << "\nagent peak:   " << describe(peak)
            << "\nagent after:  " << describe(after) << "\n";
  EXPECT_LE(after.fds, base.fds + kFdAllowance);
  EXPECT_LE(after.threads, base.threads + kThreadAllowance);
  EXPECT_LE(after.rssKb, base.rssKb + kRssAllowanceKb);
}

}  // namespace
}  // namespace qabox::testing
