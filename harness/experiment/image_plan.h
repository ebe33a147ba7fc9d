#pragma once
// Which images a generation produces, in what order: classes x images per class, flattened. An image's
// global index (its position here) keys its per-image random stream and its row in every output file.
#include <cstdint>
#include <string>
#include <vector>

namespace varbench {

struct ImagePlan {
  std::vector<int64_t> labels;          // class of each image
  std::vector<int64_t> index_in_class;  // 0.. per class, in order of appearance
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// "0-999", "1,5,7", "980,980,437" (a repeated class yields further images of that class).
std::vector<int64_t> parse_class_list(const std::string& text, int64_t num_classes);
ImagePlan plan_images(const std::vector<int64_t>& classes, int64_t images_per_class);

// Reference RNG mode reproduces the official samplers, which seed one generator per call: the batch
// starting at image `first` is seeded with seed + index_in_class[first] (the CoDe FID sampler runs
// batch 1 with g_seed = j for the j-th image of each class; the VAR demo one batch with g_seed = seed).
uint64_t reference_batch_seed(const ImagePlan& plan, int64_t first, uint64_t seed);

}  // namespace varbench
