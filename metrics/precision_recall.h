#pragma once
// Improved precision and recall (Kynkaanniemi et al. 2019) as the ADM evaluator computes them on pool3
// features: the manifold of a set is the union of balls around its points, each with radius the squared
// Euclidean distance to its k-th nearest other point (k = 3; the (k+1)-th smallest distance of the row,
// the point itself included). Precision is the fraction of samples inside the reference manifold,
// recall the fraction of reference points inside the sample manifold; "inside" is distance <= radius.
// Squared distances are |u|^2 - 2 u.v + |v|^2 clamped at 0, in float64, in blocks of rows (the result
// does not depend on the blocking). The evaluator first tries float16 distances in TensorFlow; float64
// here only removes that rounding.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "metrics/progress.h"

namespace varbench::metrics {

struct PrecisionRecall {
  double precision = 0;
  double recall = 0;
};

// Squared distance from every row of `features` [N, D] to its k-th nearest other row: [N] float64.
torch::Tensor manifold_radii(const torch::Tensor& features, const std::string& source, int64_t k = 3,
                             const ProgressFn& progress = nullptr);

// `reference_radii`, when defined, are manifold_radii(reference, k) computed once for several samples.
PrecisionRecall precision_recall(const torch::Tensor& reference, const std::string& reference_source,
                                 const torch::Tensor& sample, const std::string& sample_source, int64_t k = 3,
                                 const ProgressFn& progress = nullptr, const torch::Tensor& reference_radii = {});

}  // namespace varbench::metrics
