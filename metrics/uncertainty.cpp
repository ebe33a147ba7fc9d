#include "metrics/uncertainty.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

#include "metrics/frechet.h"
#include "metrics/linalg.h"
#include "metrics/precision_recall.h"
#include "metrics/statistics.h"

namespace varbench::metrics {

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) throw std::runtime_error("normal_quantile: p must be in (0, 1)");
  // Bisection on the CDF 0.5 erfc(-x / sqrt 2): 200 halvings of [-40, 40] reach double precision.
  double lo = -40, hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

namespace {

// numpy's default (linear) quantile of sorted values.
double sorted_quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<size_t>(std::floor(pos));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (pos - static_cast<double>(below)) * (sorted[above] - sorted[below]);
}

double standard_deviation(const std::vector<double>& v) {
  if (v.size() < 2) return NAN;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

double weighted_mean(const std::vector<double>& values, const std::vector<double>& weights) {
  double s = 0, w = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    s += weights[i] * values[i];
    w += weights[i];
  }
  return s / w;
}

// (|u|^2 - 2 u.v) + |v|^2 clamped at 0, as metrics/precision_recall.cpp computes it.
torch::Tensor squared_distances(const torch::Tensor& u, const torch::Tensor& v) {
  const auto u_norms = u.square().sum(1), v_norms = v.square().sum(1);
  return (u_norms.unsqueeze(1) - 2 * torch::mm(u, v.t())).add_(v_norms.unsqueeze(0)).clamp_min_(0);
}

// The resampling loops multiply small matrices (n x D by D x D, D = 128 for the world) thousands of times:
// the thread pools' hand-offs cost more than they save. Measured on the 2-core VM beside another busy
// process: the quickstart's 11 runs scored with their intervals in 25 s on one thread, 148 s on two.
// One thread for the loops; the caller's setting is restored after.
class OneThread {
 public:
  OneThread() : threads_(torch::get_num_threads()) {
    torch::set_num_threads(1);
    linalg::set_blas_threads(1);
  }
  ~OneThread() {
    torch::set_num_threads(threads_);
    linalg::set_blas_threads(threads_);
  }

 private:
  int threads_;
};

double exact_mcnemar_p(int64_t only_run, int64_t only_baseline) {
  const int64_t n = only_run + only_baseline;
  if (n == 0) return 1.0;
  const int64_t k = std::min(only_run, only_baseline);
  // 2 P(X <= k), X ~ Binomial(n, 1/2), in logs (n may be thousands).
  double tail = 0;
  for (int64_t i = 0; i <= k; ++i)
    tail += std::exp(std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(i) + 1) -
                     std::lgamma(static_cast<double>(n - i) + 1) - static_cast<double>(n) * std::log(2.0));
  return std::min(1.0, 2 * tail);
}
}  // namespace

Interval wilson_interval(int64_t successes, int64_t n, double confidence) {
  if (n <= 0) return {};
  const double z = normal_quantile(0.5 + confidence / 2), nn = static_cast<double>(n);
  const double p = static_cast<double>(successes) / nn, z2 = z * z;
  const double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = z / (1 + z2 / nn) * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

Interval centred_percentile_interval(double estimate, std::vector<double> replicates, double confidence) {
  replicates.erase(std::remove_if(replicates.begin(), replicates.end(), [](double v) { return !std::isfinite(v); }), replicates.end());
  if (replicates.size() < 2 || !std::isfinite(estimate)) return {};
  std::sort(replicates.begin(), replicates.end());
  const double m = sorted_quantile(replicates, 0.5);
  return {estimate + sorted_quantile(replicates, (1 - confidence) / 2) - m, estimate + sorted_quantile(replicates, (1 + confidence) / 2) - m};
}

std::vector<double> Resampler::draw(int64_t n) {
  std::vector<double> counts(static_cast<size_t>(n), 0.0);
  const auto un = static_cast<uint64_t>(n);
  // Rejection keeps every index equally likely (no modulo bias), and the draw identical on every platform.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % un;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t x;
    do x = bits_();
    while (x >= limit);
    counts[x % un] += 1;
  }
  return counts;
}

std::vector<uint8_t> Resampler::coins(int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>(n));
  for (auto& c : out) c = static_cast<uint8_t>(bits_() >> 63);
  return out;
}

