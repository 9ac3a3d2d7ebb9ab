#pragma once

// What the concurrency and soak runs share: the agent's own figures from
// /proc (descriptors, threads, resident memory), the judgement of one
// answer against what the API documents for its RPC, and a tally of
// answers by operation and code.

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "qabox/v1/qabox.grpc.pb.h"

namespace qabox::testing {

struct AgentSample {
  long fds = -1;
  long threads = -1;
  long rssKb = -1;
};

// The agent's descriptors (/proc/PID/fd), threads (/proc/PID/task) and RSS.
AgentSample sampleAgent(int pid);
std::string describe(const AgentSample& s);

// An integer from the environment, `fallback` when unset or not a number.
long envNumber(const char* name, long fallback);

// The codes the README's API section and the proto say each RPC answers
// with, besides OK, when its ticket is gone, busy or in the wrong state.
// Empty when the answer is one of them and its message is a good one;
// otherwise what is wrong with it.
std::string judgeAnswer(const std::string& rpc, const grpc::Status& status);

// Answers by operation and code, and the wrong ones in full (the first
// few of each kind).
class Tally {
 public:
  void add(const std::string& op, const grpc::Status& status);
  // A wrong answer (judgeAnswer's verdict, or a bad outcome of an OK one).
  void wrong(const std::string& op, const std::string& what);
  long total() const;
  long wrongCount() const;
  std::string report() const;
  std::vector<std::string> wrongAnswers() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, long>> counts_;  // op -> code -> n
  std::map<std::string, long> wrongKinds_;
  std::vector<std::string> wrong_;
  std::vector<std::string> examples_;
  long wrongTotal_ = 0;
};

std::unique_ptr<v1::Qabox::Stub> unixStub(const std::string& socket);

// Least-squares slope of ys over 0, 1, 2, ...
double slope(const std::vector<double>& ys);

}  // namespace qabox::testing
