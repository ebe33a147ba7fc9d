#pragma once
// Image and array files varbench reads and writes besides HDF5: PNG (libpng) and the ADM/NumPy .npz
// layout (libzip; .npy headers parsed here). Raw buffers only, no libtorch.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace varbench::io {

// 8-bit RGB image, row-major H x W x 3.
struct RgbImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;
};
void write_png(const std::string& path, const uint8_t* rgb, int64_t height, int64_t width);
RgbImage read_png(const std::string& path);  // any PNG colour type, converted to 8-bit RGB

// One array of a .npy/.npz: dtype as NumPy spells it ("|u1", "<f8", "<f4", "<i8", ...), C order.
struct NpyArray {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const;
};

// Writes an uncompressed .npz (np.savez layout: one NAME.npy per array).
void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays);

// Writes an uncompressed .npz with one array whose rows come from `fill_rows(first, count, dst)`, so
// arrays larger than memory (50,000 generated images) stream from where they are stored.
void write_npz_streamed(const std::string& path, const std::string& name, const std::string& dtype,
                        const std::vector<int64_t>& shape,
                        const std::function<void(int64_t first, int64_t count, uint8_t* dst)>& fill_rows);

// Streams arrays out of an .npz without loading them whole (ADM reference batches hold 10,000 images).
class NpzReader {
 public:
  explicit NpzReader(const std::string& path);
  ~NpzReader();
  NpzReader(const NpzReader&) = delete;
  NpzReader& operator=(const NpzReader&) = delete;
  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // without the .npy suffix
  bool has(const std::string& name) const;

  class Stream {
   public:
    ~Stream();
    const std::string& dtype() const { return dtype_; }
    const std::vector<int64_t>& shape() const { return shape_; }
    int64_t row_bytes() const;  // bytes of one index of dim 0
    int64_t rows_left() const { return rows_left_; }
    // Reads up to `rows` rows into `out` (resized); returns rows read.
    int64_t read(int64_t rows, std::vector<uint8_t>& out);

   private:
    friend class NpzReader;
    Stream() = default;
    void* file_ = nullptr;  // zip_file_t*
    std::string where_, dtype_;
    std::vector<int64_t> shape_;
    int64_t rows_left_ = 0;
  };
  std::unique_ptr<Stream> open(const std::string& name) const;
  NpyArray read(const std::string& name) const;

 private:
  std::string path_;
  void* zip_ = nullptr;  // zip_t*
};

// Element size of a NumPy dtype string; throws for unsupported ones.
int64_t npy_dtype_size(const std::string& dtype);

}  // namespace varbench::io
