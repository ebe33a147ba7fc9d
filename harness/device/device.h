#pragma once
// Everything that differs between a CPU-only and a CUDA libtorch build: one translation unit per build
// (device_cpu.cpp or device_cuda.cpp, chosen by CMake), no #if blocks elsewhere.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace varbench::device {

bool cuda_built();      // libtorch was built with CUDA
bool cuda_available();  // ... and a device is present
std::string cuda_version();   // the CUDA version libtorch was built with ("13.0"); "" on CPU builds
std::string cudnn_version();  // the cuDNN version libtorch was built with ("9.24.0"); "" without cuDNN
// "cpu" | "cuda" | "cuda:N" | "auto" (cuda when available). Throws on unknown names or absent CUDA.
torch::Device resolve(const std::string& name);
std::string name(torch::Device device);  // the CPU model or the GPU's name
void synchronize(torch::Device device);

// Timestamps on the device's stream: CUDA events (no synchronisation until `elapsed_ms`), or the steady
// clock on CPU. Mark 0 is the start; elapsed_ms()[i] = time from mark i to mark i+1.
class Timeline {
 public:
  virtual ~Timeline() = default;
  virtual void mark() = 0;
  virtual std::vector<double> elapsed_ms() = 0;  // synchronises the device
  virtual size_t marks() const = 0;
};
std::unique_ptr<Timeline> make_timeline(torch::Device device);

// Device allocator statistics (CUDA caching allocator; not available for CPU here).
struct AllocatorStats {
  bool available = false;
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t reserved_peak_bytes = 0;
};
void reset_peak_stats(torch::Device device);
AllocatorStats allocator_stats(torch::Device device);
void empty_cache(torch::Device device);

}  // namespace varbench::device
