#include "formats/image_files.h"

#include <png.h>
#include <zip.h>

#include <cstring>
#include <regex>
#include <stdexcept>

namespace varbench::io {

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }
}  // namespace

void write_png(const std::string& path, const uint8_t* rgb, int64_t height, int64_t width) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&image, path.c_str(), 0, rgb, static_cast<png_int_32>(width * 3), nullptr))
    fail(path, std::string("cannot write PNG: ") + image.message);
}

RgbImage read_png(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) fail(path, std::string("not a readable PNG: ") + image.message);
  image.format = PNG_FORMAT_RGB;
  RgbImage out;
  out.height = image.height;
  out.width = image.width;
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr)) {
    png_image_free(&image);
    fail(path, std::string("cannot decode PNG: ") + image.message);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int64_t npy_dtype_size(const std::string& dtype) {
  static const std::regex re(R"(^[<>|=]?([uifb])(\d+)$)");
  std::smatch m;
  if (!std::regex_match(dtype, m, re)) throw std::runtime_error("unsupported .npy dtype '" + dtype + "'");
  if (dtype[0] == '>') throw std::runtime_error("big-endian .npy dtype '" + dtype + "' is not supported");
  return std::stoll(m[2]);
}

namespace {
std::string npy_header(const NpyArray& a) {
  std::string shape = "(";
  for (size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + (a.shape.size() == 1 || i + 1 < a.shape.size() ? "," : "");
  shape += ")";
  std::string dict = "{'descr': '" + a.dtype + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Version 1.0: magic, 2 version bytes, uint16 header length; total a multiple of 64, ending in '\n'.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(dict.size());
  out.push_back(static_cast<char>(len & 0xFF));
  out.push_back(static_cast<char>(len >> 8));
  return out + dict;
}

// Parses a .npy header from its bytes: dtype, shape; throws on Fortran order.
void parse_npy_dict(const std::string& where, const std::string& dict, std::string& dtype, std::vector<int64_t>& shape) {
  static const std::regex descr(R"('descr'\s*:\s*'([^']+)')"), fortran(R"('fortran_order'\s*:\s*(True|False))"),
      shp(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch m;
  if (!std::regex_search(dict, m, descr)) fail(where, "malformed .npy header (no descr)");
  dtype = m[1];
  if (std::regex_search(dict, m, fortran) && m[1] == "True") fail(where, "Fortran-ordered arrays are not supported");
  if (!std::regex_search(dict, m, shp)) fail(where, "malformed .npy header (no shape)");
  shape.clear();
  const std::string dims = m[1];
  static const std::regex num(R"(\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it)
    shape.push_back(std::stoll(it->str()));
  npy_dtype_size(dtype);
}
}  // namespace

void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) fail(path, "cannot create .npz");
  // libzip reads the sources at zip_close; keep the buffers alive until then.
  std::vector<std::string> buffers;
  buffers.reserve(arrays.size());
  for (const auto& [name, a] : arrays) {
    if (static_cast<int64_t>(a.bytes.size()) != a.numel() * npy_dtype_size(a.dtype)) {
      zip_discard(z);
      fail(path, "array '" + name + "' has the wrong number of bytes");
    }
    buffers.push_back(npy_header(a) + std::string(a.bytes.begin(), a.bytes.end()));
    zip_source_t* src = zip_source_buffer(z, buffers.back().data(), buffers.back().size(), 0);
    const zip_int64_t idx = src ? zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE) : -1;
    if (idx < 0) {
      if (src) zip_source_free(src);
      zip_discard(z);
      fail(path, "cannot add '" + name + "' to the .npz");
    }
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);  // np.savez stores
  }
  if (zip_close(z) != 0) {
    zip_discard(z);
    fail(path, "cannot write .npz");
  }
}

namespace {
// libzip pulls the array through this callback at zip_close: the .npy header, then rows on demand.
struct StreamedArray {
  std::string header;
  int64_t rows = 0, row_bytes = 0;
  std::function<void(int64_t, int64_t, uint8_t*)> fill_rows;
  uint64_t offset = 0;  // bytes produced so far
  std::vector<uint8_t> chunk;
  int64_t chunk_first = -1;
  uint64_t total() const { return header.size() + static_cast<uint64_t>(rows * row_bytes); }
};

zip_int64_t streamed_callback(void* state, void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
  auto* s = static_cast<StreamedArray*>(state);
  switch (cmd) {
    case ZIP_SOURCE_OPEN: s->offset = 0; return 0;
    case ZIP_SOURCE_READ: {
      auto* out = static_cast<uint8_t*>(data);
      zip_uint64_t produced = 0;
      try {
        while (produced < len && s->offset < s->total()) {
          if (s->offset < s->header.size()) {
            const uint64_t n = std::min<uint64_t>(len - produced, s->header.size() - s->offset);
            std::memcpy(out + produced, s->header.data() + s->offset, n);
            produced += n;
            s->offset += n;
            continue;
          }
          const uint64_t body = s->offset - s->header.size();
          const int64_t row = static_cast<int64_t>(body / static_cast<uint64_t>(s->row_bytes));
          constexpr int64_t kRowsPerChunk = 64;
          if (s->chunk_first < 0 || row < s->chunk_first || row >= s->chunk_first + kRowsPerChunk) {
            s->chunk_first = row - row % kRowsPerChunk;
            const int64_t count = std::min(kRowsPerChunk, s->rows - s->chunk_first);
            s->chunk.resize(static_cast<size_t>(count * s->row_bytes));
            s->fill_rows(s->chunk_first, count, s->chunk.data());
          }
          const uint64_t in_chunk = body - static_cast<uint64_t>(s->chunk_first * s->row_bytes);
          const uint64_t n = std::min<uint64_t>(len - produced, s->chunk.size() - in_chunk);
          std::memcpy(out + produced, s->chunk.data() + in_chunk, n);
          produced += n;
          s->offset += n;
        }
      } catch (const std::exception&) {
        return -1;
      }
      return static_cast<zip_int64_t>(produced);
    }
    case ZIP_SOURCE_CLOSE: return 0;
    case ZIP_SOURCE_STAT: {
      auto* st = static_cast<zip_stat_t*>(data);
      zip_stat_init(st);
      st->size = s->total();
      st->valid |= ZIP_STAT_SIZE;
      return sizeof(zip_stat_t);
    }
    case ZIP_SOURCE_ERROR: return zip_error_to_data(nullptr, data, len);
    case ZIP_SOURCE_FREE: return 0;
    case ZIP_SOURCE_SUPPORTS:
      return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                            ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
    default: return -1;
  }
}
}  // namespace

