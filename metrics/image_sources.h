#pragma once
// Where images for the metrics come from: a varbench result file (/runs/<run>/images, N x H x W x 3
// uint8), an ADM-style .npz (`arr_0`, N x H x W x 3 uint8, streamed: reference batches hold 10,000
// images), a folder of PNG files (sorted by name), or a tensor already in memory. Every source checks
// shape and dtype up front and names the file and key in its errors.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/hdf5.h"

namespace varbench::metrics {

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual const std::string& name() const = 0;  // file (and key) for messages
  virtual int64_t size() const = 0;             // images in total
  // The next up to `count` images, as groups of equal size: uint8 [B_i, H_i, W_i, 3] each (one group
  // unless a PNG folder mixes sizes). Empty at the end.
  virtual std::vector<torch::Tensor> next(int64_t count) = 0;
};

std::unique_ptr<ImageSource> open_npz_images(const std::string& path, const std::string& key = "arr_0");
std::unique_ptr<ImageSource> open_hdf5_images(const std::string& path, const std::string& dataset_path);
// The same from an open dataset (a result file that the caller also writes to).
std::unique_ptr<ImageSource> open_hdf5_images(h5::Dataset dataset, const std::string& file);
std::unique_ptr<ImageSource> open_png_folder(const std::string& directory);
std::unique_ptr<ImageSource> open_tensor_images(torch::Tensor images, std::string name);  // uint8 [N, H, W, 3]

// Checks an image array's dtype and shape: uint8 and [N, H, W, 3]; throws "<where> has ..." otherwise.
void check_image_array(const std::string& where, const std::string& dtype, const std::vector<int64_t>& shape);

}  // namespace varbench::metrics
