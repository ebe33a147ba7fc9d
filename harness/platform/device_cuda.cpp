// Device layer of a CUDA libtorch build: CUDA events for timing, the caching allocator's statistics.
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <stdexcept>

#include <fmt/format.h>

#include "harness/platform/device.h"

namespace varbench::device {

std::string cpu_model_name();
std::unique_ptr<Timeline> make_cpu_timeline();

bool cuda_built() { return true; }
bool cuda_available() { return torch::cuda::is_available(); }
namespace {
std::string dotted(long v) { return fmt::format("{}.{}", v / 1000, (v % 1000) / 10); }
}  // namespace

// The CUDA runtime libtorch_cuda was compiled against (torch.version.cuda), not the driver's or the
// runtime library loaded now: that is what decides which kernels exist. Needs no GPU.
std::string cuda_version() { return dotted(at::detail::getCUDAHooks().versionCUDART()); }

std::string cudnn_version() {
  const auto& hooks = at::detail::getCUDAHooks();
  if (!hooks.compiledWithCuDNN()) return "";
  const long v = hooks.versionCuDNN();  // cuDNN 9: major*10000 + minor*100 + patch
  return v >= 10000 ? fmt::format("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
                    : fmt::format("{}.{}.{}", v / 1000, (v / 100) % 10, v % 100);
}

torch::Device resolve(const std::string& name) {
  const auto rank_device = [] {
    const auto count = static_cast<int64_t>(torch::cuda::device_count());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cuda_index_for_process(count).index));
  };
  if (name == "auto") return cuda_available() ? rank_device() : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!cuda_available()) throw std::runtime_error(fmt::format("device '{}': no CUDA device is available", name));
    torch::Device d(name);
    if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count()))
      throw std::runtime_error(fmt::format("device '{}': only {} CUDA devices", name, torch::cuda::device_count()));
    return d.has_index() ? d : rank_device();  // an explicit cuda:N wins over the rank
  }
  throw std::runtime_error(fmt::format("unknown device '{}' (cpu, cuda, cuda:N, auto)", name));
}

int64_t total_memory_bytes(torch::Device d) {
  if (!d.is_cuda()) return 0;
  return static_cast<int64_t>(at::cuda::getDeviceProperties(d.index())->totalGlobalMem);
}

std::string name(torch::Device d) {
  if (!d.is_cuda()) return cpu_model_name();
  return at::cuda::getDeviceProperties(d.index())->name;
}

void synchronize(torch::Device d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

namespace {
class CudaEventTimeline : public Timeline {
 public:
  explicit CudaEventTimeline(torch::Device d) : device_(d) {}
  void mark() override {
    events_.emplace_back(cudaEventDefault);
    events_.back().record(at::cuda::getCurrentCUDAStream(device_.index()));
  }
  std::vector<double> elapsed_ms() override {
    std::vector<double> out;
    if (events_.empty()) return out;
    events_.back().synchronize();
    for (size_t i = 1; i < events_.size(); ++i) out.push_back(events_[i - 1].elapsed_time(events_[i]));
    return out;
  }
  size_t marks() const override { return events_.size(); }

 private:
  torch::Device device_;
  std::vector<at::cuda::CUDAEvent> events_;
};
}  // namespace

std::unique_ptr<Timeline> make_timeline(torch::Device d) {
  if (d.is_cuda()) return std::make_unique<CudaEventTimeline>(d);
  return make_cpu_timeline();
}

void reset_peak_stats(torch::Device d) {
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
}

AllocatorStats allocator_stats(torch::Device d) {
  AllocatorStats s;
  if (!d.is_cuda()) return s;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.index());
  // StatType::AGGREGATE (all pools) is index 0 in every libtorch; the enum itself moved from
  // c10::cuda::CUDACachingAllocator to c10::CachingAllocator in 2.x, so the index is spelled out.
  constexpr size_t agg = 0;
  s.available = true;
  s.current_bytes = stats.allocated_bytes[agg].current;
  s.peak_bytes = stats.allocated_bytes[agg].peak;
  s.reserved_peak_bytes = stats.reserved_bytes[agg].peak;
  return s;
}

void error_on_synchronisation(bool on) {
  c10::cuda::warning_state().set_sync_debug_mode(on ? c10::cuda::SyncDebugMode::L_ERROR : c10::cuda::SyncDebugMode::L_DISABLED);
}

void empty_cache(torch::Device d) {
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
}

}  // namespace varbench::device
