// Sampling semantics: guidance ramp, top-k with ties, top-p, temperature after the filters, and the
// per-image random streams (keyed, uniform, an exact sampler of the given distribution).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engines/model/sampling.h"

namespace varbench {
namespace {

const double kInf = std::numeric_limits<double>::infinity();

torch::Tensor row(std::vector<float> v) { return torch::tensor(v).view({1, 1, -1}); }

TEST(Guidance, RampsLinearlyFromUnguidedAtScaleZero) {
  SamplingSettings s;
  s.cfg = 1.5;
  EXPECT_EQ(s.guidance_at(0, 10), 0.0);
  EXPECT_DOUBLE_EQ(s.guidance_at(3, 10), 0.5);
  EXPECT_DOUBLE_EQ(s.guidance_at(9, 10), 1.5);
  auto cond = row({1, 2, 3}), uncond = row({3, 2, 1});
  auto guided = apply_guidance(torch::cat({cond, uncond}), 0.5);
  EXPECT_TRUE(torch::allclose(guided, row({0, 2, 4})));  // 1.5*cond - 0.5*uncond
}

TEST(TopK, KeepsEveryLogitTiedWithTheKthLargest) {
  auto l = row({5, 4, 4, 4, 1, 0});
  filter_top_k_top_p_(l, 2, 0.0);
  EXPECT_TRUE(torch::equal(torch::isinf(l), torch::tensor({false, false, false, false, true, true}).view({1, 1, -1})));
}

TEST(TopP, DropsTheLowTailOfMassAtMostOneMinusP) {
  // p = (0.5, 0.3, 0.15, 0.05): ascending cumulative mass 0.05, 0.20, ... ; with top_p 0.9 only the
  // 0.05 token is at or below 0.1; with 0.8 the 0.15 token goes too (0.20 <= 0.2).
  auto base = torch::tensor({0.5, 0.3, 0.15, 0.05}).log().to(torch::kFloat32).view({1, 1, -1});
  auto a = base.clone();
  filter_top_k_top_p_(a, 0, 0.9);
  EXPECT_TRUE(torch::equal(torch::isinf(a).view(-1), torch::tensor({false, false, false, true})));
  auto b = base.clone();
  filter_top_k_top_p_(b, 0, 0.8);
  EXPECT_TRUE(torch::equal(torch::isinf(b).view(-1), torch::tensor({false, false, true, true})));
  auto c = base.clone();
  filter_top_k_top_p_(c, 0, 0.01);  // never drops the largest
  EXPECT_TRUE(torch::equal(torch::isinf(c).view(-1), torch::tensor({false, true, true, true})));
}

TEST(Temperature, IsAppliedAfterTheFilters) {
  // With temperature 2 before filtering, top-p 0.9 would keep more tokens; CoDe filters first.
  auto logits = torch::tensor({0.5, 0.3, 0.15, 0.05}).log().to(torch::kFloat32).view({1, 1, -1});
  auto p = token_probabilities(logits.clone(), 0, 0.9, 2.0);
  EXPECT_EQ(p.view(-1)[3].item<float>(), 0.0f);
  auto kept = torch::tensor({0.5, 0.3, 0.15}, torch::kFloat64).pow(0.5);
  auto expected = kept / kept.sum();
  EXPECT_TRUE(torch::allclose(p.view(-1).narrow(0, 0, 3).to(torch::kDouble), expected, 1e-6, 1e-7));
}

TEST(Settings, RejectOutOfRangeValuesNamingThem) {
  SamplingSettings s;
  s.top_k = {1, 2};
  EXPECT_THROW(s.validate(10), std::runtime_error);
  s.top_k = {900};
  s.temperature = {0.0};
  try {
    s.validate(10);
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("temperature = 0"), std::string::npos);
  }
}

TEST(PerImageStream, TensorHashEqualsTheScalarHash) {
  auto x = torch::tensor(std::vector<int64_t>{0, 1, 12345, 4294967295LL, 2654435769LL});
  auto h = hash32(x);
  for (int64_t i = 0; i < x.size(0); ++i) {
    const auto value = static_cast<uint32_t>(x[i].item().toLong());
    EXPECT_EQ(h[i].item().toLong(), static_cast<int64_t>(hash32(value)));
  }
}

TEST(PerImageStream, NumbersDependOnImageIndexOnlyNotOnBatchPosition) {
  auto a = TokenSampler::per_image(7, {3, 4, 5}, torch::kCPU);
  auto b = TokenSampler::per_image(7, {5}, torch::kCPU);
  auto c = TokenSampler::per_image(8, {5}, torch::kCPU);
  auto ua = a.uniforms(3, 100, 4, RandomStream::kToken), ub = b.uniforms(1, 100, 4, RandomStream::kToken);
  EXPECT_TRUE(torch::equal(ua[2], ub[0]));
  EXPECT_FALSE(torch::equal(ua[1], ub[0]));
  EXPECT_FALSE(torch::equal(c.uniforms(1, 100, 4, RandomStream::kToken), ub));       // other seed
  EXPECT_FALSE(torch::equal(b.uniforms(1, 100, 5, RandomStream::kToken), ub));       // other scale
  EXPECT_FALSE(torch::equal(b.uniforms(1, 100, 4, RandomStream::kAccept), ub));      // other stream
  EXPECT_TRUE(torch::equal(a.gumbel(3, 10, 16, 2, RandomStream::kToken)[2], b.gumbel(1, 10, 16, 2, RandomStream::kToken)[0]));
}

TEST(PerImageStream, GumbelValuesAreFiniteAtTheExtremes) {
  // All-ones bits once produced u = 1.0f (rounding), an infinite Gumbel value and a NaN score that
  // Gumbel-max then picked: a zero-probability token.
  auto g = TokenSampler::bits_to_gumbel(torch::tensor(std::vector<int64_t>{0, 1, 4294967295LL, 4294966784LL}));
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << g;
}

TEST(PerImageStream, UniformsAreUniform) {
  auto s = TokenSampler::per_image(1, {0, 1, 2, 3}, torch::kCPU);
  auto u = s.uniforms(4, 25000, 0, RandomStream::kToken).view(-1);
  EXPECT_GE(u.min().item<double>(), 0.0);
  EXPECT_LT(u.max().item<double>(), 1.0);
  // 100 000 draws: mean 0.5 +- 4 sigma (sigma = 1/sqrt(12 n)); Kolmogorov-Smirnov at alpha 0.001.
  EXPECT_NEAR(u.mean().item<double>(), 0.5, 4 / std::sqrt(12.0 * 100000));
  auto sorted = std::get<0>(u.sort());
  auto ecdf = torch::arange(1, 100001, torch::kFloat64) / 100000.0;
  const double ks = (sorted - ecdf).abs().max().item<double>();
  EXPECT_LT(ks, 1.95 / std::sqrt(100000.0));
}

TEST(PerImageStream, GumbelMaxDrawsFromTheGivenDistribution) {
  // Chi-square goodness of fit of 80 000 draws over 5 outcomes (df 4): at alpha 0.001 the critical
  // value is 18.47; against a 2% shift of mass between two outcomes this has power > 0.99.
  const std::vector<double> p{0.4, 0.3, 0.15, 0.1, 0.05};
  auto probs = torch::tensor(p).to(torch::kFloat32).view({1, 1, 5}).expand({8, 10000, 5}).contiguous();
  auto s = TokenSampler::per_image(3, {0, 1, 2, 3, 4, 5, 6, 7}, torch::kCPU);
  auto tokens = s.draw(probs, 6);
  auto counts = torch::bincount(tokens.view(-1), {}, 5).to(torch::kFloat64);
  double chi2 = 0;
  for (int i = 0; i < 5; ++i) {
    const double e = p[i] * 80000;
    chi2 += std::pow(counts[i].item<double>() - e, 2) / e;
  }
  EXPECT_LT(chi2, 18.47) << counts;
  // A zero-probability token is never drawn.
  auto with_zero = torch::tensor({0.5f, 0.0f, 0.5f}).view({1, 1, 3}).expand({8, 1000, 3}).contiguous();
  EXPECT_EQ(s.draw(with_zero, 7).eq(1).sum().item<int64_t>(), 0);
}

struct CandidateCase {
  const char* name;
  int64_t top_k;
  double top_p, temperature;
};
void PrintTo(const CandidateCase& c, std::ostream* os) { *os << c.name; }

class TopKCandidates : public ::testing::TestWithParam<CandidateCase> {};

TEST_P(TopKCandidates, TheCpuKernelDrawsWhatTheTensorOpsDraw) {
  // The per-row kernel against the tensor ops every device runs, on raw logits spread like a model's (a
  // few units) and on guided ones (cfg 1.5 between two such sets: wider, and what is sampled): 2 x 2 000
  // positions. The two can differ only where the two best perturbed scores (or a cumulative mass and
  // 1-p) agree to float32 resolution, which has a probability of about 1e-6 per position: none here.
  const auto c = GetParam();
  torch::manual_seed(5);
  const auto raw = torch::randn({4, 500, 4096}).mul_(2.5);
  const auto guided = apply_guidance(torch::randn({8, 500, 4096}).mul_(2.5), 1.5);
  auto s = TokenSampler::per_image(17, {3, 1, 4, 1}, torch::kCPU);
  for (const auto& [name, logits] : {std::pair{"raw", raw}, std::pair{"guided", guided}}) {
    const auto kernel = s.sample_top_k_candidates_cpu_kernel(logits, 7, c.top_k, c.top_p, c.temperature);
    const auto tensor_ops = s.sample_top_k_candidates_tensor_ops(logits, 7, c.top_k, c.top_p, c.temperature);
    const int64_t differ = kernel.ne(tensor_ops).sum().item<int64_t>();
    EXPECT_EQ(differ, 0) << name << ": " << differ << " of " << kernel.numel() << " positions differ";
    // ... and the default dispatch takes the kernel for float32 on the CPU.
    EXPECT_TRUE(torch::equal(s.sample_top_k_candidates(logits, 7, c.top_k, c.top_p, c.temperature), kernel)) << name;
  }
}

TEST(TopKCandidates, NanKeysGiveATokenInRangeAndLeaveTheOtherRowsAlone) {
  // The CPU refuses non-finite logits before sampling (ModelPass::logits), but the kernel must stay
  // within the vocabulary whatever it gets: a NaN of either sign (they order above +inf and below -inf),
  // a row of NaN only, and the rows without one draw what they draw alone.
  torch::manual_seed(9);
  auto logits = torch::randn({4, 6, 512}).mul_(2.5);
  auto s = TokenSampler::per_image(17, {3, 1, 4, 1}, torch::kCPU);
  const auto clean = s.sample_top_k_candidates_cpu_kernel(logits, 3, 50, 0.9, 1.0);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  logits[0][0][7] = nan;
  logits[1][2][9] = -nan;
  logits[2][4].fill_(nan);
  for (const auto& [top_k, top_p] : {std::pair<int64_t, double>{50, 0.9}, {50, 0.0}, {512, 0.96}, {1, 0.9}}) {
    const auto tokens = s.sample_top_k_candidates_cpu_kernel(logits, 3, top_k, top_p, 1.0);
    EXPECT_TRUE(tokens.ge(0).all().item<bool>() && tokens.lt(512).all().item<bool>()) << "top-k " << top_k << ": " << tokens;
    if (top_k == 50 && top_p == 0.9) {
      auto untouched = torch::ones({4, 6}, torch::kBool);
      untouched[0][0] = untouched[1][2] = untouched[2][4] = false;
      EXPECT_TRUE(tokens.masked_select(untouched).equal(clean.masked_select(untouched)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, TopKCandidates,
                         ::testing::Values(CandidateCase{"var_fid", 900, 0.96, 1.0}, CandidateCase{"code_early", 600, 0.96, 1.1},
                                           CandidateCase{"top_k_only", 50, 0.0, 1.0}, CandidateCase{"narrow_top_p", 4096, 0.3, 0.7},
                                           CandidateCase{"greedy", 1, 0.96, 1.0}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(TopKCandidates, TheCpuKernelKeepsTiesWithTheKthAndDrawsFromTheFilteredDistribution) {
  // One row repeated over 80 000 positions (independent noise per position). top-k 3 keeps 5.0, 4.0 and
  // both 3.5 (a tie with the 3rd largest), with masses 0.551, 0.203, 0.123, 0.123; top-p 0.85 then drops
  // the ascending prefix of mass <= 0.15: one 3.5 (ties in index order: index 0) goes, the other stays.
  // Expected frequencies: softmax over what is kept.
  const std::vector<float> values{3.5f, 5.0f, 1.0f, 4.0f, 3.5f, -2.0f};
  auto logits = torch::tensor(values).view({1, 1, 6}).expand({8, 10000, 6}).contiguous();
  auto s = TokenSampler::per_image(3, {0, 1, 2, 3, 4, 5, 6, 7}, torch::kCPU);
  const auto tokens = s.sample_top_k_candidates_cpu_kernel(logits, 4, 3, 0.85, 1.0);
  auto counts = torch::bincount(tokens.view(-1), {}, 6).to(torch::kFloat64);
  EXPECT_EQ(counts[0].item<double>() + counts[2].item<double>() + counts[5].item<double>(), 0) << counts;
  const double e5 = std::exp(5.0), e4 = std::exp(4.0), e35 = std::exp(3.5), kept = e5 + e4 + e35;
  const std::vector<std::pair<int, double>> expected{{1, e5 / kept}, {3, e4 / kept}, {4, e35 / kept}};
  double chi2 = 0;
  for (const auto& [token, p] : expected) chi2 += std::pow(counts[token].item<double>() - p * 80000, 2) / (p * 80000);
  EXPECT_LT(chi2, 13.82) << counts;  // chi-square, df 2, alpha 0.001
}

TEST(ReferenceStream, ReplaysTorchMultinomialWithTheSeededGenerator) {
  auto probs = torch::softmax(torch::randn({2, 30, 50}), -1);
  auto s = TokenSampler::reference(123, torch::kCPU);
  auto tokens = s.draw(probs, 0);
  auto gen = at::detail::createCPUGenerator(123);
  auto expected = torch::multinomial(probs.view({-1, 50}), 1, true, gen).view({2, 30});
  EXPECT_TRUE(torch::equal(tokens, expected));
}

}  // namespace
}  // namespace varbench
