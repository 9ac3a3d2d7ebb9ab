#include "lifecycle/logs.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <thread>

#include "sys/process.h"
#include "sys/safe_path.h"

namespace qabox {

Result<std::string> readLog(const EnvironmentManager::LogFile& log, off_t& offset, size_t max) {
  auto r = readFileBeneath(log.root, log.relative, offset, max);
  if (!r && r.status().code() == Code::kNotFound) return std::string();
  return r;
}

namespace {

// How long `log` is now; 0 while it does not exist. Opened as readLog
// opens it: a regular file beneath its root, never through a link.
Result<off_t> logSize(const EnvironmentManager::LogFile& log) {
  auto file = openRegularFileBeneath(log.root, log.relative);
  if (!file && file.status().code() == Code::kNotFound) return off_t{0};
  if (!file) return file.status();
  struct stat st {};
  if (::fstat(file->get(), &st) != 0) {
    return internalError(log.root + "/" + log.relative + ": " + std::strerror(errno));
  }
  return st.st_size;
}

}  // namespace

Result<off_t> tailOffset(const EnvironmentManager::LogFile& log, uint32_t tail) {
  if (tail == 0) return off_t{0};
  // The last window of the log, not its first: a tail of a long log ends at its end.
  QABOX_ASSIGN_OR_RETURN(off_t size, logSize(log));
  const auto window = static_cast<off_t>(kLogTailWindow);
  off_t offset = size > window ? size - window : 0;
  QABOX_ASSIGN_OR_RETURN(std::string content, readLog(log, offset, kLogTailWindow));
  off_t start = offset - static_cast<off_t>(content.size());  // 0 when it got shorter meanwhile
  // lastLines leaves out the trailing line ends: the tail starts that much
  // before the end of what is left.
  size_t end = content.size();
  while (end > 0 && (content[end - 1] == '\n' || content[end - 1] == '\r')) --end;
  std::string last = lastLines(std::string_view(content).substr(0, end), tail);
  return start + static_cast<off_t>(end - last.size());
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
  QABOX_ASSIGN_OR_RETURN(auto log, envs.logPath(query.ticket, query.deployLog, query.process));
  LogSink watched = sink;
  // The environment may go away while followed.
  watched.gone = [&] { return !envs.get(query.ticket) || (sink.gone && sink.gone()); };
  Status s = followLog(log, query.tail, query.follow, watched, pollEvery);
  if (!s.isOk()) return Status(s.code(), "logs of " + query.ticket + ": " + s.message());
  return s;
}

}  // namespace qabox
