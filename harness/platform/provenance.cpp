#include "harness/platform/provenance.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <torch/version.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <thread>

#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

#include "engines/model/torch_compat.h"
#include "harness/platform/cpu_runtime.h"
#include "harness/platform/device.h"
#include "metrics/linalg.h"
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

namespace {
// libtorch's own BLAS_INFO (Debian's says "generic": whatever libblas.so.3 points to) and the BLAS shared
// library actually mapped into this process, which decides GEMM speed (reference BLAS is ~20x slower).
std::string blas_description() {
  const std::string config = at::show_config();
  std::string info = "unknown";
  if (auto at = config.find("BLAS_INFO="); at != std::string::npos)
    info = config.substr(at + 10, config.find_first_of(", \n", at + 10) - (at + 10));
  std::ifstream maps("/proc/self/maps");
  std::string line, library;
  while (std::getline(maps, line)) {
    const auto slash = line.rfind('/');
    if (slash == std::string::npos) continue;
    const std::string file = line.substr(slash + 1);
    if (file.rfind("libopenblas", 0) == 0 || file.rfind("libblas", 0) == 0 || file.rfind("libmkl_core", 0) == 0 ||
        file.rfind("libblis", 0) == 0) {
      library = line.substr(line.find('/'));
      break;
    }
  }
  return library.empty() ? info : info + " (" + library + ")";
}
}  // namespace

Provenance collect_provenance(torch::Device device, torch::ScalarType compute_dtype) {
  Provenance p;
  p.varbench_version = build_info::kVersion;
  p.git_revision = build_info::kGitRevision;
  p.build_type = build_info::kBuildType;
  p.compiler = build_info::kCompiler;
  p.libtorch_version = TORCH_VERSION;
  p.cuda_version = device::cuda_version();
  p.cudnn_version = device::cudnn_version();
  p.blas = blas_description();
  p.mkl = at::hasMKL() ? "yes" : "no";
  p.onednn_version = at::hasMKLDNN() ? at::get_mkldnn_version() : "";
  p.attention_backend = compat::attention_backend(device, compute_dtype);
  p.device = device.str();
  p.device_name = device::name(device);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  p.hostname = host;
  p.timestamp_utc = utc_timestamp();
  p.command_line = command_line();
  p.threads = torch::get_num_threads();
  p.openmp_wait_policy = openmp_wait_policy();
  p.test_slowdown = test_slowdown_fraction();
  return p;
}

double test_slowdown_fraction() {
  static const double fraction = [] {
    const char* v = std::getenv("VARBENCH_TEST_SLOWDOWN");
    if (!v || !*v) return 0.0;
    char* end = nullptr;
    const double f = std::strtod(v, &end);
    if (end == v || *end != '\0' || !(f >= 0 && f <= 10))
      throw std::runtime_error(fmt::format("VARBENCH_TEST_SLOWDOWN='{}': expected a fraction in [0, 10], e.g. 0.1", v));
    return f;
  }();
  return fraction;
}

std::string version_text() {
  const auto p = collect_provenance(torch::kCPU);
  std::string torch_line = "libtorch " + p.libtorch_version;
  if (!p.cuda_version.empty())
    torch_line += fmt::format(" (CUDA {}{})", p.cuda_version, p.cudnn_version.empty() ? "" : ", cuDNN " + p.cudnn_version);
  else
    torch_line += " (CPU only)";
  return fmt::format("varbench {} (git {}, {}, {})\n{}\nBLAS: {}\nattention on CPU: {}", p.varbench_version, p.git_revision,
                     p.build_type, p.compiler, torch_line, p.blas, p.attention_backend);
}

void write_provenance(const h5::Group& g, const Provenance& p) {
  g.set_attr("varbench_version", p.varbench_version);
  g.set_attr("git_revision", p.git_revision);
  g.set_attr("build_type", p.build_type);
  g.set_attr("compiler", p.compiler);
  g.set_attr("libtorch_version", p.libtorch_version);
  g.set_attr("cuda_version", p.cuda_version);
  g.set_attr("cudnn_version", p.cudnn_version);
  g.set_attr("blas", p.blas);
  g.set_attr("mkl", p.mkl);
  g.set_attr("onednn_version", p.onednn_version);
  g.set_attr("attention_backend", p.attention_backend);
  g.set_attr("device", p.device);
  g.set_attr("device_name", p.device_name);
  g.set_attr("hostname", p.hostname);
  g.set_attr("timestamp_utc", p.timestamp_utc);
  g.set_attr("command_line", p.command_line);
  g.set_attr("threads", p.threads);
  g.set_attr("openmp_wait_policy", p.openmp_wait_policy);
  if (p.test_slowdown > 0) g.set_attr("test_slowdown", p.test_slowdown);
}

std::string measurement_of(const h5::Group& run) {
  auto text = [&](const char* key) { return run.has_attr(key) ? run.attr_string(key) : std::string("?"); };
  std::string out = fmt::format("{} | {} threads | {}", text("device_name"),
                                run.has_attr("threads") ? std::to_string(run.attr_int("threads")) : "?", text("openmp_wait_policy"));
  if (run.has_attr("test_slowdown")) out += fmt::format(" | test slowdown {}", run.attr_double("test_slowdown"));
  return out;
}

std::string measurement_of(const Provenance& p) {
  std::string out = fmt::format("{} | {} threads | {}", p.device_name, p.threads, p.openmp_wait_policy);
  if (p.test_slowdown > 0) out += fmt::format(" | test slowdown {}", p.test_slowdown);
  return out;
}

int configure_threads(int requested) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int n = requested > 0 ? requested : std::max(cores, 1);
  torch::set_num_threads(n);
  metrics::linalg::set_blas_threads(n);
  return torch::get_num_threads();
}

}  // namespace varbench
