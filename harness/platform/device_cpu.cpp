// Device layer of a CPU-only libtorch build.
#include <stdexcept>

#include <fmt/format.h>

#include "harness/platform/device.h"

namespace varbench::device {

std::string cpu_model_name();
std::unique_ptr<Timeline> make_cpu_timeline();

bool cuda_built() { return false; }
bool cuda_available() { return false; }
std::string cuda_version() { return ""; }
std::string cudnn_version() { return ""; }

torch::Device resolve(const std::string& name) {
  if (name == "cpu" || name == "auto") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0)
    throw std::runtime_error(fmt::format("device '{}': this varbench was built against a CPU-only libtorch", name));
  throw std::runtime_error(fmt::format("unknown device '{}' (cpu, cuda, cuda:N, auto)", name));
}

std::string name(torch::Device) { return cpu_model_name(); }
void synchronize(torch::Device) {}
std::unique_ptr<Timeline> make_timeline(torch::Device) { return make_cpu_timeline(); }
void reset_peak_stats(torch::Device) {}
AllocatorStats allocator_stats(torch::Device) { return {}; }
void empty_cache(torch::Device) {}
void error_on_synchronisation(bool) {}
int64_t total_memory_bytes(torch::Device) { return 0; }

}  // namespace varbench::device
