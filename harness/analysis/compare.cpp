#include "harness/analysis/compare.h"

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/analysis/rank_tests.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {
// Mean batch latency of every repetition.
std::vector<double> repetition_latencies_ms(const RunRecord& r, bool with_decode) {
  std::map<int64_t, std::pair<double, int64_t>> reps;
  const auto& ms = with_decode ? r.batch_with_decode_ms : r.batch_ms;
  for (size_t i = 0; i < ms.size(); ++i) {
    reps[r.batch_repetition[i]].first += ms[i];
    reps[r.batch_repetition[i]].second += 1;
  }
  std::vector<double> out;
  for (const auto& [rep, v] : reps) out.push_back(v.first / static_cast<double>(v.second));
  return out;
}
// The notes a run gets before any statistics (failed on either side, or absent from the base); true when
// both sides measured it. A failure on the new side is a regression.
bool both_sides_measured(RunComparison& rc, const std::string& new_error, bool in_base, const std::string& base_error, bool by_rounds) {
  const char* new_side = by_rounds ? "candidate" : "current";
  const char* base_side = by_rounds ? "base" : "baseline";
  const char* separator = by_rounds ? ", " : ": ";
  if (!new_error.empty()) {
    rc.note = fmt::format("failed in {}{}{}", new_side, separator, new_error);
    rc.regression = true;
    rc.verdict = "SLOWER";
  } else if (!in_base) {
    rc.note = fmt::format("not in {}", base_side);
  } else if (!base_error.empty()) {
    rc.note = fmt::format("failed in {}{}{}", base_side, separator, base_error);
  }
  return rc.note.empty();
}

std::string verdict_of(const RunComparison& rc, double tolerance, double alpha) {
  if (rc.regression) return "SLOWER";
  if (rc.shift.change < -tolerance && rc.p_value < alpha) return "faster";
  if (rc.shift.lower >= -tolerance && rc.shift.upper <= tolerance) return "no change";
  return "inconclusive";
}

// The tail both comparisons share: a row for each run only the base side has (`unmatched`), and the
// geometric mean of the changes.
template <typename Sides>
void finish_comparison(Comparison& c, const Sides& unmatched, const char* note, const std::vector<double>& ratios) {
  for (const auto& [id, side] : unmatched) {
    RunComparison rc;
    rc.run_id = id;
    rc.note = note;
    c.runs.push_back(rc);
  }
  c.geomean_ratio = ratios.empty() ? std::nan("") : geometric_mean(ratios);
}
}  // namespace

double parse_tolerance(const std::string& text) {
  std::string t = text;
  const bool percent = !t.empty() && t.back() == '%';
  if (percent) t.pop_back();
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != t.size() || v < 0) throw std::runtime_error(fmt::format("--tolerance '{}': expected e.g. 5% or 0.05", text));
  return percent ? v / 100.0 : v;
}

