// Parts of the device layer that are the same in both builds.
#include <chrono>
#include <fstream>

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

}  // namespace varbench::device
