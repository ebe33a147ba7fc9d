#pragma once
// The building blocks of VAR's scale-by-scale loop, shared by every engine: the running state of a
// batch (f_hat, tokens, next-scale inputs) and one model's pass over some of its scales (conditioning,
// KV cache, cached steps, block-causal prefill). `generate_single` composes them into the plain loop.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "engines/model/kv_cache.h"
#include "engines/model/precision.h"
#include "engines/model/sampling.h"
#include "engines/model/var_transformer.h"
#include "engines/model/vqvae.h"

namespace varbench {

// The driver's window into a generation: scale boundaries, so that it (not the engine) takes the time.
class ScaleObserver {
 public:
  virtual ~ScaleObserver() = default;
  virtual void scale_done(int64_t scale) {}
  virtual void transformer_done() {}  // all tokens sampled; the VQVAE decode follows
};

// The running state of one batch: what has been sampled and the continuous maps derived from it.
struct GenerationState {
  int64_t batch = 0;
  std::vector<int64_t> sides;
  torch::Tensor f_hat;                     // [B, Cvae, H, W] fp32
  std::vector<torch::Tensor> tokens;       // per sampled scale: [B, side^2] int64
  std::vector<torch::Tensor> next_inputs;  // next_inputs[s]: input of scale s+1 (area-downsampled f_hat), [B, l, Cvae]

  GenerationState(int64_t batch, const std::vector<int64_t>& sides, int64_t code_dim, torch::Device device);
  int64_t scales_done() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_scales() const { return static_cast<int64_t>(sides.size()); }
  // Adds the next scale's tokens: code lookup (or the given soft codes [B,Cvae,s,s]), Phi, f_hat update,
  // next-scale input.
  void commit(Vqvae vqvae, const torch::Tensor& scale_tokens, const torch::Tensor& codes = {});
  // Drops every scale from `scale` on (f_hat is rebuilt from the kept tokens).
  void truncate(Vqvae vqvae, int64_t scale);
};

// One model's share of a generation: its conditioning and its own KV cache.
class ModelPass {
 public:
  // `guided`: conditional and unconditional rows (2B); otherwise B conditional rows.
  // `capacity_tokens`: positions the KV cache must hold (all scales the model will see).
  ModelPass(VarTransformer model, const torch::Tensor& labels, bool guided, const PrecisionPolicy& policy,
            int64_t capacity_tokens);
  const VarTransformer& model() const { return model_; }
  int64_t rows() const { return cond_.rows(); }
  bool guided() const { return guided_; }
  KvCache& cache() { return cache_; }

  // Cached forward of scale `scale` (its input from `state`); raw fp32 logits [rows, l, V].
  torch::Tensor step(const GenerationState& state, int64_t scale);
  // One masked forward over scales [first, last] whose inputs are in `state` (block-causal among the new
  // tokens, full access to what is cached), filling the cache: raw logits of all those tokens.
  torch::Tensor prefill(const GenerationState& state, int64_t first, int64_t last);
  // Guided logits of one scale out of raw logits [rows,l,V] (unguided rows pass through).
  torch::Tensor guide(const torch::Tensor& raw, int64_t scale, const SamplingSettings& settings);
  // Switch guidance off for the remaining scales: drop the unconditional rows (and their cache).
  void drop_unconditional();
  void release();

 private:
  torch::Tensor scale_input(const GenerationState& state, int64_t scale);
  VarTransformer model_;
  PrecisionPolicy policy_;
  bool guided_;
  Conditioning cond_;
  torch::Tensor position_terms_;
  KvCache cache_;
};

struct GenerationRequest {
  torch::Tensor labels;                // [B] int64, on the model's device
  std::vector<int64_t> image_indices;  // global index of each row (per-image RNG, output order)
  uint64_t seed = 0;
  RngMode rng_mode = RngMode::kPerImage;
  SamplingSettings sampling;
};

TokenSampler make_sampler(const GenerationRequest& request, torch::Device device);

// Samples the tokens of `scale` from its guided logits (filtered in place) and commits them to `state`.
torch::Tensor sample_and_commit(GenerationState& state, Vqvae vqvae, torch::Tensor guided_logits, int64_t scale,
                                TokenSampler& sampler, const SamplingSettings& settings);

// The plain loop with one model over every scale; returns the state after the last scale.
GenerationState generate_single(VarTransformer model, Vqvae vqvae, const GenerationRequest& request,
                                const PrecisionPolicy& policy, ScaleObserver* observer = nullptr);

// Image [B,3,H,W] in [-1,1] -> uint8 [B,H,W,3] as the official samplers store it ((x+1)/2*255, truncated).
torch::Tensor images_to_uint8(const torch::Tensor& images_m1_1);

}  // namespace varbench
