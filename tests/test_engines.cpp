// Engines: CoDe against the official CoDe tokens and against the single engine, speculative decoding's
// exactness, the one-model baselines, the null engine, and parameter errors.
#include <gtest/gtest.h>

#include <set>

#include "engines/engine.h"
#include "engines/model/loading.h"
#include "engines/speculative.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::AllCloseRelative;
using testing::fixture;
using testing::fixtures;

ModelSet fixture_models() {
  static ModelSet m = [] {
    ModelSet s;
    s.transformers.emplace("d2", load_var({fixture("var_d2.safetensors"), "", 0}));
    s.transformers.emplace("d3", load_var({fixture("var_d3.safetensors"), "", 0}));
    s.vqvae = load_vqvae({fixture("vqvae_ch32.safetensors"), "", 0});
    s.policy = PrecisionPolicy::of(Precision::kFloat32);
    return s;
  }();
  return m;
}

GenerationRequest request(std::vector<int64_t> labels, uint64_t seed, RngMode mode) {
  GenerationRequest r;
  r.labels = torch::tensor(labels);
  for (size_t i = 0; i < labels.size(); ++i) r.image_indices.push_back(static_cast<int64_t>(i));
  r.seed = seed;
  r.rng_mode = mode;
  return r;
}

BatchResult run(const std::string& type, const EngineParams& params, const GenerationRequest& r) {
  auto engine = make_engine(type, params, fixture_models());
  ScaleObserver observer;
  return engine->run(r, observer);
}

class Engines : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(testing::kParityThreads); }
  c10::InferenceMode inference_;
};

TEST_F(Engines, CollaborativeReproducesTheOfficialCoDeTokens) {
  // Fixture: tests/reference/var_reference.py code_generate, checked against czg1225/CoDe's
  // autoregressive_infer_cfg_draft/_refine (drafter d2, refiner d3, the CoDe FID settings).
  for (int64_t n : {4, 7}) {
    auto r = request({}, 5, RngMode::kReference);
    r.labels = fixtures().tensor(fmt::format("code{}.labels", n)).clone();
    r.image_indices = {0, 1};
    r.sampling.cfg = 1.5;
    r.sampling.top_k = {600};
    r.sampling.top_p = 0.96;
    r.sampling.temperature = {1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.0, 1.0, 1.0};
    auto res = run("collaborative", {{"drafter", "d2"}, {"refiner", "d3"}, {"draft_steps", n}}, r);
    ASSERT_EQ(res.state.scales_done(), 10);
    for (int s = 0; s < 10; ++s)
      EXPECT_TRUE(torch::equal(res.state.tokens[s], fixtures().tensor(fmt::format("code{}.tokens.{}", n, s)))) << "N " << n << " scale " << s;
    EXPECT_TRUE(AllCloseRelative(res.state.f_hat, fixtures().tensor(fmt::format("code{}.fhat", n)), 1e-5));
    // The drafter's cache held begin(N) positions, the refiner's all of them: the peak is the refiner's.
    EXPECT_GT(res.kv_cache_peak_bytes, 0);
  }
}

TEST_F(Engines, CollaborativeWithOneModelReproducesTheSingleEngine) {
  auto r = request({3, 14}, 9, RngMode::kPerImage);
  auto single = run("single", {{"model", "d2"}}, r);
  for (int64_t n : {1, 6, 9}) {
    auto code = run("collaborative", {{"drafter", "d2"}, {"refiner", "d2"}, {"draft_steps", n}}, r);
    int64_t equal = 0, total = 0;
    for (int s = 0; s < 10; ++s) {
      equal += code.state.tokens[s].eq(single.state.tokens[s]).sum().item<int64_t>();
      total += single.state.tokens[s].numel();
    }
    EXPECT_GE(equal * 1000, total * 999) << "N " << n << ": " << equal << " of " << total;
    auto vqvae = fixture_models().vqvae;
    EXPECT_TRUE(AllCloseRelative(vqvae->decode(code.state.f_hat), vqvae->decode(single.state.f_hat), 1e-3)) << "N " << n;
  }
  // The logits of scale N from the refiner's masked pass equal the cached loop's.
  auto model = fixture_models().transformers.at("d2");
  const int64_t N = 6;
  const auto& sched = model->arch().schedule;
  GenerationState state(2, sched.sides, 32, torch::kCPU);
  for (int s = 0; s < N; ++s) state.commit(fixture_models().vqvae, single.state.tokens[s]);
  ModelPass cached(model, r.labels, true, PrecisionPolicy::of(Precision::kFloat32), sched.total_tokens());
  for (int s = 0; s < N; ++s) cached.step(state, s);
  auto expected = cached.step(state, N);
  ModelPass prefill(model, r.labels, true, PrecisionPolicy::of(Precision::kFloat32), sched.total_tokens());
  auto got = prefill.logits(prefill.prefill_hidden(state, 0, N)).narrow(1, sched.begin(N), sched.tokens(N));
  EXPECT_TRUE(AllCloseRelative(got, expected, 1e-4));
}

