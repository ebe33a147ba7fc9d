#pragma once
// The speed-regression gate: two result files (or two sides of interleaved A/B rounds), run by run, in the
// spirit of Google Benchmark's compare.py: a two-sided Mann-Whitney U test over the repetitions and a
// geometric-mean row, with the change measured by the Hodges-Lehmann estimate (the median of all pairwise
// ratios) and its confidence interval, which also tells "no change" from "not enough evidence".
#include <string>
#include <vector>

#include "harness/results/run_record.h"
#include "harness/analysis/rank_tests.h"

namespace varbench {

struct RunComparison {
  std::string run_id;
  int64_t baseline_repetitions = 0, current_repetitions = 0;
  int64_t rounds = 0;                      // A/B rounds compared pairwise (0: two files, repetitions pooled)
  double baseline_ms = 0, current_ms = 0;  // median over repetitions of the mean batch latency
  double change = 0;                       // (current - baseline) / baseline
  ShiftEstimate shift;                     // Hodges-Lehmann change with its confidence interval
  double p_value = 1;                      // NaN when either side has fewer than 2 repetitions (or rounds)
  bool regression = false;                 // HL change beyond the tolerance and the U test significant
  std::string note;                        // e.g. "only in baseline"
  // "SLOWER" (the regression), "faster", "no change" (the interval lies within the tolerance), or
  // "inconclusive" (neither: the interval reaches past the tolerance; more repetitions would tell).
  std::string verdict;
};

struct Comparison {
  std::vector<RunComparison> runs;
  bool by_rounds = false;  // A/B: the unit is the round (signed-rank test), not the repetition (U test)
  double geomean_ratio = 1;  // geometric mean of current / baseline over the runs in both files
  int64_t regressions = 0;
};

// `tolerance` is a fraction (0.05 = 5%); `alpha` the U test's significance level (the interval's confidence
// is 1 - alpha). A side may hold several records of one run (the rounds of an A/B comparison): their
// repetitions are pooled.
Comparison compare_runs(const std::vector<RunRecord>& baseline, const std::vector<RunRecord>& current, double tolerance,
                        double alpha, bool with_decode);
// A/B rounds: base_rounds[r] and candidate_rounds[r] hold the records of round r (the two sides ran back to
// back). Repetitions inside a round share that minute of the machine and are not independent, so each run
// gets one value per round and side (the median of its repetitions' mean batch latency), one log ratio per
// round, and the verdict from Wilcoxon's signed-rank test over the rounds with the paired Hodges-Lehmann
// change and its interval: the round is the unit.
Comparison compare_rounds(const std::vector<std::vector<RunRecord>>& base_rounds,
                          const std::vector<std::vector<RunRecord>>& candidate_rounds, double tolerance, double alpha,
                          bool with_decode);
// The smallest two-sided p the signed-rank test can give over `rounds` rounds: 2 / 2^rounds.
double smallest_signed_rank_p(int rounds);

std::string format_comparison(const Comparison& c, double tolerance, double alpha);

// "5%" or "0.05" -> 0.05.
double parse_tolerance(const std::string& text);

}  // namespace varbench
