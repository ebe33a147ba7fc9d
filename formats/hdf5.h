#pragma once
// A small RAII layer over the HDF5 C API: files, groups, attributes and (chunked, compressed,
// extendible) datasets of plain numeric types. Every error names the file and the object.
#include <hdf5.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace varbench::h5 {

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = -1;
};

template <typename T>
hid_t native_type();
template <> hid_t native_type<uint8_t>();
template <> hid_t native_type<int32_t>();
template <> hid_t native_type<int64_t>();
template <> hid_t native_type<uint64_t>();
template <> hid_t native_type<float>();
template <> hid_t native_type<double>();

class Dataset {
 public:
  Dataset(Handle h, std::string file, std::string path) : h_(std::move(h)), file_(std::move(file)), path_(std::move(path)) {}
  std::vector<uint64_t> dims() const;
  uint64_t rows() const { return dims().at(0); }
  const std::string& path() const { return path_; }
  // Writes rows [row, row + count) of a dataset whose trailing dims match; `data` holds count * row size.
  template <typename T>
  void write_rows(uint64_t row, uint64_t count, const T* data) const { write_rows_typed(row, count, native_type<T>(), data); }
  // Grows dim 0 (extendible datasets) and writes at the end.
  template <typename T>
  void append_rows(uint64_t count, const T* data) const;
  template <typename T>
  std::vector<T> read() const;
  template <typename T>
  std::vector<T> read_rows(uint64_t row, uint64_t count) const;
  // The stored element type's class and size, to check before reading.
  H5T_class_t type_class() const;
  size_t type_size() const;
  bool is_signed() const;

 private:
  void write_rows_typed(uint64_t row, uint64_t count, hid_t type, const void* data) const;
  void read_rows_typed(uint64_t row, uint64_t count, hid_t type, void* data) const;
  Handle h_;
  std::string file_, path_;
};

class Group {
 public:
  Group(Handle h, std::string file, std::string path) : h_(std::move(h)), file_(std::move(file)), path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  hid_t id() const { return h_.id(); }

  Group clone() const;  // another handle to the same group
  bool has(const std::string& name) const;  // a link of that name (group or dataset)
  Group group(const std::string& name) const;         // open; throws if absent
  Group create_group(const std::string& name) const;  // create (intermediate groups too)
  Group require_group(const std::string& name) const;
  std::vector<std::string> children() const;
  void remove(const std::string& name) const;

  // Attributes.
  bool has_attr(const std::string& name) const;
  std::vector<std::string> attr_names() const;
  void set_attr(const std::string& name, const std::string& value) const;
  void set_attr(const std::string& name, const char* value) const { set_attr(name, std::string(value)); }
  void set_attr(const std::string& name, int64_t value) const;
  void set_attr(const std::string& name, double value) const;
  void set_attr(const std::string& name, const std::vector<int64_t>& value) const;
  void set_attr(const std::string& name, const std::vector<double>& value) const;
  std::string attr_string(const std::string& name) const;
  int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;
  std::vector<int64_t> attr_ints(const std::string& name) const;
  std::vector<double> attr_doubles(const std::string& name) const;

  // Datasets. `chunk` empty = contiguous; `extendible` makes dim 0 unlimited (needs a chunk).
  template <typename T>
  Dataset create_dataset(const std::string& name, const std::vector<uint64_t>& dims, const std::vector<uint64_t>& chunk = {},
                         int gzip_level = 0, bool extendible = false) const;
  template <typename T>
  Dataset write(const std::string& name, const std::vector<uint64_t>& dims, const T* data, const std::vector<uint64_t>& chunk = {},
                int gzip_level = 0) const;
  template <typename T>
  Dataset write(const std::string& name, const std::vector<T>& data) const {
    return write<T>(name, {data.size()}, data.data());
  }
  Dataset dataset(const std::string& name) const;

 private:
  Dataset create_dataset_typed(const std::string& name, hid_t type, const std::vector<uint64_t>& dims,
                               const std::vector<uint64_t>& chunk, int gzip_level, bool extendible) const;
  Handle h_;
  std::string file_, path_;
};

class File {
 public:
  enum class Mode { kReadOnly, kReadWrite, kCreate /* truncates */, kOpenOrCreate };
  File(const std::string& path, Mode mode);
  ~File();
  File(File&&) = default;
  File& operator=(File&&) = default;
  Group root() const;
  void flush() const;
  const std::string& path() const { return path_; }

 private:
  Handle h_;
  std::string path_;
};

// Is `path` an HDF5 file that opens?
bool is_readable_hdf5(const std::string& path);

// ------------------------------------------------------------------------------------------------
template <typename T>
Dataset Group::create_dataset(const std::string& name, const std::vector<uint64_t>& dims, const std::vector<uint64_t>& chunk,
                              int gzip_level, bool extendible) const {
  return create_dataset_typed(name, native_type<T>(), dims, chunk, gzip_level, extendible);
}

template <typename T>
Dataset Group::write(const std::string& name, const std::vector<uint64_t>& dims, const T* data, const std::vector<uint64_t>& chunk,
                     int gzip_level) const {
  auto ds = create_dataset<T>(name, dims, chunk, gzip_level, false);
  if (!dims.empty() && dims[0] > 0) ds.write_rows(0, dims[0], data);
  if (dims.empty()) ds.write_rows(0, 1, data);
  return ds;
}

template <typename T>
void Dataset::append_rows(uint64_t count, const T* data) const {
  auto d = dims();
  const uint64_t at = d.at(0);
  d[0] += count;
  std::vector<hsize_t> hd(d.begin(), d.end());
  if (H5Dset_extent(h_.id(), hd.data()) < 0) throw std::runtime_error(file_ + ": cannot extend dataset " + path_);
  write_rows(at, count, data);
}

template <typename T>
std::vector<T> Dataset::read() const {
  auto d = dims();
  uint64_t n = 1;
  for (auto x : d) n *= x;
  std::vector<T> out(n);
  if (d.empty()) read_rows_typed(0, 1, native_type<T>(), out.data());
  else if (d[0] > 0) read_rows_typed(0, d[0], native_type<T>(), out.data());
  return out;
}

template <typename T>
std::vector<T> Dataset::read_rows(uint64_t row, uint64_t count) const {
  auto d = dims();
  uint64_t per_row = 1;
  for (size_t i = 1; i < d.size(); ++i) per_row *= d[i];
  std::vector<T> out(count * per_row);
  if (count) read_rows_typed(row, count, native_type<T>(), out.data());
  return out;
}

}  // namespace varbench::h5
