#include "engines/model/generation.h"

#include <cmath>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "engines/model/part_profile.h"
#include "engines/model/torch_compat.h"

namespace varbench {

GenerationState::GenerationState(int64_t batch_, const std::vector<int64_t>& sides_, int64_t code_dim, torch::Device device)
    : batch(batch_), sides(sides_) {
  f_hat = torch::zeros({batch, code_dim, sides.back(), sides.back()}, torch::TensorOptions().device(device));
}

void GenerationState::commit(Vqvae vqvae, const torch::Tensor& scale_tokens, const torch::Tensor& codes) {
  const int64_t s = scales_done();
  if (s >= num_scales()) throw std::logic_error("GenerationState::commit past the last scale");
  torch::Tensor h = codes;
  if (!h.defined()) {
    PartScope part(Part::kFhatUpdate, 0, 2 * static_cast<double>(scale_tokens.numel() * f_hat.size(1) * 4));
    h = vqvae->quantize->lookup(scale_tokens, sides[s]);
  }
  auto next = vqvae->add_scale(s, sides, f_hat, h.to(torch::kFloat32));
  tokens.push_back(scale_tokens);
  if (next.defined()) next_inputs.push_back(next.view({batch, f_hat.size(1), -1}).transpose(1, 2));
}

GenerationState GenerationState::clone() const {
  GenerationState c = *this;
  c.f_hat = f_hat.clone();
  return c;
}

// ---------------------------------------------------------------------------------------------------
ModelPass::ModelPass(VarTransformer model, const torch::Tensor& labels, bool guided, const PrecisionPolicy& policy,
                     int64_t capacity_tokens, Kernels kernels)
    : model_(std::move(model)), policy_(policy), kernels_(kernels), guided_(guided) {
  compat::AutocastGuard autocast(policy_.autocast, policy_.autocast_dtype);
  cond_ = model_->condition(labels, guided);
  position_terms_ = model_->position_terms();
  const auto& a = model_->arch();
  const auto device = model_->pos_1LC.device();
  cache_ = KvCache(a.depth, cond_.rows(), a.heads, capacity_tokens, a.head_dim(), policy_.key_cache_dtype,
                   policy_.value_cache_dtype, device);
}

torch::Tensor ModelPass::scale_input(const GenerationState& state, int64_t scale) {
  if (scale == 0) return model_->first_scale_input(cond_, position_terms_);
  return model_->embed_inputs(state.next_inputs.at(scale - 1), model_->arch().schedule.begin(scale), position_terms_,
                              cond_.rows());
}

torch::Tensor ModelPass::forward_new_tokens(torch::Tensor x, const torch::Tensor& mask) {
  auto h = model_->forward_blocks(std::move(x), cond_, &cache_, mask, kernels_);
  last_hidden_ = h;
  return h;
}

torch::Tensor ModelPass::step_hidden(const GenerationState& state, int64_t scale) {
  compat::AutocastGuard autocast(policy_.autocast, policy_.autocast_dtype);
  if (cache_.length() + pruned_positions_ != model_->arch().schedule.begin(scale))
    throw std::logic_error(fmt::format("cached step of scale {} with {} tokens cached", scale, cache_.length()));
  scales_run_ = {scale, scale};
  return forward_new_tokens(scale_input(state, scale));
}

torch::Tensor ModelPass::prefill_hidden(const GenerationState& state, int64_t first, int64_t last) {
  compat::AutocastGuard autocast(policy_.autocast, policy_.autocast_dtype);
  const auto& sched = model_->arch().schedule;
  if (pruned_positions_ != 0 || cache_.length() != sched.begin(first))
    throw std::logic_error(fmt::format("prefill from scale {} with {} tokens cached", first, cache_.length()));
  // Official CoDe refiner: cat(first-scale input, word_embed(cat(draft maps)) + positions).
  std::vector<torch::Tensor> maps;
  for (int64_t s = std::max<int64_t>(first, 1); s <= last; ++s) maps.push_back(state.next_inputs.at(s - 1));
  std::vector<torch::Tensor> parts;
  if (first == 0) parts.push_back(model_->first_scale_input(cond_, position_terms_));
  if (!maps.empty())
    parts.push_back(model_->embed_inputs(maps.size() == 1 ? maps[0] : torch::cat(maps, 1),
                                         sched.begin(std::max<int64_t>(first, 1)), position_terms_, cond_.rows()));
  auto x = parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
  auto mask = model_->block_causal_mask(sched.begin(first), sched.end(last)).to(x.scalar_type());
  scales_run_ = {first, last};
  return forward_new_tokens(x, mask);
}

torch::Tensor ModelPass::step_pruned_hidden(const GenerationState& state, int64_t scale, double keep_ratio) {
  compat::AutocastGuard autocast(policy_.autocast, policy_.autocast_dtype);
  const auto& sched = model_->arch().schedule;
  if (scale == 0 || !last_hidden_.defined()) throw std::logic_error("token pruning needs a previous scale");
  if (cache_.length() + pruned_positions_ != sched.begin(scale))
    throw std::logic_error(fmt::format("pruned step of scale {} with {} tokens cached", scale, cache_.length()));
  auto x = scale_input(state, scale);  // [rows, l, C]
  const int64_t rows = x.size(0), l = x.size(1), C = x.size(2), B = state.batch;
  const int64_t keep = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(keep_ratio * l)));
  // Score on the conditional rows (the unconditional rows have the same inputs): distance from the mean.
  auto cond_x = x.narrow(0, 0, B).to(torch::kFloat32);
  auto score = (cond_x - cond_x.mean(1, true)).norm(2, -1);                                   // [B, l]
  auto kept = std::get<0>(std::get<1>(score.topk(keep, -1, true, false)).sort(-1));  // [B, keep]
  auto kept_rows = rows == B ? kept : kept.repeat({rows / B, 1});                           // [rows, keep]
  auto gather_idx = kept_rows.unsqueeze(-1).expand({rows, keep, C});
  auto previous = last_hidden_;  // the previous scale's final hidden states [rows, l_prev, C]
  scales_run_ = {scale, scale};
  auto h_kept = forward_new_tokens(x.gather(1, gather_idx));
  pruned_positions_ += l - keep;
  // Pruned tokens take the previous scale's final hidden states, upsampled to this scale's grid.
  const int64_t prev_side = sched.sides[scale - 1], side = sched.sides[scale];
  auto grid = previous.transpose(1, 2).reshape({rows, C, prev_side, prev_side}).to(torch::kFloat32);
  namespace F = torch::nn::functional;
  auto up = F::interpolate(grid, F::InterpolateFuncOptions()
                                     .size(std::vector<int64_t>{side, side})
                                     .mode(torch::kBilinear)
                                     .align_corners(false))
                .reshape({rows, C, l})
                .transpose(1, 2)
                .to(h_kept.scalar_type())
                .contiguous();
  up.scatter_(1, gather_idx, h_kept);
  last_hidden_ = up;
  return up;
}

