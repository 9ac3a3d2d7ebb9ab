#include "lifecycle/logs.h"

#include <thread>

#include "sys/process.h"
#include "sys/safe_path.h"

namespace qabox {

Result<std::string> readLog(const EnvironmentManager::LogFile& log, off_t& offset, size_t max) {
  auto r = readFileBeneath(log.root, log.relative, offset, max);
  if (!r && r.status().code() == Code::kNotFound) return std::string();
  return r;
}

Result<off_t> tailOffset(const EnvironmentManager::LogFile& log, uint32_t tail) {
  if (tail == 0) return off_t{0};
  off_t all = 0;
  QABOX_ASSIGN_OR_RETURN(std::string content, readLog(log, all, kLogTailWindow));
  std::string last = lastLines(content, tail);
  off_t offset = all - static_cast<off_t>(last.size());
  while (offset > 0 && offset < all && content[static_cast<size_t>(offset)] == '\n') ++offset;
  return offset;
}

Status followLog(const EnvironmentManager::LogFile& log, uint32_t tail, bool follow,
                 const LogSink& sink, std::chrono::milliseconds pollEvery) {
  QABOX_ASSIGN_OR_RETURN(off_t offset, tailOffset(log, tail));
  while (!sink.cancelled || !sink.cancelled()) {
    QABOX_ASSIGN_OR_RETURN(std::string chunk, readLog(log, offset, kLogChunkMax));
    if (!chunk.empty()) {
      if (!sink.write(std::move(chunk))) return Status::ok();
      continue;
    }
    if (!follow) break;
    if (sink.gone && sink.gone()) break;
    std::this_thread::sleep_for(pollEvery);
  }
  return Status::ok();
}

Status streamLogs(EnvironmentManager& envs, const LogQuery& query, const LogSink& sink,
                  std::chrono::milliseconds pollEvery) {
  QABOX_ASSIGN_OR_RETURN(auto log, envs.logPath(query.ticket, query.deployLog));
  LogSink watched = sink;
  // The environment may go away while followed.
  watched.gone = [&] { return !envs.get(query.ticket) || (sink.gone && sink.gone()); };
  Status s = followLog(log, query.tail, query.follow, watched, pollEvery);
  if (!s.isOk()) return Status(s.code(), "logs of " + query.ticket + ": " + s.message());
  return s;
}

}  // namespace qabox
