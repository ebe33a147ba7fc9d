// Inception Score (both split rules), precision/recall and KID against numpy implementations of the
// same formulas on the same random features (tests/reference/inception_metrics_reference.py), and
// NumPy's legacy RandomState draws that torch-fidelity's splits and subsets come from.
#include <gtest/gtest.h>

#include <cmath>

#include "metrics/inception_score.h"
#include "metrics/kid.h"
#include "metrics/numpy_random.h"
#include "metrics/precision_recall.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::RelativelyNear;
using testing::error_of;
using testing::AllCloseRelative;
using testing::fixture;

const SafetensorsFile& fx() {
  static SafetensorsFile f(fixture("inception/fixtures.safetensors"));
  return f;
}

double scalar(const std::string& key) { return fx().tensor(key).item<double>(); }

std::vector<int64_t> as_vector(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(NumpyLegacyRandom, PermutationAndChoiceEqualNumpy) {
  EXPECT_EQ(metrics::LegacyRandomState(2020).permutation(5500), as_vector(fx().tensor("is.tf.permutation")));
  EXPECT_EQ(metrics::LegacyRandomState(2020).choice_without_replacement(1000, 200),
            as_vector(fx().tensor("rng.choice_2020_1000_200")));
}

TEST(InceptionScore, AdmRuleConsecutiveChunksOf5000) {
  const auto logits = fx().tensor("is.logits");
  const auto s = metrics::inception_score_adm(logits, "is.logits");
  ASSERT_EQ(s.split_scores.size(), 2u);  // 5000 + 500
  EXPECT_TRUE(RelativelyNear(s.mean, scalar("is.adm.mean"), 1e-12));
  EXPECT_TRUE(RelativelyNear(s.std, scalar("is.adm.std"), 1e-10));
}

TEST(InceptionScore, TorchFidelityRuleTenSplitsOfASeededPermutation) {
  const auto s = metrics::inception_score_torch_fidelity(fx().tensor("is.logits"), "is.logits");
  ASSERT_EQ(s.split_scores.size(), 10u);
  EXPECT_TRUE(RelativelyNear(s.mean, scalar("is.tf.mean"), 1e-12));
  EXPECT_TRUE(RelativelyNear(s.std, scalar("is.tf.std"), 1e-10));
  // Without the permutation the splits (and the score) would differ.
  const auto unpermuted = metrics::inception_score_adm(fx().tensor("is.logits"), "is.logits", 550);
  EXPECT_FALSE(RelativelyNear(unpermuted.mean, s.mean, 1e-6));
}

TEST(InceptionScore, BadLogitsAreErrors) {
  auto logits = torch::randn({20, 1008});
  logits[7][1] = std::nan("");
  auto msg = error_of([&] { metrics::inception_score_adm(logits, "run.h5:/runs/a"); });
  EXPECT_NE(msg.find("run.h5:/runs/a: non-finite logits (NaN or Inf) for image 7"), std::string::npos) << msg;
  msg = error_of([&] { metrics::inception_score_torch_fidelity(torch::randn({9, 1008}), "nine.npz"); });
  EXPECT_NE(msg.find("nine.npz: 9 images cannot fill 10 Inception Score splits"), std::string::npos) << msg;
}

TEST(PrecisionRecall, EqualsTheAdmFormulaExactly) {
  const auto ref = fx().tensor("pr.ref"), smp = fx().tensor("pr.sample");
  EXPECT_TRUE(AllCloseRelative(metrics::manifold_radii(ref, "ref"), fx().tensor("pr.ref_radii"), 1e-12));
  const auto pr = metrics::precision_recall(ref, "ref", smp, "sample");
  // Fractions of 600 and 700 points: equal, not close.
  EXPECT_EQ(pr.precision, scalar("pr.precision"));
  EXPECT_EQ(pr.recall, scalar("pr.recall"));
  EXPECT_GT(pr.precision, 0.1);
  EXPECT_LT(pr.precision, 0.9);
  EXPECT_GT(pr.recall, 0.1);
  EXPECT_LT(pr.recall, 0.9);
  // Reference radii computed once (as `varbench score` does for many runs) change nothing.
  const auto again = metrics::precision_recall(ref, "ref", smp, "sample", 3, nullptr, metrics::manifold_radii(ref, "ref"));
  EXPECT_EQ(again.precision, pr.precision);
  EXPECT_EQ(again.recall, pr.recall);
}

TEST(PrecisionRecall, RadiusIsTheThirdNearestOtherPointAndComparisonsInclusive) {
  // Points on a line at 0, 1, 3, 6, 10: squared distances to the third nearest other point.
  const auto x = torch::tensor({0.0, 1.0, 3.0, 6.0, 10.0}).view({5, 1});
  const auto r = metrics::manifold_radii(x, "line");
  EXPECT_TRUE(torch::equal(r, torch::tensor({36.0, 25.0, 9.0, 25.0, 81.0}, torch::kFloat64))) << r;
  // A sample exactly on a radius counts as inside (<=): 6^2 = 36 from point 0 at -6.
  const auto pr = metrics::precision_recall(x, "line", torch::tensor({-6.0, -6.0, -6.0, -6.0, 100.0}).view({5, 1}), "s");
  EXPECT_DOUBLE_EQ(pr.precision, 0.8);
  const auto msg = error_of([&] { metrics::manifold_radii(torch::zeros({3, 2}), "three.npz"); });
  EXPECT_NE(msg.find("three.npz: 3 images; precision/recall with k=3 need at least 4"), std::string::npos) << msg;
}

TEST(KernelInceptionDistance, EqualsTorchFidelitysFormulaOnTheSameSubsets) {
  const auto kid = metrics::kernel_inception_distance(fx().tensor("kid.sample"), "sample", fx().tensor("kid.ref"), "ref",
                                                      100, 200, 2020);
  EXPECT_TRUE(RelativelyNear(kid.mean, scalar("kid.mean"), 1e-9));
  EXPECT_TRUE(RelativelyNear(kid.std, scalar("kid.std"), 1e-9));
  const auto msg = error_of([&] {
    metrics::kernel_inception_distance(fx().tensor("kid.sample"), "sample.npz", fx().tensor("kid.ref"), "ref", 100, 1000, 2020);
  });
  EXPECT_NE(msg.find("sample.npz: 300 images, fewer than the KID subset size 1000"), std::string::npos) << msg;
}

}  // namespace
}  // namespace varbench