TEST_F(Engines, SpeculativeWithTheTargetAsDraftAcceptsEverything) {
  auto r = request({7, 8, 9}, 4, RngMode::kPerImage);
  auto single = run("single", {{"model", "d2"}}, r);
  // Lookahead 1: the verify pass is the cached step itself, so p == q bit for bit.
  auto one = run("speculative", {{"draft", "d2"}, {"target", "d2"}, {"lookahead", int64_t{1}}}, r);
  EXPECT_EQ(one.counters.at("target_passes"), 10);
  for (int s = 0; s < 10; ++s) {
    EXPECT_EQ(one.per_scale.at("accepted_tokens")[s], one.per_scale.at("drafted_tokens")[s]) << "scale " << s;
    EXPECT_TRUE(torch::equal(one.state.tokens[s], single.state.tokens[s])) << "scale " << s;
  }
  // Lookahead 3: one pass verifies three scales; its logits differ from the cached ones in the last bits.
  auto three = run("speculative", {{"draft", "d2"}, {"target", "d2"}, {"lookahead", int64_t{3}}}, r);
  double drafted = 0, accepted = 0;
  for (int s = 0; s < 10; ++s) {
    drafted += three.per_scale.at("drafted_tokens")[s];
    accepted += three.per_scale.at("accepted_tokens")[s];
  }
  EXPECT_GE(accepted / drafted, 0.999);
  EXPECT_LE(three.counters.at("target_passes"), 5);
}

constexpr int64_t kNeighbourhoodK = 1024;

// Speculative decoding recomputed from scratch: every draft and every verification is a fresh block-causal
// pass over all scales so far, so no cache survives a round and nothing drafted after a rejection can be
// reused. The per-image random streams are keyed by (image, scale, stream), so an engine that rolls back
// correctly draws exactly these tokens (up to last-bit differences between cached and full passes).
GenerationState speculative_from_scratch(const std::string& draft_name, const std::string& target_name, int64_t lookahead,
                                         const GenerationRequest& request, const torch::Tensor& neighbours = {}) {
  const auto models = fixture_models();
  auto draft = models.get(draft_name, "draft");
  auto target = models.get(target_name, "target");
  const auto& sched = target->arch().schedule;
  const int64_t S = sched.num_scales(), B = request.labels.size(0);
  const auto& settings = request.sampling;
  GenerationState state(B, sched.sides, target->arch().code_dim, torch::kCPU);
  auto sampler = make_sampler(request, torch::kCPU);
  auto probabilities = [&](ModelPass& pass, const torch::Tensor& raw_all, int64_t j) {
    auto guided = pass.guide(raw_all.narrow(1, sched.begin(j), sched.tokens(j)), j, settings);
    return token_probabilities(guided, settings.top_k_at(j), settings.top_p, settings.temperature_at(j));
  };
  for (int64_t s = 0; s < S;) {
    const int64_t last = std::min(S, s + lookahead) - 1;
    auto drafted = state.clone();
    std::vector<torch::Tensor> q(last + 1), x(last + 1);
    for (int64_t j = s; j <= last; ++j) {
      ModelPass small(draft, request.labels, true, models.policy, sched.end(j), kernels_for(request.rng_mode));
      q[j] = probabilities(small, small.logits(small.prefill_hidden(drafted, 0, j)), j);
      x[j] = sampler.draw(q[j], j, RandomStream::kToken);
      drafted.commit(models.vqvae, x[j]);
    }
    ModelPass large(target, request.labels, true, models.policy, sched.end(last), kernels_for(request.rng_mode));
    const auto raw = large.logits(large.prefill_hidden(drafted, 0, last));
    int64_t j = s;
    for (; j <= last; ++j) {
      auto verdict = verify_draft(probabilities(large, raw, j), q[j], x[j], j, sampler, neighbours);
      state.commit(models.vqvae, verdict.tokens);
      if (!verdict.accepted.all().item<bool>()) break;
    }
    s = std::min(j, last) + 1;
  }
  return state;
}

