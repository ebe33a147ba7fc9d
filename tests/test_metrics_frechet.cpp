// Frechet distance: analytic cases, agreement with scipy (sqrtm) and numpy (symmetric eigenvalues) on
// the same random features, mergeable statistics, and the errors of bad statistics. Every case runs on
// both linear-algebra backends (LAPACK band route and libtorch's eigvalsh).
#include <gtest/gtest.h>

#include <cmath>

#include "metrics/frechet.h"
#include "metrics/linalg.h"
#include "metrics/statistics.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::RelativelyNear;
using testing::error_of;
using metrics::FeatureStats;
using metrics::GaussianStats;
using testing::AllCloseRelative;
using testing::fixture;

const SafetensorsFile& fx() { return testing::inception_fixtures(); }

double fixture_scalar(const std::string& key) { return fx().tensor(key).item<double>(); }

GaussianStats gaussian(torch::Tensor mu, torch::Tensor sigma, const std::string& name) {
  GaussianStats g;
  g.mu = mu.to(torch::kFloat64);
  g.sigma = sigma.to(torch::kFloat64);
  g.source = name;
  return g;
}

// Statistics of a feature matrix, streamed in batches of `batch` rows.
FeatureStats stats_of(const torch::Tensor& x, int64_t batch = 500) {
  FeatureStats s(x.size(1));
  for (int64_t i = 0; i < x.size(0); i += batch) s.add(x.slice(0, i, std::min(i + batch, x.size(0))), "test");
  return s;
}

class Frechet : public ::testing::TestWithParam<metrics::linalg::Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == metrics::linalg::Backend::kBand)
      ASSERT_TRUE(metrics::linalg::band_route_available()) << "this libtorch's LAPACK lacks dsytrd_sy2sb/dsbev/dtrmm";
    metrics::linalg::set_backend(GetParam());
  }
  void TearDown() override { metrics::linalg::set_backend(metrics::linalg::Backend::kAuto); }
};

TEST_P(Frechet, AnalyticCases) {
  const auto f64 = torch::kFloat64;
  // N(0, I) vs N(1, I) at d = 2048: |mu1 - mu2|^2 = 2048, the covariance terms cancel.
  const auto eye = torch::eye(2048, f64);
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(gaussian(torch::ones({2048}, f64), eye, "a"),
                                                       gaussian(torch::zeros({2048}, f64), eye, "b")),
                             2048.0, 1e-9));
  // diag(1, 4) vs diag(9, 16), means apart by (1, 1): 2 + 5 + 25 - 2 (3 + 8) = 10.
  const auto a = gaussian(torch::tensor({1.0, 1.0}, f64), torch::diag(torch::tensor({1.0, 4.0}, f64)), "a");
  const auto b = gaussian(torch::tensor({0.0, 0.0}, f64), torch::diag(torch::tensor({9.0, 16.0}, f64)), "b");
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(a, b), 10.0, 1e-9));
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(b, a), 10.0, 1e-9));
  // [[2,1],[1,2]] vs diag(1,3), equal means: 8 - 2 tr sqrt(S1 S2); eig(S1 S2) = 4 +- sqrt(7), so the
  // trace of the root is sqrt(8 + 2 sqrt(9)) = sqrt(14).
  const auto c = gaussian(torch::zeros({2}, f64), torch::tensor({2.0, 1.0, 1.0, 2.0}, f64).view({2, 2}), "c");
  const auto d = gaussian(torch::zeros({2}, f64), torch::diag(torch::tensor({1.0, 3.0}, f64)), "d");
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(c, d), 8.0 - 2.0 * std::sqrt(14.0), 1e-9));
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(d, c), 8.0 - 2.0 * std::sqrt(14.0), 1e-9));
  // A singular reference (Cholesky fails, the eigen-decomposition route runs): diag(1, 0) vs diag(4, 9):
  // 1 + 13 - 2 * 2 = 10.
  const auto singular = gaussian(torch::zeros({2}, f64), torch::diag(torch::tensor({1.0, 0.0}, f64)), "singular");
  const auto e = gaussian(torch::zeros({2}, f64), torch::diag(torch::tensor({4.0, 9.0}, f64)), "e");
  EXPECT_FALSE(metrics::prepare_frechet_reference(singular).triangular);
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(e, singular), 10.0, 1e-9));
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(singular, e), 10.0, 1e-9));
}

