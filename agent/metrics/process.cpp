// The agent's own process, read from /proc/self at each scrape.
#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "metrics/metrics.h"

namespace qabox {
namespace {

using prometheus::MetricType;

int countFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory's own descriptor
}

struct ProcStat {
  double cpuSeconds = 0;
  long threads = 0;
  double residentBytes = 0;
};

ProcStat readStat() {
  ProcStat p;
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command, which may hold spaces, start past the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) return p;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  long rss = 0;
  // State is field 3; utime 14, stime 15, num_threads 20, rss 24.
  for (int i = 3; i <= 24 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
    if (i == 20) p.threads = std::stol(field);
    if (i == 24) rss = std::stol(field);
  }
  p.cpuSeconds = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  p.residentBytes = static_cast<double>(rss) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  return p;
}

std::vector<prometheus::MetricFamily> collectProcess() {
  ProcStat p = readStat();
  std::vector<prometheus::MetricFamily> out;
  auto add = [&](const char* name, const char* help, MetricType type, double value) {
    auto f = family(name, help, type);
    f.metric.push_back(sample({}, value, type));
    out.push_back(std::move(f));
  };
  add("process_resident_memory_bytes", "Resident memory of the agent", MetricType::Gauge,
      p.residentBytes);
  add("process_open_fds", "Open file descriptors of the agent", MetricType::Gauge, countFds());
  add("process_threads", "Threads of the agent", MetricType::Gauge, static_cast<double>(p.threads));
  add("process_cpu_seconds_total", "CPU time the agent used, user and system", MetricType::Counter,
      p.cpuSeconds);
  return out;
}

}  // namespace

std::shared_ptr<prometheus::Collectable> processSource() { return sourceOf(collectProcess); }

}  // namespace qabox
