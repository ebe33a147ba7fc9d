#include "metrics/precision_recall.h"

#include <stdexcept>

#include <fmt/format.h>

#include "metrics/statistics.h"

namespace varbench::metrics {

namespace {
// Rows per block of the distance matrix: 256 x 50,000 float64 is 100 MB.
constexpr int64_t kRowBlock = 256;

torch::Tensor checked_f64(const torch::Tensor& f, const std::string& source, int64_t k) {
  auto x = finite_f64_rows(f, source);
  if (x.size(0) <= k)
    throw std::runtime_error(fmt::format("{}: {} images; precision/recall with k={} need at least {}", source, x.size(0), k, k + 1));
  return x;
}

// (|u|^2 - 2 u.v) + |v|^2, clamped at 0: the evaluator's order of operations.
torch::Tensor squared_distances(const torch::Tensor& u, const torch::Tensor& u_norms, const torch::Tensor& v,
                                const torch::Tensor& v_norms) {
  return (u_norms.unsqueeze(1) - 2 * torch::mm(u, v.t())).add_(v_norms.unsqueeze(0)).clamp_min_(0);
}

torch::Tensor radii_f64(const torch::Tensor& x, int64_t k, const ProgressFn& progress, int64_t done_before, int64_t total) {
  const int64_t n = x.size(0);
  const auto norms = x.square().sum(1);
  auto radii = torch::empty({n}, torch::kFloat64);
  for (int64_t first = 0; first < n; first += kRowBlock) {
    const int64_t last = std::min(first + kRowBlock, n);
    const auto d = squared_distances(x.slice(0, first, last), norms.slice(0, first, last), x, norms);
    radii.slice(0, first, last).copy_(std::get<0>(d.kthvalue(k + 1, 1)));
    report(progress, done_before + last, total);
  }
  return radii;
}
}  // namespace

torch::Tensor manifold_radii(const torch::Tensor& features, const std::string& source, int64_t k, const ProgressFn& progress) {
  const auto x = checked_f64(features, source, k);
  return radii_f64(x, k, progress, 0, x.size(0));
}

PrecisionRecall precision_recall(const torch::Tensor& reference, const std::string& reference_source,
                                 const torch::Tensor& sample, const std::string& sample_source, int64_t k,
                                 const ProgressFn& progress, const torch::Tensor& reference_radii) {
  const auto ref = checked_f64(reference, reference_source, k);
  const auto smp = checked_f64(sample, sample_source, k);
  if (ref.size(1) != smp.size(1))
    throw std::runtime_error(fmt::format("{} has {} feature dimensions, {} has {}", sample_source, smp.size(1),
                                         reference_source, ref.size(1)));
  if (reference_radii.defined() && (reference_radii.dim() != 1 || reference_radii.size(0) != ref.size(0)))
    throw std::runtime_error(fmt::format("{}: {} radii for {} reference points", reference_source, reference_radii.numel(), ref.size(0)));
  const int64_t ref_rows = reference_radii.defined() ? 0 : ref.size(0);
  const int64_t total = ref_rows + smp.size(0) + ref.size(0);  // rows of the distance passes
  const auto ref_radii = reference_radii.defined() ? reference_radii.to(torch::kFloat64) : radii_f64(ref, k, progress, 0, total);
  const auto smp_radii = radii_f64(smp, k, progress, ref_rows, total);
  const auto ref_norms = ref.square().sum(1), smp_norms = smp.square().sum(1);
  auto sample_inside = torch::zeros({smp.size(0)}, torch::kBool);
  auto reference_inside = torch::zeros({ref.size(0)}, torch::kBool);
  for (int64_t first = 0; first < ref.size(0); first += kRowBlock) {
    const int64_t last = std::min(first + kRowBlock, ref.size(0));
    const auto d = squared_distances(ref.slice(0, first, last), ref_norms.slice(0, first, last), smp, smp_norms);
    sample_inside.logical_or_(d.le(ref_radii.slice(0, first, last).unsqueeze(1)).any(0));
    reference_inside.slice(0, first, last).copy_(d.le(smp_radii.unsqueeze(0)).any(1));
    report(progress, ref_rows + smp.size(0) + last, total);
  }
  PrecisionRecall pr;
  pr.precision = sample_inside.to(torch::kFloat64).mean().item<double>();
  pr.recall = reference_inside.to(torch::kFloat64).mean().item<double>();
  return pr;
}

}  // namespace varbench::metrics
