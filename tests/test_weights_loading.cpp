// Weight files: the safetensors reader's validation, strict loading by checkpoint key, and the
// .pth -> safetensors converter reading back bit-exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "engines/model/loading.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::error_of;
using testing::fixture;
using testing::temp_dir;

void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

TEST(Safetensors, RoundTripKeepsKeysDtypesShapesAndBytes) {
  const auto dir = temp_dir("safetensors_roundtrip");
  std::map<std::string, torch::Tensor> t{{"a.weight", torch::randn({3, 4})},
                                          {"b", torch::arange(10, torch::kLong)},
                                          {"c.half", torch::randn({5}).to(torch::kHalf)},
                                          {"d.bf16", torch::randn({2, 2}).to(torch::kBFloat16)}};
  save_safetensors(dir + "/x.safetensors", t, {{"source", "test"}});
  SafetensorsFile f(dir + "/x.safetensors");
  EXPECT_EQ(f.metadata().at("source"), "test");
  ASSERT_EQ(f.entries().size(), t.size());
  for (const auto& [k, v] : t) {
    auto r = f.tensor(k);
    EXPECT_EQ(r.scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(r, v)) << k;
  }
}

TEST(Safetensors, RejectsMalformedHeadersNamingTheFileAndTensor) {
  const auto dir = temp_dir("safetensors_bad");
  const std::string p = dir + "/bad.safetensors";
  // Header length beyond the file.
  {
    std::ofstream out(p, std::ios::binary);
    const uint64_t n = 1ull << 40;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
  }
  EXPECT_NE(error_of([&] { SafetensorsFile f(p); }).find("corrupt or truncated safetensors header"), std::string::npos);
  write_raw(p, "{not json", "");
  EXPECT_NE(error_of([&] { SafetensorsFile f(p); }).find("not valid JSON"), std::string::npos);
  write_raw(p, R"({"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  auto e = error_of([&] { SafetensorsFile f(p); });
  EXPECT_NE(e.find("unknown safetensors dtype 'F99'"), std::string::npos) << e;
  EXPECT_NE(e.find("'w'"), std::string::npos) << e;
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_NE(error_of([&] { SafetensorsFile f(p); }).find("dtype x shape needs 8"), std::string::npos);
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0'));
  EXPECT_NE(error_of([&] { SafetensorsFile f(p); }).find("outside the 4-byte data section"), std::string::npos);
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            std::string(12, '\0'));
  EXPECT_NE(error_of([&] { SafetensorsFile f(p); }).find("'a' and 'b' overlap"), std::string::npos);
  EXPECT_NE(error_of([&] { SafetensorsFile f(dir + "/absent.safetensors"); }).find("absent.safetensors: cannot open"),
            std::string::npos);
  // 2^32 x 2^32 elements wrap a 64-bit count round to 0, which would match an empty data range.
  write_raw(p, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "");
  e = error_of([&] { SafetensorsFile f(p); });
  EXPECT_NE(e.find("tensor 'w': shape [4294967296,4294967296] has more elements than a 64-bit count holds"), std::string::npos) << e;
  // 2^62 F32 elements: the count fits, the byte size (2^64) does not.
  write_raw(p, R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", "");
  e = error_of([&] { SafetensorsFile f(p); });
  EXPECT_NE(e.find("has more bytes than a 64-bit size holds"), std::string::npos) << e;
}

class StrictLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir("strict_loading");
    tensors_ = SafetensorsFile(fixture("var_d2.safetensors")).tensors();
    for (auto& [k, v] : tensors_) v = v.clone();
  }
  std::string load_error(const std::map<std::string, torch::Tensor>& t) {
    const auto path = dir_ + "/var.safetensors";
    save_safetensors(path, t);
    return error_of([&] { load_var({path, "", 0}); });
  }
  std::string dir_;
  std::map<std::string, torch::Tensor> tensors_;
};

TEST_F(StrictLoading, AcceptsTheOfficialLayout) { EXPECT_EQ(load_error(tensors_), ""); }

