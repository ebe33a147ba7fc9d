// The fast path's CPU kernels (engines/model/fast_kernels.h) against the ops they replace.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engines/model/fast_kernels.h"

namespace varbench {
namespace {

TEST(FastGelu, IsTheTanhGeluToAFewUlps) {
  torch::manual_seed(1);
  auto x = torch::cat({torch::randn({100000}).mul_(3.0f), torch::linspace(-60, 60, 24001),
                       torch::tensor({0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 200.0f, -200.0f, 3e38f, -3e38f})});
  auto fast = x.clone();
  gelu_tanh_fast_(fast);
  // The reference in float64, as x * sigmoid(2u): 0.5 x (1 + tanh u) itself cancels catastrophically for
  // x below about -5 (1 + tanh u underflows long before its true value does).
  const auto xd = x.to(torch::kFloat64);
  const auto u = std::sqrt(2.0 / M_PI) * (xd + 0.044715 * xd.pow(3));
  const auto exact = xd * torch::sigmoid(2 * u);
  const auto error = (fast.to(torch::kFloat64) - exact).abs();
  // Relative where the value is a normal float (below, absolute), in float32 ulps (1.2e-7) times
  // max(1, |2u|): in the negative tail gelu ~ x exp(-2u), and exp turns 2u's own float32 rounding (an ulp
  // of 2u) into that much relative error.
  const auto allowed = 4 * 1.2e-7 * (2 * u).abs().clamp_min(1.0);
  const double worst = (error / exact.abs().clamp_min(1e-30) / allowed).max().item<double>();
  EXPECT_LT(worst, 1.0) << "worst error " << worst << " of the allowed";
  // torch's float32 GELU (the exact path's op) agrees to float32 rounding of the input's scale; its
  // relative error in the far negative tail, where it returns 0, is torch's, not this kernel's.
  const auto torch_gap = (fast - torch::gelu(x, "tanh")).abs() - 1e-6 * x.abs();
  EXPECT_LE(torch_gap.max().item<float>(), 1e-30f);
}

TEST(FastGelu, AnElementsResultDoesNotDependOnItsPlaceOrOnThreads) {
  // The vector loop and the scalar tail compute the same operations: element i alone, or inside a long
  // tensor split over threads, comes out with the same bits (what per-image batch invariance relies on).
  torch::manual_seed(2);
  auto x = torch::randn({70001}).mul_(4.0f);
  auto whole = x.clone();
  gelu_tanh_fast_(whole);
  for (int64_t i : {0L, 5L, 7L, 8L, 9L, 16383L, 16384L, 70000L}) {
    auto one = x.narrow(0, i, 1).clone();
    gelu_tanh_fast_(one);
    EXPECT_EQ(one.item<float>(), whole[i].item<float>()) << "element " << i;
  }
  auto shifted = x.narrow(0, 3, 69998).clone();  // every element at another offset from the vector lanes
  gelu_tanh_fast_(shifted);
  EXPECT_TRUE(torch::equal(shifted, whole.narrow(0, 3, 69998)));
}

TEST(FastGelu, NanStaysNanAndOtherTensorsAreRefused) {
  auto x = torch::tensor({1.0f, std::numeric_limits<float>::quiet_NaN(), -2.0f});
  gelu_tanh_fast_(x);
  EXPECT_TRUE(std::isnan(x[1].item<float>()));
  auto d = torch::zeros({4}, torch::kFloat64);
  EXPECT_THROW(gelu_tanh_fast_(d), std::logic_error);
  auto strided = torch::zeros({4, 4}).t();
  EXPECT_THROW(gelu_tanh_fast_(strided), std::logic_error);
}

}  // namespace
}  // namespace varbench