// The k codes nearest to every code of the fixture VQVAE's codebook, itself first (as the engine finds them).
torch::Tensor codebook_neighbours(int64_t k) {
  auto E = fixture_models().vqvae->quantize->embedding->weight.to(torch::kFloat32);
  auto d = E.square().sum(1, true) + E.square().sum(1) - 2 * torch::matmul(E, E.t());
  return std::get<1>(d.topk(k, -1, /*largest=*/false, /*sorted=*/true));
}

TEST_F(Engines, SpeculativeRollbackAfterARejectionMatchesTheFromScratchAlgorithm) {
  // A draft unlike its target (d2 drafting for d3): with lookahead 3, rounds end early, discard drafted
  // scales and roll both caches back. The exact rule rejects at a round's first scale nearly always; the
  // neighbourhood rule (pooled over many codes) accepts the first scales of a round now and then and
  // rejects a later one, which is the rollback that discards verified-and-accepted work's successors.
  const auto neighbours = codebook_neighbours(kNeighbourhoodK);
  for (const char* acceptance : {"exact", "neighbourhood"}) {
    double discarded = 0, rounds_saved = 0;
    for (uint64_t seed : {1, 2}) {
      auto r = request({21, 22}, seed, RngMode::kPerImage);
      EngineParams params{{"draft", "d2"}, {"target", "d3"}, {"lookahead", int64_t{3}}, {"acceptance", acceptance}};
      const bool relaxed = std::string(acceptance) == "neighbourhood";
      if (relaxed) params["neighbourhood_k"] = kNeighbourhoodK;
      auto engine = run("speculative", params, r);
      const auto reference = speculative_from_scratch("d2", "d3", 3, r, relaxed ? neighbours : torch::Tensor());
      for (double d : engine.per_scale.at("discarded_tokens")) discarded += d;
      rounds_saved += 10 - engine.counters.at("target_passes");
      ASSERT_EQ(engine.state.scales_done(), 10);
      int64_t equal = 0, total = 0;
      for (int64_t s = 0; s < 10; ++s) {
        equal += engine.state.tokens[s].eq(reference.tokens[s]).sum().item<int64_t>();
        total += reference.tokens[s].numel();
      }
      EXPECT_GE(static_cast<double>(equal) / static_cast<double>(total), 0.995) << acceptance << " seed " << seed;
    }
    EXPECT_GT(discarded, 0) << acceptance << ": no round discarded a drafted scale: the rollback was not exercised";
    if (std::string(acceptance) == "neighbourhood")
      EXPECT_GT(rounds_saved, 0) << "no round settled two scales: a rejection after an accepted scale was not exercised";
  }
}