namespace {
NonFiniteLogits non_finite(const std::string& model, std::pair<int64_t, int64_t> scales) {
  return NonFiniteLogits(fmt::format("model '{}' produced non-finite logits (NaN or Inf) at scale {}", model,
                                     scales.first == scales.second ? fmt::format("{}", scales.first)
                                                                   : fmt::format("{}..{}", scales.first, scales.second)));
}

// The GPU's logits checks not read yet: one float64 sum per logits call, on the device.
struct PendingCheck {
  std::string model;
  std::pair<int64_t, int64_t> scales;
  torch::Tensor sum;
};
std::mutex g_pending_mutex;
std::vector<PendingCheck> g_pending;
}  // namespace

void check_pending_logits() {
  std::vector<PendingCheck> pending;
  {
    std::lock_guard<std::mutex> lock(g_pending_mutex);
    pending.swap(g_pending);
  }
  if (pending.empty()) return;
  std::vector<torch::Tensor> sums;
  for (const auto& p : pending) sums.push_back(p.sum);
  const auto values = torch::stack(sums).cpu();  // the one read: a few bytes, after the batch's sync
  const auto* v = values.data_ptr<double>();
  for (size_t i = 0; i < pending.size(); ++i)
    if (!std::isfinite(v[i])) throw non_finite(pending[i].model, pending[i].scales);
}

void forget_pending_logits() {
  std::lock_guard<std::mutex> lock(g_pending_mutex);
  g_pending.clear();
}

torch::Tensor ModelPass::logits(const torch::Tensor& hidden) {
  compat::AutocastGuard autocast(policy_.autocast, policy_.autocast_dtype);
  auto l = model_->logits(hidden, cond_);
  // A sum with a NaN or an infinity in it is never finite, so a finite sum proves every logit finite in
  // one read (no mask the size of the logits).
  if (l.is_cpu()) {
    // A float32 sum that overflowed without a non-finite value is told apart by the elementwise test.
    if (!std::isfinite(l.sum().item<double>()) && !l.isfinite().all().item<bool>())
      throw non_finite(model_->display_name(), scales_run_);
    return l;
  }
  // On a GPU the sum stays on the device until check_pending_logits() reads every pending one after the
  // batch's synchronisation. Summed in float64, which float32 values cannot overflow: finite exactly when
  // every logit is. The values go on as computed (the per-image samplers take NaN without a device
  // assert; the reference sampler guards its torch.multinomial, TokenSampler::draw).
  auto sum = l.sum(torch::kFloat64);
  std::lock_guard<std::mutex> lock(g_pending_mutex);
  g_pending.push_back({model_->display_name(), scales_run_, std::move(sum)});
  return l;
}

