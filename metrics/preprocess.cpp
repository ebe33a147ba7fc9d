#include "metrics/preprocess.h"

#include <stdexcept>

#include "metrics/inception.h"

namespace varbench::metrics {

Profile parse_profile(const std::string& name) {
  if (name == "adm") return Profile::kAdm;
  if (name == "pytorch-fid") return Profile::kPytorchFid;
  throw std::runtime_error("unknown preprocessing profile '" + name + "' (expected adm or pytorch-fid)");
}

std::string profile_name(Profile profile) { return profile == Profile::kAdm ? "adm" : "pytorch-fid"; }

namespace {
struct Taps {
  torch::Tensor lo, hi, weight;  // int64 [out], int64 [out], float32 [out]
};

Taps tf1_taps(int64_t in, int64_t out, torch::Device device) {
  // The scale is rounded to float32 once, then multiplied in float32, as TF's CalculateResizeScale and
  // the resize kernel do.
  const auto scale = torch::full({}, static_cast<float>(static_cast<double>(in) / static_cast<double>(out)),
                                 torch::TensorOptions().dtype(torch::kFloat32).device(device));
  const auto src = torch::arange(out, torch::TensorOptions().dtype(torch::kFloat32).device(device)) * scale;
  Taps t;
  t.lo = src.floor().to(torch::kLong);
  t.hi = (t.lo + 1).clamp_max(in - 1);
  t.weight = src - t.lo.to(torch::kFloat32);
  return t;
}
}  // namespace

torch::Tensor resize_bilinear_tf1(const torch::Tensor& x, int64_t out_height, int64_t out_width) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat32, "resize_bilinear_tf1: expected float32 NCHW, got ",
              x.scalar_type(), " ", x.sizes());
  const auto ty = tf1_taps(x.size(2), out_height, x.device());
  const auto tx = tf1_taps(x.size(3), out_width, x.device());
  const auto left = x.index_select(3, tx.lo), right = x.index_select(3, tx.hi);       // N x C x H x out_w
  const auto rows = left + (right - left) * tx.weight.view({1, 1, 1, out_width});
  const auto top = rows.index_select(2, ty.lo), bottom = rows.index_select(2, ty.hi);  // N x C x out_h x out_w
  return top + (bottom - top) * ty.weight.view({1, 1, out_height, 1});
}

torch::Tensor preprocess(const torch::Tensor& images, Profile profile) {
  TORCH_CHECK(images.dim() == 4 && images.size(3) == 3 && images.scalar_type() == torch::kUInt8,
              "preprocess: expected uint8 [N, H, W, 3], got ", images.scalar_type(), " ", images.sizes());
  const auto x = images.permute({0, 3, 1, 2}).to(torch::kFloat32).contiguous();  // N x 3 x H x W, 0..255
  if (profile == Profile::kAdm) return resize_bilinear_tf1(x, kInceptionSide, kInceptionSide).sub(128).div(128);
  namespace F = torch::nn::functional;
  const auto resized = F::interpolate(x.div(255), F::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{kInceptionSide, kInceptionSide})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(false));
  return resized.mul(2).sub(1);
}

}  // namespace varbench::metrics
