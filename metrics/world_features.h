#pragma once
// The toy world's feature network (scripts/toy_world/train.py, WorldFeatures): a small CNN classifier of
// the world's classes, trained on the generator's labelled images. It plays the FID Inception's role for
// the toy world: its penultimate layer (the global average of the last convolution) is the feature space
// of FD, precision/recall and KID, and its logits give the class accuracy of generated images (the
// world's analogue of the Inception Score: is the image recognisably of the class it was asked for?).
//
// Layout (parameter names equal the PyTorch state_dict keys): `body` is a Sequential of, per level,
// conv3x3 + ReLU + conv3x3 + ReLU, with a 2x2 max-pool between levels; `fc` maps the features to the
// class logits. The levels' widths are read from the checkpoint's shapes.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "metrics/image_sources.h"
#include "metrics/progress.h"

namespace varbench::metrics {

struct WorldFeatureNetImpl : torch::nn::Module {
  WorldFeatureNetImpl(std::vector<int64_t> channels, int64_t num_classes, int64_t image_size);
  // images: uint8 [N, H, W, 3] with H = W = image_size (any device) -> float32 [N, feature_dims()]
  // features and [N, num_classes] logits.
  struct Outputs {
    torch::Tensor features, logits;
  };
  Outputs forward(const torch::Tensor& images);
  int64_t feature_dims() const { return channels.back(); }

  std::vector<int64_t> channels;
  int64_t num_classes, image_size;
  torch::nn::Sequential body{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(WorldFeatureNet);

// Reads the widths and classes from the checkpoint's shapes, the image size from its metadata
// ("image_size"), loads strictly, freezes. Throws naming the file.
WorldFeatureNet load_world_feature_net(const std::string& path, torch::Device device);

// Features and logits of every image of `images` (float32, CPU), in batches.
WorldFeatureNetImpl::Outputs world_features_of(WorldFeatureNet& net, ImageSource& images, int64_t batch_size,
                                               const ProgressFn& progress = nullptr);

}  // namespace varbench::metrics
