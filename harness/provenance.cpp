#include "harness/provenance.h"

#include <torch/version.h>
#include <unistd.h>

#include <ctime>
#include <thread>

#include <fmt/format.h>

#include "harness/device/device.h"
#include "varbench/build_info.h"

namespace varbench {

std::string utc_timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {
std::string& command_line_storage() {
  static std::string line;
  return line;
}
}  // namespace

void set_command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) line += (i ? " " : "") + std::string(argv[i]);
  command_line_storage() = line;
}
const std::string& command_line() { return command_line_storage(); }

Provenance collect_provenance(torch::Device device) {
  Provenance p;
  p.varbench_version = build_info::kVersion;
  p.git_revision = build_info::kGitRevision;
  p.build_type = build_info::kBuildType;
  p.compiler = build_info::kCompiler;
  p.libtorch_version = TORCH_VERSION;
  p.cuda_version = device::cuda_version();
  p.device = device.str();
  p.device_name = device::name(device);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  p.hostname = host;
  p.timestamp_utc = utc_timestamp();
  p.command_line = command_line();
  p.threads = torch::get_num_threads();
  return p;
}

void write_provenance(const h5::Group& g, const Provenance& p) {
  g.set_attr("varbench_version", p.varbench_version);
  g.set_attr("git_revision", p.git_revision);
  g.set_attr("build_type", p.build_type);
  g.set_attr("compiler", p.compiler);
  g.set_attr("libtorch_version", p.libtorch_version);
  g.set_attr("cuda_version", p.cuda_version);
  g.set_attr("device", p.device);
  g.set_attr("device_name", p.device_name);
  g.set_attr("hostname", p.hostname);
  g.set_attr("timestamp_utc", p.timestamp_utc);
  g.set_attr("command_line", p.command_line);
  g.set_attr("threads", p.threads);
}

int configure_threads(int requested) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int n = requested > 0 ? requested : std::max(cores, 1);
  torch::set_num_threads(n);
  return torch::get_num_threads();
}

}  // namespace varbench
