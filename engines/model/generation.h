#pragma once
// The building blocks of VAR's scale-by-scale loop, shared by every engine: the running state of a
// batch (f_hat, tokens, next-scale inputs) and one model's pass over some of its scales (conditioning,
// KV cache, cached steps, block-causal prefill, token-pruned steps). `generate_single` composes them
// into the plain loop.
#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#include "engines/model/kv_cache.h"
#include "engines/model/precision.h"
#include "engines/model/sampling.h"
#include "engines/model/var_transformer.h"
#include "engines/model/vqvae.h"

namespace varbench {

// What a stretch of a generation did, so that its time and memory are reported as what they are: the id
// stored in result files (timing/phase_kind, memory/phase_kind) and its name. This layer owns the kinds
// every generation has; an engine with phases of its own declares them in its file and lists them in its
// registry entry (engines/registry.cpp), so that the model knows scales, not strategies. Ids never change
// meaning (files written earlier keep theirs): 2-4 went to the first engines with phases of their own
// (CoDe's prefix, speculative's draft and verify); a new kind takes the next free id.
struct PhaseKind {
  int64_t id;
  const char* name;
  constexpr bool operator==(const PhaseKind& other) const { return id == other.id; }
  constexpr bool operator!=(const PhaseKind& other) const { return id != other.id; }
};
inline constexpr PhaseKind kSetupPhase{0, "setup"};    // a model pass's conditioning and KV cache allocation
inline constexpr PhaseKind kScalePhase{1, "scale"};    // one scale: its forward, logits, sampling and f_hat update
inline constexpr PhaseKind kDecodePhase{5, "decode"};  // the VQVAE decode (marked by the driver)

// The driver's window into a generation: phase boundaries, so that it (not the engine) takes the time
// and measures the memory. A phase runs from the previous boundary to this one.
class ScaleObserver {
 public:
  virtual ~ScaleObserver() = default;
  // A phase covering scales [first_scale, last_scale] ended (set-up: -1, -1).
  virtual void phase_done(PhaseKind phase, int64_t first_scale, int64_t last_scale) {}
  // The tokens of `scale` are final, and the time since the previous boundary was spent on it alone.
  void scale_done(int64_t scale) { phase_done(kScalePhase, scale, scale); }
  void setup_done() { phase_done(kSetupPhase, -1, -1); }
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
  // An independent copy (f_hat is updated in place by commit).
  GenerationState clone() const;
};

// One model's share of a generation: its conditioning and its own KV cache.
class ModelPass {
 public:
  // `guided`: conditional and unconditional rows (2B); otherwise B conditional rows.
  // `capacity_tokens`: positions the KV cache must hold (all scales the model will see).
  // `kernels`: the blocks' ops (kernels_for(request.rng_mode) in the engines).
  ModelPass(VarTransformer model, const torch::Tensor& labels, bool guided, const PrecisionPolicy& policy,
            int64_t capacity_tokens, Kernels kernels = Kernels::kExact);
  VarTransformer& model() { return model_; }
  int64_t rows() const { return cond_.rows(); }
  bool guided() const { return guided_; }
  KvCache& cache() { return cache_; }

  // Cached forward of scale `scale` (its input from `state`): hidden states [rows, l, C].
  torch::Tensor step_hidden(const GenerationState& state, int64_t scale);
  // ... and the raw fp32 logits [rows, l, V].
  torch::Tensor step(const GenerationState& state, int64_t scale) { return logits(step_hidden(state, scale)); }
  // One masked forward over scales [first, last] whose inputs are in `state` (block-causal among the new
  // tokens, full access to what is cached), filling the cache: hidden states of all those tokens. The
  // inputs are embedded as CoDe's refiner embeds its draft: one word_embed over the concatenated maps.
  torch::Tensor prefill_hidden(const GenerationState& state, int64_t first, int64_t last);
  // Cached step that runs only a `keep_ratio` share of the scale's tokens, those farthest from the
  // scale's mean input (FastVAR-style pruning); only they enter the KV cache, and the hidden states of the
  // others are the previous scale's, upsampled. Returns hidden states of every token [rows, l, C].
  torch::Tensor step_pruned_hidden(const GenerationState& state, int64_t scale, double keep_ratio);
  // head(head_nm(h)) in fp32, checked for NaN and Inf through one float64 sum: on the CPU at once (throws
  // NonFiniteLogits naming the model and scale); on a GPU the sum stays on the device, pending until
  // check_pending_logits() after the batch's synchronisation (no synchronisation inside a batch), and the
  // logits go on as computed.
  torch::Tensor logits(const torch::Tensor& hidden);
  // Guided logits of one scale out of raw logits [rows,l,V] (unguided rows pass through).
  torch::Tensor guide(const torch::Tensor& raw, int64_t scale, const SamplingSettings& settings);
  // Switch guidance off for the remaining scales: drop the unconditional rows (and their cache).
  void drop_unconditional();
  // Forget cached positions of scales after `scale` (speculative rollback); -1 forgets everything.
  void rollback_to_scale(int64_t scale);
  // Frees the cache.
  void release();