torch::Tensor ModelPass::guide(const torch::Tensor& raw, int64_t scale, const SamplingSettings& settings) {
  if (!guided_) return raw;
  PartScope part(Part::kSampling, 0, 1.5 * tensor_bytes({raw}));
  return apply_guidance(raw, settings.guidance_at(scale, model_->arch().schedule.num_scales()));
}

void ModelPass::drop_unconditional() {
  if (!guided_) return;
  const int64_t B = cond_.rows() / 2;
  cond_ = cond_.narrowed(B);
  cache_.narrow_rows(B);
  if (last_hidden_.defined()) last_hidden_ = last_hidden_.narrow(0, 0, B);
  guided_ = false;
}

void ModelPass::rollback_to_scale(int64_t scale) {
  if (pruned_positions_ != 0) throw std::logic_error("rollback after token pruning");
  cache_.truncate(scale < 0 ? 0 : model_->arch().schedule.end(scale));
  last_hidden_ = torch::Tensor();
}

void ModelPass::release() {
  cache_.release();
  last_hidden_ = torch::Tensor();
}

// ---------------------------------------------------------------------------------------------------
TokenSampler make_sampler(const GenerationRequest& request, torch::Device device) {
  if (request.rng_mode == RngMode::kReference) return TokenSampler::reference(request.seed, device);
  return TokenSampler::per_image(request.seed, request.image_indices, device);
}

torch::Tensor sample_and_commit(GenerationState& state, Vqvae vqvae, torch::Tensor guided_logits, int64_t scale,
                                TokenSampler& sampler, const SamplingSettings& settings) {
  torch::Tensor tokens, codes;
  {
    PartScope part(Part::kSampling, 0, 2 * tensor_bytes({guided_logits}));
    tokens = sampler.sample(guided_logits, scale, settings);
  }
  if (settings.more_smooth) {
    PartScope part(Part::kSampling, 0, 3 * tensor_bytes({guided_logits}));
    // Official: soft mixture of code vectors under Gumbel-softmax weights of the filtered logits.
    auto weights = sampler.gumbel_soft_weights(guided_logits, scale, state.num_scales());
    auto E = vqvae->quantize->embedding->weight;
    codes = torch::matmul(weights.to(E.scalar_type()), E.unsqueeze(0))
                .transpose_(1, 2)
                .reshape({state.batch, E.size(1), state.sides[scale], state.sides[scale]});
  }
  state.commit(vqvae, tokens, codes);
  return tokens;
}

GenerationState run_single_loop(VarTransformer model, Vqvae vqvae, const GenerationRequest& request,
                                const PrecisionPolicy& policy, const SingleLoopOptions& o, ScaleObserver* observer,
                                int64_t* kv_cache_bytes) {
  const auto& arch = model->arch();
  const auto device = model->pos_1LC.device();
  const int64_t S = arch.schedule.num_scales();
  request.sampling.validate(S);
  const int64_t last = o.exit_after_scale >= 0 ? o.exit_after_scale : S - 1;
  GenerationState state(request.labels.size(0), arch.schedule.sides, arch.code_dim, device);
  auto sampler = make_sampler(request, device);
  ModelPass pass(model, request.labels, /*guided=*/true, policy, arch.schedule.end(last), kernels_for(request.rng_mode));
  if (kv_cache_bytes) *kv_cache_bytes = pass.cache().bytes();
  if (observer) observer->setup_done();
  for (int64_t s = 0; s <= last; ++s) {
    if (o.guidance_off_from >= 0 && s == o.guidance_off_from) pass.drop_unconditional();
    // keep_ratio 1 still takes the pruned path (every token kept): the same machinery, checkable against
    // the plain step.
    const bool pruned = o.prune_from_scale >= 0 && s >= o.prune_from_scale;
    auto hidden = pruned ? pass.step_pruned_hidden(state, s, o.keep_ratio) : pass.step_hidden(state, s);
    auto guided = pass.guide(pass.logits(hidden), s, request.sampling);
    sample_and_commit(state, vqvae, guided, s, sampler, request.sampling);
    if (observer) observer->scale_done(s);
  }
  pass.release();
  if (observer) observer->transformer_done();
  return state;
}

GenerationState generate_single(VarTransformer model, Vqvae vqvae, const GenerationRequest& request,
                                const PrecisionPolicy& policy, ScaleObserver* observer) {
  auto state = run_single_loop(std::move(model), std::move(vqvae), request, policy, SingleLoopOptions{}, observer);
  check_pending_logits();  // the caller reads the tokens next: the generation is done
  return state;
}

torch::Tensor images_to_uint8(const torch::Tensor& images) {
  // [-1,1] -> [0,1] -> *255 truncated toward zero, as `PIL.Image.fromarray(x.mul(255).numpy().astype(uint8))`.
  return images.to(torch::kFloat32).add(1).mul_(0.5).mul_(255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous().cpu();
}

}  // namespace varbench
