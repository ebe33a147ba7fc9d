// varbench fid / features / score end to end on small image sets (random Inception weights), and the
// one-line errors of bad inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "formats/hdf5.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::RelativelyNear;
using testing::fixture;
using testing::run_varbench;

const SafetensorsFile& fx() { return testing::inception_fixtures(); }

std::string weights() { return fixture("inception/inception_random.safetensors"); }
std::string common() { return " --inception " + weights() + " --threads 2"; }

// The value after "<label>: " in the output; NaN when absent.
double value_of(const std::string& output, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("(^|\\n)" + label + ": ([-+0-9.eE]+)"))) return std::nan("");
  return std::stod(m[2]);
}

// The error line of a failed command: exactly one, naming what is asked for.
::testing::AssertionResult FailsWithOneLine(const testing::CommandResult& r, const std::vector<std::string>& needles) {
  if (r.exit_code == 0) return ::testing::AssertionFailure() << "exit code 0; output:\n" << r.output;
  std::smatch m;
  if (!std::regex_search(r.output, m, std::regex("varbench: error: ([^\\n]*)\\n?$")))
    return ::testing::AssertionFailure() << "no single error line at the end:\n" << r.output;
  const std::string line = m[1];
  for (const auto& n : needles)
    if (line.find(n) == std::string::npos) return ::testing::AssertionFailure() << "'" << n << "' not in: " << line;
  return ::testing::AssertionSuccess();
}

// Features of 5-6 images: the covariances are rank 4-5, so the trace of the root carries rounding
// of the near-zero eigenvalues (~1e-6 of the FID); the numerical contract is in test_metrics_frechet.
constexpr double kSmallSetTolerance = 1e-4;

TEST(MetricsCli, FidPrintsWhatTheAdmEvaluatorPrints) {
  const auto r = run_varbench("fid " + fixture("inception/set_a.npz") + " " + fixture("inception/set_b.npz") + common());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(RelativelyNear(value_of(r.output, "FID"), fx().tensor("cli.fid_ab").item<double>(), kSmallSetTolerance)) << r.output;
  EXPECT_TRUE(RelativelyNear(value_of(r.output, "sFID"), fx().tensor("cli.sfid_ab").item<double>(), kSmallSetTolerance)) << r.output;
  EXPECT_TRUE(RelativelyNear(value_of(r.output, "Inception Score"), fx().tensor("cli.is_b").item<double>(), 1e-5)) << r.output;
  const auto pr = fx().tensor("cli.pr_ab");
  EXPECT_EQ(value_of(r.output, "Precision"), pr[0].item<double>()) << r.output;
  EXPECT_EQ(value_of(r.output, "Recall"), pr[1].item<double>()) << r.output;
}

TEST(MetricsCli, PngFolderAndNpzOfTheSameImagesAreAtDistanceZero) {
  const auto r = run_varbench("fid " + fixture("inception/png_a") + " " + fixture("inception/set_a.npz") + common() +
                              " --profile pytorch-fid");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(std::abs(value_of(r.output, "FID")), 1e-6) << r.output;
  EXPECT_EQ(value_of(r.output, "Precision"), 1.0);
}

TEST(MetricsCli, SavedFeaturesGiveTheSameMetricsWithoutTheNetwork) {
  const auto dir = testing::temp_dir("metrics_features");
  const auto a = dir + "/a.npz", b = dir + "/b.npz", a_only = dir + "/a_only.npz";
  ASSERT_EQ(run_varbench("features " + fixture("inception/set_a.npz") + " " + a + common()).exit_code, 0);
  EXPECT_TRUE(FailsWithOneLine(run_varbench("features " + fixture("inception/set_a.npz") + " " + a + common()), {a, "exists"}));
  ASSERT_EQ(run_varbench("features " + fixture("inception/set_b.npz") + " " + b + common()).exit_code, 0);
  // pytorch-fid's spelling of "features --stats-only".
  ASSERT_EQ(run_varbench("fid --save-stats " + fixture("inception/png_a") + " " + a_only + common()).exit_code, 0);
  // Features files only: no --inception needed, the numbers of the images.
  const auto r = run_varbench("fid " + a + " " + b);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(RelativelyNear(value_of(r.output, "FID"), fx().tensor("cli.fid_ab").item<double>(), kSmallSetTolerance)) << r.output;
  EXPECT_TRUE(RelativelyNear(value_of(r.output, "sFID"), fx().tensor("cli.sfid_ab").item<double>(), kSmallSetTolerance)) << r.output;
  EXPECT_TRUE(RelativelyNear(value_of(r.output, "Inception Score"), fx().tensor("cli.is_b").item<double>(), 1e-5)) << r.output;
  EXPECT_EQ(value_of(r.output, "Precision"), fx().tensor("cli.pr_ab")[0].item<double>()) << r.output;
  // Statistics only (of the same images, read from PNG): FID and sFID, nothing that needs per-image features.
  const auto same = run_varbench("fid " + a + " " + a_only);
  ASSERT_EQ(same.exit_code, 0) << same.output;
  EXPECT_LT(std::abs(value_of(same.output, "FID")), 1e-6) << same.output;
  EXPECT_LT(std::abs(value_of(same.output, "sFID")), 1e-6) << same.output;
  EXPECT_EQ(same.output.find("Precision"), std::string::npos) << same.output;
  // A features file of the other profile is refused.
  EXPECT_TRUE(FailsWithOneLine(run_varbench("fid " + a + " " + b + " --profile pytorch-fid"), {a, "profile 'adm'", "'pytorch-fid'"}));
}

