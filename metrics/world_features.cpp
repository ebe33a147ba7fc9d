#include "metrics/world_features.h"

#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "formats/safetensors.h"
#include "formats/weights.h"

namespace varbench::metrics {

WorldFeatureNetImpl::WorldFeatureNetImpl(std::vector<int64_t> channels_, int64_t num_classes_, int64_t image_size_)
    : channels(std::move(channels_)), num_classes(num_classes_), image_size(image_size_) {
  if (channels.empty()) throw std::runtime_error("world feature network: no convolution levels");
  body = torch::nn::Sequential();
  int64_t in = 3;
  for (size_t level = 0; level < channels.size(); ++level) {
    const int64_t c = channels[level];
    body->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, c, 3).padding(1)));
    body->push_back(torch::nn::ReLU());
    body->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 3).padding(1)));
    body->push_back(torch::nn::ReLU());
    if (level + 1 != channels.size()) body->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
    in = c;
  }
  register_module("body", body);
  fc = register_module("fc", torch::nn::Linear(in, num_classes));
}

WorldFeatureNetImpl::Outputs WorldFeatureNetImpl::forward(const torch::Tensor& images) {
  if (images.scalar_type() != torch::kUInt8 || images.dim() != 4 || images.size(3) != 3)
    throw std::runtime_error(fmt::format("world features: images must be uint8 [N, H, W, 3], got {} [{}]",
                                         std::string(c10::toString(images.scalar_type())), fmt::join(images.sizes(), ", ")));
  if (images.size(1) != image_size || images.size(2) != image_size)
    throw std::runtime_error(fmt::format("world features: images are {}x{}, the network was trained on {}x{} world images",
                                         images.size(1), images.size(2), image_size, image_size));
  const auto device = fc->weight.device();
  // The training script's input range: x / 127.5 - 1, NCHW.
  const auto x = images.to(device).permute({0, 3, 1, 2}).to(torch::kFloat32).div(127.5).sub(1.0);
  auto features = body->forward(x).mean({2, 3});
  auto logits = fc->forward(features);
  return {features, logits};
}

WorldFeatureNet load_world_feature_net(const std::string& path, torch::Device device) {
  SafetensorsFile file(path);
  // Convolution widths in the Sequential's order: keys body.<i>.weight of rank 4, two per level.
  std::map<int64_t, int64_t> conv_out;  // index -> output channels
  for (const auto& [key, info] : file.entries()) {
    if (key.rfind("body.", 0) != 0 || key.size() < 12 || key.compare(key.size() - 7, 7, ".weight") != 0) continue;
    const auto index = key.substr(5, key.size() - 12);
    if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) continue;
    if (info.shape.size() == 4) conv_out[std::stoll(index)] = info.shape[0];
  }
  std::vector<int64_t> channels;
  int64_t n = 0;
  for (const auto& [index, out] : conv_out)
    if (n++ % 2 == 0) channels.push_back(out);
  if (channels.empty() || !file.contains("fc.weight") || file.entries().at("fc.weight").shape.size() != 2)
    throw std::runtime_error(fmt::format("{}: not a world feature network (no body.<i>.weight convolutions or fc.weight)", path));
  const int64_t num_classes = file.entries().at("fc.weight").shape[0];
  const auto meta = file.metadata().find("image_size");
  if (meta == file.metadata().end())
    throw std::runtime_error(fmt::format("{}: metadata has no image_size (written by scripts/toy_world/train.py)", path));
  WorldFeatureNet net(channels, num_classes, std::stoll(meta->second));
  load_strict(*net, file);  // a layout other than the one the widths imply is listed here, key by key
  freeze_for_inference(*net);
  net->to(device);
  return net;
}

WorldFeatureNetImpl::Outputs world_features_of(WorldFeatureNet& net, ImageSource& images, int64_t batch_size,
                                               const ProgressFn& progress) {
  if (batch_size < 1) throw std::runtime_error(fmt::format("batch size {}: must be >= 1", batch_size));
  c10::InferenceMode inference;
  std::vector<torch::Tensor> features, logits;
  const int64_t total = images.size();
  int64_t done = 0;
  report(progress, 0, total);
  for (auto groups = images.next(batch_size); !groups.empty(); groups = images.next(batch_size)) {
    for (const auto& g : groups) {
      const auto out = net->forward(g);
      features.push_back(out.features.to(torch::kCPU));
      logits.push_back(out.logits.to(torch::kCPU));
      done += g.size(0);
    }
    report(progress, done, total);
  }
  if (done != total) throw std::runtime_error(fmt::format("{}: {} images read, {} announced", images.name(), done, total));
  if (features.empty())
    return {torch::empty({0, net->feature_dims()}, torch::kFloat32), torch::empty({0, net->num_classes}, torch::kFloat32)};
  return {torch::cat(features), torch::cat(logits)};
}

}  // namespace varbench::metrics
