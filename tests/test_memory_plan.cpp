// The memory plan: each run's estimated split (weights / KV cache / activations at the peak) against the
// split the driver measures on the CPU (tracking allocator), within 10%; the plan in --dry-run; a run that
// cannot fit is refused before the sweep, naming its estimate and the capacity.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <fstream>

#include <fmt/format.h>

#include "engines/model/random_init.h"
#include "engines/model/var_transformer.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "harness/driver.h"
#include "harness/results/record_reader.h"
#include "harness/experiment/experiment.h"
#include "harness/experiment/memory_plan.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::run_varbench;

constexpr double kTolerance = 0.10;

void expect_within(int64_t estimate, int64_t measured, const std::string& what) {
  EXPECT_LE(std::abs(static_cast<double>(estimate - measured)), kTolerance * static_cast<double>(measured))
      << what << ": estimated " << estimate << " bytes, measured " << measured;
}

// Engines of every kind, at batch 1 and 2, with the decode as the peak (single, CoDe) or the verify pass
// (speculative); and a deep, narrow model (48 blocks of width 128) whose KV cache makes the last scale the
// peak.
TEST(MemoryPlan, EstimatesAreWithinTenPercentOfTheMeasuredSplitOnTheCpu) {
  const auto dir = testing::temp_dir("memory_plan");
  auto arch = VarArch::named("tiny-d2");
  arch.depth = 48;
  VarTransformer deep(arch);
  random_init(*deep, 5);
  save_safetensors(dir + "/deep.safetensors", state_dict(*deep));
  std::ofstream(dir + "/exp.toml") << R"(
[experiment]
name = "plan"
images = 2
batch_size = [1, 2]
warmup = 0
repetitions = 1
threads = 2
[models.d2]
random_init = "tiny-d2"
[models.d4]
random_init = "tiny-d4"
[models.deep]
checkpoint = ")" + dir + R"(/deep.safetensors"
[vqvae]
random_init = "vqvae-ch32"
[[engines]]
name = "d4"
type = "single"
model = "d4"
[[engines]]
name = "code"
type = "collaborative"
drafter = "d4"
refiner = "d2"
draft_steps = 6
[[engines]]
name = "spec"
type = "speculative"
draft = "d2"
target = "d4"
[[engines]]
name = "deep"
type = "single"
model = "deep"
)";
  const auto r = run_varbench("run " + dir + "/exp.toml --out " + dir + "/p.h5 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto plan = plan_memory(load_experiment(dir + "/exp.toml"), false, "");
  const auto measured = read_run_records(dir + "/p.h5");
  ASSERT_EQ(plan.size(), measured.size());
  bool kv_peak_seen = false;
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& p = plan[i];
    const auto& m = measured[i];
    ASSERT_EQ(p.run_id, m.spec.id);
    SCOPED_TRACE(p.run_id + " (planned peak at " + p.peak_stage + ")");
    std::cout << fmt::format("{:<22} peak {:>11} est. vs {:>11} measured ({:+.1f}%), activations {:+.1f}%, weights {:+.2f}%, at {}\n",
                             p.run_id, p.peak_bytes, m.peak_bytes, 100.0 * (p.peak_bytes - m.peak_bytes) / m.peak_bytes,
                             100.0 * (p.activations_bytes - m.activations_bytes) / std::max<int64_t>(m.activations_bytes, 1),
                             100.0 * (p.weights_bytes - m.weights_bytes) / m.weights_bytes, p.peak_stage);
    EXPECT_EQ(p.weights_bytes, m.weights_bytes) << "weights are computed exactly (parameters and buffers)";
    expect_within(p.peak_bytes, m.peak_bytes, "peak");
    expect_within(p.activations_bytes, m.activations_bytes, "activations");
    if (m.kv_cache_bytes > 0) {
      EXPECT_EQ(p.kv_cache_bytes, m.kv_cache_bytes) << "the KV cache at the peak is computed exactly";
      kv_peak_seen |= p.run_id.rfind("deep", 0) == 0;
    } else {
      EXPECT_EQ(p.kv_cache_bytes, 0);
    }
  }
  EXPECT_TRUE(kv_peak_seen) << "the deep model's peak is at a scale, with its KV cache";
}

TEST(MemoryPlan, DryRunPrintsThePlanAndARunThatCannotFitIsRefusedBeforeTheSweep) {
  const auto dir = testing::temp_dir("memory_plan_capacity");
  std::ofstream(dir + "/exp.toml") << testing::experiment_toml("name = \"cap\"\nimages = 4\nbatch_size = [1, 4]\n", {{"d2", "tiny-d2"}},
                                                               testing::single_engine("d2", "d2"));
  const auto dry = run_varbench("run " + dir + "/exp.toml --dry-run --memory-capacity-gb 0.1");
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_NE(dry.output.find("| d2,batch_size=1 | cpu | fp32 | 1 | 0.02 | 0.00 | 0.05 | 0.07 | decode | yes |"), std::string::npos)
      << dry.output;
  EXPECT_NE(dry.output.find("| d2,batch_size=4 | cpu | fp32 | 4 | 0.02 | 0.00 | 0.19 | 0.21 | decode | **no** |"), std::string::npos)
      << dry.output;
  EXPECT_NE(dry.output.find("sweep peak: 0.21 GiB (run 'd2,batch_size=4'"), std::string::npos) << dry.output;
  // Batch 4 (~0.21 GiB) cannot fit in 0.1 GiB: refused before any work, naming estimate and capacity.
  const auto refused = run_varbench("run " + dir + "/exp.toml --out " + dir + "/c.h5 --memory-capacity-gb 0.1");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("run 'd2,batch_size=4' needs an estimated 0.21 GiB at its peak (decode: weights 0.02 + KV cache 0.00 "
                                "+ activations 0.19 GiB), more than the device's 0.10 GiB"),
            std::string::npos)
      << refused.output;
  EXPECT_EQ(refused.output.find("d2,batch_size=1' needs"), std::string::npos) << refused.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/c.h5"));
  EXPECT_EQ(run_varbench("run " + dir + "/exp.toml --out " + dir + "/c.h5 --memory-capacity-gb 0.5 --quiet").exit_code, 0);
}

}  // namespace
}  // namespace varbench
