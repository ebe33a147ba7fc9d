#pragma once
// Long metric computations report progress through a callback, so that the library does not depend on
// the harness's progress bar (or on a terminal).
#include <cstdint>
#include <functional>

namespace varbench::metrics {

using ProgressFn = std::function<void(int64_t done, int64_t total)>;

inline void report(const ProgressFn& progress, int64_t done, int64_t total) {
  if (progress) progress(done, total);
}

}  // namespace varbench::metrics
