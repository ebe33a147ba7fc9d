// The FID Inception against the PyTorch reference (tests/reference/inception_reference.py: torchvision
// 0.14's Inception3 patched as pytorch-fid patches it, random weights, legacy-format .pth converted by
// scripts/convert_checkpoint.py): preprocessing of both profiles, the TF1 resize by hand, features,
// strict loading of pytorch-fid's key layout.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "formats/weights.h"
#include "metrics/extract.h"
#include "metrics/inception.h"
#include "metrics/preprocess.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::error_of;
using testing::AllCloseRelative;
using testing::fixture;

constexpr double kFeatureTolerance = 1e-5;     // relative, fp32 on CPU (the contract)
constexpr double kPreprocessTolerance = 1e-7;  // same ops as the reference: equal up to the last bit or so

const SafetensorsFile& fx() { return testing::inception_fixtures(); }

std::string weights_path() { return fixture("inception/inception_random.safetensors"); }

metrics::FidInception& net() {
  static metrics::FidInception n = metrics::load_fid_inception(weights_path());
  return n;
}

class InceptionParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { torch::set_num_threads(testing::kParityThreads); }
};

TEST_P(InceptionParity, PreprocessingMatchesTheReference) {
  const auto profile = metrics::parse_profile(GetParam());
  for (const std::string set : {"batch", "small"}) {
    const auto x = metrics::preprocess(fx().tensor(set + ".images"), profile);
    EXPECT_TRUE(AllCloseRelative(x, fx().tensor(set + "." + GetParam() + ".input"), kPreprocessTolerance)) << set;
  }
}

TEST_P(InceptionParity, FeaturesMatchTheReference) {
  const auto profile = metrics::parse_profile(GetParam());
  c10::InferenceMode inference;
  for (const std::string set : {"batch", "small"}) {
    const auto f = net()->forward(metrics::preprocess(fx().tensor(set + ".images"), profile));
    const auto key = set + "." + GetParam();
    ASSERT_EQ(f.pool3.sizes(), (std::vector<int64_t>{f.pool3.size(0), metrics::kPool3Dims}));
    ASSERT_EQ(f.spatial.size(1), metrics::kSpatialDims);
    EXPECT_TRUE(AllCloseRelative(f.pool3, fx().tensor(key + ".pool3"), kFeatureTolerance)) << key;
    EXPECT_TRUE(AllCloseRelative(f.logits, fx().tensor(key + ".logits"), kFeatureTolerance)) << key;
    EXPECT_TRUE(AllCloseRelative(f.spatial, fx().tensor(key + ".spatial"), kFeatureTolerance)) << key;
  }
}

TEST_P(InceptionParity, StreamedExtractionKeepsFeaturesAndTheirStatistics) {
  metrics::ExtractOptions options;
  options.profile = metrics::parse_profile(GetParam());
  options.batch_size = 2;  // 3 images: a full and a partial batch
  auto images = metrics::open_tensor_images(fx().tensor("batch.images").clone(), "batch");
  int64_t last_done = -1, reports = 0;
  const auto f = metrics::extract_features(net(), *images, options, [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 3);
    EXPECT_GE(done, last_done);
    last_done = done;
    ++reports;
  });
  EXPECT_EQ(last_done, 3);
  EXPECT_EQ(reports, 3);  // start, after each batch
  ASSERT_EQ(f.count(), 3);
  const auto key = "batch." + GetParam();
  EXPECT_TRUE(AllCloseRelative(f.pool3, fx().tensor(key + ".pool3"), kFeatureTolerance));
  EXPECT_TRUE(AllCloseRelative(f.logits, fx().tensor(key + ".logits"), kFeatureTolerance));
  const auto pool3 = f.pool3.to(torch::kFloat64);
  EXPECT_TRUE(AllCloseRelative(f.pool3_stats.sum, pool3.sum(0), 1e-12));
  EXPECT_TRUE(AllCloseRelative(f.pool3_stats.sum_outer, torch::mm(pool3.t(), pool3), 1e-12));
  const auto spatial = fx().tensor(key + ".spatial").to(torch::kFloat64);
  EXPECT_TRUE(AllCloseRelative(f.spatial_stats.sum, spatial.sum(0), kFeatureTolerance));
}

INSTANTIATE_TEST_SUITE_P(Profiles, InceptionParity, ::testing::Values("adm", "pytorch-fid"),
                         [](const auto& info) { return info.param == "adm" ? std::string("adm") : std::string("pytorch_fid"); });

