// `speculative`: speculative decoding across scales. There is no published method for next-scale
// models; this follows reference-spec section 7. Tokens of one scale are independent given the earlier
// scales, so the small (draft) model samples `lookahead` scales ahead with its KV cache, and the large
// (target) model scores all of them in one block-causal pass (CoDe's prefill). Scale by scale:
//  - exact: each drafted token x ~ q is kept with probability min(1, p(x)/q(x)); a rejected position is
//    resampled from norm(max(0, p - q)). p and q are the distributions actually sampled (after guidance,
//    top-k/top-p and temperature), so every settled scale is an exact sample of the target model.
//  - neighbourhood (relaxed, LANTERN-style, Jang et al. 2024): the ratio uses the probability mass of
//    the drafted token's latent neighbourhood, the `neighbourhood_k` codes nearest to its code vector
//    in the VQ codebook (itself included): min(1, p(B(x)) / q(B(x))). More drafts survive; the output
//    is no longer an exact sample of the target (neighbourhood_k = 1 is the exact rule).
// A scale with any rejection invalidates the drafted scales after it (they were conditioned on it):
// both KV caches roll back and the next round starts after it. Per scale the engine records drafted
// (verified), accepted and discarded (drafted after a rejected scale, never verified) tokens; per batch
// the number of target passes.
#include <fmt/format.h>

#include "engines/speculative.h"

#include "engines/engine.h"

namespace varbench {

DraftVerdict verify_draft(const torch::Tensor& p, const torch::Tensor& q, const torch::Tensor& x, int64_t scale,
                          TokenSampler& sampler, const torch::Tensor& neighbours) {
  torch::Tensor px, qx;
  if (neighbours.defined()) {
    auto hood = neighbours.index_select(0, x.reshape(-1)).view({x.size(0), x.size(1), -1});  // [B, l, k]
    px = p.gather(-1, hood).sum(-1);
    qx = q.gather(-1, hood).sum(-1);
  } else {
    px = p.gather(-1, x.unsqueeze(-1)).squeeze(-1);
    qx = q.gather(-1, x.unsqueeze(-1)).squeeze(-1);
  }
  auto ratio = (px.to(torch::kFloat64) / qx.to(torch::kFloat64)).clamp_max(1.0);
  DraftVerdict v;
  v.accepted = sampler.uniforms(x.size(0), x.size(1), scale, RandomStream::kAccept) < ratio;
  // Rejected positions: the residual norm(max(0, p - q)). Rows where it is empty (p <= q everywhere)
  // cannot be rejected under the exact rule; give them q so that every row is a valid distribution.
  auto residual = (p - q).clamp_min(0);
  residual = torch::where(residual.sum(-1, true).le(0), q, residual);
  v.tokens = torch::where(v.accepted, x, sampler.draw(residual, scale, RandomStream::kResample));
  return v;
}

class SpeculativeEngine : public Engine {
 public:
  SpeculativeEngine(std::string draft, std::string target, int64_t lookahead, std::string acceptance,
                    int64_t neighbourhood_k, const ModelSet& models)
      : draft_name_(std::move(draft)), target_name_(std::move(target)), lookahead_(lookahead),
        acceptance_(std::move(acceptance)), draft_(models.get(draft_name_, "draft")), target_(models.get(target_name_, "target")),
        vqvae_(models.vqvae), policy_(models.policy) {
    if (acceptance_ == "neighbourhood") {
      // The k nearest codes of every code (squared L2 between code vectors), itself first.
      torch::NoGradGuard no_grad;
      auto E = vqvae_->quantize->embedding->weight.to(torch::kFloat32);
      auto d = E.square().sum(1, true) + E.square().sum(1) - 2 * torch::matmul(E, E.t());
      neighbours_ = std::get<1>(d.topk(neighbourhood_k, -1, /*largest=*/false, /*sorted=*/true));  // [V, k]
    }
  }
  std::string type() const override { return "speculative"; }
  std::vector<std::string> models_used() const override { return {draft_name_, target_name_}; }