TEST(MetricsCli, StoredReferenceStatisticsAreUsedAsTheAdmEvaluatorDoes) {
  // adm_like.npz: images of set A, statistics of set B. FID/sFID come from the stored statistics (so
  // set B against them is ~0), precision/recall from the images (set A against set B).
  const auto adm_like = fixture("inception/adm_like.npz");
  const auto direct = run_varbench("fid " + adm_like + " " + fixture("inception/set_b.npz") + common());
  ASSERT_EQ(direct.exit_code, 0) << direct.output;
  EXPECT_LT(std::abs(value_of(direct.output, "FID")), 1e-3) << direct.output;
  EXPECT_EQ(value_of(direct.output, "Precision"), fx().tensor("cli.pr_ab")[0].item<double>()) << direct.output;
  // The same from a features file that keeps the stored statistics (no re-extraction of the reference).
  const auto dir = testing::temp_dir("metrics_stored");
  const auto kept = dir + "/reference_features.npz";
  ASSERT_EQ(run_varbench("features " + adm_like + " " + kept + common() + " --keep-stored-stats").exit_code, 0);
  const auto cached = run_varbench("fid " + kept + " " + fixture("inception/set_b.npz") + common());
  ASSERT_EQ(cached.exit_code, 0) << cached.output;
  for (const char* label : {"FID", "sFID", "Precision", "Recall", "Inception Score"})
    EXPECT_EQ(value_of(cached.output, label), value_of(direct.output, label)) << label;
}

