#include "metrics/kid.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "metrics/statistics.h"

#include "metrics/numpy_random.h"

namespace varbench::metrics {

namespace {
torch::Tensor checked_f64(const torch::Tensor& f, const std::string& source, int64_t subset_size) {
  auto x = finite_f64_rows(f, source);
  if (x.size(0) < subset_size)
    throw std::runtime_error(fmt::format("{}: {} images, fewer than the KID subset size {}", source, x.size(0), subset_size));
  return x;
}

torch::Tensor cubic_kernel(const torch::Tensor& x, const torch::Tensor& y) {
  return torch::mm(x, y.t()).mul_(1.0 / static_cast<double>(x.size(1))).add_(1.0).pow_(3);
}
}  // namespace

KernelInceptionDistance kernel_inception_distance(const torch::Tensor& sample, const std::string& sample_source,
                                                  const torch::Tensor& reference, const std::string& reference_source,
                                                  int64_t subsets, int64_t subset_size, uint32_t seed,
                                                  const ProgressFn& progress) {
  if (subset_size < 2) throw std::runtime_error(fmt::format("KID subset size {}: must be at least 2", subset_size));
  if (subsets < 1) throw std::runtime_error(fmt::format("KID subsets {}: must be at least 1", subsets));
  const auto x_all = checked_f64(sample, sample_source, subset_size);
  const auto y_all = checked_f64(reference, reference_source, subset_size);
  if (x_all.size(1) != y_all.size(1))
    throw std::runtime_error(fmt::format("{} has {} feature dimensions, {} has {}", sample_source, x_all.size(1),
                                         reference_source, y_all.size(1)));
  LegacyRandomState rng(seed);
  const double m = static_cast<double>(subset_size);
  std::vector<double> mmds;
  for (int64_t i = 0; i < subsets; ++i) {
    const auto x = x_all.index_select(0, torch::tensor(rng.choice_without_replacement(x_all.size(0), subset_size)));
    const auto y = y_all.index_select(0, torch::tensor(rng.choice_without_replacement(y_all.size(0), subset_size)));
    const auto kxx = cubic_kernel(x, x), kyy = cubic_kernel(y, y), kxy = cubic_kernel(x, y);
    const double off_diagonal = (kxx.sum() - kxx.trace() + kyy.sum() - kyy.trace()).item<double>();
    mmds.push_back(off_diagonal / (m * (m - 1)) - 2 * kxy.sum().item<double>() / (m * m));
    report(progress, i + 1, subsets);
  }
  KernelInceptionDistance kid;
  for (double v : mmds) kid.mean += v;
  kid.mean /= static_cast<double>(mmds.size());
  for (double v : mmds) kid.std += (v - kid.mean) * (v - kid.mean);
  kid.std = std::sqrt(kid.std / static_cast<double>(mmds.size()));
  return kid;
}

}  // namespace varbench::metrics
