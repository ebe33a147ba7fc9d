// bf16 autocast (dtype "bf16-autocast"): fp32 weights, matmuls in bf16, on the CPU as on CUDA. Its logits
// stay within a stated tolerance of fp32's, and differ from them (the test sees bf16 arithmetic, not fp32
// run twice); a sweep with it completes on the CPU and records the dtype.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "engines/model/fast_kernels.h"
#include "engines/model/generation.h"
#include "engines/model/loading.h"
#include "engines/model/precision.h"
#include "engines/model/torch_compat.h"
#include "formats/hdf5.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

// bf16 keeps 8 bits of mantissa (relative rounding 2^-9 = 0.2% per operation); through 3 blocks and the head
// the first step's logits measured 0.39% (libtorch 1.13) of their largest magnitude off fp32's: 5% leaves
// room for other kernels and models, and a bf16 computation is never closer than 1e-3.
constexpr double kTolerance = 5e-2;

TEST(Autocast, Bf16AutocastLogitsOnTheCpuAreWithinToleranceOfFp32) {
  const auto policy = PrecisionPolicy::of(parse_precision("bf16-autocast"));
  EXPECT_TRUE(policy.autocast);
  EXPECT_EQ(policy.autocast_dtype, torch::kBFloat16);
  EXPECT_EQ(policy.value_cache_dtype, torch::kBFloat16);
  EXPECT_EQ(policy.key_cache_dtype, torch::kFloat32);
  EXPECT_EQ(precision_name(Precision::kAutocastBFloat16), "bf16-autocast");
  auto model = load_var({"", "tiny-d3", 0});
  c10::InferenceMode inference;
  const auto labels = torch::tensor({3, 17}, torch::kLong);
  // Scale 0 through every block and the head: the logits of the first step, in each precision.
  auto first_logits = [&](const PrecisionPolicy& p) {
    ModelPass pass(model, labels, true, p, model->arch().schedule.total_tokens(), Kernels::kExact);
    GenerationState state(2, model->arch().schedule.sides, model->arch().code_dim, torch::kCPU);
    auto logits = pass.step(state, 0);
    EXPECT_EQ(pass.cache().layer(0)->values.scalar_type(), p.value_cache_dtype);
    return logits;
  };
  const auto fp32 = first_logits(PrecisionPolicy::of(Precision::kFloat32));
  const auto low = first_logits(policy);
  ASSERT_EQ(low.sizes(), fp32.sizes());
  const double scale = fp32.abs().max().item<double>();
  const double error = (low.to(torch::kFloat32) - fp32).abs().max().item<double>() / scale;
  std::cout << "bf16-autocast vs fp32 logits: max error " << error << " of the largest logit\n";
  EXPECT_LE(error, kTolerance);
  EXPECT_GE(error, 1e-3) << "no bf16 rounding seen: autocast did not reach the CPU matmuls";
}

TEST(Autocast, ASweepInBf16AutocastCompletesOnTheCpuAndRecordsItsDtype) {
  const auto dir = testing::temp_dir("bf16_autocast");
  std::ofstream(dir + "/exp.toml") << testing::experiment_toml(
      "name = \"bf16\"\nimages = 2\nbatch_size = 2\ndtype = [\"fp32\", \"bf16-autocast\"]\n", {{"m", "tiny-d2"}},
      testing::single_engine("m", "m"));
  const auto r = testing::run_varbench("run " + dir + "/exp.toml --out " + dir + "/b.h5 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  h5::File f(dir + "/b.h5", h5::File::Mode::kReadOnly);
  const auto g = f.root().group("runs/m,dtype=bf16-autocast");
  EXPECT_EQ(g.attr_string("status"), "completed");
  EXPECT_EQ(g.attr_string("dtype"), "bf16-autocast");
  EXPECT_EQ(g.dataset("tokens/scale_9").dims(), f.root().group("runs/m,dtype=fp32").dataset("tokens/scale_9").dims());
  const auto tokens = g.dataset("tokens/scale_9").read<int32_t>();
  EXPECT_TRUE(std::all_of(tokens.begin(), tokens.end(), [](int32_t t) { return t >= 0 && t < 4096; }));
}

}  // namespace
}  // namespace varbench
