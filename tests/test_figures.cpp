// scripts/figures.py (through `varbench report`) renders every figure from a small result file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "tests/test_support.h"

namespace varbench {
namespace {

TEST(Figures, EveryFigureAndTableFromASmallResultFile) {
  const auto dir = testing::temp_dir("figures");
  std::ofstream(dir + "/exp.toml") << R"(
[experiment]
name = "figs"
images = 2
batch_size = [1, 2]
warmup = 0
repetitions = 1
baseline = "large"
[models.large]
random_init = "tiny-d3"
[models.small]
random_init = "tiny-d2"
[vqvae]
random_init = "vqvae-ch32"
[[engines]]
name = "large"
type = "single"
model = "large"
[[engines]]
name = "code"
type = "collaborative"
drafter = "large"
refiner = "small"
draft_steps = 6
[[engines]]
name = "spec"
type = "speculative"
draft = "small"
target = "large"
)";
  const auto results = dir + "/r.h5";
  const auto run = testing::run_varbench("run " + dir + "/exp.toml --out " + results + " --threads 2 --quiet");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // Quality figures need metrics: give two runs FID-family numbers as `varbench score` writes them
  // (scoring itself is tested with the metrics; here only the drawing is).
  const auto inject = testing::run_command(std::string(VARBENCH_PYTHON) + " -c \"import h5py\n"
                                           "f = h5py.File('" + results + "', 'r+')\n"
                                           "for run, fid in (('large,batch_size=2', 30.0), ('code,batch_size=2', 31.5)):\n"
                                           "    m = f['runs'][run].require_group('metrics')\n"
                                           "    m.attrs['fid'] = fid; m.attrs['inception_score'] = 2.0; m.attrs['precision'] = 0.5; m.attrs['recall'] = 0.4\n\"");
  ASSERT_EQ(inject.exit_code, 0) << inject.output;
  const auto report = testing::run_varbench("report " + results + " --out " + dir + "/figs");
  ASSERT_EQ(report.exit_code, 0) << report.output;
  EXPECT_NE(report.output.find("| code,batch_size=2 |"), std::string::npos) << report.output;
  std::ifstream in(dir + "/figs/figures.json");
  const auto manifest = nlohmann::json::parse(in);
  EXPECT_TRUE(manifest["skipped"].empty()) << manifest.dump(2);
  const std::map<std::string, size_t> panels{{"fig1_speedup_vs_fid", 1}, {"fig5b_batch_scaling", 2}, {"fig5c_scale_latency", 1},
                                             {"fig5c_phase_memory", 3}, {"table3_memory", 1}, {"speculative_acceptance", 1}, {"table1", 0}, {"table6", 0}};
  for (const auto& [name, count] : panels) {
    ASSERT_TRUE(manifest["figures"].contains(name)) << name;
    EXPECT_EQ(manifest["figures"][name]["panels"].size(), count) << name;
    for (const auto& f : manifest["figures"][name]["files"]) {
      const std::string path = f;
      ASSERT_TRUE(std::filesystem::exists(path)) << path;
      // A rendered PNG/PDF is kilobytes even for one bar; a markdown table holds at least its header.
      EXPECT_GT(std::filesystem::file_size(path), count ? 5000u : 100u) << path;
    }
    if (count) {
      EXPECT_EQ(manifest["figures"][name]["files"].size(), 2u) << name;  // PNG and PDF
    }
  }
  // The phase memory as small multiples: one panel per run (one per engine here, at its largest batch), each
  // with its own phases on the x axis: the speculative run's rounds, the single model's scales.
  const auto& phases = manifest["figures"]["fig5c_phase_memory"]["phase_labels"];
  ASSERT_EQ(phases.size(), 3u) << phases.dump();
  auto has_label = [&](const std::string& run, const std::string& prefix) {
    for (const auto& l : phases[run])
      if (l.get<std::string>().rfind(prefix, 0) == 0) return true;
    return false;
  };
  EXPECT_TRUE(has_label("spec,batch_size=2", "verify s")) << phases.dump();
  EXPECT_FALSE(has_label("large,batch_size=2", "verify")) << phases.dump();
  EXPECT_TRUE(has_label("large,batch_size=2", "s9")) << phases.dump();
  EXPECT_TRUE(has_label("code,batch_size=2", "prefix")) << phases.dump();
  // Fig. 1's points carry 95% intervals of their speed-ups as error bars (the injected FIDs have none).
  EXPECT_EQ(manifest["figures"]["fig1_speedup_vs_fid"]["error_bars"]["speedup"], 2) << manifest["figures"]["fig1_speedup_vs_fid"].dump(2);
  for (const auto& point : manifest["figures"]["fig1_speedup_vs_fid"]["points"]) {
    EXPECT_LE(point["speedup_lower"].get<double>(), point["speedup"].get<double>() + 1e-12) << point.dump();
    EXPECT_GE(point["speedup_upper"].get<double>(), point["speedup"].get<double>() - 1e-12) << point.dump();
  }
  std::ifstream t1(dir + "/figs/table1.md");
  std::string table1((std::istreambuf_iterator<char>(t1)), std::istreambuf_iterator<char>());
  EXPECT_NE(table1.find("| code | code,batch_size=2 (batch 2, measured)"), std::string::npos) << table1;
  EXPECT_NE(table1.find("31.50"), std::string::npos) << table1;
  std::ifstream t6(dir + "/figs/table6.md");
  std::string table6((std::istreambuf_iterator<char>(t6)), std::istreambuf_iterator<char>());
  EXPECT_NE(table6.find("| 6 | code,batch_size=2 | 31.50 |"), std::string::npos) << table6;
}

// Fig. 1 as the paper draws it: the speed-ups come from a speed file (batch 2 and 4 here, as Table 1's
// batch 64) and the FIDs from a quality file (batch 1, reference RNG, as the FID protocol); runs pair by
// what defines their output (engine, parameters, models by content, sampling), each batch size is its own
// group, and the quality file's own batch-1 timings are not mixed in.
TEST(Figures, FigureOneTakesSpeedFromTheSpeedFileAndQualityFromTheQualityFile) {
  const auto dir = testing::temp_dir("figures_paired");
  auto experiment = [](const std::string& name, const std::string& batches, const std::string& extra) {
    return R"(
[experiment]
name = ")" + name + R"("
images = 4
batch_size = )" + batches + R"(
warmup = 0
repetitions = 1
baseline = "large"
)" + extra + R"(
[models.large]
random_init = "tiny-d3"
[models.small]
random_init = "tiny-d2"
[vqvae]
random_init = "vqvae-ch32"
[[engines]]
name = "large"
type = "single"
model = "large"
[[engines]]
name = "code"
type = "collaborative"
drafter = "large"
refiner = "small"
draft_steps = [4, 6]
)";
  };
  std::ofstream(dir + "/speed.toml") << experiment("speed", "[2, 4]", "");
  std::ofstream(dir + "/quality.toml") << experiment("quality", "1", "rng = \"reference\"\nstore_images = true");
  for (const char* name : {"speed", "quality"}) {
    const auto r = testing::run_varbench(fmt::format("run {0}/{1}.toml --out {0}/{1}.h5 --threads 2 --quiet", dir, name));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const auto inject = testing::run_command(std::string(VARBENCH_PYTHON) + " -c \"import h5py\n"
                                           "f = h5py.File('" + dir + "/quality.h5', 'r+')\n"
                                           "for run, fid in (('large', 30.0), ('code,draft_steps=4', 33.0), ('code,draft_steps=6', 31.5)):\n"
                                           "    f['runs'][run].require_group('metrics').attrs['fid'] = fid\n\"");
  ASSERT_EQ(inject.exit_code, 0) << inject.output;
  const auto report = testing::run_varbench(fmt::format("report {0}/speed.h5 {0}/quality.h5 --out {0}/figs", dir));
  ASSERT_EQ(report.exit_code, 0) << report.output;
  std::ifstream in(dir + "/figs/figures.json");
  const auto fig1 = nlohmann::json::parse(in)["figures"]["fig1_speedup_vs_fid"];
  ASSERT_EQ(fig1["points"].size(), 6u) << fig1.dump(2);  // 3 scored runs x 2 batch sizes
  std::map<int64_t, int> per_batch;
  for (const auto& p : fig1["points"]) {
    EXPECT_EQ(p["quality_file"], dir + "/quality.h5") << p.dump();
    EXPECT_EQ(p["speed_file"], dir + "/speed.h5") << p.dump();
    per_batch[p["batch"].get<int64_t>()]++;
    const std::string run = p["run"], speed_run = p["speed_run"];
    // "code,draft_steps=4" pairs with "code,batch_size=B,draft_steps=4", "large" with "large,batch_size=B".
    const auto comma = run.find(',');
    const auto expected = run.substr(0, comma) + ",batch_size=" + std::to_string(p["batch"].get<int64_t>()) +
                          (comma == std::string::npos ? "" : run.substr(comma));
    EXPECT_EQ(speed_run, expected);
    if (run == "large") EXPECT_DOUBLE_EQ(p["speedup"].get<double>(), 1.0);
  }
  EXPECT_EQ(per_batch, (std::map<int64_t, int>{{2, 3}, {4, 3}}));
  EXPECT_TRUE(fig1["paper_markers"].empty()) << "no batch-64 group: the paper's batch-64 markers are not comparable";
}

}  // namespace
}  // namespace varbench