TEST_F(Engines, SpeculativeReportsRoundsNotScales) {
  // Each round is a draft phase and a verify phase covering the scales it settled; no scale is timed alone.
  struct Recorder : ScaleObserver {
    std::vector<std::tuple<PhaseKind, int64_t, int64_t>> phases;
    void phase_done(PhaseKind p, int64_t first, int64_t last) override { phases.emplace_back(p, first, last); }
  } recorder;
  auto engine = make_engine("speculative", {{"draft", "d2"}, {"target", "d3"}, {"lookahead", int64_t{3}}}, fixture_models());
  engine->run(request({21, 22}, 1, RngMode::kPerImage), recorder);
  ASSERT_GE(recorder.phases.size(), 3u);
  EXPECT_EQ(std::get<0>(recorder.phases[0]), kSetupPhase);
  int64_t next = 0;
  for (size_t i = 1; i < recorder.phases.size(); i += 2) {
    const auto [draft, d_first, d_last] = recorder.phases[i];
    const auto [verify, v_first, v_last] = recorder.phases.at(i + 1);
    EXPECT_EQ(draft, kSpeculativeDraftPhase);
    EXPECT_EQ(verify, kSpeculativeVerifyPhase);
    EXPECT_EQ(d_first, next);
    EXPECT_EQ(v_first, next);
    EXPECT_LE(v_last, d_last);
    next = v_last + 1;
  }
  EXPECT_EQ(next, 10);  // the rounds settled every scale once
}

TEST(SpeculativeVerification, ExactModeSamplesTheTargetDistribution) {
  // Draft q, target p on 5 tokens; 160 000 positions. The settled tokens must follow p: chi-square
  // (df 4) below 18.47 (alpha 0.001). A sampler that kept every draft (distribution q) would give a
  // chi-square above 10 000; the test detects a 1% shift of mass between two tokens with power > 0.99.
  const auto p = torch::tensor({0.10, 0.40, 0.05, 0.30, 0.15}, torch::kFloat32);
  const auto q = torch::tensor({0.30, 0.20, 0.20, 0.10, 0.20}, torch::kFloat32);
  const int64_t B = 16, l = 10000;
  std::vector<int64_t> idx(B);
  for (int64_t i = 0; i < B; ++i) idx[i] = i;
  auto sampler = TokenSampler::per_image(2024, idx, torch::kCPU);
  auto P = p.view({1, 1, 5}).expand({B, l, 5}).contiguous(), Q = q.view({1, 1, 5}).expand({B, l, 5}).contiguous();
  auto drafted = sampler.draw(Q, 3, RandomStream::kToken);
  auto verdict = verify_draft(P, Q, drafted, 3, sampler);
  auto counts = torch::bincount(verdict.tokens.view(-1), {}, 5).to(torch::kFloat64);
  double chi2 = 0;
  for (int i = 0; i < 5; ++i) {
    const double e = p[i].item<double>() * B * l;
    chi2 += std::pow(counts[i].item<double>() - e, 2) / e;
  }
  EXPECT_LT(chi2, 18.47) << counts;
  // Acceptance rate: sum min(p, q) = 0.1 + 0.2 + 0.05 + 0.1 + 0.15 = 0.6.
  EXPECT_NEAR(verdict.accepted.to(torch::kFloat64).mean().item<double>(), 0.6, 0.005);
}

TEST(SpeculativeVerification, NeighbourhoodModeAcceptsMoreThanExact) {
  const auto p = torch::tensor({0.45, 0.05, 0.45, 0.05}, torch::kFloat32).view({1, 1, 4}).expand({4, 5000, 4}).contiguous();
  const auto q = torch::tensor({0.05, 0.45, 0.05, 0.45}, torch::kFloat32).view({1, 1, 4}).expand({4, 5000, 4}).contiguous();
  auto sampler = TokenSampler::per_image(1, {0, 1, 2, 3}, torch::kCPU);
  auto drafted = sampler.draw(q, 0);
  // Codes 0/1 and 2/3 are each other's nearest neighbours: their pooled masses are equal under p and q.
  auto neighbours = torch::tensor({0, 1, 1, 0, 2, 3, 3, 2}, torch::kLong).view({4, 2});
  auto exact = verify_draft(p, q, drafted, 0, sampler);
  auto relaxed = verify_draft(p, q, drafted, 0, sampler, neighbours);
  EXPECT_NEAR(exact.accepted.to(torch::kFloat64).mean().item<double>(), 0.2, 0.01);
  EXPECT_EQ(relaxed.accepted.all().item<bool>(), true);
}

