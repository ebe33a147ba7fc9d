#pragma once
// A progress bar with rate and ETA on stderr when it is a terminal; silent otherwise (logs, CI).
#include <chrono>
#include <cstdint>
#include <string>

#include "metrics/progress.h"

namespace varbench {

class ProgressBar {
 public:
  ProgressBar(int64_t total, std::string label, std::string unit = "images");
  ~ProgressBar();
  void advance(int64_t n = 1);
  void set(int64_t done);
  void finish();
  static bool enabled();  // stderr is a terminal and VARBENCH_NO_PROGRESS is unset

 private:
  void draw();
  int64_t total_, done_ = 0;
  std::string label_, unit_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false, enabled_;
};

// A progress callback for the metrics' long loops: a bar that appears with the first report (the total is
// known only then).
metrics::ProgressFn progress_bar(const std::string& label);

}  // namespace varbench
