// Image and statistics inputs of the metrics: result files, .npz (ADM batches, pytorch-fid statistics,
// compressed or stored), PNG folders; and the one-line errors of inputs of the wrong shape or dtype.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "formats/hdf5.h"
#include "metrics/evaluation_set.h"
#include "metrics/image_sources.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::error_of;
using testing::fixture;

metrics::FidInception& no_network() {
  throw std::runtime_error("the network was asked for");
}

TEST(MetricInputs, ResultFileImagesStreamInOrder) {
  const auto dir = testing::temp_dir("metrics_inputs_h5");
  const auto path = dir + "/results.h5";
  const auto images = torch::randint(0, 256, {7, 9, 11, 3}, torch::kLong).to(torch::kUInt8).contiguous();
  {
    h5::File file(path, h5::File::Mode::kCreate);
    file.root().create_group("runs/a").write<uint8_t>("images", {7, 9, 11, 3}, images.data_ptr<uint8_t>());
  }
  auto source = metrics::open_hdf5_images(path, "runs/a/images");
  EXPECT_EQ(source->size(), 7);
  EXPECT_EQ(source->name(), path + ":/runs/a/images");
  const auto first = source->next(4), second = source->next(4), end = source->next(4);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_TRUE(end.empty());
  EXPECT_TRUE(torch::equal(torch::cat({first[0], second[0]}), images));
  EXPECT_EQ(metrics::resolve_run(path, ""), "runs/a");
}

TEST(MetricInputs, ResultFileImagesOfTheWrongTypeOrShapeAreOneLineErrors) {
  const auto dir = testing::temp_dir("metrics_inputs_bad_h5");
  const auto path = dir + "/results.h5";
  {
    h5::File file(path, h5::File::Mode::kCreate);
    const std::vector<float> f(2 * 4 * 4 * 3, 0.5f);
    file.root().create_group("runs/float").write<float>("images", {2, 4, 4, 3}, f.data());
    const std::vector<uint8_t> g(2 * 4 * 4, 1);
    file.root().create_group("runs/gray").write<uint8_t>("images", {2, 4, 4}, g.data());
  }
  auto msg = error_of([&] { metrics::open_hdf5_images(path, "runs/float/images"); });
  EXPECT_EQ(msg, path + ":/runs/float/images has dtype float32, expected uint8 images");
  msg = error_of([&] { metrics::open_hdf5_images(path, "runs/gray/images"); });
  EXPECT_EQ(msg, path + ":/runs/gray/images has shape [2, 4, 4], expected N x H x W x 3 (RGB)");
  msg = error_of([&] { metrics::resolve_run(path, ""); });
  EXPECT_NE(msg.find("2 runs have images (float, gray); name one as " + path + ":RUN"), std::string::npos) << msg;
  msg = error_of([&] { metrics::resolve_run(path, "missing"); });
  EXPECT_NE(msg.find("no run 'missing'"), std::string::npos) << msg;
}

TEST(MetricInputs, PngFolderIsSortedAndGroupsImagesOfOneSize) {
  const auto dir = testing::temp_dir("metrics_inputs_png");
  const auto a = torch::full({4, 6, 3}, 10, torch::kUInt8), b = torch::full({5, 5, 3}, 20, torch::kUInt8);
  io::write_png(dir + "/b.png", b.data_ptr<uint8_t>(), 5, 5);
  io::write_png(dir + "/a.png", a.data_ptr<uint8_t>(), 4, 6);
  io::write_png(dir + "/c.PNG", a.data_ptr<uint8_t>(), 4, 6);
  std::ofstream(dir + "/notes.txt") << "not an image";
  auto source = metrics::open_png_folder(dir);
  EXPECT_EQ(source->size(), 3);
  const auto groups = source->next(10);  // a (4x6), b (5x5), c (4x6): three groups of one
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_TRUE(torch::equal(groups[0][0], a));
  EXPECT_TRUE(torch::equal(groups[1][0], b));
  const auto empty = testing::temp_dir("metrics_inputs_no_png");
  EXPECT_EQ(error_of([&] { metrics::open_png_folder(empty); }), empty + ": no .png files");
}

TEST(MetricInputs, CompressedPytorchFidStatisticsNeedNoNetwork) {
  metrics::EvaluationSetOptions options;
  const auto path = fixture("inception/pytorch_fid_stats.npz");
  const auto set = metrics::load_evaluation_set(path, options, no_network, nullptr);
  ASSERT_TRUE(set.pool3.has_value());
  EXPECT_EQ(set.pool3->dims(), 2048);
  EXPECT_EQ(set.pool3->n, 0);  // pytorch-fid does not record it
  EXPECT_FALSE(set.spatial.has_value());
  EXPECT_EQ(set.statistics_origin, "stored");
  EXPECT_FALSE(set.pool3_features.defined());
}

TEST(MetricInputs, NpzWithoutImagesOrStatisticsIsAOneLineError) {
  metrics::EvaluationSetOptions options;
  const auto path = fixture("inception/bad_no_arr0.npz");
  EXPECT_EQ(error_of([&] { metrics::load_evaluation_set(path, options, no_network, nullptr); }),
            path + ": neither images ('arr_0') nor statistics ('mu', 'sigma') in the .npz (it has: images)");
  EXPECT_EQ(error_of([&] { metrics::open_npz_images(path); }), path + ": no array 'arr_0' in the .npz (it has: images)");
  EXPECT_EQ(error_of([&] { metrics::open_npz_images(fixture("inception/bad_float.npz")); }),
            fixture("inception/bad_float.npz") + ":arr_0 has dtype float32, expected uint8 images");
  const auto missing = fixture("inception/does_not_exist.npz");
  EXPECT_EQ(error_of([&] { metrics::load_evaluation_set(missing, options, no_network, nullptr); }),
            missing + ": no such file or directory");
}

}  // namespace
}  // namespace varbench
