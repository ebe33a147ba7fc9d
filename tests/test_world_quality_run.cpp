// [quality] in experiment files (harness/analysis/world_scoring.h): every completed run of the sweep is scored in
// the toy world's feature space into /runs/<run>/metrics_world, the table shows the scores, scores that are
// up to date are kept, a run that cannot be scored is reported (and the exit code says so) without losing
// the runs, and a [quality] table that cannot work stops the experiment before any work.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "formats/hdf5.h"
#include "test_support.h"

namespace varbench::testing {
namespace {

std::string write(const std::string& dir, const std::string& text) {
  const auto path = dir + "/exp.toml";
  std::ofstream(path) << text;
  return path;
}

std::string quality(const std::string& network, const std::string& reference) {
  return "[quality]\nfeatures = \"world\"\nnetwork = \"" + network + "\"\nreference = \"" + reference + "\"\n";
}

const char* kEngines = R"(
[[engines]]
name = "large"
type = "single"
model = "large"
[[engines]]
name = "small"
type = "single"
model = "small"
[[engines]]
name = "null"
type = "null"
model = "large"
)";

// The trained toy world, one image per class.
std::string toy_world_experiment() {
  const auto m = source_path("models/toy-world/");
  return R"(
[experiment]
name = "t"
classes = "0-31"
images_per_class = 1
batch_size = 32
warmup = 0
repetitions = 1
seed = 5
baseline = "large"
[sampling]
cfg = 2.0
top_k = 0
[models.large]
checkpoint = ")" + m + R"(var-large.safetensors"
[models.small]
checkpoint = ")" + m + R"(var-small.safetensors"
[vqvae]
checkpoint = ")" + m + R"(vqvae.safetensors"
)" + quality(m + "world-features.safetensors", m + "world-reference.npz") + kEngines;
}

TEST(QualityInRun, ScoresEveryRunAfterTheSweepAndKeepsScoresThatAreUpToDate) {
  const auto dir = temp_dir("quality_run");
  const auto path = write(dir, toy_world_experiment());
  const auto r = run_varbench("run " + path + " --out " + dir + "/r.h5 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| FD (world) [95% CI] | class acc [95% CI] | vs baseline at 95% |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  large: FD "), std::string::npos) << r.output;
  double fd = 0;
  {  // closed before the next run opens the file for writing
    h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
    const auto runs = f.root().group("runs");
    for (const char* run : {"large", "small"}) {
      const auto m = runs.group(std::string(run) + "/metrics_world");
      EXPECT_EQ(m.attr_int("num_images"), 32);
      EXPECT_GT(m.attr_double("fd"), 0.0);
      const double accuracy = m.attr_double("class_accuracy");
      EXPECT_TRUE(accuracy >= 0.0 && accuracy <= 1.0) << accuracy;
      EXPECT_EQ(m.dataset("features").dims(), (std::vector<uint64_t>{32, 128}));
      EXPECT_EQ(m.dataset("logits").dims(), (std::vector<uint64_t>{32, 32}));
      EXPECT_EQ(m.attr_string("reference"), source_path("models/toy-world/world-reference.npz"));
    }
    EXPECT_FALSE(runs.has("null/metrics_world"));  // the null engine generates nothing to score
    fd = runs.group("large/metrics_world").attr_double("fd");
    // Every value with its 95% interval, and how it was made.
    for (const char* run : {"large", "small"}) {
      const auto m = runs.group(std::string(run) + "/metrics_world");
      for (const char* key : {"fd", "class_accuracy", "precision", "recall", "kid"}) {
        const double v = m.attr_double(key), lo = m.attr_double(std::string(key) + "_lower"), hi = m.attr_double(std::string(key) + "_upper");
        EXPECT_TRUE(lo <= v && v <= hi && lo < hi) << run << " " << key << " " << v << " [" << lo << ", " << hi << "]";
      }
      EXPECT_EQ(m.attr_int("bootstrap_resamples"), 1000);
      EXPECT_EQ(m.attr_int("bootstrap_seed"), 0);
    }
    // The small model against the large (the experiment's baseline), paired on the same image slots.
    EXPECT_FALSE(runs.has("large/metrics_world/vs_baseline"));
    const auto v = runs.group("small/metrics_world/vs_baseline");
    EXPECT_EQ(v.attr_string("baseline_run"), "large");
    EXPECT_EQ(v.attr_int("paired"), 1);
    const double difference = v.attr_double("fd_difference");
    EXPECT_NEAR(difference, runs.group("small/metrics_world").attr_double("fd") - fd, 1e-9 * fd);
    EXPECT_LE(v.attr_double("fd_difference_lower"), difference);
    EXPECT_GE(v.attr_double("fd_difference_upper"), difference);
    const auto verdict = v.attr_string("verdict");
    EXPECT_TRUE(verdict == "better" || verdict == "worse" || verdict == "indistinguishable at 95%") << verdict;
    EXPECT_EQ(verdict == "indistinguishable at 95%", v.attr_double("fd_difference_lower") <= 0 && v.attr_double("fd_difference_upper") >= 0);
    const double p = v.attr_double("fd_permutation_p");
    EXPECT_TRUE(p > 0 && p <= 1) << p;
    EXPECT_GT(v.attr_double("fd_detectable_difference"), 0);
  }
  // Again: nothing is generated or scored anew, and the table (every column) still shows the stored scores.
  const auto again = run_varbench("run " + path + " --out " + dir + "/r.h5 --threads 2 --wide");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("  large: FD "), std::string::npos) << again.output;
  EXPECT_EQ(again.output.find("  small vs large: FD "), std::string::npos) << "compared again:\n" << again.output;
  EXPECT_NE(again.output.find(fmt::format("{:.3f}", fd)), std::string::npos) << again.output;
  // Fig. 1 with real points: speed-up against the world FD.
  const auto report = run_varbench("report " + dir + "/r.h5 --out " + dir + "/figures");
  ASSERT_EQ(report.exit_code, 0) << report.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/figures/fig1_speedup_vs_fd_world.png")) << report.output;
  EXPECT_EQ(report.output.find("skipped fig1"), std::string::npos) << report.output;
}