TEST_F(Engines, EarlyExitStopsAfterTheScale) {
  auto res = run("early_exit", {{"model", "d2"}, {"exit_after_scale", int64_t{5}}}, request({1, 2}, 0, RngMode::kPerImage));
  EXPECT_EQ(res.state.scales_done(), 6);
  auto single = run("single", {{"model", "d2"}}, request({1, 2}, 0, RngMode::kPerImage));
  for (int s = 0; s < 6; ++s) EXPECT_TRUE(torch::equal(res.state.tokens[s], single.state.tokens[s]));
}

// Share of equal tokens over scales [first, last].
double token_agreement(const BatchResult& a, const BatchResult& b, int64_t first, int64_t last) {
  int64_t equal = 0, total = 0;
  for (int64_t s = first; s <= last; ++s) {
    equal += a.state.tokens[s].eq(b.state.tokens[s]).sum().item<int64_t>();
    total += a.state.tokens[s].numel();
  }
  return static_cast<double>(equal) / static_cast<double>(total);
}

TEST_F(Engines, GuidanceCutoffSamplesUnguidedFromTheCutoffScale) {
  // VAR's guidance weight ramps from 0 at scale 0 (cfg * s / 9): with the cutoff at scale 1 every scale is
  // unguided, which is the single engine at cfg 0 (up to last-bit differences of the smaller batch). A
  // cutoff that did nothing would give the cfg-4 tokens instead, which differ in most positions.
  auto r = request({5, 6, 7}, 3, RngMode::kPerImage);
  r.sampling.cfg = 4.0;
  auto guided = run("single", {{"model", "d2"}}, r);
  auto cut_at_1 = run("guidance_cutoff", {{"model", "d2"}, {"cutoff_scale", int64_t{1}}}, r);
  auto unguided_request = r;
  unguided_request.sampling.cfg = 0.0;
  auto unguided = run("single", {{"model", "d2"}}, unguided_request);
  EXPECT_GE(token_agreement(cut_at_1, unguided, 0, 9), 0.99);
  EXPECT_LT(token_agreement(guided, unguided, 1, 9), 0.9);  // the check above can tell them apart
  // Cut at scale 5: the first five scales are the guided run's exactly, the rest are not.
  auto cut_at_5 = run("guidance_cutoff", {{"model", "d2"}, {"cutoff_scale", int64_t{5}}}, r);
  EXPECT_EQ(token_agreement(cut_at_5, guided, 0, 4), 1.0);
  EXPECT_LT(token_agreement(cut_at_5, guided, 5, 9), 0.9);
}

TEST_F(Engines, TokenPruningKeepsEveryTokenAtRatioOneAndPrunesBelow) {
  // keep_ratio 1 runs the pruned path (score, gather, scatter of the upsampled previous scale) with every
  // token kept: it must give the plain step's tokens exactly.
  auto r = request({11, 12}, 8, RngMode::kPerImage);
  auto single = run("single", {{"model", "d2"}}, r);
  auto all = run("token_pruning", {{"model", "d2"}, {"prune_from_scale", int64_t{8}}, {"keep_ratio", 1.0}}, r);
  for (int s = 0; s < 10; ++s) EXPECT_TRUE(torch::equal(all.state.tokens[s], single.state.tokens[s]));
  auto half = run("token_pruning", {{"model", "d2"}, {"prune_from_scale", int64_t{8}}, {"keep_ratio", 0.5}}, r);
  ASSERT_EQ(half.state.scales_done(), 10);
  for (int s = 0; s < 8; ++s) EXPECT_TRUE(torch::equal(half.state.tokens[s], single.state.tokens[s]));
  EXPECT_FALSE(torch::equal(half.state.tokens[9], single.state.tokens[9]));
  EXPECT_TRUE(half.state.tokens[9].ge(0).all().item<bool>() && half.state.tokens[9].lt(4096).all().item<bool>());
}

TEST_F(Engines, NullEngineHasTheShapesAndNoModel) {
  auto res = run("null", {{"model", "d2"}}, request({1, 2, 3}, 0, RngMode::kPerImage));
  EXPECT_FALSE(res.decodable);
  ASSERT_EQ(res.state.scales_done(), 10);
  EXPECT_EQ(res.state.tokens[9].sizes(), (std::vector<int64_t>{3, 256}));
}

