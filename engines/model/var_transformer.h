#pragma once
// The VAR transformer (FoundationVision/VAR models/var.py + basic_var.py), with module and parameter
// names equal to the official state_dict keys. forward() methods are straight-line math; the sampling
// loop lives in generation.h.
#include <torch/torch.h>

#include <array>
#include <vector>

#include "engines/model/architecture.h"
#include "engines/model/kv_cache.h"
#include "engines/model/torch_compat.h"

namespace varbench {

// How the blocks compute. kExact follows the official code op for op (bit-identical results on the CPU
// with the same libtorch: what reference-RNG runs promise). kFast may replace an op by a faster one that
// rounds differently within float32's precision (engines/model/fast_kernels.h): what per-image runs use.
enum class Kernels { kExact, kFast };

// Per-generation conditioning, computed once: the class embeddings and every AdaLN projection of them
// (they do not change across scales, so the per-scale recomputation of the official loop is skipped;
// the values are the same).
struct Conditioning {
  torch::Tensor cond_BD;                             // [N, C]: N = B conditional rows, then B unconditional rows
  std::vector<std::array<torch::Tensor, 6>> blocks;  // per block: gamma1, gamma2, scale1, scale2, shift1, shift2, each [N,1,C]
  torch::Tensor head_scale, head_shift;              // [N,1,C]
  int64_t rows() const { return cond_BD.size(0); }
  // Keep only the first `rows` rows (e.g. drop the unconditional half when guidance is switched off).
  Conditioning narrowed(int64_t rows) const;
};

class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t width, int64_t heads);
  // x: [N,l,C]. With a cache, this layer's K/V are written at [cache.length, +l) and the queries attend
  // to every cached key up to there; `mask` (additive, [1,1,l,keys]) is only needed within a prefill.
  torch::Tensor forward(const torch::Tensor& x, KvCacheLayer* cache, int64_t cache_offset, const torch::Tensor& mask);

  int64_t heads, head_dim;
  torch::nn::Linear mat_qkv{nullptr}, proj{nullptr};
  torch::Tensor scale_mul_1H11, q_bias, v_bias, zero_k_bias;
};
TORCH_MODULE(SelfAttention);

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t width, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x, Kernels kernels = Kernels::kExact);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FeedForward);

class AdaLNSelfAttnImpl : public torch::nn::Module {
 public:
  AdaLNSelfAttnImpl(const VarArch& arch);
  // ada_lin(cond) (or ada_gss + shared projection) split as gamma1, gamma2, scale1, scale2, shift1, shift2.
  std::array<torch::Tensor, 6> ada_params(const torch::Tensor& cond_or_shared);
  torch::Tensor forward(const torch::Tensor& x, const std::array<torch::Tensor, 6>& ada, KvCacheLayer* cache,
                        int64_t cache_offset, const torch::Tensor& mask, Kernels kernels = Kernels::kExact);

  int64_t width;
  double eps;
  bool shared_adaln;
  SelfAttention attn{nullptr};
  FeedForward ffn{nullptr};
  torch::nn::Sequential ada_lin{nullptr};  // SiLU, Linear(C, 6C); absent with a shared AdaLN
  torch::Tensor ada_gss;                   // [1,1,6,C]; only with a shared AdaLN
};
TORCH_MODULE(AdaLNSelfAttn);

class AdaLNBeforeHeadImpl : public torch::nn::Module {
 public:
  AdaLNBeforeHeadImpl(int64_t width, double eps);
  torch::nn::Sequential ada_lin{nullptr};  // SiLU, Linear(C, 2C): scale, shift
};
TORCH_MODULE(AdaLNBeforeHead);

class VarTransformerImpl : public torch::nn::Module {
 public:
  explicit VarTransformerImpl(const VarArch& arch);
  const VarArch& arch() const { return arch_; }
  // The experiment's name for this model ("large"), for errors; empty: the architecture's name.
  std::string label;
  const std::string& display_name() const { return label.empty() ? arch_.name : label; }

  Conditioning condition(const torch::Tensor& labels, bool with_unconditional = true);
  // lvl_embed(scale of token) + pos_1LC: [1, L, C].
  torch::Tensor position_terms();
  // Input of scale 0: class embedding + pos_start + position term of token 0: [N,1,C].
  torch::Tensor first_scale_input(const Conditioning& cond, const torch::Tensor& position_terms);
  // word_embed(next-scale maps) + position terms of the tokens [token_begin, token_begin + l), repeated to
  // the conditioning rows. next_BlCv: [B, l, Cvae] (fp32; one scale's input or several concatenated, as
  // CoDe's refiner embeds its whole draft at once). Returns [N, l, C].
  torch::Tensor embed_inputs(const torch::Tensor& next_BlCv, int64_t token_begin, const torch::Tensor& position_terms,
                             int64_t rows);
  // Runs all blocks. With a cache, appends this input's K/V and advances the cache.
  torch::Tensor forward_blocks(torch::Tensor x, const Conditioning& cond, KvCache* cache,
                               const torch::Tensor& mask = {}, Kernels kernels = Kernels::kExact);
  // head(head_nm(h)) in fp32: [N,l,V].
  torch::Tensor logits(const torch::Tensor& h, const Conditioning& cond);
  // The block-causal mask of the training forward, rows [q_begin, q_end) x keys [0, q_end): scale(j) <= scale(i).
  torch::Tensor block_causal_mask(int64_t q_begin, int64_t q_end);
  // Teacher-forced forward over all scales (the official forward() without class dropout):
  // labels [B], inputs [B, L-1, Cvae] (next-scale inputs of scales 1..9) -> logits [B, L, V].
  torch::Tensor teacher_forced_logits(const torch::Tensor& labels, const torch::Tensor& inputs_wo_first);

  torch::nn::Linear word_embed{nullptr};
  torch::nn::Embedding class_emb{nullptr}, lvl_embed{nullptr};
  torch::Tensor pos_start, pos_1LC, lvl_1L, attn_bias_for_masking;
  torch::nn::Sequential shared_ada_lin{nullptr};  // only VAR-d36-s
  torch::nn::ModuleList blocks{nullptr};
  std::vector<AdaLNSelfAttn> block_list;
  AdaLNBeforeHead head_nm{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  VarArch arch_;
};
TORCH_MODULE(VarTransformer);

}  // namespace varbench
