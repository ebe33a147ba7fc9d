#include "harness/results/sample_writer.h"

#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

std::string schema::token_dataset(int64_t scale) { return fmt::format("scale_{}", scale); }

SampleWriter::SampleWriter(const h5::Group& group, int64_t n, const ScaleSchedule& schedule, int64_t height, int64_t width,
                           bool store_images, Datasets datasets)
    : group_(group.clone()), num_images_(n), schedule_(schedule), store_images_(store_images) {
  if (datasets == kExisting) {
    const auto dims = group_.dataset(schema::kLabels).dims();
    if (dims.size() != 1 || dims[0] != static_cast<uint64_t>(n) || store_images != group_.has(schema::kImages))
      throw std::runtime_error(fmt::format("{}: the partial run's datasets do not match the run ({} images)", group_.file(), n));
    return;
  }
  const uint64_t N = static_cast<uint64_t>(n);
  const uint64_t chunk_rows = std::max<uint64_t>(1, std::min<uint64_t>(N, 1024));
  group_.create_dataset<int64_t>(schema::kLabels, {N}, {chunk_rows});
  group_.create_dataset<int64_t>(schema::kIndexInClass, {N}, {chunk_rows});
  group_.create_dataset<int64_t>(schema::kImageIndex, {N}, {chunk_rows});
  group_.create_dataset<int64_t>(schema::kSeeds, {N}, {chunk_rows});
  auto tokens = group_.require_group(schema::kTokens);
  for (int64_t s = 0; s < schedule.num_scales(); ++s) {
    const uint64_t l = static_cast<uint64_t>(schedule.tokens(s));
    tokens.create_dataset<int32_t>(schema::token_dataset(s), {N, l}, {std::min<uint64_t>(N, 256), l}, 4);
  }
  tokens.set_attr("sides", schedule.sides);
  if (store_images_)
    group_.create_dataset<uint8_t>(schema::kImages, {N, static_cast<uint64_t>(height), static_cast<uint64_t>(width), 3},
                                   {1, static_cast<uint64_t>(height), static_cast<uint64_t>(width), 3}, 4);
}

void SampleWriter::write_batch(int64_t first, const std::vector<int64_t>& labels, const std::vector<int64_t>& index_in_class,
                               const std::vector<int64_t>& seeds, const std::vector<torch::Tensor>& tokens,
                               const torch::Tensor& images, const std::vector<int64_t>& image_index) {
  const uint64_t B = labels.size(), at = static_cast<uint64_t>(first);
  group_.dataset(schema::kLabels).write_rows(at, B, labels.data());
  group_.dataset(schema::kIndexInClass).write_rows(at, B, index_in_class.data());
  group_.dataset(schema::kImageIndex).write_rows(at, B, image_index.data());
  group_.dataset(schema::kSeeds).write_rows(at, B, seeds.data());
  auto tg = group_.group(schema::kTokens);
  for (int64_t s = 0; s < schedule_.num_scales(); ++s) {
    // Scales an engine did not sample (early exit) hold -1.
    auto t = s < static_cast<int64_t>(tokens.size()) ? tokens[s].to(torch::kCPU, torch::kInt32).contiguous()
                                                     : torch::full({static_cast<int64_t>(B), schedule_.tokens(s)}, -1, torch::kInt32);
    tg.dataset(schema::token_dataset(s)).write_rows(at, B, t.data_ptr<int32_t>());
  }
  if (store_images_) {
    auto img = images.to(torch::kCPU).contiguous();
    group_.dataset(schema::kImages).write_rows(at, B, img.data_ptr<uint8_t>());
  }
  rows_written_ = std::max<int64_t>(rows_written_, first + static_cast<int64_t>(B));
}

}  // namespace varbench
