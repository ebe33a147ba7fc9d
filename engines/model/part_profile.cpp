#include "engines/model/part_profile.h"

#include <stdexcept>

namespace varbench {

namespace {
thread_local PartProfile* g_active = nullptr;
}

const char* part_name(Part part) {
  static const char* const names[] = {"embed",       "norm_modulate", "qkv_gemm", "attention",   "proj_gemm",     "ffn_gemm",
                                      "ffn_activation", "head",       "sampling", "fhat_update", "interpolation", "decode"};
  return names[static_cast<int>(part)];
}

bool part_is_gemm(Part part) {
  return part == Part::kQkvGemm || part == Part::kProjGemm || part == Part::kFfnGemm || part == Part::kHead ||
         part == Part::kEmbed;
}

PartProfile::PartProfile() {
  if (g_active) throw std::logic_error("a PartProfile is already active on this thread");
  g_active = this;
}
PartProfile::~PartProfile() { g_active = nullptr; }
PartProfile* PartProfile::active() { return g_active; }

void PartProfile::add(Part part, double seconds, double flops, double bytes) {
  auto& t = totals_[scale_][static_cast<size_t>(part)];
  t.seconds += seconds;
  t.flops += flops;
  t.bytes += bytes;
  ++t.calls;
}

double gemm_flops(const torch::Tensor& x, const torch::Tensor& weight) {
  const double rows = static_cast<double>(x.numel() / x.size(-1));
  return 2.0 * rows * static_cast<double>(weight.size(0)) * static_cast<double>(weight.size(1));
}

double gemm_bytes(const torch::Tensor& x, const torch::Tensor& weight) {
  const double rows = static_cast<double>(x.numel() / x.size(-1));
  const double out = rows * static_cast<double>(weight.size(0)) * static_cast<double>(weight.element_size());
  return static_cast<double>(x.numel() * x.element_size() + weight.numel() * weight.element_size()) + out;
}

double tensor_bytes(std::initializer_list<torch::Tensor> tensors) {
  double b = 0;
  for (const auto& t : tensors)
    if (t.defined()) b += static_cast<double>(t.numel() * t.element_size());
  return b;
}

}  // namespace varbench
