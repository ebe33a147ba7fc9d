#include "metrics/frechet.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "metrics/linalg.h"

namespace varbench::metrics {

namespace {
// Rounding in a product of d x d float64 matrices leaves eigenvalues that should be zero at ~1e-13 of
// the largest; a covariance that is genuinely indefinite shows values far beyond this bound.
constexpr double kNegativeEigenvalueTolerance = 1e-8;

int64_t rank_bound_of(const GaussianStats& g) { return g.n >= 2 ? std::min(g.n - 1, g.dims()) : g.dims(); }
}  // namespace

FrechetReference prepare_frechet_reference(const GaussianStats& reference) {
  reference.validate();
  FrechetReference r;
  r.mu = reference.mu.contiguous();
  r.source = reference.source;
  r.trace_sigma = reference.sigma.trace().item<double>();
  r.rank_bound = rank_bound_of(reference);
  auto [lower, info] = torch::linalg_cholesky_ex(reference.sigma);
  if (info.item<int64_t>() == 0) {
    r.root = lower.contiguous();
    r.triangular = true;
    return r;
  }
  // Semidefinite (fewer samples than dimensions, or constant features): R = V sqrt(Lambda) over the
  // positive eigenvalues, at most rank_bound of them (the largest).
  auto [lambda, vectors] = torch::linalg_eigh(reference.sigma);
  const double largest = lambda.max().item<double>(), smallest = lambda.min().item<double>();
  if (smallest < -kNegativeEigenvalueTolerance * std::max(largest, 0.0))
    throw std::runtime_error(fmt::format("{}: the covariance is not positive semidefinite (eigenvalue {:.6g}, largest {:.6g})",
                                         reference.source, smallest, largest));
  const int64_t positive = lambda.gt(0).sum().item<int64_t>();
  const int64_t keep = std::min(positive, r.rank_bound), d = lambda.size(0);  // ascending: keep the last `keep`
  r.root = (vectors.slice(1, d - keep, d) * lambda.slice(0, d - keep, d).sqrt()).contiguous();
  r.triangular = false;
  return r;
}

FrechetResult frechet_distance(const GaussianStats& sample, const FrechetReference& reference) {
  sample.validate();
  if (sample.dims() != reference.dims())
    throw std::runtime_error(fmt::format("{} has {} feature dimensions, {} has {}", sample.source, sample.dims(),
                                         reference.source, reference.dims()));
  FrechetResult out;
  const auto diff = sample.mu - reference.mu;
  out.mean_term = diff.dot(diff).item<double>();
  const auto m = reference.triangular ? linalg::lower_congruence(reference.root, sample.sigma)
                                      : torch::mm(torch::mm(reference.root.t(), sample.sigma), reference.root);
  const auto lambda = linalg::symmetric_eigenvalues(m);
  out.min_eigenvalue = lambda.min().item<double>();
  out.max_eigenvalue = lambda.max().item<double>();
  if (out.min_eigenvalue < -kNegativeEigenvalueTolerance * std::max(out.max_eigenvalue, 0.0))
    throw std::runtime_error(fmt::format(
        "{} vs {}: the covariance product has eigenvalue {:.6g} (largest {:.6g}); a covariance is not positive semidefinite",
        sample.source, reference.source, out.min_eigenvalue, out.max_eigenvalue));
  // Ascending eigenvalues; at most min(n1, n2) - 1 of them are nonzero in exact arithmetic.
  const int64_t count = lambda.size(0);
  out.eigenvalues_summed = std::min({count, reference.rank_bound, rank_bound_of(sample)});
  out.trace_sqrt = lambda.slice(0, count - out.eigenvalues_summed, count).clamp_min(0).sqrt().sum().item<double>();
  out.distance = out.mean_term + sample.sigma.trace().item<double>() + reference.trace_sigma - 2 * out.trace_sqrt;
  return out;
}

double frechet_distance(const GaussianStats& sample, const GaussianStats& reference) {
  return frechet_distance(sample, prepare_frechet_reference(reference)).distance;
}

}  // namespace varbench::metrics
