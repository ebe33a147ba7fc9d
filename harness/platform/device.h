#pragma once
// Everything that differs between a CPU-only and a CUDA libtorch build: one translation unit per build
// (device_cpu.cpp or device_cuda.cpp, chosen by CMake), no #if blocks elsewhere.
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace varbench::device {

bool cuda_built();      // libtorch was built with CUDA
bool cuda_available();  // ... and a device is present
std::string cuda_version();   // the CUDA version libtorch was built with ("13.0"); "" on CPU builds
std::string cudnn_version();  // the cuDNN version libtorch was built with ("9.24.0"); "" without cuDNN
// "cpu" | "cuda" | "cuda:N" | "auto" (cuda when available). Throws on unknown names or absent CUDA.
// "cuda" and "auto" take the GPU of this process's rank on its node (cuda_index_for_process); "cuda:N" is N.
torch::Device resolve(const std::string& name);

// The CUDA device index of a process among `device_count` visible ones. Under torchrun (LOCAL_RANK) or
// srun (SLURM_LOCALID) it is the process's rank on its node, so that 8 ranks on a node use 8 GPUs rather
// than all landing on GPU 0; LOCAL_RANK wins (torchrun inside an srun task). One visible device is taken
// whatever the rank: the scheduler bound the task to it (CUDA_VISIBLE_DEVICES). A rank beyond the visible
// devices is an error naming both. `source` says where the index came from ("LOCAL_RANK=3", or "" for 0
// without a launcher). `getenv` is injectable for tests; the logic needs no GPU.
struct ProcessDevice {
  int64_t index = 0;
  std::string source;
};
ProcessDevice cuda_index_for_process(int64_t device_count,
                                     const std::function<const char*(const char*)>& getenv = [](const char* n) { return std::getenv(n); });
std::string name(torch::Device device);  // the CPU model or the GPU's name
void synchronize(torch::Device device);
// Runs one small matrix product of each kind the models run, in float32 and `compute_dtype`: cuBLAS and
// cuBLASLt allocate their workspace through the caching allocator at a stream's first product and keep it
// for the process (32 MiB on Hopper), which a memory pass started before it would count as the first run's
// activations. Called before every memory pass; a few microseconds once warm.
void warm_up_libraries(torch::Device device, torch::ScalarType compute_dtype);
// CUDA's synchronisation check (torch.cuda.set_sync_debug_mode("error")): while on, an operation that
// makes the host wait for the device (a copy to the host, .item(), a stream synchronisation) throws. For
// tests of "no synchronisation inside a batch"; nothing on the CPU.
void error_on_synchronisation(bool on);

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
int64_t total_memory_bytes(torch::Device device);  // a CUDA device's memory; 0 for the CPU

}  // namespace varbench::device