TEST(InceptionPreprocessing, Tf1ResizeUpsamplesWithoutHalfPixelOffset) {
  // 2 x 3 -> 3 x 4. Width: scale 3/4, sources 0, 0.75, 1.5, 2.25 -> taps (0,1,w 0), (0,1,.75), (1,2,.5),
  // (2,2,.25). Height: scale float32(2/3), sources 0, 0.6666667, 1.3333334 -> (0,1,0), (0,1,.6666667), (1,1,..).
  const auto x = torch::tensor({0.f, 4.f, 8.f, 12.f, 16.f, 20.f}).view({1, 1, 2, 3});
  const auto y = metrics::resize_bilinear_tf1(x, 3, 4);
  // Rows: [0,3,6,8] and [12,15,18,20]; the middle row adds (12 * float32(2/3)) = 8 (rounded in float32).
  const auto expected = torch::tensor({0.f, 3.f, 6.f, 8.f, 8.f, 11.f, 14.f, 16.f, 12.f, 15.f, 18.f, 20.f}).view({1, 1, 3, 4});
  EXPECT_TRUE(torch::equal(y, expected)) << y;
  // pytorch-fid's half-pixel resize gives different values on the same input (first row 0, 2.5, 5.5, 8).
  namespace F = torch::nn::functional;
  const auto half_pixel = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{3, 4}).mode(torch::kBilinear).align_corners(false));
  EXPECT_FALSE(torch::allclose(half_pixel, expected));
}

TEST(InceptionPreprocessing, Tf1ResizeDownsamplesByPickingSourcePixels) {
  // 4 -> 2 along both axes: scale 2, sources 0 and 2, weights 0: pixels (0,0), (0,2), (2,0), (2,2).
  const auto x = torch::arange(16, torch::kFloat32).view({1, 1, 4, 4});
  const auto y = metrics::resize_bilinear_tf1(x, 2, 2);
  EXPECT_TRUE(torch::equal(y, torch::tensor({0.f, 2.f, 8.f, 10.f}).view({1, 1, 2, 2}))) << y;
  // 3 -> 2: scale 1.5, sources 0 and 1.5: (x0) and (x1 + x2)/2.
  const auto z = metrics::resize_bilinear_tf1(torch::tensor({10.f, 20.f, 40.f}).view({1, 1, 1, 3}), 1, 2);
  EXPECT_TRUE(torch::equal(z, torch::tensor({10.f, 30.f}).view({1, 1, 1, 2}))) << z;
}

TEST(InceptionPreprocessing, ProfilesScaleToPlusMinusOne) {
  const auto white = torch::full({1, 299, 299, 3}, 255, torch::kUInt8), black = torch::zeros({1, 299, 299, 3}, torch::kUInt8);
  // adm: (255 - 128) / 128 and -1; pytorch-fid: 2 * 1 - 1 and -1.
  EXPECT_FLOAT_EQ(metrics::preprocess(white, metrics::Profile::kAdm).max().item<float>(), 127.f / 128.f);
  EXPECT_FLOAT_EQ(metrics::preprocess(black, metrics::Profile::kAdm).min().item<float>(), -1.f);
  EXPECT_FLOAT_EQ(metrics::preprocess(white, metrics::Profile::kPytorchFid).max().item<float>(), 1.f);
  EXPECT_FLOAT_EQ(metrics::preprocess(black, metrics::Profile::kPytorchFid).min().item<float>(), -1.f);
  EXPECT_THROW(metrics::parse_profile("tf2"), std::runtime_error);
}

// ------------------------------------------------------------------------------------------------
TEST(InceptionLoading, ConvertedLegacyCheckpointKeepsBatchNormCountersWhichTheLoaderIgnores) {
  SafetensorsFile file(weights_path());
  int64_t counters = 0;
  for (const auto& [key, info] : file.entries())
    if (key.size() > 20 && key.compare(key.size() - 20, 20, ".num_batches_tracked") == 0) ++counters;
  EXPECT_EQ(counters, 94);  // one per conv unit, as in pt_inception-2015-12-05-6726825d.pth
  const auto keys = state_dict(*net());
  EXPECT_EQ(static_cast<int64_t>(keys.size()) + counters, static_cast<int64_t>(file.entries().size()));
  EXPECT_TRUE(keys.count("Mixed_6d.branch1x1.bn.running_var"));
  EXPECT_TRUE(keys.count("Mixed_7c.branch3x3dbl_3b.conv.weight"));
  EXPECT_TRUE(keys.count("fc.bias"));
}

TEST(InceptionLoading, ExtraAndMissingKeysAreErrorsNamingThem) {
  SafetensorsFile file(weights_path());
  auto tensors = file.tensors();
  const auto dir = testing::temp_dir("inception_keys");
  tensors["Mixed_5b.branch_pool.bn.extra"] = torch::zeros({1});
  tensors.erase("fc.bias");
  const auto path = dir + "/bad_keys.safetensors";
  save_safetensors(path, tensors);
  const auto msg = error_of([&] { metrics::load_fid_inception(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing key: fc.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected key: Mixed_5b.branch_pool.bn.extra"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("num_batches_tracked"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(InceptionLoading, TruncatedWeightsFileIsAOneLineError) {
  const auto dir = testing::temp_dir("inception_truncated");
  const auto path = dir + "/truncated.safetensors";
  std::filesystem::copy_file(weights_path(), path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const auto msg = error_of([&] { metrics::load_fid_inception(path); });
  ASSERT_FALSE(msg.empty());
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace
}  // namespace varbench