double weighted_frechet_distance(const torch::Tensor& features, const std::vector<double>& weights, const FrechetReference& reference) {
  const int64_t n = features.size(0);
  if (static_cast<int64_t>(weights.size()) != n) throw std::runtime_error("weighted_frechet_distance: one weight per row");
  // Only the rows drawn at least once contribute; their weights are their multiplicities.
  std::vector<int64_t> rows;
  std::vector<double> w;
  for (int64_t i = 0; i < n; ++i)
    if (weights[i] > 0) {
      rows.push_back(i);
      w.push_back(weights[i]);
    }
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  if (rows.size() < 2 || total < 2) return NAN;
  const auto x = features.index_select(0, torch::tensor(rows, torch::kInt64));
  const auto wt = torch::tensor(w, torch::kFloat64);
  const auto mu = torch::mv(x.t(), wt) / total;
  const auto centred = x - mu;
  const auto diff = mu - reference.mu;
  const double mean_term = diff.dot(diff).item<double>();
  const double trace = torch::dot(wt, centred.square().sum(1)).item<double>() / (total - 1);
  // R^T C R = Y^T Y with Y = diag(sqrt(w)) (X - mu) R / sqrt(total - 1); its nonzero eigenvalues are those of
  // the smaller of Y^T Y and Y Y^T.
  const auto y = torch::mm(centred * wt.sqrt().unsqueeze(1), reference.root) / std::sqrt(total - 1);
  const auto gram = y.size(0) < y.size(1) ? torch::mm(y, y.t()) : torch::mm(y.t(), y);
  const auto lambda = linalg::symmetric_eigenvalues(gram.contiguous());
  const int64_t count = lambda.size(0);
  int64_t keep = std::min<int64_t>(count, static_cast<int64_t>(rows.size()) - 1);
  if (reference.rank_bound > 0) keep = std::min(keep, reference.rank_bound);
  const double trace_sqrt = lambda.slice(0, count - keep, count).clamp_min(0).sqrt().sum().item<double>();
  return mean_term + trace + reference.trace_sigma - 2 * trace_sqrt;
}

WorldImageScores world_image_scores(const torch::Tensor& features, const torch::Tensor& logits, const torch::Tensor& labels,
                                    const std::string& source, const WorldReference& reference) {
  WorldImageScores s;
  s.features = finite_f64_rows(features, source);
  s.images = s.features.size(0);
  const auto n = static_cast<size_t>(s.images);
  const auto label_values = labels.to(torch::kInt64).contiguous().view(-1);
  s.labels.assign(label_values.data_ptr<int64_t>(), label_values.data_ptr<int64_t>() + label_values.numel());
  const auto correct = logits.argmax(1).eq(label_values.to(logits.device())).to(torch::kFloat64).contiguous().cpu();
  s.correct.assign(correct.data_ptr<double>(), correct.data_ptr<double>() + correct.numel());
  // Manifold membership, reference fixed: image i inside the reference manifold (precision); reference
  // point j inside image i's ball, the radius image i's k = 3 neighbour distance in the full set (recall).
  const auto ref = reference.features.to(torch::kFloat64).contiguous();
  const auto sample_radii = manifold_radii(s.features, source, 3);
  const auto d = squared_distances(ref, s.features);  // [M, N]
  const auto inside = d.le(reference.radii.to(torch::kFloat64).unsqueeze(1)).any(0).to(torch::kFloat64).contiguous();
  s.inside_reference.assign(inside.data_ptr<double>(), inside.data_ptr<double>() + n);
  const auto covers = d.le(sample_radii.unsqueeze(0)).to(torch::kUInt8).contiguous();
  const auto* c = covers.data_ptr<uint8_t>();
  const size_t words = (n + 63) / 64;
  s.covered_by.assign(static_cast<size_t>(ref.size(0)), std::vector<uint64_t>(words, 0));
  for (size_t j = 0; j < s.covered_by.size(); ++j)
    for (size_t i = 0; i < n; ++i)
      if (c[j * n + i]) s.covered_by[j][i / 64] |= uint64_t{1} << (i % 64);
  // KID's cubic polynomial kernel (metrics/kid.h), among the images and towards the reference.
  const double dims = static_cast<double>(s.features.size(1));
  s.kernel = torch::mm(s.features, s.features.t()).div_(dims).add_(1.0).pow_(3).contiguous();
  const auto to_ref = torch::mm(s.features, ref.t()).div_(dims).add_(1.0).pow_(3).mean(1).contiguous();
  s.kernel_to_reference.assign(to_ref.data_ptr<double>(), to_ref.data_ptr<double>() + n);
  return s;
}

