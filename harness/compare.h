#pragma once
// The speed-regression gate: two result files (or two sides of interleaved A/B rounds), run by run, in the
// spirit of Google Benchmark's compare.py: a two-sided Mann-Whitney U test over the repetitions and a
// geometric-mean row, with the change measured by the Hodges-Lehmann estimate (the median of all pairwise
// ratios) and its confidence interval, which also tells "no change" from "not enough evidence".
#include <string>
#include <vector>

#include "harness/run_record.h"
#include "harness/statistics.h"

namespace varbench {

struct RunComparison {
  std::string run_id;
  int64_t baseline_repetitions = 0, current_repetitions = 0;
  double baseline_ms = 0, current_ms = 0;  // median over repetitions of the mean batch latency
  double change = 0;                       // (current - baseline) / baseline
  ShiftEstimate shift;                     // Hodges-Lehmann change with its confidence interval
  double p_value = 1;                      // NaN when either side has fewer than 2 repetitions
  bool regression = false;                 // HL change beyond the tolerance and the U test significant
  std::string note;                        // e.g. "only in baseline"
  // "SLOWER" (the regression), "faster", "no change" (the interval lies within the tolerance), or
  // "inconclusive" (neither: the interval reaches past the tolerance; more repetitions would tell).
  std::string verdict;
};

struct Comparison {
  std::vector<RunComparison> runs;
  double geomean_ratio = 1;  // geometric mean of current / baseline over the runs in both files
  int64_t regressions = 0;
};

// `tolerance` is a fraction (0.05 = 5%); `alpha` the U test's significance level (the interval's confidence
// is 1 - alpha). A side may hold several records of one run (the rounds of an A/B comparison): their
// repetitions are pooled.
Comparison compare_runs(const std::vector<RunRecord>& baseline, const std::vector<RunRecord>& current, double tolerance,
                        double alpha, bool with_decode);
std::string format_comparison(const Comparison& c, double tolerance, double alpha);

// "5%" or "0.05" -> 0.05.
double parse_tolerance(const std::string& text);

}  // namespace varbench
