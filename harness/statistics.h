#pragma once
// Two-sample statistics for the speed-regression gate, with the semantics of Google Benchmark's
// tools/compare.py (scipy.stats.mannwhitneyu, two-sided).
#include <vector>

namespace varbench {

struct MannWhitney {
  double u = 0;        // U statistic of the first sample
  double p_value = 1;  // two-sided
  bool exact = false;  // exact distribution (small samples without ties) or normal approximation
};

// scipy's method='auto': exact unless both samples have more than 8 values or there are ties,
// otherwise the normal approximation with tie correction and continuity correction.
MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

double geometric_mean(const std::vector<double>& v);

}  // namespace varbench
