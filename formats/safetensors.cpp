#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace varbench {

namespace {
// Real checkpoints have headers of a few hundred KB; anything beyond this is a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeName {
  const char* name;
  torch::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};
}  // namespace

torch::ScalarType safetensors_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.dtype;
  throw std::runtime_error(fmt::format("unknown safetensors dtype '{}'", name));
}

std::string safetensors_dtype_name(torch::ScalarType dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.dtype) return d.name;
  throw std::runtime_error(fmt::format("dtype {} cannot be stored in safetensors", c10::toString(dtype)));
}

class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      ::close(fd_);
      throw std::runtime_error(fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (data_ == MAP_FAILED) {
        ::close(fd_);
        throw std::runtime_error(fmt::format("{}: cannot map: {}", path, std::strerror(errno)));
      }
    }
  }
  ~MappedFile() {
    if (data_ && data_ != MAP_FAILED) ::munmap(data_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(data_); }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  void* data_ = nullptr;
  uint64_t size_ = 0;
};

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), file_(std::make_shared<MappedFile>(path)) {
  const uint64_t size = file_->size();
  if (size < 8) throw std::runtime_error(fmt::format("{}: not a safetensors file (only {} bytes)", path, size));
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_->bytes(), 8);  // little-endian on every platform varbench builds for
  if (header_len < 2 || header_len > kMaxHeaderBytes || header_len > size - 8)
    throw std::runtime_error(fmt::format("{}: corrupt or truncated safetensors header (length field {} for a {}-byte file)",
                                         path, header_len, size));
  data_offset_ = 8 + header_len;
  const uint64_t data_size = size - data_offset_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file_->bytes() + 8, file_->bytes() + 8 + header_len);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: safetensors header is not valid JSON: {}", path, e.what()));
  }
  if (!header.is_object()) throw std::runtime_error(fmt::format("{}: safetensors header is not a JSON object", path));

  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const auto& value = it.value();
    if (key == "__metadata__") {
      if (!value.is_object()) throw std::runtime_error(fmt::format("{}: __metadata__ is not an object", path));
      for (auto m = value.begin(); m != value.end(); ++m)
        if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
      continue;
    }
    try {
      TensorInfo info;
      info.dtype = safetensors_dtype(value.at("dtype").get<std::string>());
      int64_t numel = 1;
      for (const auto& d : value.at("shape")) {
        const int64_t dim = d.get<int64_t>();
        if (dim < 0) throw std::runtime_error("negative dimension");
        info.shape.push_back(dim);
        // A header may claim any shape: the product is checked, so that a crafted or damaged file cannot
        // wrap it round into a size that matches its data offsets.
        if (__builtin_mul_overflow(numel, dim, &numel))
          throw std::runtime_error(fmt::format("shape {} has more elements than a 64-bit count holds", value.at("shape").dump()));
      }
      if (uint64_t bytes = 0; __builtin_mul_overflow(static_cast<uint64_t>(numel), c10::elementSize(info.dtype), &bytes))
        throw std::runtime_error(fmt::format("shape {} has more bytes than a 64-bit size holds", value.at("shape").dump()));
      const auto& offsets = value.at("data_offsets");
      if (!offsets.is_array() || offsets.size() != 2) throw std::runtime_error("data_offsets must have two entries");
      info.begin = offsets[0].get<uint64_t>();
      info.end = offsets[1].get<uint64_t>();
      if (info.begin > info.end || info.end > data_size)
        throw std::runtime_error(fmt::format("data_offsets [{}, {}] outside the {}-byte data section (truncated file?)",
                                             info.begin, info.end, data_size));
      const uint64_t expected = static_cast<uint64_t>(numel) * c10::elementSize(info.dtype);
      if (info.end - info.begin != expected)
        throw std::runtime_error(fmt::format("holds {} bytes but dtype x shape needs {}", info.end - info.begin, expected));
      ranges.push_back({{info.begin, info.end}, key});
      entries_.emplace(key, std::move(info));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: tensor '{}': {}", path, key, e.what()));
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first.first < ranges[i - 1].first.second)
      throw std::runtime_error(fmt::format("{}: tensors '{}' and '{}' overlap", path, ranges[i - 1].second, ranges[i].second));
}

torch::Tensor SafetensorsFile::tensor(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) throw std::runtime_error(fmt::format("{}: no tensor '{}'", path_, key));
  const TensorInfo& info = it->second;
  auto keep_alive = file_;
  // from_blob wants a mutable pointer; the mapping is read-only and varbench never writes through it
  // (parameters are copied out of it).
  void* ptr = const_cast<uint8_t*>(file_->bytes() + data_offset_ + info.begin);
  if (info.end == info.begin) return torch::empty(info.shape, torch::TensorOptions().dtype(info.dtype));
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(info.dtype) != 0) {
    // Misaligned (legal in the format): copy into an aligned buffer.
    auto out = torch::empty(info.shape, torch::TensorOptions().dtype(info.dtype));
    std::memcpy(out.data_ptr(), ptr, info.end - info.begin);
    return out;
  }
  return torch::from_blob(ptr, info.shape, [keep_alive](void*) {}, torch::TensorOptions().dtype(info.dtype));
}

std::map<std::string, torch::Tensor> SafetensorsFile::tensors() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key, info] : entries_) out.emplace(key, tensor(key));
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [key, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[key] = {{"dtype", safetensors_dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()},
                   {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(c);
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keep the data section 8-byte aligned
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot write", path));
    const uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : data)
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
    if (!out) throw std::runtime_error(fmt::format("{}: write failed", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(fmt::format("{}: cannot rename from {}: {}", path, tmp, std::strerror(errno)));
}

}  // namespace varbench
