#pragma once
// How sure a quality number is: intervals for the world metrics of one run, and paired comparisons of two
// runs of one experiment (which share labels, seeds and image indices, so image i of one run and image i of
// the other are a pair).
//
// The unit of resampling is the generated image; the reference set is held fixed (its statistics, its
// manifold radii), as every comparison of one experiment uses the same reference. Each bootstrap replicate
// draws n images with replacement (multiplicities from a 64-bit Mersenne Twister seeded with `seed`, the
// same on every platform) and recomputes the metric. A resampled set holds only ~63% distinct images, so the
// replicates of a set statistic such as FD sit above the estimate (fewer distinct images, a larger FD): a
// plain percentile interval of FD at 96 images in 128 dimensions does not even contain its estimate. The
// intervals here take only the spread from the bootstrap, centred on the estimate:
//   [estimate + q_low - median, estimate + q_high - median] of the replicates,
// which is an interval for the metric's expectation at this number of images (FD at n images is biased
// upwards by ~tr(Sigma)/n; runs of the same n share that bias, and differences of them cancel it).
// Class accuracy and precision are means of per-image indicators (reference fixed): Wilson score intervals.
// Recall holds the sample's manifold radii at their full-set values (the k-nearest-neighbour radii of a set
// with duplicates collapse to zero); its interval is conditional on them. KID's interval takes its spread
// from the full-set unbiased MMD^2 (one kernel matrix, resampled by weights) and centres it on the reported
// subset KID.
//
// Calibration (tests/test_uncertainty.cpp, synthetic Gaussians): the paired difference interval of FD covers
// zero for two samples of one distribution at the nominal 95% in 8 dimensions and 200 images; at 96 images in
// 32 dimensions it is conservative (measured 97-99%: the resampled sets' missing diversity inflates the
// spread).
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "metrics/world_quality.h"

namespace varbench::metrics {

struct Interval {
  double lower = NAN, upper = NAN;
  bool contains(double v) const { return lower <= v && v <= upper; }
};

struct BootstrapSettings {
  int64_t resamples = 1000;
  int64_t permutations = 1000;  // of the paired permutation test (0: no test)
  uint64_t seed = 0;
  double confidence = 0.95;
};

// Quantile of the standard normal distribution (p in (0, 1)).
double normal_quantile(double p);

// Wilson score interval of a proportion (successes of n), two-sided at `confidence`.
Interval wilson_interval(int64_t successes, int64_t n, double confidence = 0.95);

// [estimate + q_low - m, estimate + q_high - m], q the (1 -+ confidence) / 2 quantiles of the replicates
// (linear interpolation) and m their median.
Interval centred_percentile_interval(double estimate, std::vector<double> replicates, double confidence = 0.95);

// Multiplicities of a bootstrap resample of n items: counts[i] = how often item i was drawn (sum n).
class Resampler {
 public:
  explicit Resampler(uint64_t seed) : bits_(seed) {}
  std::vector<double> draw(int64_t n);
  // A fair coin per item (the paired permutation test's swaps).
  std::vector<uint8_t> coins(int64_t n);

 private:
  std::mt19937_64 bits_;
};

// Frechet distance of the weighted sample (weights = multiplicities, summing to n) against fixed reference
// statistics: the mean and unbiased covariance of the resampled set. With every weight 1 it is the FD of
// `features` (to rounding). `features` [N, D] float64.
double weighted_frechet_distance(const torch::Tensor& features, const std::vector<double>& weights, const FrechetReference& reference);

// What a run's world metrics are made of, image by image, for resampling.
struct WorldImageScores {
  int64_t images = 0;
  torch::Tensor features;                           // [N, D] float64
  std::vector<double> correct, inside_reference;    // per image: class correct, inside the reference manifold (precision)
  std::vector<std::vector<uint64_t>> covered_by;    // per reference point: bit i set when image i's ball holds it (recall)
  torch::Tensor kernel;                             // [N, N] float64: the KID kernel among the images
  std::vector<double> kernel_to_reference;          // [N]: mean kernel value of image i with the reference images
  std::vector<int64_t> labels;
};
WorldImageScores world_image_scores(const torch::Tensor& features, const torch::Tensor& logits, const torch::Tensor& labels,
                                    const std::string& source, const WorldReference& reference);

struct WorldReplicate {
  double fd = 0, class_accuracy = 0, precision = 0, recall = 0, kid = 0;  // kid: up to a constant of the reference
};
WorldReplicate world_replicate(const WorldImageScores& scores, const std::vector<double>& weights, const WorldReference& reference);

struct WorldIntervals {
  Interval fd, class_accuracy, precision, recall, kid;
  double fd_bootstrap_sd = NAN;
};
WorldIntervals world_quality_intervals(const WorldImageScores& scores, const WorldQuality& point, const WorldReference& reference,
                                       const BootstrapSettings& settings);

// A run against the experiment's baseline run. Paired when both have the same images count and labels
// (the same image slots): then one resample of image indices serves both runs, and the tests are paired.
// Otherwise the two runs are resampled independently and there is no test (p values NaN).
struct WorldComparison {
  bool paired = false;
  int64_t images = 0;
  // run minus baseline; intervals centred as above.
  double fd_difference = 0, class_accuracy_difference = 0, precision_difference = 0, recall_difference = 0, kid_difference = 0;
  Interval fd_difference_interval, class_accuracy_difference_interval, precision_difference_interval,
      recall_difference_interval, kid_difference_interval;
  // The smallest FD difference this run size detects with 80% power at the interval's level:
  // (z_{1-alpha/2} + z_{0.8}) x the bootstrap standard deviation of the difference.
  double fd_detectable_difference = NAN;
  double fd_permutation_p = NAN;  // paired permutation test (each image's pair swapped or not), two-sided
  int64_t permutations = 0;
  double mcnemar_p = NAN;         // exact McNemar test of the class-accuracy difference (discordant pairs)
  // "better" (the FD interval lies below zero), "worse" (above), or "indistinguishable at 95%".
  std::string verdict;
};
WorldComparison compare_world_quality(const WorldImageScores& run, const WorldQuality& run_point, const WorldImageScores& baseline,
                                      const WorldQuality& baseline_point, const WorldReference& reference,
                                      const BootstrapSettings& settings);

// FID of image sets too large to resample image by image (50,000 x 2048: each replicate would be an n x D^2
// product): the images are dealt into `groups` interleaved groups (image i to group i mod groups, so that
// every group spans the classes the way the whole set does), each summarised once by its sufficient
// statistics (n, sum, sum of outer products); a replicate draws groups with replacement and adds their
// statistics, costing a D x D sum per group and one eigenvalue problem. Within a group every image stays
// distinct, so the resampled sets do not lose diversity the way image-level resamples do. The interval is
// centred on `estimate` as above.
Interval grouped_frechet_interval(const torch::Tensor& features, double estimate, const FrechetReference& reference, int64_t groups,
                                  const BootstrapSettings& settings);

// The verdict for a difference of a lower-is-better metric and its interval.
std::string verdict_of_difference(const Interval& difference, double confidence);

}  // namespace varbench::metrics
