#include "harness/compare.h"

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/statistics.h"

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
  std::map<std::string, const RunRecord*> base;
  for (const auto& r : baseline)
    if (r.status == "completed") base[r.spec.id] = &r;
  Comparison c;
  std::vector<double> ratios;
  for (const auto& r : current) {
    RunComparison rc;
    rc.run_id = r.spec.id;
    auto it = base.find(r.spec.id);
    if (r.status != "completed") {
      rc.note = "failed in current: " + r.error;
      rc.regression = true;
    } else if (it == base.end()) {
      rc.note = "not in baseline";
    } else {
      const auto a = repetition_latencies_ms(*it->second, with_decode), b = repetition_latencies_ms(r, with_decode);
      rc.baseline_repetitions = static_cast<int64_t>(a.size());
      rc.current_repetitions = static_cast<int64_t>(b.size());
      rc.baseline_ms = median(a);
      rc.current_ms = median(b);
      rc.change = (rc.current_ms - rc.baseline_ms) / rc.baseline_ms;
      ratios.push_back(rc.current_ms / rc.baseline_ms);
      if (a.size() >= 2 && b.size() >= 2) {
        rc.p_value = mann_whitney_u(a, b).p_value;
        rc.regression = rc.change > tolerance && rc.p_value < alpha;
      } else {
        rc.p_value = std::nan("");
        rc.note = "fewer than 2 repetitions: no U test";
        rc.regression = rc.change > tolerance;
      }
      base.erase(it);
    }
    c.regressions += rc.regression;
    c.runs.push_back(std::move(rc));
  }
  for (const auto& [id, r] : base) {
    RunComparison rc;
    rc.run_id = id;
    rc.note = "only in baseline";
    c.runs.push_back(rc);
  }
  c.geomean_ratio = ratios.empty() ? std::nan("") : geometric_mean(ratios);
  return c;
}

std::string format_comparison(const Comparison& c, double tolerance, double alpha) {
  std::ostringstream out;
  out << "| run | baseline ms | current ms | change | U-test p | verdict |\n|---|---|---|---|---|---|\n";
  for (const auto& r : c.runs) {
    if (!r.note.empty() && r.baseline_repetitions == 0) {
      out << fmt::format("| {} | - | - | - | - | {}{} |\n", r.run_id, r.regression ? "REGRESSION: " : "", r.note);
      continue;
    }
    const std::string verdict = r.regression ? "SLOWER" : (r.change < -tolerance && r.p_value < alpha ? "faster" : "same");
    out << fmt::format("| {} | {:.2f} | {:.2f} | {:+.1f}% | {} | {}{} |\n", r.run_id, r.baseline_ms, r.current_ms, 100 * r.change,
                       std::isnan(r.p_value) ? "-" : fmt::format("{:.4f}", r.p_value), verdict,
                       r.note.empty() ? "" : " (" + r.note + ")");
  }
  out << fmt::format("| geometric mean | | | {:+.1f}% | | {} regression{} |\n", 100 * (c.geomean_ratio - 1), c.regressions,
                     c.regressions == 1 ? "" : "s");
  out << fmt::format("Latency: median over repetitions of the mean batch time. A run regresses when it is more than {:.1f}% "
                     "slower and the two-sided Mann-Whitney U test over repetitions gives p < {}.\n",
                     100 * tolerance, alpha);
  return out.str();
}

}  // namespace varbench
