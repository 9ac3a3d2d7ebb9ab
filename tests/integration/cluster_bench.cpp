// What spanning hosts costs, on three real agents (cluster_hosts.h); run by
// scripts/bench/cluster.sh, which explains the figures. Not a test: it
// asserts only that the set-up worked, and prints what it measured.
//
//   deploy   an image-only Deploy over gRPC to the owner, and the same
//            through another host (forwarded over mTLS), alternating,
//            each deleted before the next: p50 and p90 of each.
//   get      GetEnvironment the same two ways: what forwarding itself costs.
//   routed   wrk against the owner's router and against another host's,
//            which forwards to it: requests/s and p99 of each.
//   lost     kill -9 the owner: time until another host lists its ticket
//            LOST (the lease TTL is 2 s).
//
// Environment: QABOX_BENCH_ROUNDS (deploys per way, default 20; gets ten
// times as many), QABOX_BENCH_WRK (wrk loads separated by ';', default
// "-t1 -c1 -d5s;-t2 -c4 -d5s"), QABOX_BENCH_LOST_ROUNDS (3).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <thread>

#include "cluster_hosts.h"
#include "qabox/v1/qabox.grpc.pb.h"

namespace qabox::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void report(const std::string& what, const std::vector<double>& direct,
            const std::vector<double>& forwarded) {
  const double d50 = percentile(direct, 0.5), f50 = percentile(forwarded, 0.5);
  std::cout << std::fixed;
  std::cout.precision(2);
  std::cout << what << ": direct p50 " << d50 << " ms p90 " << percentile(direct, 0.9)
            << " ms; forwarded p50 " << f50 << " ms p90 " << percentile(forwarded, 0.9)
            << " ms; forwarding adds " << f50 - d50 << " ms at p50\n";
}

// wrk's requests/s and p99 (ms) from its --latency output.
struct WrkFigures {
  double rps = 0;
  double p99 = 0;
};
WrkFigures wrk(const std::string& args, const std::string& url, const std::string& host) {
  std::vector<std::string> argv = {"/usr/bin/wrk", "--latency", "-H", "Host: " + host};
  std::istringstream split(args);
  for (std::string a; split >> a;) argv.push_back(a);
  argv.push_back(url);
  auto r = runOrDie(argv);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  WrkFigures f;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first, value;
    words >> first >> value;
    if (first == "Requests/sec:") f.rps = std::atof(value.c_str());
    if (first == "99%") {
      double n = std::atof(value.c_str());
      if (value.find("us") != std::string::npos) n /= 1000;
      if (value.find("ms") == std::string::npos && value.find("us") == std::string::npos) n *= 1000;
      f.p99 = n;
    }
  }
  return f;
}

class ClusterBench : public ClusterHostsTest {
 protected:
  std::unique_ptr<v1::Qabox::Stub> stub(int k) {
    return v1::Qabox::NewStub(
        grpc::CreateChannel("unix://" + host(k).socket(), grpc::InsecureChannelCredentials()));
  }
};

TEST_F(ClusterBench, WhatForwardingCosts) {
  ASSERT_NO_FATAL_FAILURE(startAll());
  const int rounds = envInt("QABOX_BENCH_ROUNDS", 20);
  auto owner = stub(0), other = stub(1);

  auto deploy = [&](v1::Qabox::Stub& via, const std::string& ticket) {
    v1::DeployRequest req;
    req.set_ticket(ticket);
    req.set_host("qa-a");
    grpc::ClientContext ctx;
    const auto t0 = Clock::now();
    grpc::Status s = drain(via.Deploy(&ctx, req));
    const double took = ms(Clock::now() - t0);
    EXPECT_TRUE(s.ok()) << s.error_message();
    grpc::ClientContext del;
    v1::DeleteEnvironmentRequest d;
    d.set_ticket(ticket);
    v1::DeleteEnvironmentResponse out;
    EXPECT_TRUE(owner->DeleteEnvironment(&del, d, &out).ok());
    return took;
  };
  std::vector<double> direct, forwarded;
  for (int i = 0; i < rounds; ++i) {
    direct.push_back(deploy(*owner, "BENCH-D" + std::to_string(i)));
    forwarded.push_back(deploy(*other, "BENCH-F" + std::to_string(i)));
  }
  report("deploy", direct, forwarded);

  ASSERT_EQ(deployMarked(0, "BENCH-1", "qa-a"), "qa-a");
  auto get = [&](v1::Qabox::Stub& via) {
    v1::GetEnvironmentRequest req;
    req.set_ticket("BENCH-1");
    v1::Environment env;
    grpc::ClientContext ctx;
    const auto t0 = Clock::now();
    grpc::Status s = via.GetEnvironment(&ctx, req, &env);
    const double took = ms(Clock::now() - t0);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return took;
  };
  direct.clear();
  forwarded.clear();
  for (int i = 0; i < rounds * 10; ++i) {
    direct.push_back(get(*owner));
    forwarded.push_back(get(*other));
  }
  report("get", direct, forwarded);

  // Routed: the owner's router straight to the container, and C's router,
  // which forwards to A's.
  ASSERT_TRUE(eventually([&] { return who(2, "bench-1").body == "qa-a\n"; }));
  // busybox httpd forks a process per request and closes each connection:
  // past a few connections it is the bottleneck and its queue the p99, so
  // the default loads stay below that.
  const char* wrkShapes = std::getenv("QABOX_BENCH_WRK");
  std::vector<std::string> shapes;
  std::istringstream split(wrkShapes != nullptr ? wrkShapes : "-t1 -c1 -d5s;-t2 -c4 -d5s");
  for (std::string shape; std::getline(split, shape, ';');) shapes.push_back(shape);
  auto url = [&](int k) {
    return "http://" + addr(k) + ":" + std::to_string(host(k).routerPort()) + "/who.txt";
  };
  for (const auto& args : shapes) {
    WrkFigures d = wrk(args, url(0), hostOf("bench-1"));
    WrkFigures f = wrk(args, url(2), hostOf("bench-1"));
    std::cout << "routed (" << args << "): direct " << d.rps << " req/s p99 " << d.p99
              << " ms; through another host " << f.rps << " req/s p99 " << f.p99
              << " ms; forwarding adds " << f.p99 - d.p99 << " ms at p99\n";
  }

  // Death to LOST, seen from another host.
  for (int round = 0; round < envInt("QABOX_BENCH_LOST_ROUNDS", 3); ++round) {
    const auto killed = Clock::now();
    host(0).killDaemon();
    bool lost = eventually(
        [&] {
          v1::GetEnvironmentRequest req;
          req.set_ticket("BENCH-1");
          v1::Environment env;
          grpc::ClientContext ctx;
          return other->GetEnvironment(&ctx, req, &env).ok() &&
                 env.state() == v1::Environment::LOST;
        },
        10s);
    ASSERT_TRUE(lost);
    std::cout << "lost: " << ms(Clock::now() - killed) << " ms from kill -9 to LOST on qa-b"
              << " (lease TTL 2000 ms)\n";
    ASSERT_NO_FATAL_FAILURE(host(0).startDaemon());
    owner = stub(0);
    ASSERT_TRUE(eventually([&] {
      auto e = host(1).env("BENCH-1");
      return e && e->state() == v1::Environment::READY;
    }));
  }
}

}  // namespace
}  // namespace qabox::testing