TEST_P(Frechet, FullRankFeaturesAgreeWithScipySqrtm) {
  const auto x1 = stats_of(fx().tensor("fid.full.x1")).gaussian("x1");
  const auto x2 = stats_of(fx().tensor("fid.full.x2")).gaussian("x2");
  const auto reference = metrics::prepare_frechet_reference(x2);
  EXPECT_TRUE(reference.triangular);
  const auto r = metrics::frechet_distance(x1, reference);
  EXPECT_TRUE(RelativelyNear(r.distance, fixture_scalar("fid.full.sqrtm"), 1e-8));
  EXPECT_TRUE(RelativelyNear(r.distance, fixture_scalar("fid.full.symmetric"), 1e-10));
  EXPECT_GT(r.min_eigenvalue, 0);  // full rank: nothing was clamped
  // The cached reference gives what the uncached call gives.
  EXPECT_EQ(metrics::frechet_distance(x1, reference).distance, r.distance);
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(x1, x2), r.distance, 1e-13));
}

TEST_P(Frechet, RankDeficientStatisticsAgreeToOneInAMillion) {
  const auto s1 = stats_of(fx().tensor("fid.low.x1"), 33);
  const auto g1 = s1.gaussian("x1");
  EXPECT_TRUE(AllCloseRelative(g1.mu, fx().tensor("fid.low.mu1"), 1e-12));
  EXPECT_TRUE(AllCloseRelative(g1.sigma, fx().tensor("fid.low.sigma1"), 1e-12));  // np.cov, unbiased
  const auto g2 = stats_of(fx().tensor("fid.low.x2")).gaussian("x2");
  const double fid = metrics::frechet_distance(g1, g2);
  EXPECT_TRUE(RelativelyNear(fid, fixture_scalar("fid.low.symmetric"), 1e-6));
  EXPECT_TRUE(RelativelyNear(fid, fixture_scalar("fid.low.sqrtm"), 1e-6));
}

