// The toy world's feature network and quality metrics (metrics/world_features.h, metrics/world_quality.h):
// parity of features and logits with the PyTorch network of scripts/toy_world/train.py on world images,
// analytic cases of the metrics, and the errors for bad inputs.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/image_files.h"
#include "formats/safetensors.h"
#include "metrics/image_sources.h"
#include "metrics/statistics.h"
#include "metrics/world_features.h"
#include "metrics/world_quality.h"
#include "test_support.h"

namespace varbench::testing {
namespace {

using metrics::load_world_feature_net;
using metrics::load_world_reference;
using metrics::world_quality;

std::string world_fixture(const std::string& name) { return fixture("world/" + name); }

TEST(WorldFeatures, MatchesPyTorchOnWorldImages) {
  torch::set_num_threads(kParityThreads);
  auto net = load_world_feature_net(world_fixture("world-features.safetensors"), torch::kCPU);
  EXPECT_EQ(net->channels, (std::vector<int64_t>{8, 16, 24}));
  EXPECT_EQ(net->num_classes, 32);
  auto images = metrics::open_npz_images(world_fixture("images.npz"));
  const auto out = metrics::world_features_of(net, *images, /*batch_size=*/10);  // 10 + 10 + 4: batching must not matter
  const auto& expected = fixture_file("world/expected.safetensors");  // refused if made by another torch
  EXPECT_TRUE(AllCloseRelative(out.features, expected.tensor("features"), 1e-5));
  EXPECT_TRUE(AllCloseRelative(out.logits, expected.tensor("logits"), 1e-5));
}

TEST(WorldFeatures, RefusesImagesOfAnotherSizeAndCheckpointsOfAnotherLayout) {
  auto net = load_world_feature_net(world_fixture("world-features.safetensors"), torch::kCPU);
  const auto small = torch::zeros({2, 32, 32, 3}, torch::kUInt8);
  EXPECT_NE(error_of([&] { net->forward(small); }).find("trained on 64x64"), std::string::npos);
  EXPECT_NE(error_of([&] { net->forward(torch::zeros({2, 64, 64, 3})); }).find("uint8"), std::string::npos);

  // Strict loading: a missing key and a mis-shaped one are both listed, naming the file.
  SafetensorsFile file(world_fixture("world-features.safetensors"));
  auto tensors = file.tensors();
  tensors.erase("fc.bias");
  tensors["body.2.bias"] = torch::zeros({9});
  const auto broken = temp_dir("world_features_strict") + "/broken.safetensors";
  save_safetensors(broken, tensors, {{"image_size", "64"}});
  const auto e = error_of([&] { load_world_feature_net(broken, torch::kCPU); });
  EXPECT_NE(e.find(broken), std::string::npos) << e;
  EXPECT_NE(e.find("fc.bias"), std::string::npos) << e;
  EXPECT_NE(e.find("body.2.bias"), std::string::npos) << e;
  save_safetensors(broken, file.tensors(), {});
  EXPECT_NE(error_of([&] { load_world_feature_net(broken, torch::kCPU); }).find("image_size"), std::string::npos);
}

TEST(WorldQuality, ReferenceAgainstItselfIsPerfect) {
  const auto ref = load_world_reference(world_fixture("reference.npz"));
  io::NpzReader npz(world_fixture("reference.npz"));
  const auto logits = metrics::npy_to_tensor(npz.read("logits"), "logits");
  const auto q = world_quality(ref.features, logits, ref.labels, "self", ref);
  EXPECT_NEAR(q.fd, 0.0, 1e-6 * ref.features.square().sum(1).mean().item<double>());
  EXPECT_DOUBLE_EQ(q.precision, 1.0);
  EXPECT_DOUBLE_EQ(q.recall, 1.0);
  EXPECT_DOUBLE_EQ(q.class_accuracy, logits.argmax(1).eq(ref.labels).to(torch::kFloat64).mean().item<double>());
  EXPECT_TRUE(q.kid.has_value());  // KID itself is checked against torch-fidelity in test_metrics_scores.cpp
  EXPECT_EQ(q.images, 64);
}

TEST(WorldQuality, AnalyticCases) {
  const auto ref = load_world_reference(world_fixture("reference.npz"));
  // A shifted copy of the reference: FD = |shift|^2 exactly (same covariance).
  const auto shift = torch::full({ref.features.size(1)}, 0.5, torch::kFloat32);
  const auto logits = torch::zeros({ref.features.size(0), 32});
  const auto q = world_quality(ref.features + shift, logits, ref.labels, "shifted", ref);
  EXPECT_TRUE(RelativelyNear(q.fd, 0.25 * ref.features.size(1), 1e-5));
  // Class accuracy counts argmax == label: 3 of 4 right.
  auto four = ref.features.slice(0, 0, 4);
  auto l4 = torch::zeros({4, 32});
  const auto labels = torch::tensor({3, 7, 7, 31}, torch::kInt64);
  l4.index_put_({0, 3}, 1.0);
  l4.index_put_({1, 7}, 1.0);
  l4.index_put_({2, 8}, 1.0);  // wrong
  l4.index_put_({3, 31}, 1.0);
  EXPECT_DOUBLE_EQ(world_quality(four, l4, labels, "four", ref).class_accuracy, 0.75);
}

TEST(WorldQuality, BadInputsAreOneLineErrorsNamingWhatIsWrong) {
  const auto ref = load_world_reference(world_fixture("reference.npz"));
  const auto f = ref.features.slice(0, 0, 8), logits = torch::zeros({8, 32});
  EXPECT_NE(error_of([&] { world_quality(f, logits, torch::full({8}, 32, torch::kInt64), "run", ref); }).find("labels outside 0..31"),
            std::string::npos);
  EXPECT_NE(error_of([&] { world_quality(f.slice(1, 0, 5), logits, torch::zeros({8}, torch::kInt64), "run", ref); })
                .find("feature dimensions"),
            std::string::npos);
  EXPECT_NE(error_of([&] { world_quality(f.slice(0, 0, 3), logits.slice(0, 0, 3), torch::zeros({3}, torch::kInt64), "run", ref); })
                .find("at least 4"),
            std::string::npos);
  const auto dir = temp_dir("world_reference_bad");
  io::write_npz(dir + "/no-labels.npz", {{"features", metrics::tensor_to_npy(ref.features)}});
  const auto e = error_of([&] { load_world_reference(dir + "/no-labels.npz"); });
  EXPECT_NE(e.find("no-labels.npz"), std::string::npos) << e;
  EXPECT_NE(e.find("'labels'"), std::string::npos) << e;
}

}  // namespace
}  // namespace varbench::testing
