#pragma once
// The one place where varbench depends on the libtorch version. Debian's libtorch is 1.13 (no public
// scaled-dot-product attention, autocast switched per CUDA); the CUDA machines run 2.x. Everything else
// calls these helpers and stays version-agnostic.
#include <ATen/autocast_mode.h>
#include <c10/core/Allocator.h>
#include <torch/torch.h>

#include <optional>

namespace varbench::compat {

inline constexpr bool kHasScaledDotProductAttention = TORCH_VERSION_MAJOR >= 2;

// softmax(q k^T + mask) v with softmax scale 1 (VAR's q is already L2-normalised and scaled per head).
// q: [B,H,Lq,c], k/v: [B,H,Lk,c], mask: additive, broadcastable to [B,H,Lq,Lk] or undefined.
// On 1.13 (and always on CPU, where it is what the official code's fallback does) this is the explicit
// formula, op for op, so CPU logits are bit-comparable with the PyTorch reference.
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask) {
#if TORCH_VERSION_MAJOR >= 2
  if (q.is_cuda()) {
    // Fused kernels need one dtype; the official fp16-autocast path casts q/k/v to the autocast dtype too.
    const auto dtype = v.scalar_type();
    std::optional<torch::Tensor> attn_mask;
    if (mask.defined()) attn_mask = mask.to(dtype);
    return at::scaled_dot_product_attention(q.to(dtype), k.to(dtype), v, attn_mask, /*dropout_p=*/0.0,
                                            /*is_causal=*/false, /*scale=*/1.0);
  }
#endif
  auto scores = torch::matmul(q, k.transpose(-2, -1));
  if (mask.defined()) scores.add_(mask);
  auto weights = scores.softmax(-1);
  return torch::matmul(weights.to(v.scalar_type()), v);
}

// Scoped CUDA fp16/bf16 autocast, as `torch.autocast('cuda', dtype)` in the official samplers.
class AutocastGuard {
 public:
  AutocastGuard(bool enabled, torch::ScalarType dtype) : enabled_(enabled) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    previous_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
    previous_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, previous_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
#else
    at::autocast::set_enabled(previous_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
  bool previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kHalf;
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