TEST_P(Frechet, SpatialFeaturesSfid) {
  const auto g1 = stats_of(fx().tensor("sfid.x1")).gaussian("x1");
  const auto g2 = stats_of(fx().tensor("sfid.x2")).gaussian("x2");
  ASSERT_EQ(g1.dims(), 2023);
  EXPECT_TRUE(RelativelyNear(metrics::frechet_distance(g1, g2), fixture_scalar("sfid.symmetric"), 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Backends, Frechet,
                         ::testing::Values(metrics::linalg::Backend::kAuto, metrics::linalg::Backend::kBand,
                                           metrics::linalg::Backend::kLibtorch),
                         [](const auto& info) {
                           switch (info.param) {
                             case metrics::linalg::Backend::kAuto: return std::string("dsygst_dsyevd");
                             case metrics::linalg::Backend::kBand: return std::string("lapack_band");
                             default: return std::string("libtorch");
                           }
                         });

TEST(FrechetLinalg, BandEigenvaluesEqualLibtorchEigenvalues) {
  if (!metrics::linalg::band_route_available()) GTEST_FAIL() << "LAPACK band route unavailable";
  auto a = torch::randn({300, 300}, torch::kFloat64);
  a = torch::mm(a, a.t());
  metrics::linalg::set_backend(metrics::linalg::Backend::kBand);
  const auto band = metrics::linalg::symmetric_eigenvalues(a);
  auto l = torch::tril(torch::randn({300, 300}, torch::kFloat64));
  const auto m_band = metrics::linalg::lower_congruence(l, a);
  metrics::linalg::set_backend(metrics::linalg::Backend::kLibtorch);
  EXPECT_TRUE(AllCloseRelative(band, metrics::linalg::symmetric_eigenvalues(a), 1e-12));
  EXPECT_TRUE(AllCloseRelative(m_band, metrics::linalg::lower_congruence(l, a), 1e-12));
  metrics::linalg::set_backend(metrics::linalg::Backend::kAuto);
}

// ------------------------------------------------------------------------------------------------
TEST(FeatureStatistics, FourShardsMergedEqualOnePass) {
  const auto x = fx().tensor("fid.full.x1");
  const auto whole = stats_of(x, x.size(0));
  FeatureStats merged;
  const std::vector<int64_t> cuts{0, 123, 1000, 1999, x.size(0)};
  for (size_t i = 0; i + 1 < cuts.size(); ++i) merged.merge(stats_of(x.slice(0, cuts[i], cuts[i + 1]), 77));
  EXPECT_EQ(merged.n, whole.n);
  EXPECT_TRUE(AllCloseRelative(merged.sum, whole.sum, 1e-12));
  EXPECT_TRUE(AllCloseRelative(merged.sum_outer, whole.sum_outer, 1e-12));
  const auto a = merged.gaussian("merged"), b = whole.gaussian("whole");
  EXPECT_TRUE(AllCloseRelative(a.sigma, b.sigma, 1e-12));
  EXPECT_TRUE(AllCloseRelative(a.mu, b.mu, 1e-12));
}

TEST(FeatureStatistics, NanFeaturesAreAnErrorNamingTheImage) {
  auto x = torch::rand({8, 16});
  x[5][3] = std::nan("");
  FeatureStats s(16);
  s.add(x.slice(0, 0, 4), "run.h5:/runs/a/images");
  const auto msg = error_of([&] { s.add(x.slice(0, 4, 8), "run.h5:/runs/a/images"); });
  EXPECT_NE(msg.find("run.h5:/runs/a/images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("image 5"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(FeatureStatistics, FewerThanTwoImagesIsAnError) {
  FeatureStats s(4);
  s.add(torch::rand({1, 4}), "one.npz:arr_0");
  const auto msg = error_of([&] { s.gaussian("one.npz:arr_0"); });
  EXPECT_NE(msg.find("one.npz:arr_0: 1 image"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(FeatureStatistics, BadStoredStatisticsAreErrorsNamingTheSource) {
  const auto f64 = torch::kFloat64;
  // Indefinite covariance.
  const auto bad = gaussian(torch::zeros({2}, f64), torch::diag(torch::tensor({1.0, -1.0}, f64)), "ref.npz:mu/sigma");
  auto msg = error_of([&] { metrics::prepare_frechet_reference(bad); });
  EXPECT_NE(msg.find("ref.npz:mu/sigma"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not positive semidefinite"), std::string::npos) << msg;
  // NaN in a stored mean.
  auto nan_mu = gaussian(torch::tensor({0.0, std::nan("")}, f64), torch::eye(2, f64), "stats.npz:mu/sigma");
  msg = error_of([&] { metrics::frechet_distance(nan_mu, nan_mu); });
  EXPECT_NE(msg.find("stats.npz:mu/sigma: the mean has non-finite values (first at index 1)"), std::string::npos) << msg;
  // Dimensions that differ.
  const auto small = gaussian(torch::zeros({2}, f64), torch::eye(2, f64), "a.npz"), large = gaussian(torch::zeros({3}, f64), torch::eye(3, f64), "b.npz");
  msg = error_of([&] { metrics::frechet_distance(small, large); });
  EXPECT_NE(msg.find("a.npz has 2 feature dimensions, b.npz has 3"), std::string::npos) << msg;
  for (const auto& m : {msg}) EXPECT_EQ(m.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace varbench
