#include "cli/progress.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace qabox::cli {
namespace {

class PlainProgress : public DeployProgress {
 public:
  explicit PlainProgress(std::ostream& err) : err_(err) {}
  void phase(const v1::DeployEvent& event) override {
    err_ << formatDeployPhase(event) << "\n";
    err_.flush();
  }
  void finish() override {}

 private:
  std::ostream& err_;
};

class LiveProgress : public DeployProgress {
 public:
  LiveProgress(std::ostream& err, const Style& style, std::string ticket)
      : err_(err), style_(style), ticket_(std::move(ticket)), start_(Clock::now()) {
    ticker_ = std::thread([this] { tick(); });
  }
  ~LiveProgress() override { finish(); }

  void phase(const v1::DeployEvent& event) override {
    std::lock_guard lock(mu_);
    std::string mark = style_.color ? "\x1b[32m✓\x1b[0m" : "✓";
    // Columns make a list of phases easy to scan; pipes get the plain form.
    std::string phase = cleanCell(event.phase());
    if (phase.size() < 8) phase.resize(8, ' ');
    std::string took = elapsed(toMillis(event.took()));
    if (took.size() < 6) took.insert(0, 6 - took.size(), ' ');
    err_ << "\r\x1b[K" << mark << " " << phase << " " << took;
    if (!event.detail().empty()) err_ << "  " << cleanCell(event.detail());
    err_ << "\n";
    drawLocked();
  }

  void finish() override {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      err_ << "\r\x1b[K";
      err_.flush();
    }
    cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void tick() {
    std::unique_lock lock(mu_);
    while (!stopped_) {
      drawLocked();
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
  }

  void drawLocked() {
    if (stopped_) return;
    static const char* const kFrames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
    err_ << "\r\x1b[K" << kFrames[frame_++ % std::size(kFrames)] << " deploying " << ticket_ << "  "
         << elapsed(took);
    err_.flush();
  }

  std::ostream& err_;
  Style style_;
  std::string ticket_;
  Clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  size_t frame_ = 0;
  std::thread ticker_;
};

}  // namespace

std::unique_ptr<DeployProgress> makeDeployProgress(std::ostream& err, bool terminal,
                                                   const Style& style, const std::string& ticket) {
  if (terminal) return std::make_unique<LiveProgress>(err, style, ticket);
  return std::make_unique<PlainProgress>(err);
}

}  // namespace qabox::cli
