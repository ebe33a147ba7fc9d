#pragma once
// Token sampling: classifier-free guidance, top-k / top-p filtering, per-scale temperature, and the
// two RNG modes.
//  - reference: one torch generator per model call, seeded as the official code seeds it, and the same
//    multinomial calls in the same order (CPU + the same libtorch => the official tokens, bit for bit).
//  - per-image (default): every random number is a counter-based hash of (seed, global image index,
//    scale, stream, position), the same integers on every device; tokens are drawn by Gumbel-max. An
//    image's random numbers do not depend on batch size, shard, GPU count or which model sampled the
//    other scales. Its tokens are then bit-identical wherever the batch composition is the same; across
//    batch sizes, BLAS rounds the logits differently in the last bits, so a token can change where the
//    two best Gumbel-perturbed scores are that close (measured: tests/test_var_parity.cpp).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace varbench {

struct SamplingSettings {
  double cfg = 1.5;
  std::vector<int64_t> top_k{900};      // one value for all scales, or one per scale; 0 disables
  double top_p = 0.96;                  // 0 disables
  std::vector<double> temperature{1.0}; // one value, or one per scale (CoDe: 1.1 on scales 0..6)
  bool more_smooth = false;             // Gumbel-softmax code mixture (visualisation only, never for FID)

  int64_t top_k_at(int64_t scale) const;
  double temperature_at(int64_t scale) const;
  // Guidance ramp t = cfg * s / (S-1): scale 0 is unguided.
  double guidance_at(int64_t scale, int64_t num_scales) const;
  // Throws naming the setting when a list has the wrong length or a value is out of range.
  void validate(int64_t num_scales) const;
};

enum class RngMode { kReference, kPerImage };
RngMode parse_rng_mode(const std::string& name);  // "reference" | "per-image"
std::string rng_mode_name(RngMode mode);

// Random streams of one image: a sampler draws several kinds of numbers per scale.
enum class RandomStream : int64_t { kToken = 0, kGumbel = 1, kAccept = 2, kResample = 3, kDraft = 4 };

// guided = (1+t) * cond - t * uncond, on logits [2B,l,V] laid out conditional rows first.
torch::Tensor apply_guidance(const torch::Tensor& logits_2B, double t);
// In place, as the official sample_with_top_k_top_p_: top-k keeps every logit >= the k-th largest
// (ties kept); top-p sorts ascending and drops tokens whose cumulative mass is <= 1-p, never the largest.
void filter_top_k_top_p_(torch::Tensor& logits, int64_t top_k, double top_p);
// softmax(logits / temperature) after filtering (CoDe applies temperature after the filters).
torch::Tensor token_probabilities(torch::Tensor logits, int64_t top_k, double top_p, double temperature);

class TokenSampler {
 public:
  // One generator for the whole batch, seeded with `seed` (official: self.rng.manual_seed(g_seed)),
  // living on `device` like the official one.
  static TokenSampler reference(uint64_t seed, torch::Device device);
  // Uniforms keyed by (seed, image_indices[b], ...).
  static TokenSampler per_image(uint64_t seed, const std::vector<int64_t>& image_indices, torch::Device device);

  RngMode mode() const { return mode_; }
  // Draws one token per row of probs [B,l,V] -> [B,l] int64.
  torch::Tensor draw(const torch::Tensor& probs, int64_t scale, RandomStream stream = RandomStream::kToken);
  // Samples from guided logits [B,l,V] (filtered in place) with the settings of `scale`.
  torch::Tensor sample(torch::Tensor& logits, int64_t scale, const SamplingSettings& settings);
  // Uniforms in [0,1), [B,l] (per-image: keyed; reference: from the generator), float64.
  torch::Tensor uniforms(int64_t batch, int64_t positions, int64_t scale, RandomStream stream, int64_t width = 1);
  // Standard Gumbel noise [B,l,width], float32 (reference: -log(Exp(1)) from the generator, as the official
  // gumbel_softmax_with_rng draws it).
  torch::Tensor gumbel(int64_t batch, int64_t positions, int64_t width, int64_t scale, RandomStream stream);
  // more_smooth: softmax((logits*(1+r) + gumbel)/tau) with the official tau schedule: [B,l,V].
  torch::Tensor gumbel_soft_weights(const torch::Tensor& logits, int64_t scale, int64_t num_scales);
  torch::Generator& generator() { return generator_; }
  // Standard Gumbel values of 32-bit random integers (int64 tensor); finite for every input.
  static torch::Tensor bits_to_gumbel(const torch::Tensor& bits);

  // Per-image sampling among the top-k candidates only (same noise per vocabulary entry as a full draw),
  // from guided logits [B,l,V] -> [B,l]: top-k keeps the logits >= the k-th largest (ties up to 16 past
  // k), top-p drops the low tail of the candidates' mass (ascending cumulative mass <= 1-p, never the
  // largest), then Gumbel-max over the kept ones at `temperature`. Float32 CPU logits take a per-row kernel
  // (selection instead of a sorted top-k, one pass per row, the rows spread over the threads); others the
  // tensor ops, which every device runs. Both draw the same tokens up to rounding: a token can differ only
  // where two perturbed scores or a cumulative mass and 1-p agree to the last bits (tests/test_sampling.cpp).
  torch::Tensor sample_top_k_candidates(const torch::Tensor& logits, int64_t scale, int64_t top_k, double top_p,
                                        double temperature) const;
  torch::Tensor sample_top_k_candidates_tensor_ops(const torch::Tensor& logits, int64_t scale, int64_t top_k,
                                                   double top_p, double temperature) const;
  torch::Tensor sample_top_k_candidates_cpu_kernel(const torch::Tensor& logits, int64_t scale, int64_t top_k,
                                                   double top_p, double temperature) const;

 private:
  static uint32_t call_key(int64_t scale, RandomStream stream);
  // Per-image: 32-bit hashes of (image key, call key, counter) as int64, for counters 0..count-1 ([B, count])
  // or for the given counters ([B, ...] int64 in [0, 2^32)).
  torch::Tensor random_bits(int64_t batch, int64_t count, uint32_t call) const;
  torch::Tensor random_bits_at(const torch::Tensor& counters, uint32_t call) const;

  RngMode mode_ = RngMode::kPerImage;
  torch::Generator generator_;
  std::vector<uint32_t> row_keys_cpu_;  // per-image: one key per row, from (seed, image index)
  torch::Tensor row_keys_;              // the same keys on the device
  torch::Device device_ = torch::kCPU;
};

// Counter-based 32-bit hash (integer tensor ops only; no 64-bit overflow), exposed for tests.
torch::Tensor hash32(const torch::Tensor& x);
uint32_t hash32(uint32_t x);

}  // namespace varbench
