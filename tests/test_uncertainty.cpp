// Intervals and paired comparisons of quality numbers (metrics/uncertainty.h): the resampled Frechet distance
// against the direct one, Wilson's interval at analytic points, and the calibration of the paired bootstrap on
// synthetic Gaussian features (no models): for two samples of one distribution the 95% interval of the FD
// difference covers zero in 93-97% of 1000 simulated pairs, and for a known shift it excludes zero at the rate
// the normal power calculation predicts from the simulated spread of the difference.
#include <gtest/gtest.h>

#include <cmath>

#include "metrics/frechet.h"
#include "metrics/precision_recall.h"
#include "metrics/statistics.h"
#include "metrics/uncertainty.h"
#include "metrics/world_quality.h"

namespace varbench::metrics {
namespace {

GaussianStats gaussian_of(const torch::Tensor& x, const std::string& source) {
  FeatureStats stats(x.size(1));
  stats.add(x, source);
  return stats.gaussian(source);
}

// A reference set of `m` points of N(0.3, I) in `dims` dimensions, 4 classes.
WorldReference synthetic_reference(int64_t m, int64_t dims, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  WorldReference ref;
  ref.source = "synthetic reference";
  ref.features = (torch::randn({m, dims}, gen, torch::kFloat64) + 0.3).to(torch::kFloat32);
  ref.labels = torch::arange(m, torch::kInt64).remainder(4);
  ref.frechet = prepare_frechet_reference(gaussian_of(ref.features, ref.source));
  ref.radii = manifold_radii(ref.features, ref.source, 3);
  return ref;
}

struct Sample {
  torch::Tensor features, logits, labels;
};
// n images of N(shift e_0, I) with labels i mod 4 and logits that get ~70% of them right.
Sample synthetic_sample(int64_t n, int64_t dims, double shift, at::Generator& gen) {
  Sample s;
  s.features = torch::randn({n, dims}, gen, torch::kFloat64);
  s.features.select(1, 0).add_(shift);
  s.features = s.features.to(torch::kFloat32);
  s.labels = torch::arange(n, torch::kInt64).remainder(4);
  s.logits = torch::randn({n, 4}, gen, torch::kFloat64).to(torch::kFloat32);
  s.logits.scatter_add_(1, s.labels.unsqueeze(1), torch::full({n, 1}, 1.5f));
  return s;
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

TEST(Uncertainty, ResampledFrechetDistanceIsTheFrechetDistanceOfTheResampledSet) {
  const auto ref = synthetic_reference(300, 16, 1);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  // More images than dimensions (the Gram of the dimensions) and fewer (the Gram of the images).
  for (int64_t n : {200, 10}) {
    const auto x = torch::randn({n, 16}, gen, torch::kFloat64);
    const std::vector<double> ones(static_cast<size_t>(n), 1.0);
    const double direct = frechet_distance(gaussian_of(x, "x"), ref.frechet).distance;
    EXPECT_NEAR(weighted_frechet_distance(x, ones, ref.frechet), direct, 1e-9 * std::fabs(direct)) << n;
    // A resample is the FD of the rows it repeats.
    const auto w = Resampler(3).draw(n);
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < n; ++i)
      for (int k = 0; k < static_cast<int>(w[i]); ++k) rows.push_back(i);
    const auto repeated = x.index_select(0, torch::tensor(rows, torch::kInt64));
    const double expected = frechet_distance(gaussian_of(repeated, "resampled"), ref.frechet).distance;
    // (The direct route factors with LAPACK's congruence, this one multiplies: agreement to ~1e-8.)
    EXPECT_NEAR(weighted_frechet_distance(x, w, ref.frechet), expected, 1e-7 * std::fabs(expected)) << n;
  }
}

TEST(Uncertainty, WilsonIntervalAtAnalyticPoints) {
  // 0 of n: [0, z^2 / (n + z^2)]; n of n mirrors it; 1/2 is symmetric about 1/2.
  const double z2 = 1.959963984540054 * 1.959963984540054;
  const auto none = wilson_interval(0, 10);
  EXPECT_NEAR(none.lower, 0, 1e-12);
  EXPECT_NEAR(none.upper, z2 / (10 + z2), 1e-9);
  const auto all = wilson_interval(10, 10);
  EXPECT_NEAR(all.lower, 10 / (10 + z2), 1e-9);
  const auto half = wilson_interval(48, 96);
  EXPECT_NEAR(half.lower + half.upper, 1.0, 1e-12);
  EXPECT_NEAR(half.upper - half.lower, 2 * 1.959963984540054 / (1 + z2 / 96) * std::sqrt(0.25 / 96 + z2 / (4 * 96.0 * 96.0)), 1e-9);
}

TEST(Uncertainty, PerImageScoresGiveTheWorldQualityPointValues) {
  const auto ref = synthetic_reference(400, 8, 4);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto s = synthetic_sample(150, 8, 0.0, gen);
  const auto point = world_quality(s.features, s.logits, s.labels, "sample", ref);
  const auto scores = world_image_scores(s.features, s.logits, s.labels, "sample", ref);
  const auto r = world_replicate(scores, std::vector<double>(150, 1.0), ref);
  EXPECT_NEAR(r.fd, point.fd, 1e-9 * point.fd);
  EXPECT_DOUBLE_EQ(r.class_accuracy, point.class_accuracy);
  EXPECT_DOUBLE_EQ(r.precision, point.precision);
  EXPECT_DOUBLE_EQ(r.recall, point.recall);
  const auto intervals = world_quality_intervals(scores, point, ref, {200, 0, 0, 0.95});
  for (const auto& [name, interval, value] : {std::tuple{"fd", intervals.fd, point.fd}, {"accuracy", intervals.class_accuracy, point.class_accuracy},
                                              {"precision", intervals.precision, point.precision}, {"recall", intervals.recall, point.recall},
                                              {"kid", intervals.kid, *point.kid}}) {
    EXPECT_TRUE(interval.contains(value)) << name << " " << value << " not in [" << interval.lower << ", " << interval.upper << "]";
    EXPECT_LT(interval.lower, interval.upper) << name;
  }
}

// `pairs` simulated pairs (A of N(0, I), B of N(shift e_0, I)), each compared with a 95% paired bootstrap:
// the share whose FD-difference interval excludes zero, and the differences themselves.
struct Simulation {
  double excluded = 0;
  std::vector<double> differences;
};
// The point values as the replicate of every image once (world_quality's subset KID is not needed here).
WorldQuality point_of(const WorldImageScores& s, const WorldReference& ref) {
  const auto r = world_replicate(s, std::vector<double>(static_cast<size_t>(s.images), 1.0), ref);
  WorldQuality q;
  q.images = s.images;
  q.fd = r.fd;
  q.class_accuracy = r.class_accuracy;
  q.precision = r.precision;
  q.recall = r.recall;
  q.kid = r.kid;
  return q;
}

Simulation simulate(double shift, int pairs, uint64_t seed) {
  const int64_t n = 200, dims = 8;
  // Small matrices: one thread (the pool's hand-offs cost more than the products); restored on return.
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  struct Restore {
    int threads;
    ~Restore() { torch::set_num_threads(threads); }
  } restore{threads};
  const auto ref = synthetic_reference(1000, dims, 100 + seed);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Simulation sim;
  int excluded = 0;
  for (int p = 0; p < pairs; ++p) {
    const auto a = synthetic_sample(n, dims, 0.0, gen), b = synthetic_sample(n, dims, shift, gen);
    const auto sa = world_image_scores(a.features, a.logits, a.labels, "a", ref), sb = world_image_scores(b.features, b.logits, b.labels, "b", ref);
    const auto pa = point_of(sa, ref), pb = point_of(sb, ref);
    const auto c = compare_world_quality(sa, pa, sb, pb, ref, {200, 0, static_cast<uint64_t>(p), 0.95});
    EXPECT_TRUE(c.paired);
    excluded += !c.fd_difference_interval.contains(0);
    sim.differences.push_back(c.fd_difference);
  }
  sim.excluded = static_cast<double>(excluded) / pairs;
  return sim;
}

TEST(UncertaintyCalibration, PairsOfOneDistributionCoverZeroAtTheNominalRate) {
  // 1000 pairs: binomial sd of the coverage 0.7%, so 93-97% is a +-2.9 sd band around 95% (at 400 pairs,
  // +-1.8 sd, one seed in 14 of a calibrated interval would fall outside; measured 94.2% here, 95.5% with seed 13).
  const auto sim = simulate(0.0, 1000, 11);
  EXPECT_GE(1 - sim.excluded, 0.93);
  EXPECT_LE(1 - sim.excluded, 0.97);
}

TEST(UncertaintyCalibration, AKnownShiftIsDetectedAtThePredictedPower) {
  // A mean shift of -0.3 in one of 8 dimensions against a reference 0.3 away in every dimension. The
  // differences' own spread over the simulated pairs gives the power a normal test at 5% has; the share of
  // bootstrap intervals excluding zero should match it (binomial sd at 400 pairs <= 2.5%).
  const auto sim = simulate(-0.3, 400, 12);
  double mean = 0, ss = 0;
  for (double d : sim.differences) mean += d;
  mean /= static_cast<double>(sim.differences.size());
  for (double d : sim.differences) ss += (d - mean) * (d - mean);
  const double sd = std::sqrt(ss / static_cast<double>(sim.differences.size() - 1));
  const double predicted = normal_cdf(mean / sd - 1.959963984540054) + normal_cdf(-mean / sd - 1.959963984540054);
  EXPECT_GT(predicted, 0.2) << "the shift should be detectable sometimes";
  EXPECT_LT(predicted, 0.9) << "and missed sometimes";
  EXPECT_NEAR(sim.excluded, predicted, 0.08) << "mean difference " << mean << ", sd " << sd;
}

TEST(UncertaintyCalibration, GroupedFrechetIntervalsCoverTheExpectedDistanceAtTheNominalRate) {
  // The route for Inception-sized sets, on 400 synthetic sets of 1000 images in 8 dimensions, 50 groups: the
  // centred interval targets the expected FD at this n, estimated here by the mean FD of 2000 more sets.
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  const auto ref = synthetic_reference(2000, 8, 31);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(32);
  auto fd_of = [&](const torch::Tensor& x) { return frechet_distance(gaussian_of(x, "x"), ref.frechet).distance; };
  double expected = 0;
  for (int i = 0; i < 2000; ++i) expected += fd_of(torch::randn({1000, 8}, gen, torch::kFloat64)) / 2000;
  int covered = 0;
  const int sets = 400;
  for (int i = 0; i < sets; ++i) {
    const auto x = torch::randn({1000, 8}, gen, torch::kFloat64);
    covered += grouped_frechet_interval(x, fd_of(x), ref.frechet, 50, {200, 0, static_cast<uint64_t>(i), 0.95}).contains(expected);
  }
  torch::set_num_threads(threads);
  EXPECT_GE(static_cast<double>(covered) / sets, 0.93) << covered << " of " << sets;
  EXPECT_LE(static_cast<double>(covered) / sets, 0.975) << covered << " of " << sets;
}

TEST(Uncertainty, PairingTightensTheIntervalOfCorrelatedRuns) {
  // Run B is run A plus a little noise (as two engines that share seeds): paired, the difference's interval
  // is narrow; with the labels of B permuted the runs are no longer pairs and are resampled independently.
  const auto ref = synthetic_reference(500, 8, 21);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(22);
  const auto a = synthetic_sample(200, 8, 0.0, gen);
  auto b = a;
  b.features = a.features + 0.05 * torch::randn(a.features.sizes(), gen, torch::kFloat64).to(torch::kFloat32);
  const auto pa = world_quality(a.features, a.logits, a.labels, "a", ref), pb = world_quality(b.features, b.logits, b.labels, "b", ref);
  const auto sa = world_image_scores(a.features, a.logits, a.labels, "a", ref), sb = world_image_scores(b.features, b.logits, b.labels, "b", ref);
  const auto paired = compare_world_quality(sa, pa, sb, pb, ref, {300, 200, 1, 0.95});
  ASSERT_TRUE(paired.paired);
  EXPECT_EQ(paired.verdict, "indistinguishable at 95%");
  EXPECT_GT(paired.fd_permutation_p, 0.05);
  EXPECT_EQ(paired.mcnemar_p, 1.0);  // the same logits: no discordant pair
  auto b_unpaired = b;
  b_unpaired.labels = b.labels.roll(1);
  const auto su = world_image_scores(b_unpaired.features, b_unpaired.logits, b_unpaired.labels, "b", ref);
  const auto unpaired = compare_world_quality(sa, pa, su, pb, ref, {300, 200, 1, 0.95});
  ASSERT_FALSE(unpaired.paired);
  EXPECT_TRUE(std::isnan(unpaired.fd_permutation_p));
  const double paired_width = paired.fd_difference_interval.upper - paired.fd_difference_interval.lower;
  const double unpaired_width = unpaired.fd_difference_interval.upper - unpaired.fd_difference_interval.lower;
  EXPECT_LT(paired_width, 0.3 * unpaired_width) << paired_width << " vs " << unpaired_width;
  // A clearly worse run: shifted by 1 in every dimension away from the reference.
  auto worse = a;
  worse.features = a.features - 1.0;
  const auto pw = world_quality(worse.features, worse.logits, worse.labels, "worse", ref);
  const auto sw = world_image_scores(worse.features, worse.logits, worse.labels, "worse", ref);
  const auto c = compare_world_quality(sw, pw, sa, pa, ref, {300, 200, 1, 0.95});
  EXPECT_EQ(c.verdict, "worse");
  EXPECT_LT(c.fd_permutation_p, 0.01);
  EXPECT_GT(c.fd_detectable_difference, 0);
  EXPECT_EQ(compare_world_quality(sa, pa, sw, pw, ref, {300, 0, 1, 0.95}).verdict, "better");
}

}  // namespace
}  // namespace varbench::metrics
