#include "engines/model/loading.h"

#include <stdexcept>

#include <fmt/format.h>

#include "engines/model/random_init.h"
#include "formats/safetensors.h"
#include "formats/weights.h"

namespace varbench {

std::string ModelSource::describe() const {
  if (!checkpoint.empty()) return checkpoint;
  return fmt::format("random:{}:seed={}", random_config, init_seed);
}

namespace {
void check_source(const ModelSource& s, const char* what) {
  if (s.checkpoint.empty() == s.random_config.empty())
    throw std::runtime_error(fmt::format("{}: give either a checkpoint or a random-init config", what));
}

// A model from its source, the same way for every kind: a named config with random weights, or the
// checkpoint's own architecture with its weights loaded strictly; then frozen for inference.
template <typename Holder, typename Arch>
Holder load_model(const ModelSource& source, const char* what) {
  check_source(source, what);
  if (!source.random_config.empty()) {
    Holder model(Arch::named(source.random_config));
    random_init(*model, source.init_seed);
    freeze_for_inference(*model);
    return model;
  }
  SafetensorsFile file(source.checkpoint);
  Holder model(Arch::from_checkpoint(file));
  load_strict(*model, file);
  freeze_for_inference(*model);
  return model;
}

template <typename Arch>
Arch load_architecture(const ModelSource& source, const char* what) {
  check_source(source, what);
  if (!source.random_config.empty()) return Arch::named(source.random_config);
  return Arch::from_checkpoint(SafetensorsFile(source.checkpoint));
}
}  // namespace

VarTransformer load_var(const ModelSource& source) { return load_model<VarTransformer, VarArch>(source, "VAR model"); }
Vqvae load_vqvae(const ModelSource& source) { return load_model<Vqvae, VqvaeArch>(source, "VQVAE"); }
VarArch var_architecture(const ModelSource& source) { return load_architecture<VarArch>(source, "VAR model"); }
VqvaeArch vqvae_architecture(const ModelSource& source) { return load_architecture<VqvaeArch>(source, "VQVAE"); }

void place(torch::nn::Module& module, torch::Device device, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  auto convert = [&](torch::Tensor& t) {
    auto target = t.is_floating_point() ? t.to(device, dtype) : t.to(device);
    t.set_data(target);
  };
  for (auto& p : module.parameters(true)) convert(p);
  for (auto& b : module.buffers(true)) convert(b);
}

}  // namespace varbench
