#include "metrics/numpy_random.h"

#include <numeric>
#include <stdexcept>

namespace varbench::metrics {

uint64_t LegacyRandomState::interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;  // smallest all-ones mask covering max
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  if (max > 0xffffffffULL) {
    // NumPy draws 64-bit values as two 32-bit outputs, high word first.
    for (;;) {
      const uint64_t hi = mt_(), lo = mt_();
      const uint64_t v = ((hi << 32) | lo) & mask;
      if (v <= max) return v;
    }
  }
  for (;;) {
    const uint64_t v = static_cast<uint64_t>(mt_()) & mask;
    if (v <= max) return v;
  }
}

std::vector<int64_t> LegacyRandomState::permutation(int64_t n) {
  std::vector<int64_t> a(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(a.begin(), a.end(), int64_t{0});
  for (int64_t i = n - 1; i >= 1; --i) std::swap(a[i], a[interval(static_cast<uint64_t>(i))]);
  return a;
}

std::vector<int64_t> LegacyRandomState::choice_without_replacement(int64_t n, int64_t k) {
  if (k > n) throw std::runtime_error("choice_without_replacement: more samples than the population");
  auto p = permutation(n);
  p.resize(static_cast<size_t>(k));
  return p;
}

}  // namespace varbench::metrics
