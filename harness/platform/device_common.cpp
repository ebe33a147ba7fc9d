// Parts of the device layer that are the same in both builds.
#include <chrono>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <torch/torch.h>

#include "harness/platform/device.h"

namespace varbench::device {

void warm_up_libraries(torch::Device device, torch::ScalarType compute_dtype) {
  c10::InferenceMode inference;
  std::vector<torch::ScalarType> dtypes{torch::kFloat32};
  // The CPU keeps no library workspace in tensors (and libtorch 1.13 has no half matmul there).
  if (device.is_cuda() && compute_dtype != torch::kFloat32) dtypes.push_back(compute_dtype);
  for (const auto dtype : dtypes) {
    const auto o = torch::TensorOptions().device(device).dtype(dtype);
    const auto a = torch::ones({64, 64}, o), bias = torch::ones({64}, o), a3 = torch::ones({2, 64, 64}, o);
    // The products the models run: plain (cuBLAS), with a bias epilogue (cuBLASLt), batched.
    torch::mm(a, a);
    torch::addmm(bias, a, a);
    torch::nn::functional::linear(a3, a, bias);
    torch::bmm(a3, a3);
    torch::baddbmm(a3, a3, a3);
  }
  synchronize(device);
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(line.find_first_not_of(' ', pos + 1));
    }
  return "unknown CPU";
}

class SteadyClockTimeline : public Timeline {
 public:
  void mark() override { marks_.push_back(std::chrono::steady_clock::now()); }
  std::vector<double> elapsed_ms() override {
    std::vector<double> out;
    for (size_t i = 1; i < marks_.size(); ++i)
      out.push_back(std::chrono::duration<double, std::milli>(marks_[i] - marks_[i - 1]).count());
    return out;
  }
  size_t marks() const override { return marks_.size(); }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

std::unique_ptr<Timeline> make_cpu_timeline() { return std::make_unique<SteadyClockTimeline>(); }

ProcessDevice cuda_index_for_process(int64_t device_count, const std::function<const char*(const char*)>& getenv) {
  ProcessDevice d;
  for (const char* variable : {"LOCAL_RANK", "SLURM_LOCALID"}) {
    const char* value = getenv(variable);
    if (!value || !*value) continue;
    char* end = nullptr;
    const long long rank = std::strtoll(value, &end, 10);
    if (*end != '\0' || rank < 0) throw std::runtime_error(fmt::format("{}='{}' is not a local rank (an integer >= 0)", variable, value));
    d.source = fmt::format("{}={}", variable, value);
    if (rank < device_count) d.index = rank;
    else if (device_count == 1) d.index = 0;  // the scheduler bound this task to one GPU
    else
      throw std::runtime_error(fmt::format("{} but only {} CUDA devices are visible: give the device explicitly (cuda:N), or "
                                           "launch at most one rank per GPU",
                                           d.source, device_count));
    return d;
  }
  return d;
}

}  // namespace varbench::device
