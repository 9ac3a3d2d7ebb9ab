#include "load.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>

#include "harness.h"

namespace qabox::testing {

namespace fs = std::filesystem;

namespace {

long entries(const std::string& dir) {
  std::error_code ec;
  long n = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

const char* codeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::OK: return "OK";
    case grpc::CANCELLED: return "CANCELLED";
    case grpc::UNKNOWN: return "UNKNOWN";
    case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND: return "NOT_FOUND";
    case grpc::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::ABORTED: return "ABORTED";
    case grpc::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::INTERNAL: return "INTERNAL";
    case grpc::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::DATA_LOSS: return "DATA_LOSS";
    case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "?";
  }
}

// Besides OK. NOT_FOUND: the ticket was deleted (README "Exit codes": 3).
// FAILED_PRECONDITION: the environment is in a state the call does not take
// (sleep of a non-READY one, exec while it cannot run a command, a BROKEN
// one redeployed). UNAVAILABLE for Reap: a pass is already running.
const std::map<std::string, std::set<grpc::StatusCode>>& documented() {
  static const std::map<std::string, std::set<grpc::StatusCode>> m = {
      {"deploy", {grpc::FAILED_PRECONDITION}},
      {"redeploy", {grpc::NOT_FOUND, grpc::FAILED_PRECONDITION}},
      {"delete", {grpc::NOT_FOUND}},
      {"exec", {grpc::NOT_FOUND, grpc::FAILED_PRECONDITION}},
      {"sleep", {grpc::NOT_FOUND, grpc::FAILED_PRECONDITION}},
      {"wake", {grpc::NOT_FOUND}},
      {"reap", {grpc::UNAVAILABLE}},
      {"list", {}},
      {"logs", {grpc::NOT_FOUND}},
  };
  return m;
}

}  // namespace

AgentSample sampleAgent(int pid) {
  AgentSample s;
  const std::string proc = "/proc/" + std::to_string(pid);
  s.fds = entries(proc + "/fd");
  s.threads = entries(proc + "/task");
  s.rssKb = procStatusKb(pid, "VmRSS");
  return s;
}

std::string describe(const AgentSample& s) {
  return "fds " + std::to_string(s.fds) + ", threads " + std::to_string(s.threads) + ", RSS " +
         std::to_string(s.rssKb / 1024) + " MiB";
}

long envNumber(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return end && *end == '\0' && n > 0 ? n : fallback;
}

std::string judgeAnswer(const std::string& rpc, const grpc::Status& status) {
  if (status.ok()) return "";
  const std::string code = codeName(status.error_code());
  const std::string& msg = status.error_message();
  if (msg.empty()) return code + " with no message";
  const std::string m = lower(msg);
  for (const char* bad : {"sqlite", "database is locked", "busy"}) {
    if (m.find(bad) != std::string::npos) return code + " naming the database: " + msg;
  }
  // A failure with nothing after it says nothing a person can act on.
  if (m.size() >= 7 && m.compare(m.size() - 7, 7, " failed") == 0) {
    return code + " without a reason: " + msg;
  }
  auto it = documented().find(rpc);
  if (it == documented().end() || !it->second.count(status.error_code())) {
    return code + " is not an answer " + rpc + " documents: " + msg;
  }
  return "";
}

void Tally::add(const std::string& op, const grpc::Status& status) {
  {
    std::lock_guard l(mu_);
    auto& n = counts_[op][codeName(status.error_code())];
    // The first message of each (op, code), for the report.
    if (++n == 1 && !status.ok()) {
      examples_.push_back(op + " " + codeName(status.error_code()) + ": " + status.error_message());
    }
  }
  if (std::string w = judgeAnswer(op, status); !w.empty()) wrong(op, w);
}

void Tally::wrong(const std::string& op, const std::string& what) {
  std::lock_guard l(mu_);
  ++wrongTotal_;
  // The first three of each kind of wrong answer, by op and its first words.
  const std::string kind = op + " " + what.substr(0, 40);
  if (++wrongKinds_[kind] <= 3) wrong_.push_back(op + ": " + what);
}

long Tally::total() const {
  std::lock_guard l(mu_);
  long n = 0;
  for (const auto& [op, codes] : counts_) {
    for (const auto& [code, c] : codes) n += c;
  }
  return n;
}

long Tally::wrongCount() const {
  std::lock_guard l(mu_);
  return wrongTotal_;
}

std::string Tally::report() const {
  std::lock_guard l(mu_);
  std::ostringstream out;
  for (const auto& [op, codes] : counts_) {
    out << "  " << op << ":";
    for (const auto& [code, c] : codes) out << " " << code << "=" << c;
    out << "\n";
  }
  for (const auto& e : examples_) out << "  e.g. " << e << "\n";
  return out.str();
}

std::vector<std::string> Tally::wrongAnswers() const {
  std::lock_guard l(mu_);
  return wrong_;
}

std::unique_ptr<v1::Qabox::Stub> unixStub(const std::string& socket) {
  return v1::Qabox::NewStub(
      grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials()));
}

double slope(const std::vector<double>& ys) {
  const double n = static_cast<double>(ys.size());
  if (ys.size() < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < ys.size(); ++i) {
    const double x = static_cast<double>(i);
    sx += x;
    sy += ys[i];
    sxx += x * x;
    sxy += x * ys[i];
  }
  const double d = n * sxx - sx * sx;
  return d == 0 ? 0 : (n * sxy - sx * sy) / d;
}

}  // namespace qabox::testing
