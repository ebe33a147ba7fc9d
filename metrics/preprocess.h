#pragma once
// Image preprocessing in front of the FID Inception. Two profiles, kept apart because they differ by
// ~0.2% in FID on the same weights and images; every number records which one produced it.
//   adm          float 0..255 -> TensorFlow 1.x ResizeBilinear to 299x299 (align_corners=False, no
//                half-pixel centres) -> (x - 128) / 128. The graph of the ADM evaluator
//                (openai/guided-diffusion evaluations/evaluator.py), reproduced by torch-fidelity.
//   pytorch-fid  x / 255 -> bilinear resize to 299x299 with half-pixel centres (F.interpolate,
//                align_corners=False) -> 2x - 1. mseitzer/pytorch-fid.
#include <torch/torch.h>

#include <string>

namespace varbench::metrics {

enum class Profile { kAdm, kPytorchFid };
Profile parse_profile(const std::string& name);  // "adm" | "pytorch-fid"; throws naming the value
std::string profile_name(Profile profile);

// TensorFlow 1.x legacy bilinear resize of a float32 [N, C, H, W] batch. For output index d along an
// axis of input size `in`: s = d * float32(in / out) in float32, neighbours floor(s) and
// min(floor(s) + 1, in - 1), weight s - floor(s); interpolated along the width, then the height, with
// a + (b - a) * w in float32 (the TF kernel's arithmetic).
torch::Tensor resize_bilinear_tf1(const torch::Tensor& x, int64_t out_height, int64_t out_width);

// images: uint8 [N, H, W, 3] (RGB, any size, any device) -> float32 [N, 3, 299, 299] in [-1, 1].
torch::Tensor preprocess(const torch::Tensor& images, Profile profile);

}  // namespace varbench::metrics
