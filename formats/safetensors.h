#pragma once
// Safetensors files: the only weight format the C++ side reads (it never unpickles). The reader maps the
// file and validates the header before touching any data: a header of sane length that parses as JSON,
// known dtypes, byte sizes equal to dtype size x shape, offsets inside the file and non-overlapping.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace varbench {

struct TensorInfo {
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

class MappedFile;

// A validated, memory-mapped safetensors file. Tensors returned by `tensor()` alias the mapping (no copy)
// and keep it alive.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& key) const { return entries_.count(key) != 0; }
  // CPU tensor aliasing the mapped bytes; throws naming key and file when absent.
  torch::Tensor tensor(const std::string& key) const;
  std::map<std::string, torch::Tensor> tensors() const;

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  uint64_t data_offset_ = 0;
  std::map<std::string, TensorInfo> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (made contiguous, moved to CPU) with optional string metadata.
void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// "F32", "F16", "BF16", "I64", ... <-> torch dtype. Throws on an unknown name.
torch::ScalarType safetensors_dtype(const std::string& name);
std::string safetensors_dtype_name(torch::ScalarType dtype);

}  // namespace varbench
