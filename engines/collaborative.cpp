// `collaborative`: Collaborative Decoding (CoDe, Chen et al. 2024; czg1225/CoDe models/var.py).
// The drafter (large) runs scales 0..N-1 with its own KV cache and hands over f_hat and the next-scale
// inputs it produced; its cache is freed. The refiner (small) embeds those inputs with its own
// embeddings and runs one block-causal forward over scales 0..N, filling its cache; scale N is sampled
// from that pass (guided at scale N only), then scales N+1..9 continue cached. Phases: the drafter's
// set-up, scales 0..N-1, the refiner's set-up, its prefix pass, scale N's sampling, scales N+1..9.
// Reference RNG mode replays the official refiner: it re-seeds a generator with the same seed and
// samples (and discards) every prefix scale 0..N-1 from its own conditional, unguided logits before
// sampling scale N, so that CoDe reproduces the official tokens.
#include <fmt/format.h>

#include "engines/engine.h"

namespace varbench {

// The refiner's block-causal pass over the drafted scales 0..N (the forward of scale N).
extern const PhaseKind kCollaborativePrefixPhase{2, "prefix"};

class CollaborativeEngine : public Engine {
 public:
  CollaborativeEngine(std::string drafter, std::string refiner, int64_t draft_steps, const ModelSet& models)
      : drafter_name_(std::move(drafter)), refiner_name_(std::move(refiner)), draft_steps_(draft_steps),
        drafter_(models.get(drafter_name_, "drafter")), refiner_(models.get(refiner_name_, "refiner")),
        vqvae_(models.vqvae), policy_(models.policy) {}
  std::string type() const override { return "collaborative"; }
  std::vector<std::string> models_used() const override { return {drafter_name_, refiner_name_}; }

  BatchResult generate(const GenerationRequest& request, ScaleObserver& observer) override {
    const auto& sched = drafter_->arch().schedule;
    const int64_t S = sched.num_scales(), N = draft_steps_, B = request.labels.size(0);
    const auto device = drafter_->pos_1LC.device();
    request.sampling.validate(S);
    const auto& settings = request.sampling;
    GenerationState state(B, sched.sides, drafter_->arch().code_dim, device);
    int64_t kv_peak = 0;

    {  // Drafter: scales 0..N-1; its cache only ever holds those.
      auto sampler = make_sampler(request, device);
      ModelPass drafter(drafter_, request.labels, true, policy_, sched.begin(N), kernels_for(request.rng_mode));
      kv_peak = drafter.cache().bytes();
      observer.setup_done();
      for (int64_t s = 0; s < N; ++s) {
        sample_and_commit(state, vqvae_, drafter.guide(drafter.step(state, s), s, settings), s, sampler, settings);
        observer.scale_done(s);
      }
      drafter.release();
    }

    // Refiner: one masked pass over scales 0..N, then cached scales N+1..S-1.
    auto sampler = make_sampler(request, device);  // reference mode: a fresh generator with the same seed
    ModelPass refiner(refiner_, request.labels, true, policy_, sched.total_tokens(), kernels_for(request.rng_mode));
    kv_peak = std::max(kv_peak, refiner.cache().bytes());
    observer.setup_done();  // the drafter's release and the refiner's set-up
    auto hidden = refiner.prefill_hidden(state, 0, N);
    torch::Tensor raw_N;
    if (request.rng_mode == RngMode::kReference) {
      auto raw = refiner.logits(hidden);  // every prefix token, as the official refiner computes them
      for (int64_t a = 0; a < N; ++a) {
        auto prefix = raw.narrow(0, 0, B).narrow(1, sched.begin(a), sched.tokens(a)).clone();
        sampler.sample(prefix, a, settings);  // drawn and discarded: keeps the official random stream
      }
      raw_N = raw.narrow(1, sched.begin(N), sched.tokens(N));
    } else {
      raw_N = refiner.logits(hidden.narrow(1, sched.begin(N), sched.tokens(N)));
    }
    observer.phase_done(kCollaborativePrefixPhase, 0, N);  // scale N's time below is its guidance and sampling only
    sample_and_commit(state, vqvae_, refiner.guide(raw_N, N, settings), N, sampler, settings);
    observer.scale_done(N);
    for (int64_t s = N + 1; s < S; ++s) {
      sample_and_commit(state, vqvae_, refiner.guide(refiner.step(state, s), s, settings), s, sampler, settings);
      observer.scale_done(s);
    }
    refiner.release();
    observer.transformer_done();
    return BatchResult{std::move(state), kv_peak};
  }

 private:
  std::string drafter_name_, refiner_name_;
  int64_t draft_steps_;
  VarTransformer drafter_, refiner_;
  Vqvae vqvae_;
  PrecisionPolicy policy_;
};

EngineBuilder plan_collaborative_engine(ParamReader& p, const ModelCatalog& catalog) {
  auto drafter = p.text("drafter");
  auto refiner = p.text("refiner");
  const int64_t n = p.integer("draft_steps");
  const auto& d = catalog.get(drafter, "drafter");
  const auto& r = catalog.get(refiner, "refiner");
  if (d.schedule.sides != r.schedule.sides || d.code_dim != r.code_dim || d.vocab_size != r.vocab_size)
    throw std::runtime_error(fmt::format("engine 'collaborative': drafter '{}' and refiner '{}' have different scale "
                                         "schedules or vocabularies",
                                         drafter, refiner));
  const int64_t S = d.schedule.num_scales();
  if (n < 1 || n > S - 1)
    throw std::runtime_error(fmt::format("engine 'collaborative': draft_steps = {} is outside 1..{}", n, S - 1));
  return {{drafter, refiner}, [=](const ModelSet& models) { return std::make_unique<CollaborativeEngine>(drafter, refiner, n, models); }};
}

}  // namespace varbench
