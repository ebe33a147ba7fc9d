#include "engines/model/generation.h"

#include <stdexcept>

#include <fmt/format.h>

#include "engines/model/torch_compat.h"

namespace varbench {

GenerationState::GenerationState(int64_t batch_, const std::vector<int64_t>& sides_, int64_t code_dim, torch::Device device)
    : batch(batch_), sides(sides_) {
  f_hat = torch::zeros({batch, code_dim, sides.back(), sides.back()}, torch::TensorOptions().device(device));
}

void GenerationState::commit(Vqvae vqvae, const torch::Tensor& scale_tokens, const torch::Tensor& codes) {
  const int64_t s = scales_done();
  if (s >= num_scales()) throw std::logic_error("GenerationState::commit past the last scale");
  auto h = codes.defined() ? codes : vqvae->quantize->lookup(scale_tokens, sides[s]);
  auto next = vqvae->add_scale(s, sides, f_hat, h.to(torch::kFloat32));
  tokens.push_back(scale_tokens);
  if (next.defined()) next_inputs.push_back(next.view({batch, f_hat.size(1), -1}).transpose(1, 2));
}

void GenerationState::truncate(Vqvae vqvae, int64_t scale) {
  if (scale >= scales_done()) return;
  std::vector<torch::Tensor> kept(tokens.begin(), tokens.begin() + scale);
  tokens.clear();
  next_inputs.clear();
  f_hat.zero_();
  for (const auto& t : kept) commit(vqvae, t);
}

// ---------------------------------------------------------------------------------------------------
ModelPass::ModelPass(VarTransformer model, const torch::Tensor& labels, bool guided, const PrecisionPolicy& policy,
                     int64_t capacity_tokens)
    : model_(std::move(model)), policy_(policy), guided_(guided) {
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
  return model_->embed_scale_input(state.next_inputs.at(scale - 1), scale, position_terms_, cond_.rows());
}

torch::Tensor ModelPass::step(const GenerationState& state, int64_t scale) {
  compat::AutocastGuard autocast(policy_.autocast, policy_.autocast_dtype);
  if (cache_.length() != model_->arch().schedule.begin(scale))
    throw std::logic_error(fmt::format("cached step of scale {} with {} tokens cached", scale, cache_.length()));
  auto h = model_->forward_blocks(scale_input(state, scale), cond_, &cache_);
  return model_->logits(h, cond_);
}

torch::Tensor ModelPass::prefill(const GenerationState& state, int64_t first, int64_t last) {
  compat::AutocastGuard autocast(policy_.autocast, policy_.autocast_dtype);
  const auto& sched = model_->arch().schedule;
  if (cache_.length() != sched.begin(first))
    throw std::logic_error(fmt::format("prefill from scale {} with {} tokens cached", first, cache_.length()));
  std::vector<torch::Tensor> inputs;
  for (int64_t s = first; s <= last; ++s) inputs.push_back(scale_input(state, s));
  auto x = inputs.size() == 1 ? inputs[0] : torch::cat(inputs, 1);
  auto mask = model_->block_causal_mask(sched.begin(first), sched.end(last)).to(x.scalar_type());
  auto h = model_->forward_blocks(x, cond_, &cache_, mask);
  return model_->logits(h, cond_);
}

torch::Tensor ModelPass::guide(const torch::Tensor& raw, int64_t scale, const SamplingSettings& settings) {
  if (!guided_) return raw;
  return apply_guidance(raw, settings.guidance_at(scale, model_->arch().schedule.num_scales()));
}

void ModelPass::drop_unconditional() {
  if (!guided_) return;
  const int64_t B = cond_.rows() / 2;
  cond_ = cond_.narrowed(B);
  cache_.narrow_rows(B);
  guided_ = false;
}

void ModelPass::release() { cache_.release(); }

// ---------------------------------------------------------------------------------------------------
TokenSampler make_sampler(const GenerationRequest& request, torch::Device device) {
  if (request.rng_mode == RngMode::kReference) return TokenSampler::reference(request.seed, device);
  return TokenSampler::per_image(request.seed, request.image_indices, device);
}

torch::Tensor sample_and_commit(GenerationState& state, Vqvae vqvae, torch::Tensor guided_logits, int64_t scale,
                                TokenSampler& sampler, const SamplingSettings& settings) {
  auto tokens = sampler.sample(guided_logits, scale, settings);
  torch::Tensor codes;
  if (settings.more_smooth) {
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

GenerationState generate_single(VarTransformer model, Vqvae vqvae, const GenerationRequest& request,
                                const PrecisionPolicy& policy, ScaleObserver* observer) {
  const auto& arch = model->arch();
  const auto device = model->pos_1LC.device();
  request.sampling.validate(arch.schedule.num_scales());
  const int64_t B = request.labels.size(0);
  GenerationState state(B, arch.schedule.sides, arch.code_dim, device);
  auto sampler = make_sampler(request, device);
  ModelPass pass(model, request.labels, /*guided=*/true, policy, arch.schedule.total_tokens());
  for (int64_t s = 0; s < arch.schedule.num_scales(); ++s) {
    auto guided = pass.guide(pass.step(state, s), s, request.sampling);
    sample_and_commit(state, vqvae, guided, s, sampler, request.sampling);
    if (observer) observer->scale_done(s);
  }
  pass.release();
  if (observer) observer->transformer_done();
  return state;
}

torch::Tensor images_to_uint8(const torch::Tensor& images) {
  // [-1,1] -> [0,1] -> *255 truncated toward zero, as `PIL.Image.fromarray(x.mul(255).numpy().astype(uint8))`.
  return images.to(torch::kFloat32).add(1).mul_(0.5).mul_(255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous().cpu();
}

}  // namespace varbench