Comparison compare_runs(const std::vector<RunRecord>& baseline, const std::vector<RunRecord>& current, double tolerance,
                        double alpha, bool with_decode) {
  // Every side's repetitions by run, pooled over the records of the run (A/B rounds); a failed record
  // fails its run. Runs in the order the current side first names them.
  struct Side {
    std::vector<double> latencies;
    std::string error;  // the first failure
    bool present = false;
  };
  std::vector<std::string> order;
  std::map<std::string, Side> base, cur;
  auto collect = [&](const std::vector<RunRecord>& records, std::map<std::string, Side>& side, bool ordering) {
    for (const auto& r : records) {
      auto& s = side[r.spec.id];
      if (!s.present && ordering) order.push_back(r.spec.id);
      s.present = true;
      if (r.status != schema::kCompleted) {
        if (s.error.empty()) s.error = r.error.empty() ? r.status : r.error;
        continue;
      }
      const auto reps = repetition_latencies_ms(r, with_decode);
      s.latencies.insert(s.latencies.end(), reps.begin(), reps.end());
    }
  };
  collect(current, cur, true);
  collect(baseline, base, false);
  Comparison c;
  std::vector<double> ratios;
  for (const auto& id : order) {
    const auto& b = cur.at(id);
    RunComparison rc;
    rc.run_id = id;
    auto it = base.find(id);
    const bool in_base = it != base.end();
    const std::string base_error = !in_base ? "" : !it->second.error.empty() ? it->second.error : it->second.latencies.empty() ? "no timings" : "";
    if (both_sides_measured(rc, b.error, in_base, base_error, false)) {
      const auto& a = it->second.latencies;
      rc.baseline_repetitions = static_cast<int64_t>(a.size());
      rc.current_repetitions = static_cast<int64_t>(b.latencies.size());
      rc.baseline_ms = median(a);
      rc.current_ms = median(b.latencies);
      rc.change = (rc.current_ms - rc.baseline_ms) / rc.baseline_ms;
      rc.shift = hodges_lehmann_change(a, b.latencies, 1 - alpha);
      ratios.push_back(rc.current_ms / rc.baseline_ms);
      // The verdict weighs the Hodges-Lehmann change, the estimator that belongs to the U test, not the
      // ratio of the two medians: on a shared machine bursts of interference skew the samples, and the
      // median of one side can jump by more than the tolerance while the shift between the sides does not
      // (measured: an unchanged build at +10.3% by medians, +4.7% by HL, p = 0.01).
      if (a.size() >= 2 && b.latencies.size() >= 2) {
        rc.p_value = mann_whitney_u(a, b.latencies).p_value;
        rc.regression = rc.shift.change > tolerance && rc.p_value < alpha;
      } else {
        rc.p_value = std::nan("");
        rc.note = "fewer than 2 repetitions: no U test";
        rc.regression = rc.change > tolerance;
      }
      rc.verdict = verdict_of(rc, tolerance, alpha);
    }
    if (it != base.end()) base.erase(it);
    c.regressions += rc.regression;
    c.runs.push_back(std::move(rc));
  }
  finish_comparison(c, base, "only in baseline", ratios);
  return c;
}

double smallest_signed_rank_p(int rounds) { return std::min(1.0, 2.0 / std::ldexp(1.0, rounds)); }

Comparison compare_rounds(const std::vector<std::vector<RunRecord>>& base_rounds,
                          const std::vector<std::vector<RunRecord>>& candidate_rounds, double tolerance, double alpha,
                          bool with_decode) {
  if (base_rounds.size() != candidate_rounds.size())
    throw std::runtime_error(fmt::format("A/B comparison: {} base rounds and {} candidate rounds", base_rounds.size(),
                                         candidate_rounds.size()));
  // Per run and side: one value per round (the median of the round's repetitions), or the round's failure.
  struct Side {
    std::map<size_t, double> by_round;
    std::string error;
    int64_t repetitions = 0;
  };
  std::vector<std::string> order;
  std::map<std::string, Side> base, cand;
  auto collect = [&](const std::vector<std::vector<RunRecord>>& rounds, std::map<std::string, Side>& side, bool ordering) {
    for (size_t r = 0; r < rounds.size(); ++r)
      for (const auto& rec : rounds[r]) {
        if (!side.count(rec.spec.id) && ordering) order.push_back(rec.spec.id);
        auto& s = side[rec.spec.id];
        if (rec.status != schema::kCompleted) {
          if (s.error.empty()) s.error = fmt::format("round {}: {}", r + 1, rec.error.empty() ? rec.status : rec.error);
          continue;
        }
        const auto reps = repetition_latencies_ms(rec, with_decode);
        if (reps.empty()) continue;
        s.repetitions += static_cast<int64_t>(reps.size());
        s.by_round[r] = median(reps);
      }
  };
  collect(candidate_rounds, cand, true);
  collect(base_rounds, base, false);
  Comparison c;
  c.by_rounds = true;
  std::vector<double> ratios;
  for (const auto& id : order) {
    const auto& b = cand.at(id);
    RunComparison rc;
    rc.run_id = id;
    auto it = base.find(id);
    if (both_sides_measured(rc, b.error, it != base.end(), it != base.end() ? it->second.error : "", true)) {
      // Rounds where both sides measured the run: the pairs.
      std::vector<double> base_ms, cand_ms, log_ratios;
      for (const auto& [r, ms] : b.by_round)
        if (auto a = it->second.by_round.find(r); a != it->second.by_round.end()) {
          base_ms.push_back(a->second);
          cand_ms.push_back(ms);
          log_ratios.push_back(std::log(ms) - std::log(a->second));
        }
      if (log_ratios.empty()) {
        rc.note = "no round measured both sides";
      } else {
        rc.rounds = static_cast<int64_t>(log_ratios.size());
        rc.baseline_repetitions = it->second.repetitions;
        rc.current_repetitions = b.repetitions;
        rc.baseline_ms = median(base_ms);
        rc.current_ms = median(cand_ms);
        rc.change = (rc.current_ms - rc.baseline_ms) / rc.baseline_ms;
        rc.shift = paired_hodges_lehmann_change(log_ratios, 1 - alpha);
        rc.p_value = log_ratios.size() >= 2 ? wilcoxon_signed_rank(log_ratios).p_value : std::nan("");
        if (std::isnan(rc.p_value)) rc.note = "one round: no signed-rank test";
        rc.regression = rc.shift.change > tolerance && rc.p_value < alpha;
        rc.verdict = verdict_of(rc, tolerance, alpha);
        ratios.push_back(std::exp(rc.shift.change > -1 ? std::log1p(rc.shift.change) : 0.0));
      }
    }
    if (it != base.end()) base.erase(it);
    c.regressions += rc.regression;
    c.runs.push_back(std::move(rc));
  }
  finish_comparison(c, base, "only in base", ratios);
  return c;
}

