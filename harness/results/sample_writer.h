#pragma once
// Writes generated samples into an HDF5 group as batches finish: labels, seeds, tokens per scale and
// uint8 images. Rows are preallocated for the whole plan, so a partial file holds every finished batch.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engines/model/architecture.h"
#include "formats/hdf5.h"
#include "harness/results/schema.h"

namespace varbench {

class SampleWriter {
 public:
  enum Datasets { kCreate, kExisting /* a resumed partial file's, already made */ };
  SampleWriter(const h5::Group& group, int64_t num_images, const ScaleSchedule& schedule, int64_t image_height,
               int64_t image_width, bool store_images, Datasets datasets = kCreate);
  // Rows [first, first + B): tokens one [B, side^2] tensor per sampled scale (missing scales hold -1);
  // images uint8 [B,H,W,3] (ignored when not stored); image_index the global index of each row.
  void write_batch(int64_t first, const std::vector<int64_t>& labels, const std::vector<int64_t>& index_in_class,
                   const std::vector<int64_t>& seeds, const std::vector<torch::Tensor>& tokens, const torch::Tensor& images,
                   const std::vector<int64_t>& image_index);
  int64_t rows_written() const { return rows_written_; }

 private:
  h5::Group group_;
  int64_t num_images_;
  ScaleSchedule schedule_;
  bool store_images_;
  int64_t rows_written_ = 0;
};

}  // namespace varbench