  BatchResult generate(const GenerationRequest& request, ScaleObserver& observer) override {
    const auto& sched = target_->arch().schedule;
    const int64_t S = sched.num_scales(), B = request.labels.size(0);
    const auto device = target_->pos_1LC.device();
    const auto& settings = request.sampling;
    settings.validate(S);
    GenerationState state(B, sched.sides, target_->arch().code_dim, device);
    auto sampler = make_sampler(request, device);
    ModelPass small(draft_, request.labels, true, policy_, sched.total_tokens(), kernels_for(request.rng_mode));
    ModelPass large(target_, request.labels, true, policy_, sched.total_tokens(), kernels_for(request.rng_mode));
    BatchResult result{GenerationState(B, sched.sides, target_->arch().code_dim, device),
                       small.cache().bytes() + large.cache().bytes()};
    auto& drafted_tokens = result.per_scale["drafted_tokens"];
    auto& accepted_tokens = result.per_scale["accepted_tokens"];
    auto& discarded_tokens = result.per_scale["discarded_tokens"];  // drafted after a rejected scale: never verified
    drafted_tokens.assign(S, 0.0);
    accepted_tokens.assign(S, 0.0);
    discarded_tokens.assign(S, 0.0);
    double target_passes = 0;
    observer.setup_done();

    for (int64_t s = 0; s < S;) {
      const int64_t last = std::min(S, s + lookahead_) - 1;
      // Draft scales s..last with the small model.
      auto draft = state.clone();
      std::vector<torch::Tensor> q(last + 1), x(last + 1);
      for (int64_t j = s; j <= last; ++j) {
        auto guided = small.guide(small.step(draft, j), j, settings);
        q[j] = token_probabilities(guided, settings.top_k_at(j), settings.top_p, settings.temperature_at(j));
        x[j] = sampler.draw(q[j], j, RandomStream::kToken);
        draft.commit(vqvae_, x[j]);
      }
      observer.phase_done(kSpeculativeDraftPhase, s, last);
      // Verify all of them with one target pass.
      auto raw = large.logits(large.prefill_hidden(draft, s, last));
      target_passes += 1;
      int64_t settled = last;
      torch::Tensor corrected;
      for (int64_t j = s; j <= last; ++j) {
        auto p = token_probabilities(large.guide(raw.narrow(1, sched.begin(j) - sched.begin(s), sched.tokens(j)), j, settings),
                                     settings.top_k_at(j), settings.top_p, settings.temperature_at(j));
        auto verdict = verify_draft(p, q[j], x[j], j, sampler, neighbours_);
        drafted_tokens[j] += static_cast<double>(x[j].numel());
        const int64_t n_accepted = verdict.accepted.sum().item<int64_t>();
        accepted_tokens[j] += static_cast<double>(n_accepted);
        if (n_accepted == x[j].numel()) continue;
        corrected = verdict.tokens;
        settled = j;
        break;
      }
      // Settle scales s..settled; later drafts were conditioned on a rejected scale.
      if (settled == last && !corrected.defined()) {
        state = std::move(draft);
      } else {
        for (int64_t j = s; j < settled; ++j) state.commit(vqvae_, x[j]);
        state.commit(vqvae_, corrected);
        for (int64_t j = settled + 1; j <= last; ++j) discarded_tokens[j] += static_cast<double>(x[j].numel());
      }
      large.rollback_to_scale(settled);
      small.rollback_to_scale(settled);
      // Rounds, not scales: the settled scales share the round's draft and verification.
      observer.phase_done(kSpeculativeVerifyPhase, s, settled);
      s = settled + 1;
    }
    small.release();
    large.release();
    observer.transformer_done();
    result.state = std::move(state);
    result.counters["target_passes"] = target_passes;
    return result;
  }

 private:
  std::string draft_name_, target_name_;
  int64_t lookahead_;
  std::string acceptance_;
  VarTransformer draft_, target_;
  Vqvae vqvae_;
  PrecisionPolicy policy_;
  torch::Tensor neighbours_;
};

EngineBuilder plan_speculative_engine(ParamReader& p, const ModelCatalog& catalog) {
  auto draft = p.text("draft");
  auto target = p.text("target");
  const int64_t lookahead = p.integer("lookahead", 1);
  auto acceptance = p.text("acceptance", "exact");
  const int64_t k = p.integer("neighbourhood_k", 1);
  const auto& d = catalog.get(draft, "draft");
  const auto& t = catalog.get(target, "target");
  const auto& sched = t.schedule;
  if (d.schedule.sides != sched.sides || d.vocab_size != t.vocab_size)
    throw std::runtime_error(fmt::format("engine 'speculative': draft '{}' and target '{}' have different scale schedules "
                                         "or vocabularies", draft, target));
  if (lookahead < 1 || lookahead > sched.num_scales())
    throw std::runtime_error(fmt::format("engine 'speculative': lookahead = {} is outside 1..{}", lookahead, sched.num_scales()));
  if (acceptance != "exact" && acceptance != "neighbourhood")
    throw std::runtime_error(fmt::format("engine 'speculative': acceptance = '{}' (exact, neighbourhood)", acceptance));
  if (acceptance == "neighbourhood" && (k < 1 || k > t.vocab_size))
    throw std::runtime_error(fmt::format("engine 'speculative': neighbourhood_k = {} is outside 1..{}", k, t.vocab_size));
  if (acceptance != "neighbourhood" && k != 1)
    throw std::runtime_error("engine 'speculative': neighbourhood_k needs acceptance = 'neighbourhood'");
  return {{draft, target},
          [=](const ModelSet& models) { return std::make_unique<SpeculativeEngine>(draft, target, lookahead, acceptance, k, models); }};
}

}  // namespace varbench