WorldReplicate world_replicate(const WorldImageScores& s, const std::vector<double>& w, const WorldReference& reference) {
  WorldReplicate r;
  r.fd = weighted_frechet_distance(s.features, w, reference.frechet);
  r.class_accuracy = weighted_mean(s.correct, w);
  r.precision = weighted_mean(s.inside_reference, w);
  std::vector<uint64_t> present(s.covered_by.empty() ? 0 : s.covered_by[0].size(), 0);
  for (size_t i = 0; i < w.size(); ++i)
    if (w[i] > 0) present[i / 64] |= uint64_t{1} << (i % 64);
  int64_t covered = 0;
  for (const auto& row : s.covered_by) {
    bool any = false;
    for (size_t k = 0; k < row.size() && !any; ++k) any = (row[k] & present[k]) != 0;
    covered += any;
  }
  r.recall = s.covered_by.empty() ? NAN : static_cast<double>(covered) / static_cast<double>(s.covered_by.size());
  // The unbiased MMD^2 of the resampled set against the reference, without the reference's own term
  // (a constant for every resample): off-diagonal kernel pairs of the drawn positions, minus twice the
  // cross term. Two draws of one image are two positions: their pair counts k(x, x).
  const auto n = static_cast<double>(s.images);
  const auto wt = torch::tensor(w, torch::kFloat64);
  const double pairs = torch::dot(wt, torch::mv(s.kernel, wt)).item<double>() - torch::dot(wt, s.kernel.diagonal()).item<double>();
  r.kid = pairs / (n * (n - 1)) - 2 * weighted_mean(s.kernel_to_reference, w);
  return r;
}

WorldIntervals world_quality_intervals(const WorldImageScores& s, const WorldQuality& point, const WorldReference& reference,
                                       const BootstrapSettings& settings) {
  OneThread one_thread;
  Resampler resampler(settings.seed);
  std::vector<double> fd, recall, kid;
  for (int64_t b = 0; b < settings.resamples; ++b) {
    const auto r = world_replicate(s, resampler.draw(s.images), reference);
    fd.push_back(r.fd);
    recall.push_back(r.recall);
    kid.push_back(r.kid);
  }
  WorldIntervals out;
  out.fd = centred_percentile_interval(point.fd, fd, settings.confidence);
  out.fd_bootstrap_sd = standard_deviation(fd);
  out.recall = centred_percentile_interval(point.recall, recall, settings.confidence);
  if (point.kid) out.kid = centred_percentile_interval(*point.kid, kid, settings.confidence);
  const double n = static_cast<double>(s.images);
  out.class_accuracy = wilson_interval(std::llround(point.class_accuracy * n), s.images, settings.confidence);
  out.precision = wilson_interval(std::llround(point.precision * n), s.images, settings.confidence);
  return out;
}

Interval grouped_frechet_interval(const torch::Tensor& features, double estimate, const FrechetReference& reference, int64_t groups,
                                  const BootstrapSettings& settings) {
  const auto x = finite_f64_rows(features, reference.source + " (sample)");
  const int64_t n = x.size(0), d = x.size(1);
  groups = std::min(groups, n / 2);
  if (groups < 2) return {};
  std::vector<FeatureStats> stats;
  for (int64_t g = 0; g < groups; ++g) {
    FeatureStats s(d);
    s.add(x.slice(0, g, n, groups), "group");
    stats.push_back(std::move(s));
  }
  Resampler resampler(settings.seed);
  std::vector<double> replicates;
  for (int64_t b = 0; b < settings.resamples; ++b) {
    const auto counts = resampler.draw(groups);
    FeatureStats total(d);
    for (int64_t g = 0; g < groups; ++g) {
      if (counts[g] == 0) continue;
      total.n += static_cast<int64_t>(counts[g]) * stats[g].n;
      total.sum.add_(stats[g].sum, counts[g]);
      total.sum_outer.add_(stats[g].sum_outer, counts[g]);
    }
    replicates.push_back(frechet_distance(total.gaussian("bootstrap replicate"), reference).distance);
  }
  return centred_percentile_interval(estimate, replicates, settings.confidence);
}

