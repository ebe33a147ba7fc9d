#pragma once
// Rank tests for the speed-regression gate, with the semantics of Google Benchmark's
// tools/compare.py (scipy.stats.mannwhitneyu, two-sided).
#include <cstdint>
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

// Wilcoxon's signed-rank test of paired differences against zero, two-sided, as scipy.stats.wilcoxon
// computes it: zero differences dropped, ranks of |d| with ties averaged, the exact null distribution for up
// to 50 differences without zeros or ties, otherwise the normal approximation with the tie correction and no
// continuity correction (scipy's mode='approx'; scipy 1.10's 'auto' stays exact with ties by truncating the
// averaged rank sum, which newer scipy dropped for the approximation). The unit is whatever is independent:
// for the A/B gate a round, not a repetition inside it.
struct SignedRank {
  double t_plus = 0;   // rank sum of the positive differences
  double p_value = 1;  // two-sided; 1 when every difference is zero
  int64_t n = 0;       // nonzero differences
  bool exact = false;
};
SignedRank wilcoxon_signed_rank(const std::vector<double>& differences);

// The relative change that paired log ratios log(b_i / a_i) say: the Hodges-Lehmann estimate (the median of
// the n (n + 1) / 2 Walsh averages) with the confidence interval that inverts the signed-rank test (order
// statistics of the Walsh averages, the rank taken from the exact null distribution). Reported as ratios - 1.
// With too few pairs for the confidence asked, the interval is the range of the Walsh averages.
ShiftEstimate paired_hodges_lehmann_change(const std::vector<double>& log_ratios, double confidence);

}  // namespace varbench
