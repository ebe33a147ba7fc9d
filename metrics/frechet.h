#pragma once
// Frechet distance between Gaussians, float64:
//   d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2).
// tr sqrt(S1 S2) is the sum of the square roots of the eigenvalues of S1 S2. Rather than a general
// (Schur) matrix square root or a non-symmetric eigen-solver, the reference covariance is factored
// once, S1 = R R^T, and the eigenvalues are those of the symmetric positive semidefinite R^T S2 R
// (similar to S1 S2, or sharing its nonzero eigenvalues): one symmetric eigenvalue problem per
// sample set, with the factor cached alongside the reference statistics.
//   R is the Cholesky factor when S1 is positive definite (the usual case: more images than dimensions;
//   then R^T S2 R = L^T S2 L costs two triangular products), and V diag(sqrt(lambda)) from S1's
//   eigen-decomposition otherwise, which equals sqrt(S1) V and gives the matrix
//   sqrt(S1) S2 sqrt(S1) up to an orthogonal similarity.
// No epsilon is added anywhere. Two facts of exact arithmetic are used instead:
//   * a covariance of n samples has rank at most n - 1, so R^T S2 R has at most min(n1, n2) - 1 nonzero
//     eigenvalues; when the sample counts are known, only that many of the largest eigenvalues are
//     summed (the others are rounding noise of size ~1e-16 |S1| |S2|, whose square roots would add
//     ~1e-8 |S| each, thousands of times, to the trace);
//   * eigenvalues are non-negative: rounding that leaves one slightly negative (at most 1e-8 of the
//     largest) makes it zero; anything more negative means a covariance was not positive
//     semidefinite, and is an error naming the statistics.
#include <torch/torch.h>

#include <string>

#include "metrics/statistics.h"

namespace varbench::metrics {

struct FrechetReference {
  torch::Tensor mu;      // [D]
  torch::Tensor root;    // R with R R^T = sigma: [D, D] lower triangular, or [D, r] (r = rank)
  bool triangular = false;
  double trace_sigma = 0;
  int64_t rank_bound = 0;  // n - 1 of the samples behind the statistics; 0 when unknown (stored statistics)
  std::string source;
  int64_t dims() const { return mu.size(0); }
};

// Validates and factors the reference statistics (this is the part worth caching).
FrechetReference prepare_frechet_reference(const GaussianStats& reference);

struct FrechetResult {
  double distance = 0;
  double mean_term = 0;         // |mu1 - mu2|^2
  double trace_sqrt = 0;        // tr sqrt(S1 S2)
  double min_eigenvalue = 0;    // smallest eigenvalue of R^T S2 R before negatives are counted as zero
  double max_eigenvalue = 0;
  int64_t eigenvalues_summed = 0;  // the rank bound from the sample counts, or all of them
};

FrechetResult frechet_distance(const GaussianStats& sample, const FrechetReference& reference);
// Uncached convenience: prepares `reference` on the spot.
double frechet_distance(const GaussianStats& sample, const GaussianStats& reference);

}  // namespace varbench::metrics
