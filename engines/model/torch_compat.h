#pragma once
// The one place where varbench depends on the libtorch version. Two lanes build it: Debian's libtorch
// 1.13 (CPU; no scaled-dot-product attention, autocast switched per CUDA) and PyTorch 2.x wheels with CUDA
// (the pinned 2.14 here, 2.11 on the GPU machines). Everything else calls these helpers and stays
// version-agnostic.
#include <ATen/autocast_mode.h>
#include <c10/core/Allocator.h>
#include <torch/torch.h>

#include <optional>
#include <string>

namespace varbench::compat {

// Upstream VAR (models/basic_var.py) computes attention with torch's scaled_dot_product_attention
// wherever torch has it, on every device, and with its explicit formula only on older torch. varbench
// does the same, so that each lane computes what the official code computes with that lane's torch:
// libtorch 1.13 has no SDPA; from 2.2 the C++ signature takes std::optional masks and scale (CMake
// refuses 2.0 and 2.1).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
#define VARBENCH_HAS_SDPA 1
#else
#define VARBENCH_HAS_SDPA 0
#endif

// softmax(q k^T + mask) v with softmax scale 1 (VAR's q is already L2-normalised and scaled per head).
// q: [B,H,Lq,c], k/v: [B,H,Lk,c], mask: additive (0 / -inf), broadcastable to [B,H,Lq,Lk], or undefined
// (cached steps). Under fp16 autocast K is cached in fp32 and V in fp16: autocast casts every SDPA input
// (the mask too) to fp16 as it does upstream; outside autocast the inputs already share one dtype.
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask) {
#if VARBENCH_HAS_SDPA
  std::optional<torch::Tensor> attn_mask;
  if (mask.defined()) attn_mask = mask;
  return at::scaled_dot_product_attention(q, k, v, attn_mask, /*dropout_p=*/0.0, /*is_causal=*/false, /*scale=*/1.0);
#else
  // Upstream's fallback, op for op: (q * scale) @ k^T, add the mask, softmax, @ v.
  auto scores = torch::matmul(q, k.transpose(-2, -1));
  if (mask.defined()) scores.add_(mask);
  auto weights = scores.softmax(-1);
  return torch::matmul(weights.to(v.scalar_type()), v);
#endif
}

// What `attention` runs on this device and dtype, for the provenance of every result: the explicit
// formula, or SDPA with the kernel its dispatcher picks for a masked prefill and for a cached step of a
// d16-shaped model (the choice depends on device, dtype, mask and shapes).
inline std::string attention_backend(torch::Device device, torch::ScalarType dtype) {
#if VARBENCH_HAS_SDPA
  // The values of at::SDPBackend (sdp::SDPBackend before 2.3; the header moved, the numbers did not).
  auto backend_name = [](int64_t choice) -> std::string {
    switch (choice) {
      case 0: return "math";
      case 1: return "flash_attention";
      case 2: return "efficient_attention";
      case 3: return "cudnn_attention";
      default: return "backend " + std::to_string(choice);
    }
  };
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  const auto q_prefill = torch::zeros({2, 16, 30, 64}, options), q_step = torch::zeros({2, 16, 25, 64}, options);
  const auto kv = torch::zeros({2, 16, 55, 64}, options);
  const auto mask = torch::zeros({1, 1, 30, 30}, options);
  try {
    const auto prefill = at::_fused_sdp_choice(q_prefill, q_prefill, q_prefill, mask, 0.0, false, 1.0);
    const auto step = at::_fused_sdp_choice(q_step, kv, kv, std::nullopt, 0.0, false, 1.0);
    return "scaled_dot_product_attention (masked prefill: " + backend_name(prefill) + ", cached step: " +
           backend_name(step) + ")";
  } catch (const std::exception&) {  // the choice is an internal op: report SDPA without it rather than fail a run
    return "scaled_dot_product_attention (kernel choice not reported by this libtorch)";
  }
#else
  return "explicit softmax(q k^T + mask) v (libtorch " TORCH_VERSION " has no scaled_dot_product_attention)";
#endif
}

// Scoped CUDA fp16/bf16 autocast, as `torch.autocast('cuda', dtype)` in the official samplers.
class AutocastGuard {
 public:
  // CUDA autocast to `dtype`; with bf16 also the CPU's (CPU autocast supports bf16 in every libtorch here),
  // so that `bf16-autocast` runs on either device without the guard knowing which one.
  AutocastGuard(bool enabled, torch::ScalarType dtype) : enabled_(enabled), cpu_(enabled && dtype == torch::kBFloat16) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    previous_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    if (cpu_) {
      previous_cpu_enabled_ = at::autocast::is_autocast_enabled(at::kCPU);
      previous_cpu_dtype_ = at::autocast::get_autocast_dtype(at::kCPU);
      at::autocast::set_autocast_enabled(at::kCPU, true);
      at::autocast::set_autocast_dtype(at::kCPU, dtype);
    }
#else
    previous_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
    if (cpu_) {
      previous_cpu_enabled_ = at::autocast::is_cpu_enabled();
      previous_cpu_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(dtype);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, previous_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
    if (cpu_) {
      at::autocast::set_autocast_enabled(at::kCPU, previous_cpu_enabled_);
      at::autocast::set_autocast_dtype(at::kCPU, previous_cpu_dtype_);
    }
#else
    at::autocast::set_enabled(previous_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
    if (cpu_) {
      at::autocast::set_cpu_enabled(previous_cpu_enabled_);
      at::autocast::set_autocast_cpu_dtype(previous_cpu_dtype_);
    }
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_, cpu_;
  bool previous_enabled_ = false, previous_cpu_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kHalf, previous_cpu_dtype_ = torch::kBFloat16;
};

// A c10::Allocator whose subclasses implement `allocate_bytes` only: libtorch 2.3 made allocate()
// non-const and added the pure virtual copy_data().
class AllocatorAdapter : public c10::Allocator {
 public:
  virtual c10::DataPtr allocate_bytes(size_t n) const = 0;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t n) override { return allocate_bytes(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
  c10::DataPtr allocate(size_t n) const override { return allocate_bytes(n); }
#endif
};

}  // namespace varbench::compat
