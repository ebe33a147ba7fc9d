#include "harness/platform/memory_probe.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <malloc.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <fstream>
#include <string>

#include "engines/model/torch_compat.h"
#include "harness/platform/device.h"

namespace varbench {

namespace {
std::atomic<int64_t> g_live{0}, g_peak{0};
std::atomic<int64_t> g_kv_allocated_at_peak{0}, g_kv_filled_at_peak{0};  // kv_bytes_now() when g_peak was set
std::atomic<bool> g_installed{false};

// Wraps libtorch's CPU allocator: every allocation is counted until it is freed. libtorch expects a CPU
// DataPtr's context to be its data pointer (Allocator::raw_allocate checks it), so sizes are kept in a
// table keyed by the pointer rather than in a context object.
std::mutex g_sizes_mutex;
std::unordered_map<void*, int64_t>* g_sizes = new std::unordered_map<void*, int64_t>();  // never destroyed: frees may come at exit
c10::DeleterFnPtr g_inner_deleter = nullptr;

class TrackingAllocator final : public compat::AllocatorAdapter {
 public:
  explicit TrackingAllocator(c10::Allocator* inner) : inner_(inner) { g_inner_deleter = inner->raw_deleter(); }
  c10::DataPtr allocate_bytes(size_t n) const override {
    void* data = inner_->raw_allocate(n);
    if (data) {
      const int64_t bytes = static_cast<int64_t>(n);
      {
        std::lock_guard<std::mutex> lock(g_sizes_mutex);
        (*g_sizes)[data] = bytes;
      }
      const int64_t live = g_live.fetch_add(bytes) + bytes;
      int64_t peak = g_peak.load();
      bool raised = false;
      while (live > peak && !(raised = g_peak.compare_exchange_weak(peak, live))) {
      }
      if (raised) {  // what of the peak is KV cache: the split is taken at this moment
        const auto kv = kv_bytes_now();
        g_kv_allocated_at_peak.store(kv.allocated);
        g_kv_filled_at_peak.store(kv.filled);
      }
    }
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

 private:
  static void release(void* data) {
    if (!data) return;
    int64_t bytes = 0;
    {
      std::lock_guard<std::mutex> lock(g_sizes_mutex);
      auto it = g_sizes->find(data);
      if (it != g_sizes->end()) {
        bytes = it->second;
        g_sizes->erase(it);
      }
    }
    g_live.fetch_sub(bytes);
    g_inner_deleter(data);
  }
  c10::Allocator* inner_;
};

int64_t read_status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size())) * 1024;
  return -1;
}
}  // namespace

void install_cpu_memory_tracking() {
  if (g_installed.exchange(true)) return;
  if (!c10::GetCPUAllocator()->raw_deleter()) return;  // an allocator without a raw deleter cannot be wrapped
  static TrackingAllocator tracker(c10::GetCPUAllocator());
  // Priority above libtorch's own registration, so every later CPU tensor goes through the tracker.
  c10::SetAllocator(c10::DeviceType::CPU, &tracker, /*priority=*/1);
}

void keep_freed_memory_for_reuse() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);       // blocks up to 1 GiB come from the heap...
  mallopt(M_TRIM_THRESHOLD, 1 << 30);       // ...and up to 1 GiB of free heap stays mapped
}

int64_t cpu_tracked_live_bytes() { return g_live.load(); }
int64_t cpu_tracked_peak_bytes() { return g_peak.load(); }
void cpu_tracked_reset_peak() {
  g_peak.store(g_live.load());
  const auto kv = kv_bytes_now();
  g_kv_allocated_at_peak.store(kv.allocated);
  g_kv_filled_at_peak.store(kv.filled);
}

MemoryProbe::MemoryProbe(torch::Device device) : device_(device) {}

bool MemoryProbe::tracks_tensors() const { return device_.is_cuda() ? device::allocator_stats(device_).available : g_installed.load(); }

void MemoryProbe::start() {
  if (device_.is_cuda()) {
    device::synchronize(device_);
    device::reset_peak_stats(device_);
    live_at_start_ = device::allocator_stats(device_).current_bytes;
  } else {
    cpu_tracked_reset_peak();
    live_at_start_ = cpu_tracked_live_bytes();
  }
  kv_bytes_reset_peak();
  // Resets VmHWM to the current RSS (Linux >= 4.0); harmless when not permitted.
  std::ofstream("/proc/self/clear_refs") << "5";
}

int64_t MemoryProbe::peak_above_start_bytes() const {
  const int64_t peak = device_.is_cuda() ? device::allocator_stats(device_).peak_bytes : cpu_tracked_peak_bytes();
  return std::max<int64_t>(0, peak - live_at_start_);
}

KvBytes MemoryProbe::kv_at_peak() const {
  if (device_.is_cuda()) return kv_bytes_peak();
  return {g_kv_allocated_at_peak.load(), g_kv_filled_at_peak.load()};
}

void MemoryProbe::reset_peak() {
  if (device_.is_cuda()) device::reset_peak_stats(device_);
  else cpu_tracked_reset_peak();
  kv_bytes_reset_peak();
}

int64_t MemoryProbe::peak_rss_bytes() const { return read_status_kb("VmHWM"); }

}  // namespace varbench
