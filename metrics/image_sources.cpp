#include "metrics/image_sources.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "formats/hdf5.h"
#include "formats/image_files.h"

namespace varbench::metrics {

void check_image_array(const std::string& where, const std::string& dtype, const std::vector<int64_t>& shape) {
  if (dtype != "uint8") throw std::runtime_error(fmt::format("{} has dtype {}, expected uint8 images", where, dtype));
  if (shape.size() != 4 || shape[3] != 3 || shape[1] < 1 || shape[2] < 1)
    throw std::runtime_error(fmt::format("{} has shape [{}], expected N x H x W x 3 (RGB)", where, fmt::join(shape, ", ")));
}

namespace {
std::string npy_dtype_words(const std::string& d) {
  if (d == "|u1" || d == "<u1") return "uint8";
  if (d == "<f4") return "float32";
  if (d == "<f8") return "float64";
  return "'" + d + "'";
}

class NpzImages : public ImageSource {
 public:
  NpzImages(const std::string& path, const std::string& key) : npz_(path), name_(path + ":" + key) {
    if (!npz_.has(key)) {
      auto names = npz_.names();
      throw std::runtime_error(fmt::format("{}: no array '{}' in the .npz (it has: {})", path, key,
                                           names.empty() ? "nothing" : fmt::format("{}", fmt::join(names, ", "))));
    }
    stream_ = npz_.open(key);
    check_image_array(name_, npy_dtype_words(stream_->dtype()), stream_->shape());
    shape_ = stream_->shape();
  }
  const std::string& name() const override { return name_; }
  int64_t size() const override { return shape_[0]; }
  std::vector<torch::Tensor> next(int64_t count) override {
    const int64_t rows = stream_->read(count, buffer_);
    if (rows == 0) return {};
    auto t = torch::empty({rows, shape_[1], shape_[2], 3}, torch::kUInt8);
    std::memcpy(t.data_ptr(), buffer_.data(), buffer_.size());
    return {t};
  }

 private:
  io::NpzReader npz_;
  std::string name_;
  std::unique_ptr<io::NpzReader::Stream> stream_;
  std::vector<int64_t> shape_;
  std::vector<uint8_t> buffer_;
};

class Hdf5Images : public ImageSource {
 public:
  Hdf5Images(const std::string& path, const std::string& dataset_path)
      : Hdf5Images(std::make_unique<h5::File>(path, h5::File::Mode::kReadOnly), path, dataset_path) {}
  Hdf5Images(h5::Dataset dataset, const std::string& file)
      : name_(file + ":" + dataset.path()), dataset_(std::move(dataset)) {
    check();
  }

 private:
  Hdf5Images(std::unique_ptr<h5::File> owned, const std::string& path, const std::string& dataset_path)
      : file_(std::move(owned)), dataset_(file_->root().dataset(dataset_path)) {
    name_ = path + ":" + dataset_.path();  // absolute, as for datasets handed in
    check();
  }
  void check() {
    std::string dtype = "uint8";
    if (dataset_.type_class() != H5T_INTEGER || dataset_.type_size() != 1 || dataset_.is_signed())
      dtype = fmt::format("{}{}", dataset_.type_class() == H5T_FLOAT ? "float" : (dataset_.is_signed() ? "int" : "uint"),
                          8 * dataset_.type_size());
    const auto dims = dataset_.dims();
    shape_.assign(dims.begin(), dims.end());
    check_image_array(name_, dtype, shape_);
  }

 public:
  const std::string& name() const override { return name_; }
  int64_t size() const override { return shape_[0]; }
  std::vector<torch::Tensor> next(int64_t count) override {
    const int64_t rows = std::min(count, size() - cursor_);
    if (rows <= 0) return {};
    auto data = dataset_.read_rows<uint8_t>(static_cast<uint64_t>(cursor_), static_cast<uint64_t>(rows));
    cursor_ += rows;
    auto t = torch::empty({rows, shape_[1], shape_[2], 3}, torch::kUInt8);
    std::memcpy(t.data_ptr(), data.data(), data.size());
    return {t};
  }

 private:
  std::unique_ptr<h5::File> file_;  // owned when opened by path
  std::string name_;
  h5::Dataset dataset_;
  std::vector<int64_t> shape_;
  int64_t cursor_ = 0;
};

class PngFolder : public ImageSource {
 public:
  explicit PngFolder(const std::string& directory) : name_(directory) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(directory)) throw std::runtime_error(directory + ": not a directory");
    for (const auto& entry : fs::directory_iterator(directory)) {
      if (!entry.is_regular_file()) continue;
      auto ext = entry.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == ".png") files_.push_back(entry.path().string());
    }
    if (files_.empty()) throw std::runtime_error(directory + ": no .png files");
    std::sort(files_.begin(), files_.end());  // the order pytorch-fid reads them in
  }
  const std::string& name() const override { return name_; }
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  std::vector<torch::Tensor> next(int64_t count) override {
    std::vector<torch::Tensor> groups;
    std::vector<torch::Tensor> pending;
    auto flush = [&] {
      if (!pending.empty()) groups.push_back(torch::stack(pending));
      pending.clear();
    };
    for (int64_t i = 0; i < count && cursor_ < size(); ++i, ++cursor_) {
      auto img = io::read_png(files_[static_cast<size_t>(cursor_)]);
      auto t = torch::from_blob(img.pixels.data(), {img.height, img.width, 3}, torch::kUInt8).clone();
      if (!pending.empty() && pending.back().sizes() != t.sizes()) flush();
      pending.push_back(t);
    }
    flush();
    return groups;
  }

 private:
  std::string name_;
  std::vector<std::string> files_;
  int64_t cursor_ = 0;
};

class TensorImages : public ImageSource {
 public:
  TensorImages(torch::Tensor images, std::string name) : images_(std::move(images)), name_(std::move(name)) {
    check_image_array(name_, images_.scalar_type() == torch::kUInt8 ? "uint8" : c10::toString(images_.scalar_type()),
                      images_.sizes().vec());
  }
  const std::string& name() const override { return name_; }
  int64_t size() const override { return images_.size(0); }
  std::vector<torch::Tensor> next(int64_t count) override {
    const int64_t rows = std::min(count, size() - cursor_);
    if (rows <= 0) return {};
    auto t = images_.slice(0, cursor_, cursor_ + rows);
    cursor_ += rows;
    return {t};
  }

 private:
  torch::Tensor images_;
  std::string name_;
  int64_t cursor_ = 0;
};
}  // namespace

std::unique_ptr<ImageSource> open_npz_images(const std::string& path, const std::string& key) {
  return std::make_unique<NpzImages>(path, key);
}
std::unique_ptr<ImageSource> open_hdf5_images(const std::string& path, const std::string& dataset_path) {
  return std::make_unique<Hdf5Images>(path, dataset_path);
}
std::unique_ptr<ImageSource> open_hdf5_images(h5::Dataset dataset, const std::string& file) {
  return std::make_unique<Hdf5Images>(std::move(dataset), file);
}
std::unique_ptr<ImageSource> open_png_folder(const std::string& directory) { return std::make_unique<PngFolder>(directory); }
std::unique_ptr<ImageSource> open_tensor_images(torch::Tensor images, std::string name) {
  return std::make_unique<TensorImages>(std::move(images), std::move(name));
}

}  // namespace varbench::metrics