TEST(MetricsCli, ScoreWritesMetricsOfCompletedRunsAndCachesFeatures) {
  const auto dir = testing::temp_dir("metrics_score");
  const auto results = dir + "/results.h5";
  {
    h5::File file(results, h5::File::Mode::kCreate);
    const auto set_b = fx().tensor("cli.set_b").contiguous();
    const auto good = file.root().create_group("runs/good");
    good.set_attr("status", "completed");
    good.write<uint8_t>("images", {6, 64, 64, 3}, set_b.data_ptr<uint8_t>());
    const auto failed = file.root().create_group("runs/failed");
    failed.set_attr("status", "failed");
    failed.write<uint8_t>("images", {6, 64, 64, 3}, set_b.data_ptr<uint8_t>());
    file.root().create_group("runs/tokens_only").set_attr("status", "completed");
  }
  const auto args = "score " + results + " --ref " + fixture("inception/set_a.npz") + common() + " --kid-subset-size 5 --kid-subsets 4";
  const auto r = run_varbench(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| good | 6 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("failed: skipped (status failed)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tokens_only: skipped (no images stored)"), std::string::npos) << r.output;
  double fid = 0;
  {
    h5::File file(results, h5::File::Mode::kReadOnly);
    const auto m = file.root().group("runs/good/metrics");
    fid = m.attr_double("fid");
    EXPECT_TRUE(RelativelyNear(fid, fx().tensor("cli.fid_ab").item<double>(), kSmallSetTolerance));
    EXPECT_TRUE(RelativelyNear(m.attr_double("sfid"), fx().tensor("cli.sfid_ab").item<double>(), kSmallSetTolerance));
    EXPECT_TRUE(RelativelyNear(m.attr_double("inception_score"), fx().tensor("cli.is_b").item<double>(), 1e-5));
    EXPECT_EQ(m.attr_double("precision"), fx().tensor("cli.pr_ab")[0].item<double>());
    EXPECT_TRUE(m.has_attr("kid"));
    EXPECT_FALSE(m.has_attr("inception_score_torch_fidelity"));  // 6 images cannot fill 10 splits
    EXPECT_EQ(m.attr_int("num_images"), 6);
    EXPECT_EQ(m.attr_string("profile"), "adm");
    EXPECT_EQ(file.root().group("runs/good/feature_stats/adm/pool3").attr_int("n"), 6);
    EXPECT_FALSE(file.root().has("runs/failed/metrics"));
  }
  // Again: from the cache, the same numbers.
  const auto again = run_varbench(args);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  std::string identity;
  {
    h5::File file(results, h5::File::Mode::kReadOnly);
    EXPECT_EQ(file.root().group("runs/good/metrics").attr_double("fid"), fid);
    identity = file.root().group("runs/good/feature_stats/adm").attr_string("inception_identity");
  }
  // Other weights (one value changed): the cache is not theirs, so the features are extracted again.
  const auto other = dir + "/other-inception.safetensors";
  std::filesystem::copy_file(weights(), other);
  {
    std::fstream w(other, std::ios::in | std::ios::out | std::ios::binary);
    w.seekg(-4, std::ios::end);
    float value = 0;
    w.read(reinterpret_cast<char*>(&value), 4);
    value = value == 0.5f ? 0.25f : 0.5f;
    w.seekp(-4, std::ios::end);
    w.write(reinterpret_cast<const char*>(&value), 4);
  }
  std::string with_other = args;
  with_other.replace(with_other.find(weights()), weights().size(), other);
  const auto rescored = run_varbench(with_other);
  ASSERT_EQ(rescored.exit_code, 0) << rescored.output;
  h5::File file(results, h5::File::Mode::kReadOnly);
  EXPECT_NE(file.root().group("runs/good/feature_stats/adm").attr_string("inception_identity"), identity);
}

TEST(MetricsCli, BadInputsAreOneLineErrorsNamingFileKeyAndValue) {
  const auto good = fixture("inception/set_a.npz");
  const auto bad = [](const std::string& name) { return fixture("inception/" + name); };
  EXPECT_TRUE(FailsWithOneLine(run_varbench("fid " + bad("bad_no_arr0.npz") + " " + good + common()),
                               {bad("bad_no_arr0.npz"), "'arr_0'", "it has: images"}));
  const auto dir = testing::temp_dir("metrics_bad_inputs");
  EXPECT_TRUE(FailsWithOneLine(run_varbench("features " + bad("bad_no_arr0.npz") + " " + dir + "/x.npz" + common()),
                               {bad("bad_no_arr0.npz"), "no array 'arr_0'"}));
  EXPECT_TRUE(FailsWithOneLine(run_varbench("fid " + bad("bad_float.npz") + " " + good + common()),
                               {bad("bad_float.npz") + ":arr_0", "dtype float32", "expected uint8"}));
  EXPECT_TRUE(FailsWithOneLine(run_varbench("fid " + bad("bad_gray.npz") + " " + good + common()),
                               {bad("bad_gray.npz") + ":arr_0", "shape [5, 64, 64]", "N x H x W x 3"}));
  EXPECT_TRUE(FailsWithOneLine(run_varbench("fid " + bad("bad_one.npz") + " " + good + common()),
                               {bad("bad_one.npz") + ":arr_0", "1 image", "at least 2"}));
  EXPECT_TRUE(FailsWithOneLine(run_varbench("fid " + good + " " + good), {"--inception", good}));
  const auto truncated = dir + "/truncated.safetensors";
  std::filesystem::copy_file(weights(), truncated);
  std::filesystem::resize_file(truncated, 1000);
  EXPECT_TRUE(FailsWithOneLine(run_varbench("fid " + good + " " + good + " --inception " + truncated), {truncated}));
  const auto bad_profile = run_varbench("fid " + good + " " + good + common() + " --profile tf2");  // CLI11's own message
  EXPECT_NE(bad_profile.exit_code, 0);
  EXPECT_NE(bad_profile.output.find("--profile: tf2 not in"), std::string::npos) << bad_profile.output;
}

}  // namespace
}  // namespace varbench
