// The live parts: the change stream the list and an environment's page
// follow, and a log's tail. Each stream asks again, at every poll, whether
// its session is still valid: a revoked token ends it at once.
#include "lifecycle/logs.h"
#include "web/dashboard.h"
#include "web/dashboard_internal.h"

namespace qabox::web {

namespace {

constexpr size_t kStreamChunk = 64 << 10;

// A stream's last event, after which it ends.
std::optional<std::string> last(bool& ended, std::string_view name, std::string_view data) {
  ended = true;
  return sseEvent(name, data);
}

}  // namespace

Reply Dashboard::eventStream(Call& c) {
  if (!allowed(c, "ListEnvironments")) return forbidden(c, "Live updates", "ListEnvironments");
  Reply r = eventStreamReply();
  std::string cookies = c.cookies, name = c.cookieName();
  auto seen = std::make_shared<uint64_t>(changes());
  auto first = std::make_shared<bool>(true);
  auto ended = std::make_shared<bool>(false);
  r.stream = [this, cookies, name, seen, first, ended]() -> std::optional<std::string> {
    if (*ended) return std::nullopt;
    if (!signedIn(codec_, tokens_, cookies, name, SessionKind::kSession, kReservedLabel,
                  time_.now())) {
      return last(*ended, "signedout", "the session ended");
    }
    if (*first) {
      *first = false;
      return "retry: 2000\n\n";
    }
    uint64_t now = changes();
    if (now == *seen) return std::string();
    *seen = now;
    return sseEvent("change", std::to_string(now));
  };
  return r;
}

Reply Dashboard::logStream(Call& c, const std::string& ticket) {
  if (!allowed(c, "StreamLogs")) return forbidden(c, "Logs", "StreamLogs");
  bool deploy = c.params["which"] == "deploy";
  std::string process = c.params["process"];
  if (!process.empty() && !validProcessName(process)) {
    return makeReply(http::status::bad_request, "process: not a process name\n", "text/plain");
  }
  auto log = logFileOf(ticket, deploy, process);
  if (!log) return makeReply(http::status::not_found, log.status().message() + "\n", "text/plain");
  auto offset = std::make_shared<off_t>(0);
  try {
    *offset = static_cast<off_t>(std::stoll(c.params["from"]));
  } catch (const std::exception&) {
    *offset = 0;
  }
  if (*offset < 0) *offset = 0;
  Reply r = eventStreamReply();
  std::string cookies = c.cookies, name = c.cookieName();
  auto file = std::make_shared<EnvironmentManager::LogFile>(*log);
  auto polls = std::make_shared<unsigned>(0);
  auto ended = std::make_shared<bool>(false);
  r.stream = [this, cookies, name, ticket, file, offset, polls,
              ended]() -> std::optional<std::string> {
    if (*ended) return std::nullopt;
    if (!signedIn(codec_, tokens_, cookies, name, SessionKind::kSession, kReservedLabel,
                  time_.now())) {
      return last(*ended, "signedout", "the session ended");
    }
    // Every few seconds: is the environment still there?
    if (++*polls % 10 == 0 && !envs_.get(ticket)) {
      return last(*ended, "end", "The environment is gone.");
    }
    auto chunk = readLog(*file, *offset, kStreamChunk);
    if (!chunk) return last(*ended, "end", chunk.status().message());
    return chunk->empty() ? std::string() : sseEvent("log", *chunk);
  };
  return r;
}

}  // namespace qabox::web