 private:
  torch::Tensor scale_input(const GenerationState& state, int64_t scale);
  torch::Tensor forward_new_tokens(torch::Tensor x, const torch::Tensor& mask = {});
  VarTransformer model_;
  PrecisionPolicy policy_;
  Kernels kernels_;
  bool guided_;
  Conditioning cond_;
  torch::Tensor position_terms_;
  KvCache cache_;
  int64_t pruned_positions_ = 0;  // positions never cached because their tokens were pruned
  torch::Tensor last_hidden_;     // hidden states of the last scale run, for pruned steps
  std::pair<int64_t, int64_t> scales_run_{0, 0};  // scales of the last forward (what logits() belongs to)
};

// Logits with NaN or Inf: a damaged checkpoint or an overflow; the run fails naming model and scale.
struct NonFiniteLogits : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads the GPU's pending logits checks (ModelPass::logits) and forgets them; throws NonFiniteLogits
// naming the first model and scale whose logits were not all finite. One small copy from the device:
// call it after a batch's own synchronisation (the driver does after every batch; generate_single at its
// end), never inside a batch. Nothing is pending on the CPU.
void check_pending_logits();
// Drops them unread (a batch that failed otherwise: its checks must not be charged to the next one).
void forget_pending_logits();

struct GenerationRequest {
  torch::Tensor labels;                // [B] int64, on the model's device
  std::vector<int64_t> image_indices;  // global index of each row (per-image RNG, output order)
  uint64_t seed = 0;
  RngMode rng_mode = RngMode::kPerImage;
  SamplingSettings sampling;
};

TokenSampler make_sampler(const GenerationRequest& request, torch::Device device);

// Reference-RNG runs reproduce the official samplers token for token, so they compute op for op as the
// official code does; per-image runs take the fast kernels.
inline Kernels kernels_for(RngMode mode) { return mode == RngMode::kReference ? Kernels::kExact : Kernels::kFast; }

// Samples the tokens of `scale` from its guided logits (filtered in place) and commits them to `state`.
torch::Tensor sample_and_commit(GenerationState& state, Vqvae vqvae, torch::Tensor guided_logits, int64_t scale,
                                TokenSampler& sampler, const SamplingSettings& settings);

// Variations of the one-model loop (the baselines of the single-model engines).
struct SingleLoopOptions {
  int64_t exit_after_scale = -1;   // early exit: stop after this scale (f_hat holds the partial sum); -1 = none
  int64_t guidance_off_from = -1;  // from this scale on only the conditional branch runs; -1 = never
  int64_t prune_from_scale = -1;   // FastVAR-style token pruning from this scale on; -1 = never
  double keep_ratio = 1.0;         // share of tokens a pruned scale runs
};

// The loop with one model; returns the state after the last scale it ran. `kv_cache_bytes` receives the
// bytes of the KV cache it held.
GenerationState run_single_loop(VarTransformer model, Vqvae vqvae, const GenerationRequest& request,
                                const PrecisionPolicy& policy, const SingleLoopOptions& options,
                                ScaleObserver* observer = nullptr, int64_t* kv_cache_bytes = nullptr);

// The plain loop with one model over every scale.
GenerationState generate_single(VarTransformer model, Vqvae vqvae, const GenerationRequest& request,
                                const PrecisionPolicy& policy, ScaleObserver* observer = nullptr);

// Image [B,3,H,W] in [-1,1] -> uint8 [B,H,W,3] as the official samplers store it ((x+1)/2*255, truncated).
torch::Tensor images_to_uint8(const torch::Tensor& images_m1_1);

}  // namespace varbench
