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

// The relative change of `b` against `a` as the Hodges-Lehmann estimator gives it on the log scale: the
// median over all pairs of log(b_j / a_i), with the distribution-free confidence interval that inverts
// the Mann-Whitney test (Moses: order statistics of the pairwise values, the rank taken from the normal
// approximation of U's distribution). Reported as ratios - 1 (0.10 = 10% slower). With too few values
// for the confidence asked, the interval is the range of the pairwise values.
struct ShiftEstimate {
  double change = 0, lower = 0, upper = 0;
};
ShiftEstimate hodges_lehmann_change(const std::vector<double>& a, const std::vector<double>& b, double confidence);

// Quantile of the standard normal distribution (p in (0, 1)).
double normal_quantile(double p);

}  // namespace varbench
