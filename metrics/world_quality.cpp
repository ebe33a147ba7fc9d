#include "metrics/world_quality.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "formats/image_files.h"
#include "metrics/kid.h"
#include "metrics/precision_recall.h"
#include "metrics/statistics.h"

namespace varbench::metrics {

namespace {
GaussianStats gaussian_of(const torch::Tensor& features, const std::string& source) {
  FeatureStats stats(features.size(1));
  stats.add(features, source);
  return stats.gaussian(source);
}
}  // namespace

WorldReference load_world_reference(const std::string& path) {
  io::NpzReader npz(path);
  for (const char* key : {"features", "labels"})
    if (!npz.has(key)) throw std::runtime_error(fmt::format("{}: no '{}' array (a world reference needs features and labels)", path, key));
  WorldReference ref;
  ref.source = path;
  ref.features = npy_to_tensor(npz.read("features"), path + ":features").to(torch::kFloat32);
  ref.labels = npy_to_tensor(npz.read("labels"), path + ":labels").to(torch::kInt64);
  if (ref.features.dim() != 2 || ref.features.size(0) < 4)
    throw std::runtime_error(fmt::format("{}: features has shape [{}], expected [N >= 4, D]", path, fmt::join(ref.features.sizes(), ", ")));
  if (ref.labels.dim() != 1 || ref.labels.size(0) != ref.features.size(0))
    throw std::runtime_error(fmt::format("{}: labels has shape [{}], expected [{}]", path, fmt::join(ref.labels.sizes(), ", "), ref.features.size(0)));
  ref.frechet = prepare_frechet_reference(gaussian_of(ref.features, path + ":features"));
  ref.radii = manifold_radii(ref.features, path, 3);
  return ref;
}

WorldQuality world_quality(const torch::Tensor& features, const torch::Tensor& logits, const torch::Tensor& labels,
                           const std::string& source, const WorldReference& ref, const ProgressFn& progress) {
  const int64_t n = features.size(0);
  if (n < 4) throw std::runtime_error(fmt::format("{}: {} images; world quality needs at least 4", source, n));
  if (features.size(1) != ref.features.size(1))
    throw std::runtime_error(fmt::format("{}: {} feature dimensions, the reference {} has {} (another feature network?)", source,
                                         features.size(1), ref.source, ref.features.size(1)));
  if (logits.size(0) != n || labels.numel() != n)
    throw std::runtime_error(fmt::format("{}: {} feature rows, {} logit rows, {} labels", source, n, logits.size(0), labels.numel()));
  const auto num_classes = logits.size(1);
  if (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= num_classes)
    throw std::runtime_error(fmt::format("{}: labels outside 0..{} (the feature network's classes)", source, num_classes - 1));
  WorldQuality q;
  q.images = n;
  q.fd = frechet_distance(gaussian_of(features, source), ref.frechet).distance;
  const auto pr = precision_recall(ref.features, ref.source, features, source, 3, progress, ref.radii);
  q.precision = pr.precision;
  q.recall = pr.recall;
  q.class_accuracy = logits.argmax(1).eq(labels.to(logits.device()).view(-1)).to(torch::kFloat64).mean().item<double>();
  const int64_t subset = std::min<int64_t>({n, ref.features.size(0), 1000});
  const auto kid = kernel_inception_distance(features, source, ref.features, ref.source, 100, subset, 2020);
  q.kid = kid.mean;
  q.kid_std = kid.std;
  return q;
}

}  // namespace varbench::metrics
