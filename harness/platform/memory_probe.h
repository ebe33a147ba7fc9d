#pragma once
// Memory of a run: the device allocator's live/peak bytes (CUDA caching allocator, or on CPU a tracking
// allocator installed into libtorch that counts every tensor byte), and the process's peak RSS.
#include <torch/torch.h>

#include <cstdint>

#include "engines/model/kv_cache.h"

namespace varbench {

// Installs the CPU tracking allocator (call once at start-up, before any tensor is made).
void install_cpu_memory_tracking();

// glibc returns every block above 128 KiB to the kernel when it is freed, so each new activation tensor
// is page-faulted in again (half the CPU time of a VQVAE decode at batch 4). Raise the thresholds so
// freed tensors are reused. Called once at start-up by every varbench program.
void keep_freed_memory_for_reuse();

class MemoryProbe {
 public:
  explicit MemoryProbe(torch::Device device);
  // Starts a measurement: resets the peaks and remembers the live bytes (the loaded models).
  void start();
  // Tensor bytes allocated above the start level at the peak (CUDA: caching-allocator allocations).
  int64_t peak_above_start_bytes() const;
  // The KV cache bytes alive at that peak: on the CPU read at the moment the peak was set (exact); on
  // CUDA the largest alive since the last reset (the allocator's peak moment is not observable).
  KvBytes kv_at_peak() const;
  // Starts a new phase: the peak becomes what is live now (start level unchanged).
  void reset_peak();
  int64_t live_at_start_bytes() const { return live_at_start_; }
  // Process peak RSS since start() (VmHWM after resetting it through /proc/self/clear_refs), or -1.
  int64_t peak_rss_bytes() const;
  bool tracks_tensors() const;  // false when neither the CUDA allocator nor CPU tracking is available

 private:
  torch::Device device_;
  int64_t live_at_start_ = 0;
};

// CPU tracking allocator counters (also used by tests).
int64_t cpu_tracked_live_bytes();
int64_t cpu_tracked_peak_bytes();
void cpu_tracked_reset_peak();

}  // namespace varbench