TEST_F(StrictLoading, NamesAMissingKeyAndTheFile) {
  tensors_.erase("blocks.1.ffn.fc2.bias");
  const auto e = load_error(tensors_);
  EXPECT_NE(e.find("var.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("1 missing key: blocks.1.ffn.fc2.bias"), std::string::npos) << e;
}

TEST_F(StrictLoading, NamesAnUnexpectedKey) {
  tensors_["blocks.0.attn.extra"] = torch::zeros({3});
  const auto e = load_error(tensors_);
  EXPECT_NE(e.find("1 unexpected key: blocks.0.attn.extra"), std::string::npos) << e;
}

TEST_F(StrictLoading, NamesAWrongShape) {
  tensors_["head.bias"] = torch::zeros({4095});
  const auto e = load_error(tensors_);
  EXPECT_NE(e.find("mis-shaped key: head.bias (file [4095], model [4096])"), std::string::npos) << e;
}

TEST_F(StrictLoading, NamesAWrongDtype) {
  tensors_["pos_start"] = tensors_["pos_start"].to(torch::kInt);
  tensors_["lvl_1L"] = tensors_["lvl_1L"].to(torch::kFloat);  // an integer buffer stored as float
  const auto e = load_error(tensors_);
  EXPECT_NE(e.find("2 wrongly typed keys: lvl_1L (file Float, model Long), pos_start (file Int, model Float)"), std::string::npos) << e;
}

TEST_F(StrictLoading, HalfAndBfloat16CheckpointsLoadConvertedAndSaySo) {
  // Model hubs often ship fp16/bf16 weights: each floating tensor is converted to the model's dtype.
  for (auto dtype : {torch::kHalf, torch::kBFloat16}) {
    auto t = tensors_;
    int64_t floating = 0;
    for (auto& [k, v] : t)
      if (v.is_floating_point()) v = v.to(dtype), ++floating;
    const auto path = dir_ + "/var_half.safetensors";
    save_safetensors(path, t);
    ::testing::internal::CaptureStderr();
    auto model = load_var({path, "", 0});
    const auto said = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(said.find(fmt::format("var_half.safetensors: converted {} tensors {} -> Float on load", floating, c10::toString(dtype))),
              std::string::npos) << said;
    for (const auto& [key, value] : state_dict(*model)) {
      EXPECT_EQ(value.scalar_type(), tensors_.at(key).scalar_type()) << key;
      EXPECT_TRUE(torch::equal(value, t.at(key).to(value.scalar_type()))) << key;  // exactly the stored values
    }
  }
}

TEST_F(StrictLoading, RefusesNaNAndInfWeightsNamingTheKeys) {
  tensors_["head.weight"][0][3] = std::numeric_limits<float>::quiet_NaN();
  tensors_["head.weight"][1][0] = std::numeric_limits<float>::quiet_NaN();
  tensors_["blocks.1.ffn.fc2.bias"][2] = std::numeric_limits<float>::infinity();
  const auto e = load_error(tensors_);
  EXPECT_NE(e.find("var.safetensors: NaN or Inf weights in 2 keys: blocks.1.ffn.fc2.bias (1 of "), std::string::npos) << e;
  EXPECT_NE(e.find("head.weight (2 of "), std::string::npos) << e;
}

TEST_F(StrictLoading, ListsEveryProblemInOneError) {
  tensors_.erase("head.weight");
  tensors_["unexpected.one"] = torch::zeros({1});
  tensors_["word_embed.bias"] = torch::zeros({7});
  const auto e = load_error(tensors_);
  EXPECT_NE(e.find("missing key: head.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected key: unexpected.one"), std::string::npos) << e;
  EXPECT_NE(e.find("mis-shaped key: word_embed.bias"), std::string::npos) << e;
}

TEST_F(StrictLoading, RejectsATruncatedFileNamingIt) {
  const auto path = dir_ + "/var.safetensors";
  save_safetensors(path, tensors_);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1000);
  const auto e = error_of([&] { load_var({path, "", 0}); });
  EXPECT_NE(e.find("var.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(Converter, PthInZipAndLegacyFormatsReadsBackBitExactly) {
  const auto dir = temp_dir("converter");
  const SafetensorsFile expected(fixture("var_d2.safetensors"));
  for (const char* name : {"var_d2.pth", "var_d2_legacy.pth"}) {
    const auto out = dir + "/" + name + ".safetensors";
    const auto r = testing::run_command(std::string(VARBENCH_PYTHON) + " " + testing::source_path("scripts/convert_checkpoint.py") +
                                        " " + fixture(name) + " " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("VAR transformer: depth 2, width 128"), std::string::npos) << r.output;
    auto model = load_var({out, "", 0});  // strict: every key present with its shape and dtype
    const SafetensorsFile converted(out);
    for (const auto& [key, info] : expected.entries())
      EXPECT_TRUE(torch::equal(converted.tensor(key), expected.tensor(key))) << name << ": " << key;
    for (const auto& [key, value] : state_dict(*model))
      EXPECT_TRUE(torch::equal(value, expected.tensor(key))) << name << ": " << key;
  }
}

TEST(Converter, RefusesPickledCode) {
  const auto dir = temp_dir("converter_unsafe");
  // A .pth whose unpickling would run code: weights_only=True must refuse it.
  const auto make = testing::run_command(std::string(VARBENCH_PYTHON) + " -c \"import torch, os\n"
                                         "class Evil:\n    def __reduce__(self): return (os.system, ('echo pwned',))\n"
                                         "torch.save({'w': Evil()}, '" + dir + "/evil.pth')\"");
  ASSERT_EQ(make.exit_code, 0) << make.output;
  const auto r = testing::run_command(std::string(VARBENCH_PYTHON) + " " + testing::source_path("scripts/convert_checkpoint.py") +
                                      " " + dir + "/evil.pth " + dir + "/evil.safetensors");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.output.find("pwned"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("weights_only=True"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/evil.safetensors"));
}

}  // namespace
}  // namespace varbench
