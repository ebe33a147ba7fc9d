#pragma once
// Where a generation's time goes: scoped, named parts of the model code (QKV GEMM, attention, FFN, ...),
// each with the work it did (floating-point operations and bytes moved), so that a benchmark can set the
// measured time of every part beside its FLOP- or byte-bound. Off unless a PartProfile is installed on
// the calling thread (tests/benchmarks/bench_breakdown.cpp does); then a scope costs one thread-local
// read. CPU only: the clock does not wait for a GPU.
#include <torch/torch.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>

namespace varbench {

enum class Part : int {
  kEmbed,          // word_embed of the scale's input + position terms (first scale: class embedding)
  kNormModulate,   // layer norms, AdaLN scale/shift, the gated residual additions
  kQkvGemm,        // mat_qkv
  kAttention,      // q/k L2 norm, KV cache write, softmax(q k^T) v
  kProjGemm,       // attention output projection
  kFfnGemm,        // fc1 and fc2
  kFfnActivation,  // tanh-GELU
  kHead,           // head_nm and the vocabulary projection
  kSampling,       // guidance, top-k/top-p filtering, drawing
  kFhatUpdate,     // code lookup, phi convolution and f_hat accumulation
  kInterpolation,  // bicubic upsampling of the codes, area downsampling of f_hat to the next input
  kDecode,         // the VQVAE decode
  kCount
};
const char* part_name(Part part);
// How the bound of a part is computed: GEMMs by FLOPs at the large-GEMM rate or by bytes at the rate
// small-row GEMMs stream their weights; everything else by bytes at the memory copy rate.
bool part_is_gemm(Part part);

struct PartTotals {
  double seconds = 0, flops = 0, bytes = 0;
  int64_t calls = 0;
};

class PartProfile {
 public:
  // Installs this profile on the calling thread (one at a time) until it is destroyed.
  PartProfile();
  ~PartProfile();
  PartProfile(const PartProfile&) = delete;
  PartProfile& operator=(const PartProfile&) = delete;
  static PartProfile* active();
  // Parts recorded from now on are filed under this scale (-1: outside the scales, e.g. the decode).
  void set_scale(int64_t scale) { scale_ = scale; }
  void add(Part part, double seconds, double flops, double bytes);
  // Per scale (-1 first), per part.
  const std::map<int64_t, std::array<PartTotals, static_cast<size_t>(Part::kCount)>>& totals() const { return totals_; }
  void clear() { totals_.clear(); }

 private:
  int64_t scale_ = -1;
  std::map<int64_t, std::array<PartTotals, static_cast<size_t>(Part::kCount)>> totals_;
};

// Times its lifetime as `part` when a profile is active. The work is given by the caller (the helpers
// below count it from shapes).
class PartScope {
 public:
  PartScope(Part part, double flops, double bytes)
      : profile_(PartProfile::active()), part_(part), flops_(flops), bytes_(bytes) {
    if (profile_) start_ = std::chrono::steady_clock::now();
  }
  ~PartScope() {
    if (profile_)
      profile_->add(part_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), flops_, bytes_);
  }
  PartScope(const PartScope&) = delete;
  PartScope& operator=(const PartScope&) = delete;

 private:
  PartProfile* profile_;
  Part part_;
  double flops_, bytes_;
  std::chrono::steady_clock::time_point start_;
};

inline bool profiling_parts() { return PartProfile::active() != nullptr; }
// Work of x[..., K] @ W[N, K]^T (+ bias): 2 M N K flops; bytes of x, W and the output.
double gemm_flops(const torch::Tensor& x, const torch::Tensor& weight);
double gemm_bytes(const torch::Tensor& x, const torch::Tensor& weight);
// Bytes of tensors read or written once each.
double tensor_bytes(std::initializer_list<torch::Tensor> tensors);

}  // namespace varbench
