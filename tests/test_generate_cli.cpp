// `varbench generate`: output formats (HDF5 schema, PNG names, ADM .npz) and one-line errors on bad
// input that leave existing files untouched.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "formats/hdf5.h"
#include "formats/image_files.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::run_varbench;
using testing::temp_dir;

TEST(GenerateCli, WritesHdf5PngAndNpzOfTheSameImages) {
  const auto dir = temp_dir("generate_ok");
  const auto r = run_varbench("generate --random-init tiny-d2 --classes 3,7 --images-per-class 2 --batch-size 3 --seed 5 --out " +
                              dir + "/out.h5 --png " + dir + "/png --npz " + dir + "/out.npz --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  h5::File f(dir + "/out.h5", h5::File::Mode::kReadOnly);
  auto root = f.root();
  EXPECT_EQ(root.attr_int("schema_version"), 1);
  EXPECT_FALSE(root.attr_string("git_revision").empty());
  auto run = root.group("runs/generate");
  EXPECT_EQ(run.attr_string("status"), "completed");
  EXPECT_EQ(run.attr_string("rng_mode"), "per-image");
  EXPECT_EQ(run.dataset("labels").read<int64_t>(), (std::vector<int64_t>{3, 3, 7, 7}));
  EXPECT_EQ(run.dataset("index_in_class").read<int64_t>(), (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_EQ(run.dataset("image_index").read<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(run.dataset("seeds").read<int64_t>(), (std::vector<int64_t>{5, 5, 5, 5}));
  const std::vector<int64_t> sides{1, 2, 3, 4, 5, 6, 8, 10, 13, 16};
  EXPECT_EQ(run.group("tokens").attr_ints("sides"), sides);
  for (int s = 0; s < 10; ++s) {
    auto t = run.dataset("tokens/scale_" + std::to_string(s));
    EXPECT_EQ(t.dims(), (std::vector<uint64_t>{4, static_cast<uint64_t>(sides[s] * sides[s])}));
    for (auto v : t.read<int32_t>()) ASSERT_TRUE(v >= 0 && v < 4096);
  }
  auto images = run.dataset("images");
  ASSERT_EQ(images.dims(), (std::vector<uint64_t>{4, 256, 256, 3}));
  const auto pixels = images.read<uint8_t>();
  const size_t per_image = 256 * 256 * 3;
  const std::vector<std::string> names{"3_0", "3_1", "7_0", "7_1"};
  for (size_t i = 0; i < names.size(); ++i) {
    auto png = io::read_png(dir + "/png/" + names[i] + ".png");
    ASSERT_EQ(png.height, 256);
    EXPECT_TRUE(std::equal(png.pixels.begin(), png.pixels.end(), pixels.begin() + i * per_image)) << names[i];
  }
  io::NpzReader npz(dir + "/out.npz");
  auto arr = npz.read("arr_0");
  EXPECT_EQ(arr.dtype, "|u1");
  EXPECT_EQ(arr.shape, (std::vector<int64_t>{4, 256, 256, 3}));
  EXPECT_TRUE(std::equal(arr.bytes.begin(), arr.bytes.end(), pixels.begin()));
}

TEST(GenerateCli, LoadsConvertedCheckpoints) {
  const auto dir = temp_dir("generate_ckpt");
  const auto r = run_varbench("generate --var " + testing::fixture("var_d2.safetensors") + " --vqvae " +
                              testing::fixture("vqvae_ch32.safetensors") + " --classes 1 --out " + dir + "/o.h5 --no-images");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  h5::File f(dir + "/o.h5", h5::File::Mode::kReadOnly);
  EXPECT_FALSE(f.root().group("runs/generate").has("images"));
  EXPECT_EQ(f.root().group("runs/generate").attr_string("var_model"), testing::fixture("var_d2.safetensors"));
}

// One generation path: `generate` is an experiment of one `single` engine run by the driver, so it
// writes the tokens and images `varbench run` writes for the same settings, and a file `report` reads.
TEST(GenerateCli, GoesThroughTheDriverAsRunDoes) {
  const auto dir = temp_dir("generate_driver");
  const auto g = run_varbench("generate --random-init tiny-d2 --init-seed 4 --classes 2,5 --images-per-class 2 --batch-size 3 "
                              "--seed 8 --cfg 2 --top-k 50 --temperature 1.1 --threads 2 --out " + dir + "/g.h5");
  ASSERT_EQ(g.exit_code, 0) << g.output;
  std::ofstream(dir + "/exp.toml") << "[experiment]\nclasses = \"2,5\"\nimages_per_class = 2\nbatch_size = 3\nseed = 8\n"
                                      "warmup = 0\nrepetitions = 1\nthreads = 2\n[sampling]\ncfg = 2.0\ntop_k = 50\n"
                                      "temperature = 1.1\n[models.var]\nrandom_init = \"tiny-d2\"\ninit_seed = 4\n"
                                      "[vqvae]\nrandom_init = \"vqvae-ch32\"\ninit_seed = 5\n"
                                   << testing::single_engine("generate", "var");
  const auto r = run_varbench("run " + dir + "/exp.toml --out " + dir + "/r.h5 --no-table --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  h5::File gf(dir + "/g.h5", h5::File::Mode::kReadOnly), rf(dir + "/r.h5", h5::File::Mode::kReadOnly);
  const auto a = gf.root().group("runs/generate"), b = rf.root().group("runs/generate");
  EXPECT_TRUE(a.has("timing") && a.has("memory")) << "the driver's record";
  for (int s = 0; s < 10; ++s) {
    const auto name = "tokens/scale_" + std::to_string(s);
    EXPECT_EQ(a.dataset(name).read<int32_t>(), b.dataset(name).read<int32_t>()) << name;
  }
  EXPECT_EQ(a.dataset("images").read<uint8_t>(), b.dataset("images").read<uint8_t>());
  EXPECT_EQ(a.dataset("seeds").read<int64_t>(), b.dataset("seeds").read<int64_t>());
  const auto report = run_varbench("report " + dir + "/g.h5 --no-figures");
  EXPECT_EQ(report.exit_code, 0) << report.output;
  EXPECT_NE(report.output.find("| generate |"), std::string::npos) << report.output;
}

struct BadInput {
  const char* args;
  const char* message;
};
// The test's name in ctest (gtest_discover_tests appends the printed parameter): the bad value.
void PrintTo(const BadInput& b, std::ostream* os) { *os << b.message; }

class GenerateCliErrors : public ::testing::TestWithParam<BadInput> {};

TEST_P(GenerateCliErrors, FailWithOneLineNamingTheValue) {
  const auto dir = temp_dir("generate_bad");
  const auto r = run_varbench(std::string("generate ") + GetParam().args + " --out " + dir + "/o.h5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(GetParam().message), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("frame #"), std::string::npos) << "stack trace leaked: " << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GenerateCliErrors,
    ::testing::Values(BadInput{"--random-init tiny-d9", "unknown VAR config 'tiny-d9'"},
                      BadInput{"--random-init tiny-d2 --classes 3,x", "classes '3,x': 'x' is not a class index"},
                      BadInput{"--random-init tiny-d2 --classes 1000", "class 1000 is outside 0..999"},
                      BadInput{"--random-init tiny-d2 --top-k 1,2,3", "top_k: 3 values given"},
                      BadInput{"--random-init tiny-d2 --rng lucky", "unknown rng mode 'lucky'"},
                      BadInput{"--random-init tiny-d2 --no-images --png pngs", "--png needs the images: drop --no-images"},
                      BadInput{"--random-init tiny-d2 --images-per-class 0", "--images-per-class 0: must be >= 1"},
                      BadInput{"--random-init tiny-d2 --dtype fp16", "--dtype fp16: CPU runs are fp32"},
                      BadInput{"--random-init tiny-d2 --device cuda:3", "device 'cuda:3'"},
                      BadInput{"--var /nonexistent/var.safetensors --vqvae /nonexistent/vae.safetensors",
                               "/nonexistent/var.safetensors: cannot open"}));

// A VAR model samples codes of the VQVAE's codebook: another vocabulary is refused before any work (the
// same static check as `varbench run`'s), and nothing is written.
TEST(GenerateCli, RefusesAVqvaeOfAnotherCodebook) {
  const auto dir = temp_dir("generate_mismatch");
  const auto r = run_varbench("generate --random-init tiny-d2 --vqvae " + testing::source_path("models/toy-world/vqvae.safetensors") +
                              " --classes 1 --out " + dir + "/o.h5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("[models.var] (4096 codes of dim 32) and [vqvae] (256 codes of dim 16) do not match"), std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/o.h5"));
}

TEST(GenerateCli, RefusesToOverwriteAnExistingResult) {
  const auto dir = temp_dir("generate_exists");
  { std::ofstream(dir + "/o.h5") << "precious"; }
  const auto r = run_varbench("generate --random-init tiny-d2 --classes 1 --out " + dir + "/o.h5");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("o.h5: exists; pass --overwrite"), std::string::npos) << r.output;
  std::ifstream in(dir + "/o.h5");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

}  // namespace
}  // namespace varbench
