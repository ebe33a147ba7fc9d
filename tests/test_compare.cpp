// The regression gate: Mann-Whitney U against scipy, and `varbench compare` on synthetic repetitions.
#include <gtest/gtest.h>

#include <random>

#include "formats/hdf5.h"
#include "harness/result_file.h"
#include "harness/statistics.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

TEST(MannWhitney, MatchesScipy) {
  // scipy.stats.mannwhitneyu(a, b, alternative='two-sided') with scipy 1.10 (Debian 12).
  EXPECT_NEAR(mann_whitney_u({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}).p_value, 0.007936507936507936, 1e-12);
  EXPECT_NEAR(mann_whitney_u({1, 2.5, 3, 4.5, 5}, {2, 3.5, 4, 5.5, 6}).p_value, 0.42063492063492064, 1e-12);
  EXPECT_NEAR(mann_whitney_u({1, 2, 3, 4, 5}, {2.5, 6, 7, 8, 9, 10, 11, 12, 13, 14}).p_value, 0.004662004662004662, 1e-12);
  // Ties, and both samples larger than 8: the normal approximation.
  const auto tied = mann_whitney_u({1, 2, 2, 4, 5, 6, 7, 8, 9}, {3, 3, 5, 6, 7, 8, 9, 10, 11, 12});
  EXPECT_FALSE(tied.exact);
  EXPECT_DOUBLE_EQ(tied.u, 24.5);
  EXPECT_NEAR(tied.p_value, 0.1014154472690683, 1e-12);
  EXPECT_NEAR(mann_whitney_u({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5}).p_value,
              0.7239320396139757, 1e-12);
}

// A result file with one completed run per (id, per-repetition latencies).
void write_results(const std::string& path, const std::map<std::string, std::vector<double>>& runs) {
  h5::File f(path, h5::File::Mode::kCreate);
  auto root = f.root();
  root.set_attr("schema_version", int64_t{1});
  Provenance p;
  int64_t index = 0;
  for (const auto& [id, latencies] : runs) {
    RunRecord r;
    r.spec.id = id;
    r.spec.index = index++;
    r.spec.engine_name = id;
    r.num_scales = 10;
    for (size_t rep = 0; rep < latencies.size(); ++rep)
      for (int b = 0; b < 2; ++b) {  // two batches per repetition, mean = the given latency
        r.batch_repetition.push_back(static_cast<int64_t>(rep));
        r.batch_images.push_back(4);
        r.batch_ms.push_back(latencies[rep] + (b ? 1.0 : -1.0));
        r.batch_with_decode_ms.push_back(latencies[rep] + 50);
        r.scale_ms.push_back(std::vector<double>(10, latencies[rep] / 10));
      }
    write_run_record(root.create_group("runs/" + run_group_name(id)), r, p);
  }
}

std::vector<double> noisy(double center, double relative_sd, int n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> d(center, center * relative_sd);
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(d(gen));
  return v;
}

TEST(CompareCli, ATenPercentSlowdownFailsAndNoiseAlonePasses) {
  const auto dir = testing::temp_dir("compare");
  // 9 repetitions (Google Benchmark's recommended minimum for its U test), 2% noise.
  write_results(dir + "/base.h5", {{"var", noisy(100, 0.02, 9, 1)}, {"code", noisy(60, 0.02, 9, 2)}});
  write_results(dir + "/noise.h5", {{"var", noisy(100, 0.02, 9, 3)}, {"code", noisy(60, 0.02, 9, 4)}});
  write_results(dir + "/slow.h5", {{"var", noisy(100, 0.02, 9, 5)}, {"code", noisy(66, 0.02, 9, 6)}});
  const auto ok = testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/noise.h5 --tolerance 5%");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("0 regressions"), std::string::npos) << ok.output;
  const auto slow = testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/slow.h5 --tolerance 5%");
  EXPECT_EQ(slow.exit_code, 1) << slow.output;
  EXPECT_NE(slow.output.find("| code |"), std::string::npos);
  EXPECT_NE(slow.output.find("SLOWER"), std::string::npos) << slow.output;
  EXPECT_NE(slow.output.find("1 regression "), std::string::npos) << slow.output;
  // A 10% slowdown inside a 15% tolerance passes.
  EXPECT_EQ(testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/slow.h5 --tolerance 15%").exit_code, 0);
  // A run missing from the current file is reported, not failed.
  write_results(dir + "/partial.h5", {{"var", noisy(100, 0.02, 9, 7)}});
  const auto partial = testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/partial.h5");
  EXPECT_EQ(partial.exit_code, 0) << partial.output;
  EXPECT_NE(partial.output.find("only in baseline"), std::string::npos) << partial.output;
  EXPECT_NE(testing::run_varbench("compare " + dir + "/base.h5 " + dir + "/slow.h5 --tolerance five").output.find(
                "--tolerance 'five'"),
            std::string::npos);
}

}  // namespace
}  // namespace varbench