TEST(QualityInRun, ANetworkRetrainedIntoTheSamePathRescoresTheRuns) {
  const auto dir = temp_dir("quality_retrained");
  const auto network = dir + "/features.safetensors";
  std::filesystem::copy_file(source_path("models/toy-world/world-features.safetensors"), network);
  auto toml = toy_world_experiment();
  toml.replace(toml.find("classes = \"0-31\""), 16, "classes = \"0-7\"");
  toml.replace(toml.find("batch_size = 32"), 15, "batch_size = 8");
  toml.replace(toml.find(source_path("models/toy-world/world-features.safetensors")),
               source_path("models/toy-world/world-features.safetensors").size(), network);
  const auto path = write(dir, toml);
  const auto first = run_varbench("run " + path + " --out " + dir + "/r.h5 --threads 2");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  ASSERT_NE(first.output.find("  large: FD "), std::string::npos) << first.output;
  std::string identity;
  {
    h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
    identity = f.root().group("runs/large/metrics_world").attr_string("feature_network_identity");
  }
  // "Retrained": the same file name, one weight changed (the file's last float32, set to 0.5).
  {
    std::fstream file(network, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(-4, std::ios::end);
    float value = 0;
    file.read(reinterpret_cast<char*>(&value), 4);
    value = value == 0.5f ? 0.25f : 0.5f;
    file.seekp(-4, std::ios::end);
    file.write(reinterpret_cast<const char*>(&value), 4);
  }
  const auto again = run_varbench("run " + path + " --out " + dir + "/r.h5 --threads 2");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("  large: FD "), std::string::npos) << "not re-scored:\n" << again.output;
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  EXPECT_NE(f.root().group("runs/large/metrics_world").attr_string("feature_network_identity"), identity);
}

TEST(QualityInRun, ARunThatCannotBeScoredIsReportedAndTheRunsStay) {
  // Random tiny models decode 256 px images; the world network was trained on 64 px ones.
  const auto dir = temp_dir("quality_fail");
  const auto toml = R"(
[experiment]
name = "t"
images = 2
batch_size = 2
warmup = 0
repetitions = 1
[models.large]
random_init = "tiny-d2"
[models.small]
random_init = "tiny-d2"
[vqvae]
random_init = "vqvae-ch32"
)" + quality(fixture("world/world-features.safetensors"), fixture("world/reference.npz")) + kEngines;
  const auto r = run_varbench("run " + write(dir, toml) + " --out " + dir + "/r.h5 --threads 2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("large: world quality failed: world features: images are 256x256, the network was trained on 64x64"),
            std::string::npos)
      << r.output;
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  EXPECT_EQ(f.root().group("runs/large").attr_string("status"), "completed");
  EXPECT_EQ(f.root().group("runs/small").attr_string("status"), "completed");
}

TEST(QualityInRun, AQualityTableThatCannotWorkStopsBeforeAnyWork) {
  const auto dir = temp_dir("quality_static");
  auto toml = toy_world_experiment();
  toml.replace(toml.find("seed = 5"), 8, "seed = 5\nstore_images = false");
  toml.replace(toml.find("world-reference.npz"), 19, "no-such-reference.npz");
  const auto path = write(dir, toml);
  const auto r = run_varbench("run " + path + " --out " + dir + "/r.h5");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(path + ":21: [quality] scores the stored images, and [experiment] store_images = false"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("[quality] reference = \"" + source_path("models/toy-world/no-such-reference.npz") + "\": no such file"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.h5"));
  auto inception = toy_world_experiment();
  inception.replace(inception.find("features = \"world\""), 18, "features = \"inception\"");
  const auto p = run_varbench("run " + write(dir, inception) + " --dry-run");
  EXPECT_NE(p.output.find("[quality] features = 'inception': only \"world\""), std::string::npos) << p.output;
}

}  // namespace
}  // namespace varbench::testing
