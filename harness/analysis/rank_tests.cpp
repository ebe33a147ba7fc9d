#include "harness/analysis/rank_tests.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

#include "metrics/uncertainty.h"

namespace varbench {

namespace {
// Number of ways to reach each U value with n1 and n2 distinct values: the exact null distribution.
std::vector<double> u_distribution(int n1, int n2) {
  // f[i][j][u]: arrangements of i values of sample 1 and j of sample 2 with statistic u.
  std::vector<std::vector<std::vector<double>>> f(n1 + 1, std::vector<std::vector<double>>(n2 + 1));
  for (int i = 0; i <= n1; ++i)
    for (int j = 0; j <= n2; ++j) {
      f[i][j].assign(i * j + 1, 0.0);
      if (i == 0 || j == 0) {
        f[i][j][0] = 1;
        continue;
      }
      // The largest value belongs to sample 1 (it beats all j of sample 2) or to sample 2.
      for (size_t u = 0; u < f[i - 1][j].size(); ++u) f[i][j][u + j] += f[i - 1][j][u];
      for (size_t u = 0; u < f[i][j - 1].size(); ++u) f[i][j][u] += f[i][j - 1][u];
    }
  return f[n1][n2];
}
}  // namespace

MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n1 = a.size(), n2 = b.size();
  if (n1 == 0 || n2 == 0) throw std::runtime_error("Mann-Whitney U test needs two non-empty samples");
  // Ranks of the pooled sample, ties given their average rank.
  std::vector<std::pair<double, int>> pooled;
  for (double x : a) pooled.push_back({x, 0});
  for (double x : b) pooled.push_back({x, 1});
  std::sort(pooled.begin(), pooled.end());
  const size_t n = pooled.size();
  std::vector<double> rank(n);
  double tie_term = 0;
  bool ties = false;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && pooled[j].first == pooled[i].first) ++j;
    const double avg = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) rank[k] = avg;
    const double t = static_cast<double>(j - i);
    if (t > 1) ties = true;
    tie_term += t * t * t - t;
    i = j;
  }
  double r1 = 0;
  for (size_t i = 0; i < n; ++i)
    if (pooled[i].second == 0) r1 += rank[i];
  MannWhitney out;
  out.u = r1 - static_cast<double>(n1) * static_cast<double>(n1 + 1) / 2.0;
  const double mean = static_cast<double>(n1) * static_cast<double>(n2) / 2.0;
  if ((n1 <= 8 || n2 <= 8) && !ties) {
    // Exact two-sided p: twice the smaller tail, capped at 1 (scipy's definition).
    const auto dist = u_distribution(static_cast<int>(n1), static_cast<int>(n2));
    const double total = std::accumulate(dist.begin(), dist.end(), 0.0);
    const double u_big = std::max(out.u, static_cast<double>(n1 * n2) - out.u);
    double tail = 0;
    for (size_t u = 0; u < dist.size(); ++u)
      if (static_cast<double>(u) >= u_big) tail += dist[u];
    out.p_value = std::min(1.0, 2.0 * tail / total);
    out.exact = true;
    return out;
  }
  const double nn = static_cast<double>(n);
  const double sd = std::sqrt(static_cast<double>(n1) * static_cast<double>(n2) / 12.0 * ((nn + 1) - tie_term / (nn * (nn - 1))));
  if (sd == 0) return out;  // every value equal: no evidence of a difference
  const double u_big = std::max(out.u, static_cast<double>(n1 * n2) - out.u);
  const double z = (u_big - mean - 0.5) / sd;  // continuity correction
  out.p_value = std::min(1.0, std::erfc(z / std::sqrt(2.0)));
  return out;
}

ShiftEstimate hodges_lehmann_change(const std::vector<double>& a, const std::vector<double>& b, double confidence) {
  if (a.empty() || b.empty()) throw std::runtime_error("Hodges-Lehmann estimate needs two non-empty samples");
  std::vector<double> d;
  d.reserve(a.size() * b.size());
  for (double x : a)
    for (double y : b) d.push_back(std::log(y) - std::log(x));
  std::sort(d.begin(), d.end());
  const size_t n = d.size();
  const double median_d = n % 2 ? d[n / 2] : 0.5 * (d[n / 2 - 1] + d[n / 2]);
  // The k-th smallest and k-th largest pairwise values bound the interval, k - 1 = the U value whose
  // lower tail holds (1 - confidence) / 2 of the null distribution.
  const double n1 = static_cast<double>(a.size()), n2 = static_cast<double>(b.size());
  const double z = metrics::normal_quantile(0.5 + confidence / 2);
  const double c = std::floor(n1 * n2 / 2 - z * std::sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0));
  const size_t k = c < 0 ? 0 : std::min(static_cast<size_t>(c), (n - 1) / 2);
  ShiftEstimate e;
  e.change = std::expm1(median_d);
  e.lower = std::expm1(d[k]);
  e.upper = std::expm1(d[n - 1 - k]);
  return e;
}