struct BadEngine {
  const char* type;
  EngineParams params;
  const char* message;
};
// The test's name in ctest (gtest_discover_tests appends the printed parameter): the expected error.
void PrintTo(const BadEngine& b, std::ostream* os) { *os << b.message; }

class EngineErrors : public ::testing::TestWithParam<BadEngine> {};

TEST(LogitsCheck, AFiniteSumProvesFiniteLogitsAndAnOverflowingSumIsCheckedElementwise) {
  c10::InferenceMode inference;
  auto model = load_var({"", "tiny-d2", 1});
  model->label = "edited";
  ModelPass pass(model, torch::tensor(std::vector<int64_t>{3}), true, PrecisionPolicy::of(Precision::kFloat32), 5);
  const auto hidden = torch::randn({2, 1, model->arch().width});
  model->head->weight.zero_();
  // Every logit 3e38: finite, though their sum overflows to infinity.
  model->head->bias.fill_(3e38f);
  EXPECT_NO_THROW(pass.logits(hidden));
  // One NaN, or an infinity of each sign (which sum to NaN): refused, naming the model.
  model->head->bias[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(pass.logits(hidden), NonFiniteLogits);
  model->head->bias.fill_(1.0f);
  model->head->bias[1] = std::numeric_limits<float>::infinity();
  model->head->bias[2] = -std::numeric_limits<float>::infinity();
  EXPECT_THROW(pass.logits(hidden), NonFiniteLogits);
  model->head->bias[2] = 1.0f;  // a lone infinity
  EXPECT_THROW(pass.logits(hidden), NonFiniteLogits);
  model->head->bias[1] = 1.0f;
  EXPECT_NO_THROW(pass.logits(hidden));
}

TEST_P(EngineErrors, NameTheParameterAndValue) {
  try {
    make_engine(GetParam().type, GetParam().params, fixture_models());
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam().message), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EngineErrors,
    ::testing::Values(
        BadEngine{"collaborative", {{"drafter", "d2"}, {"refiner", "d3"}, {"draft_steps", int64_t{10}}}, "draft_steps = 10 is outside 1..9"},
        BadEngine{"collaborative", {{"drafter", "d2"}, {"refiner", "d3"}, {"draft_steps", int64_t{0}}}, "draft_steps = 0 is outside 1..9"},
        BadEngine{"collaborative", {{"drafter", "d2"}, {"refiner", "big"}, {"draft_steps", int64_t{6}}}, "refiner = 'big': no such model"},
        BadEngine{"single", {{"model", "d2"}, {"lookahead", int64_t{2}}}, "engine 'single': unknown parameter 'lookahead'"},
        BadEngine{"single", {}, "engine 'single': parameter 'model' is required"},
        BadEngine{"speculative", {{"draft", "d2"}, {"target", "d3"}, {"acceptance", "maybe"}}, "acceptance = 'maybe'"},
        BadEngine{"collaborative", {{"drafter", "d2"}, {"refiner", "d3"}, {"draft_steps", "six"}}, "draft_steps = six must be an integer"},
        BadEngine{"warp", {}, "unknown engine type 'warp'"}));

}  // namespace
}  // namespace varbench

namespace varbench {
namespace {

// Phase ids are stored in result files: an id keeps its meaning across versions, and no two kinds share one.
TEST(Registry, PhaseIdsKeepTheirMeaning) {
  EXPECT_EQ(phase_kind_names(), (std::vector<std::string>{"setup", "scale", "prefix", "draft", "verify", "decode"}));
}

TEST(Registry, OneEntryPerTypeWithDescriptionAndFactory) {
  std::set<std::string> names;
  for (const auto& type : engine_types()) {
    EXPECT_TRUE(names.insert(type.name).second) << type.name << " listed twice";
    EXPECT_FALSE(type.description.empty()) << type.name;
    EXPECT_NE(type.plan, nullptr) << type.name;
  }
  EXPECT_TRUE(names.count("collaborative") && names.count("single") && names.count("speculative"));
  try {
    plan_engine("no_such_engine", {}, ModelCatalog{});
    FAIL() << "an unknown type was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown engine type 'no_such_engine' (known: single, collaborative"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace varbench