std::string verdict_of_difference(const Interval& difference, double confidence) {
  if (!std::isfinite(difference.lower) || !std::isfinite(difference.upper)) return "-";
  if (difference.upper < 0) return "better";
  if (difference.lower > 0) return "worse";
  return fmt::format("indistinguishable at {}%", std::lround(100 * confidence));
}

WorldComparison compare_world_quality(const WorldImageScores& run, const WorldQuality& run_point, const WorldImageScores& base,
                                      const WorldQuality& base_point, const WorldReference& reference, const BootstrapSettings& settings) {
  OneThread one_thread;
  WorldComparison c;
  c.paired = run.images == base.images && run.labels == base.labels;
  c.images = run.images;
  c.fd_difference = run_point.fd - base_point.fd;
  c.class_accuracy_difference = run_point.class_accuracy - base_point.class_accuracy;
  c.precision_difference = run_point.precision - base_point.precision;
  c.recall_difference = run_point.recall - base_point.recall;
  c.kid_difference = run_point.kid && base_point.kid ? *run_point.kid - *base_point.kid : NAN;
  Resampler resampler(settings.seed);
  std::vector<double> fd, accuracy, precision, recall, kid;
  for (int64_t b = 0; b < settings.resamples; ++b) {
    const auto w_run = resampler.draw(run.images);
    const auto w_base = c.paired ? w_run : resampler.draw(base.images);
    const auto r = world_replicate(run, w_run, reference), q = world_replicate(base, w_base, reference);
    fd.push_back(r.fd - q.fd);
    accuracy.push_back(r.class_accuracy - q.class_accuracy);
    precision.push_back(r.precision - q.precision);
    recall.push_back(r.recall - q.recall);
    kid.push_back(r.kid - q.kid);
  }
  const double conf = settings.confidence;
  c.fd_difference_interval = centred_percentile_interval(c.fd_difference, fd, conf);
  c.class_accuracy_difference_interval = centred_percentile_interval(c.class_accuracy_difference, accuracy, conf);
  c.precision_difference_interval = centred_percentile_interval(c.precision_difference, precision, conf);
  c.recall_difference_interval = centred_percentile_interval(c.recall_difference, recall, conf);
  c.kid_difference_interval = centred_percentile_interval(c.kid_difference, kid, conf);
  c.fd_detectable_difference = (normal_quantile(0.5 + conf / 2) + normal_quantile(0.8)) * standard_deviation(fd);
  c.verdict = verdict_of_difference(c.fd_difference_interval, conf);
  if (!c.paired) return c;
  int64_t only_run = 0, only_base = 0;
  for (size_t i = 0; i < run.correct.size(); ++i) {
    only_run += run.correct[i] > 0.5 && base.correct[i] < 0.5;
    only_base += run.correct[i] < 0.5 && base.correct[i] > 0.5;
  }
  c.mcnemar_p = exact_mcnemar_p(only_run, only_base);
  if (settings.permutations <= 0) return c;
  // Paired permutation test of FD: under "both runs draw from one distribution" the two images of a pair are
  // exchangeable; each permutation swaps every pair with probability 1/2.
  const std::vector<double> ones(static_cast<size_t>(run.images), 1.0);
  const double observed = weighted_frechet_distance(run.features, ones, reference.frechet) -
                          weighted_frechet_distance(base.features, ones, reference.frechet);
  Resampler swaps(settings.seed ^ 0x9E3779B97F4A7C15ull);
  int64_t as_extreme = 0;
  for (int64_t p = 0; p < settings.permutations; ++p) {
    const auto coin = swaps.coins(run.images);
    auto mask = torch::tensor(std::vector<int64_t>(coin.begin(), coin.end()), torch::kInt64).to(torch::kBool).unsqueeze(1);
    const auto a = torch::where(mask, base.features, run.features), b = torch::where(mask, run.features, base.features);
    const double stat = weighted_frechet_distance(a, ones, reference.frechet) - weighted_frechet_distance(b, ones, reference.frechet);
    as_extreme += std::fabs(stat) >= std::fabs(observed) * (1 - 1e-12);
  }
  c.permutations = settings.permutations;
  c.fd_permutation_p = static_cast<double>(1 + as_extreme) / static_cast<double>(1 + settings.permutations);
  return c;
}

}  // namespace varbench::metrics
