// Parts of the device layer that are the same in both builds.
#include <chrono>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/device/device.h"

namespace varbench::device {

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
