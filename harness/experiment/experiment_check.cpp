#include "harness/experiment/experiment_check.h"

#include <filesystem>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "engines/engine.h"
#include "engines/model/loading.h"
#include "harness/platform/device.h"
#include "harness/platform/error_text.h"

namespace varbench {

namespace {

std::string at_line(const std::string& path, int64_t line) {
  return line > 0 ? fmt::format("{}:{}", path, line) : path;
}

// Why a model has no architecture, or "" when it has one (stored in `arch`).
template <typename Arch, typename Resolve>
std::string resolve_model(const ModelSpec& spec, bool random_override, Resolve resolve, Arch& arch) {
  try {
    if (auto absent = absent_checkpoint(spec, random_override); !absent.empty()) return absent;
    arch = resolve(spec.source(random_override));
    return "";
  } catch (const std::exception& e) {
    return one_line(e);
  }
}

// The line of the parameter an engine's message is about, else the engine entry's.
int64_t line_of(const RunSpec& run, const std::string& message) {
  for (const auto& [key, line] : run.lines)
    if (message.find(key + " = ") != std::string::npos || message.find("'" + key + "'") != std::string::npos) return line;
  const auto it = run.lines.find("engine");
  return it == run.lines.end() ? 0 : it->second;
}

}  // namespace

std::string absent_checkpoint(const ModelSpec& spec, bool random_override) {
  if (random_override || spec.checkpoint.empty() || std::filesystem::exists(spec.checkpoint)) return "";
  return fmt::format("{}: no such checkpoint file{}", spec.checkpoint,
                     spec.config.empty() ? std::string()
                                         : fmt::format(" (--random-init runs the experiment with random weights of '{}': "
                                                       "speed and memory only)",
                                                       spec.config));
}

ModelCatalog experiment_catalog(const Experiment& x, bool random_override, std::string* vqvae_error) {
  ModelCatalog catalog;
  for (const auto& spec : x.models) {
    VarArch arch;
    if (const auto why = resolve_model(spec, random_override, var_architecture, arch); why.empty())
      catalog.architectures.emplace(spec.name, arch);
    else
      catalog.errors[spec.name] = why;
  }
  VqvaeArch vqvae_arch;
  const auto why = resolve_model(x.vqvae, random_override, vqvae_architecture, vqvae_arch);
  if (why.empty()) catalog.vqvae = vqvae_arch;
  if (vqvae_error) *vqvae_error = why;
  return catalog;
}

std::vector<std::string> experiment_problems(const Experiment& x, const CheckOptions& o) {
  std::vector<std::string> problems;
  std::string vqvae_error;
  const auto catalog = experiment_catalog(x, o.random_override, &vqvae_error);
  for (const auto& spec : x.models)
    if (const auto why = catalog.errors.find(spec.name); why != catalog.errors.end())
      problems.push_back(fmt::format("{}: [models.{}] {}", at_line(x.path, spec.line), spec.name, why->second));
  if (!vqvae_error.empty()) problems.push_back(fmt::format("{}: [vqvae] {}", at_line(x.path, x.vqvae.line), vqvae_error));
  // A transformer samples codes of the VQVAE's codebook: another vocabulary or code dimension cannot decode.
  if (catalog.vqvae)
    for (const auto& spec : x.models)
      if (const auto it = catalog.architectures.find(spec.name); it != catalog.architectures.end())
        if (it->second.vocab_size != catalog.vqvae->vocab_size || it->second.code_dim != catalog.vqvae->code_dim)
          problems.push_back(fmt::format("{}: [models.{}] ({} codes of dim {}) and [vqvae] ({} codes of dim {}) do not match",
                                         at_line(x.path, spec.line), spec.name, it->second.vocab_size, it->second.code_dim,
                                         catalog.vqvae->vocab_size, catalog.vqvae->code_dim));

  if (x.quality) {
    const auto where = at_line(x.path, x.quality->line);
    if (!x.store_images)
      problems.push_back(fmt::format("{}: [quality] scores the stored images, and [experiment] store_images = false", where));
    for (const auto& [key, file] : {std::pair{"network", x.quality->network}, std::pair{"reference", x.quality->reference}})
      if (!std::filesystem::exists(file)) problems.push_back(fmt::format("{}: [quality] {} = \"{}\": no such file", where, key, file));
  }

  std::set<std::string> said;  // runs of one engine entry share its problems: each is said once
  for (const auto& run : x.runs) {
    const std::string device = o.device_override.empty() ? run.device : o.device_override;
    if (device.rfind("cuda", 0) == 0 && !device::cuda_built()) {
      auto p = fmt::format("{}: device = '{}': this varbench was built against a CPU-only libtorch (run '{}'; the torch-2.x "
                           "lane's build-torch2/varbench or scripts/gpu-check's build-gpu/varbench has CUDA)",
                           x.path, device, run.id);
      if (said.insert("device " + device).second) problems.push_back(p);
    }
    if (device == "cpu" && run.dtype != "fp32" && run.dtype != "bf16-autocast") {
      auto p = fmt::format("{}: dtype = '{}' on device 'cpu': CPU runs are fp32 or bf16-autocast (run '{}')", x.path, run.dtype, run.id);
      if (said.insert(fmt::format("dtype {} {}", device, run.dtype)).second) problems.push_back(p);
    }
    try {
      plan_engine(run.engine_type, run.engine_params, catalog);
    } catch (const ModelUnavailable&) {
      // The model's own problem is listed above.
    } catch (const std::exception& e) {
      std::string message = one_line(e);
      if (const auto prefix = fmt::format("engine '{}': ", run.engine_type); message.rfind(prefix, 0) == 0)
        message = message.substr(prefix.size());
      if (said.insert(run.engine_name + "\n" + message).second)
        problems.push_back(fmt::format("{}: [[engines]] '{}' ({}): {}", at_line(x.path, line_of(run, message)), run.engine_name,
                                       run.engine_type, message));
    }
  }
  return problems;
}

void check_experiment(const Experiment& x, const CheckOptions& o) {
  const auto problems = experiment_problems(x, o);
  if (problems.empty()) return;
  if (problems.size() == 1) throw std::runtime_error(problems.front() + " (nothing was run)");
  throw std::runtime_error(fmt::format("{}: {} problems, nothing was run:\n  {}", x.path, problems.size(), fmt::join(problems, "\n  ")));
}

}  // namespace varbench
