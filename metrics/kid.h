#pragma once
// Kernel Inception Distance as torch-fidelity computes it: over `subsets` random subsets of
// `subset_size` images from each set (np.random.RandomState(seed).choice(n, size, replace=False), the
// sample set drawn before the reference set in each round), the unbiased MMD^2 with the cubic
// polynomial kernel k(x, y) = (x.y / D + 1)^3; the mean and population std over subsets. float64 here
// (torch-fidelity evaluates the kernels in float32).
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "metrics/progress.h"

namespace varbench::metrics {

struct KernelInceptionDistance {
  double mean = 0;
  double std = 0;
};

KernelInceptionDistance kernel_inception_distance(const torch::Tensor& sample, const std::string& sample_source,
                                                  const torch::Tensor& reference, const std::string& reference_source,
                                                  int64_t subsets = 100, int64_t subset_size = 1000, uint32_t seed = 2020,
                                                  const ProgressFn& progress = nullptr);

}  // namespace varbench::metrics
