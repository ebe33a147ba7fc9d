#include "harness/platform/progress.h"

#include <memory>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace varbench {

bool ProgressBar::enabled() { return isatty(fileno(stderr)) && !std::getenv("VARBENCH_NO_PROGRESS"); }

ProgressBar::ProgressBar(int64_t total, std::string label, std::string unit)
    : total_(total), label_(std::move(label)), unit_(std::move(unit)), start_(std::chrono::steady_clock::now()),
      enabled_(enabled()) {
  last_draw_ = start_ - std::chrono::seconds(1);
  draw();
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(int64_t n) { set(done_ + n); }

void ProgressBar::set(int64_t done) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ > std::chrono::milliseconds(200) || done_ >= total_) draw();
}

void ProgressBar::draw() {
  if (!enabled_ || finished_) return;
  last_draw_ = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(last_draw_ - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  const int width = 30, filled = static_cast<int>(frac * width);
  std::string eta = "--:--";
  if (rate > 0 && done_ < total_) {
    const int64_t s = static_cast<int64_t>((total_ - done_) / rate);
    eta = fmt::format("{:02}:{:02}", s / 60, s % 60);
  }
  std::fprintf(stderr, "\r%s [%s%s] %lld/%lld %s, %.2f %s/s, ETA %s ", label_.c_str(), std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), static_cast<long long>(done_), static_cast<long long>(total_),
               unit_.c_str(), rate, unit_.c_str(), eta.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  draw();
  if (enabled_) std::fprintf(stderr, "\n");
  finished_ = true;
}

metrics::ProgressFn progress_bar(const std::string& label) {
  auto bar = std::make_shared<std::unique_ptr<ProgressBar>>();
  return [bar, label](int64_t done, int64_t total) {
    if (!*bar) *bar = std::make_unique<ProgressBar>(total, label);
    (*bar)->set(done);
    if (done >= total) (*bar)->finish();
  };
}

}  // namespace varbench