std::string format_comparison(const Comparison& c, double tolerance, double alpha) {
  std::ostringstream out;
  const int confidence = static_cast<int>(std::lround(100 * (1 - alpha)));
  if (c.by_rounds)
    out << fmt::format("| run | base ms | candidate ms | rounds | change | HL change [{}% CI] | signed-rank p | verdict |\n", confidence)
        << "|---|---|---|---|---|---|---|---|\n";
  else
    out << fmt::format("| run | baseline ms | current ms | change | HL change [{}% CI] | U-test p | verdict |\n", confidence)
        << "|---|---|---|---|---|---|---|\n";
  const std::string empty_cells = c.by_rounds ? "- | - | - | - | - | - |" : "- | - | - | - | - |";
  for (const auto& r : c.runs) {
    if (!r.note.empty() && r.baseline_repetitions == 0) {
      out << fmt::format("| {} | {} {}{} |\n", r.run_id, empty_cells, r.regression ? "REGRESSION: " : "", r.note);
      continue;
    }
    out << fmt::format("| {} | {:.2f} | {:.2f} |{} {:+.1f}% | {:+.1f}% [{:+.1f}%, {:+.1f}%] | {} | {}{} |\n", r.run_id,
                       r.baseline_ms, r.current_ms, c.by_rounds ? fmt::format(" {} |", r.rounds) : "", 100 * r.change, 100 * r.shift.change, 100 * r.shift.lower,
                       100 * r.shift.upper, std::isnan(r.p_value) ? "-" : fmt::format("{:.4f}", r.p_value), r.verdict,
                       r.note.empty() ? "" : " (" + r.note + ")");
  }
  out << fmt::format("| geometric mean | | |{} {:+.1f}% | | | {} regression{} |\n", c.by_rounds ? " |" : "",
                     100 * (c.geomean_ratio - 1), c.regressions, c.regressions == 1 ? "" : "s");
  if (c.by_rounds) {
    out << fmt::format(
        "Per round and side: the median over the round's repetitions of the mean batch time; ms: the median over rounds; "
        "change: the ratio of those medians. The round is the unit (its repetitions share one minute of the machine): "
        "HL change is the Hodges-Lehmann estimate of the per-round log ratios candidate/base (the median of their Walsh "
        "averages) with its {}% confidence interval, p the two-sided Wilcoxon signed-rank test over the rounds. A run "
        "regresses (SLOWER) when its HL change is more than {:.1f}% and p < {}; 'no change' when the interval lies "
        "within +-{:.1f}%, 'inconclusive' when it reaches past it (more rounds would tell). Geometric mean: of the HL "
        "changes.\n",
        confidence, 100 * tolerance, alpha, 100 * tolerance);
    return out.str();
  }
  out << fmt::format(
      "Latency: median over repetitions of the mean batch time; change: the ratio of the medians. HL change: the "
      "Hodges-Lehmann estimate of the change (the median of all current/baseline ratios) with its {}% confidence "
      "interval. A run regresses (SLOWER) when its HL change is more than {:.1f}% and the two-sided Mann-Whitney U "
      "test over repetitions gives p < {}; 'no change' when the interval lies within +-{:.1f}%, 'inconclusive' when "
      "it reaches past it (more repetitions would tell).\n",
      confidence, 100 * tolerance, alpha, 100 * tolerance);
  return out.str();
}

}  // namespace varbench
