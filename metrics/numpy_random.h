#pragma once
// NumPy's legacy np.random.RandomState, as far as the metrics need it: torch-fidelity draws its
// Inception Score split permutation and its KID subsets from RandomState(2020), and matching those
// draws makes the numbers comparable to the last digit rather than only in distribution.
//   Seeding with an integer is MT19937's init_genrand (identical to std::mt19937's seeding);
//   permutation(n) shuffles arange(n) from the back, swapping element i with one drawn uniformly from
//   [0, i] by masked rejection sampling on 32-bit outputs; choice(n, k, replace=False) is the first k
//   entries of permutation(n).
#include <cstdint>
#include <random>
#include <vector>

namespace varbench::metrics {

class LegacyRandomState {
 public:
  explicit LegacyRandomState(uint32_t seed) : mt_(seed) {}
  std::vector<int64_t> permutation(int64_t n);
  std::vector<int64_t> choice_without_replacement(int64_t n, int64_t k);

 private:
  uint64_t interval(uint64_t max);  // uniform in [0, max]
  std::mt19937 mt_;
};

}  // namespace varbench::metrics