void write_npz_streamed(const std::string& path, const std::string& name, const std::string& dtype,
                        const std::vector<int64_t>& shape,
                        const std::function<void(int64_t first, int64_t count, uint8_t* dst)>& fill_rows) {
  StreamedArray state;
  NpyArray meta;
  meta.dtype = dtype;
  meta.shape = shape;
  state.header = npy_header(meta);
  state.rows = shape.empty() ? 1 : shape[0];
  state.row_bytes = npy_dtype_size(dtype);
  for (size_t i = 1; i < shape.size(); ++i) state.row_bytes *= shape[i];
  state.fill_rows = fill_rows;
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) fail(path, "cannot create .npz");
  zip_source_t* src = zip_source_function(z, streamed_callback, &state);
  const zip_int64_t idx = src ? zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE) : -1;
  if (idx < 0) {
    if (src) zip_source_free(src);
    zip_discard(z);
    fail(path, "cannot add '" + name + "' to the .npz");
  }
  zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);
  // Large arrays need the ZIP64 extension, which libzip adds when the source's size says so.
  if (zip_close(z) != 0) {
    const std::string why = zip_strerror(z);
    zip_discard(z);
    fail(path, "cannot write .npz: " + why);
  }
}

NpzReader::NpzReader(const std::string& path) : path_(path) {
  int err = 0;
  zip_ = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!zip_) fail(path, "cannot open as .npz (not a readable zip archive)");
}

NpzReader::~NpzReader() {
  if (zip_) zip_close(static_cast<zip_t*>(zip_));
}

std::vector<std::string> NpzReader::names() const {
  std::vector<std::string> out;
  auto* z = static_cast<zip_t*>(zip_);
  const zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    std::string name = zip_get_name(z, static_cast<zip_uint64_t>(i), 0);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) out.push_back(name.substr(0, name.size() - 4));
  }
  return out;
}

bool NpzReader::has(const std::string& name) const {
  return zip_name_locate(static_cast<zip_t*>(zip_), (name + ".npy").c_str(), 0) >= 0;
}

NpzReader::Stream::~Stream() {
  if (file_) zip_fclose(static_cast<zip_file_t*>(file_));
}

int64_t NpzReader::Stream::row_bytes() const {
  int64_t n = npy_dtype_size(dtype_);
  for (size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

namespace {
void read_exact(zip_file_t* f, void* dst, int64_t n, const std::string& where) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const zip_int64_t got = zip_fread(f, p, static_cast<zip_uint64_t>(n));
    if (got <= 0) fail(where, "truncated array data");
    p += got;
    n -= got;
  }
}
}  // namespace

std::unique_ptr<NpzReader::Stream> NpzReader::open(const std::string& name) const {
  const std::string where = path_ + ":" + name;
  zip_file_t* f = zip_fopen(static_cast<zip_t*>(zip_), (name + ".npy").c_str(), 0);
  if (!f) fail(path_, "no array '" + name + "' in the .npz");
  std::unique_ptr<Stream> s(new Stream());
  s->file_ = f;
  s->where_ = where;
  char magic[10];
  read_exact(f, magic, 10, where);
  if (std::memcmp(magic, "\x93NUMPY", 6) != 0) fail(where, "not a .npy array");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    header_len = static_cast<uint8_t>(magic[8]) | (static_cast<uint8_t>(magic[9]) << 8);
  } else {
    char more[2];
    read_exact(f, more, 2, where);
    header_len = static_cast<uint8_t>(magic[8]) | (static_cast<uint8_t>(magic[9]) << 8) |
                 (static_cast<uint8_t>(more[0]) << 16) | (static_cast<uint32_t>(static_cast<uint8_t>(more[1])) << 24);
  }
  if (header_len > (1u << 20)) fail(where, "implausible .npy header length");
  std::string dict(header_len, '\0');
  read_exact(f, dict.data(), header_len, where);
  parse_npy_dict(where, dict, s->dtype_, s->shape_);
  s->rows_left_ = s->shape_.empty() ? 1 : s->shape_[0];
  return s;
}

int64_t NpzReader::Stream::read(int64_t rows, std::vector<uint8_t>& out) {
  const int64_t n = std::min(rows, rows_left_);
  out.resize(static_cast<size_t>(n * row_bytes()));
  if (n > 0) read_exact(static_cast<zip_file_t*>(file_), out.data(), n * row_bytes(), where_);
  rows_left_ -= n;
  return n;
}

NpyArray NpzReader::read(const std::string& name) const {
  auto s = open(name);
  NpyArray a;
  a.dtype = s->dtype();
  a.shape = s->shape();
  s->read(s->rows_left(), a.bytes);
  return a;
}

}  // namespace varbench::io