namespace {
// Number of subsets of the ranks 1..n with each rank sum: the exact null distribution of T+ (2^n in all).
std::vector<double> signed_rank_distribution(int64_t n) {
  std::vector<double> count{1.0};
  for (int64_t r = 1; r <= n; ++r) {
    std::vector<double> next(count.size() + static_cast<size_t>(r), 0.0);
    for (size_t t = 0; t < count.size(); ++t) {
      next[t] += count[t];
      next[t + static_cast<size_t>(r)] += count[t];
    }
    count = std::move(next);
  }
  return count;
}
}  // namespace

SignedRank wilcoxon_signed_rank(const std::vector<double>& differences) {
  std::vector<double> d;
  for (double x : differences)
    if (x != 0) d.push_back(x);
  SignedRank out;
  out.n = static_cast<int64_t>(d.size());
  if (d.empty()) return out;
  const bool zeros = d.size() != differences.size();
  std::vector<size_t> order(d.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return std::fabs(d[i]) < std::fabs(d[j]); });
  const size_t n = d.size();
  double tie_term = 0, t_minus = 0;
  bool ties = false;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && std::fabs(d[order[j]]) == std::fabs(d[order[i]])) ++j;
    const double avg = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) (d[order[k]] > 0 ? out.t_plus : t_minus) += avg;
    const double t = static_cast<double>(j - i);
    ties |= t > 1;
    tie_term += t * t * t - t;
    i = j;
  }
  const double t_small = std::min(out.t_plus, t_minus), nn = static_cast<double>(n);
  if (n <= 50 && !zeros && !ties) {
    const auto dist = signed_rank_distribution(out.n);
    double tail = 0, total = 0;
    for (size_t t = 0; t < dist.size(); ++t) {
      total += dist[t];
      if (static_cast<double>(t) <= t_small) tail += dist[t];
    }
    out.p_value = std::min(1.0, 2.0 * tail / total);
    out.exact = true;
    return out;
  }
  const double mean = nn * (nn + 1) / 4.0;
  const double sd = std::sqrt(nn * (nn + 1) * (2 * nn + 1) / 24.0 - tie_term / 48.0);
  out.p_value = sd > 0 ? std::min(1.0, std::erfc(std::fabs(t_small - mean) / sd / std::sqrt(2.0))) : 1.0;
  return out;
}

ShiftEstimate paired_hodges_lehmann_change(const std::vector<double>& log_ratios, double confidence) {
  if (log_ratios.empty()) throw std::runtime_error("Hodges-Lehmann estimate needs at least one paired difference");
  const size_t n = log_ratios.size();
  std::vector<double> walsh;
  walsh.reserve(n * (n + 1) / 2);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i; j < n; ++j) walsh.push_back(0.5 * (log_ratios[i] + log_ratios[j]));
  std::sort(walsh.begin(), walsh.end());
  const size_t m = walsh.size();
  const double median_w = m % 2 ? walsh[m / 2] : 0.5 * (walsh[m / 2 - 1] + walsh[m / 2]);
  // The interval [W_(k+1), W_(m-k)] (1-based) has confidence 1 - 2 P(T+ <= k): k is the largest rank sum
  // whose lower tail stays within (1 - confidence) / 2; none (too few pairs) leaves the whole range. In
  // 0-based indices: walsh[k] and walsh[m - 1 - k].
  const double tail_allowed = (1 - confidence) / 2;
  int64_t k = -1;
  if (n <= 50) {
    const auto dist = signed_rank_distribution(static_cast<int64_t>(n));
    const double total = std::accumulate(dist.begin(), dist.end(), 0.0);
    double tail = 0;
    for (size_t t = 0; t < dist.size(); ++t) {
      tail += dist[t];
      if (tail / total > tail_allowed) break;
      k = static_cast<int64_t>(t);
    }
  } else {
    const double nn = static_cast<double>(n);
    k = static_cast<int64_t>(std::floor(nn * (nn + 1) / 4 - metrics::normal_quantile(1 - tail_allowed) * std::sqrt(nn * (nn + 1) * (2 * nn + 1) / 24))) - 1;
  }
  const size_t index = k < 0 ? 0 : std::min(static_cast<size_t>(k), (m - 1) / 2);
  ShiftEstimate e;
  e.change = std::expm1(median_w);
  e.lower = std::expm1(walsh[index]);
  e.upper = std::expm1(walsh[m - 1 - index]);
  return e;
}

double geometric_mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += std::log(x);
  return std::exp(s / static_cast<double>(v.size()));
}

}  // namespace varbench
