// What the build lane (Debian's libtorch 1.13, or a PyTorch 2.x wheel with CUDA) decides, checked in each
// lane: fixtures of another torch version are refused, the CUDA version libtorch was built with is
// reported, attention is what upstream VAR runs with this torch (SDPA on >= 2.2, the explicit formula on
// 1.13) with its mask semantics, loaded weights keep no autograd state, and engines run under inference mode.
#include <gtest/gtest.h>

#include "engines/engine.h"
#include "engines/model/loading.h"
#include "engines/model/torch_compat.h"
#include "harness/platform/device.h"
#include "harness/platform/provenance.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::AllCloseRelative;
using testing::error_of;
using testing::fixture;

TEST(Lane, FixturesOfAnotherTorchVersionAreRefusedNamingBoth) {
  EXPECT_EQ(testing::release_of("1.13.0a0"), "1.13.0");
  EXPECT_EQ(testing::release_of("2.14.1+cu130"), "2.14.1");
  EXPECT_EQ(error_of([] { testing::check_fixture_torch_version("f.safetensors", "2.14.1+cu130", "2.14.1"); }), "");
  EXPECT_EQ(error_of([] { testing::check_fixture_torch_version("f.safetensors", "1.13.0a0", "1.13.0"); }), "");
  const auto e = error_of([] { testing::check_fixture_torch_version("f.safetensors", "1.13.0a0", "2.14.1"); });
  EXPECT_NE(e.find("f.safetensors: made by Python torch 1.13.0a0, but this build uses libtorch 2.14.1"), std::string::npos) << e;
  EXPECT_NE(error_of([] { testing::check_fixture_torch_version("f.safetensors", "", "2.14.1"); }).find("no 'torch' metadata"),
            std::string::npos);
  // ... and the fixtures this run made carry this lane's version (fixtures() would throw otherwise).
  EXPECT_EQ(testing::release_of(testing::fixtures().metadata().at("torch")), testing::release_of(TORCH_VERSION));
  EXPECT_EQ(testing::release_of(testing::inception_fixtures().metadata().at("torch")), testing::release_of(TORCH_VERSION));
}

TEST(Lane, CudaVersionIsTheOneLibtorchWasBuiltWith) {
  // VARBENCH_TORCH_CUDA_VERSION: what CMake read from the torch installation ("" for CPU-only builds).
  EXPECT_EQ(device::cuda_built(), std::string(VARBENCH_TORCH_CUDA_VERSION) != "");
  EXPECT_EQ(device::cuda_version(), VARBENCH_TORCH_CUDA_VERSION);
  const auto p = collect_provenance(torch::kCPU);
  EXPECT_EQ(p.cuda_version, VARBENCH_TORCH_CUDA_VERSION);
  EXPECT_EQ(p.libtorch_version, TORCH_VERSION);
  EXPECT_FALSE(p.blas.empty());
  EXPECT_NE(p.blas.rfind("unknown", 0), 0u) << p.blas;
  if (device::cuda_built()) EXPECT_FALSE(p.cudnn_version.empty()) << "PyPI's CUDA wheels are built with cuDNN";
}

TEST(Lane, AttentionIsWhatUpstreamRunsWithThisTorch) {
  const auto backend = compat::attention_backend(torch::kCPU, torch::kFloat32);
  if (TORCH_VERSION_MAJOR >= 2)
    EXPECT_EQ(backend.rfind("scaled_dot_product_attention (masked prefill: ", 0), 0u) << backend;
  else
    EXPECT_EQ(backend.rfind("explicit softmax", 0), 0u) << backend;

  c10::InferenceMode inference;
  torch::manual_seed(0);
  const int64_t B = 2, H = 3, L = 14, c = 16;
  auto q = torch::randn({B, H, L, c}), k = torch::randn({B, H, L, c}), v = torch::randn({B, H, L, c});
  // VAR's block-causal mask over scales of 1, 4 and 9 tokens: 0 where a key's scale <= the query's, else -inf.
  auto scale_of = torch::cat({torch::zeros({1}), torch::ones({4}), torch::full({9}, 2.0)});
  auto mask = torch::where(scale_of.view({L, 1}) >= scale_of.view({1, L}), torch::zeros({}),
                           torch::full({}, -std::numeric_limits<float>::infinity()))
                  .view({1, 1, L, L});
  const auto explicit_formula = [&](const torch::Tensor& m) {
    auto s = torch::matmul(q.to(torch::kFloat64), k.to(torch::kFloat64).transpose(-2, -1));
    if (m.defined()) s = s + m.to(torch::kFloat64);
    return torch::matmul(s.softmax(-1), v.to(torch::kFloat64));
  };
  EXPECT_TRUE(AllCloseRelative(compat::attention(q, k, v, mask), explicit_formula(mask), 1e-5));
  EXPECT_TRUE(AllCloseRelative(compat::attention(q, k, v, {}), explicit_formula({}), 1e-5));
  // The mask is additive with softmax scale 1: a masked key's value never reaches the output.
  auto v_changed = v.clone();
  v_changed.narrow(2, 5, 9).add_(100.0);  // the 3x3 scale's values
  EXPECT_TRUE(compat::attention(q, k, v_changed, mask).narrow(2, 0, 5).equal(compat::attention(q, k, v, mask).narrow(2, 0, 5)));
  // ... and a strided key/value view (the preallocated KV cache narrowed to its filled part) is read correctly.
  auto cache = torch::zeros({B, H, 2 * L, c});
  cache.narrow(2, 0, L).copy_(k);
  EXPECT_TRUE(AllCloseRelative(compat::attention(q, cache.narrow(2, 0, L), v, mask), explicit_formula(mask), 1e-5));
}

TEST(Lane, LoadedWeightsKeepNoAutogradState) {
  auto count_trainable = [](const torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters(true)) n += p.requires_grad();
    return n;
  };
  auto var = load_var({fixture("var_d2.safetensors"), "", 0});
  auto vqvae = load_vqvae({fixture("vqvae_ch32.safetensors"), "", 0});
  auto random = load_var({"", "tiny-d2", 3});
  ASSERT_GT(var->parameters().size(), 0u);
  EXPECT_EQ(count_trainable(*var), 0);
  EXPECT_EQ(count_trainable(*vqvae), 0);
  EXPECT_EQ(count_trainable(*random), 0);
  EXPECT_FALSE(var->is_training());
  place(*var, torch::kCPU, torch::kFloat32);
  EXPECT_EQ(count_trainable(*var), 0) << "placing must keep the weights frozen";
}

// An engine that records what mode its generate() ran in.
class ModeProbe final : public Engine {
 public:
  bool inference_mode = false;
  std::string type() const override { return "probe"; }
  std::vector<std::string> models_used() const override { return {}; }

 protected:
  BatchResult generate(const GenerationRequest&, ScaleObserver&) override {
    inference_mode = c10::InferenceMode::is_enabled();
    return BatchResult{GenerationState(1, {1}, 32, torch::kCPU)};
  }
};

TEST(Lane, EnginesRunUnderInferenceModeWhoeverCallsThem) {
  ASSERT_FALSE(c10::InferenceMode::is_enabled());
  ModeProbe probe;
  ScaleObserver observer;
  probe.run(GenerationRequest{}, observer);
  EXPECT_TRUE(probe.inference_mode);
  EXPECT_FALSE(c10::InferenceMode::is_enabled()) << "the mode ends with the batch";
}

}  // namespace
}  // namespace varbench
