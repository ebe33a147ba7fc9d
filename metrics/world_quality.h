#pragma once
// Quality of generated toy-world images in the world feature network's space (metrics/world_features.h),
// against a reference set of the world's own images: FD (the Frechet distance of FID, in these features),
// precision/recall (k = 3), KID, and the class accuracy (share of images the network assigns to the class
// they were generated for).
//
// The reference is an .npz with `features` [N, D] float32 and `labels` [N] int64 of world images, written by
// scripts/toy_world/train.py (stage `reference`) or by `varbench features --features world` from images.
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>

#include "metrics/frechet.h"
#include "metrics/progress.h"

namespace varbench::metrics {

struct WorldReference {
  std::string source;
  torch::Tensor features;  // [N, D] float32
  torch::Tensor labels;    // [N] int64
  FrechetReference frechet;
  torch::Tensor radii;     // k = 3 manifold radii of the reference features
};

// Throws one line naming the file and the key when a key is missing or mis-shaped.
WorldReference load_world_reference(const std::string& path);

struct WorldQuality {
  int64_t images = 0;
  double fd = 0;
  double precision = 0, recall = 0;
  double class_accuracy = 0;
  std::optional<double> kid, kid_std;  // with at least 2 images on each side
};

// features [N, D], logits [N, C] of the generated images, labels [N] the classes they were generated for.
// FD needs N >= 2; precision/recall N >= 4 (k = 3). KID uses 100 subsets of min(N, N_ref, 1000) images.
WorldQuality world_quality(const torch::Tensor& features, const torch::Tensor& logits, const torch::Tensor& labels,
                           const std::string& source, const WorldReference& reference, const ProgressFn& progress = nullptr);

}  // namespace varbench::metrics
