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
}  // namespace

VarTransformer load_var(const ModelSource& source) {
  check_source(source, "VAR model");
  if (!source.random_config.empty()) {
    VarTransformer model(VarArch::named(source.random_config));
    random_init(*model, source.init_seed);
    freeze_for_inference(*model);
    return model;
  }
  SafetensorsFile file(source.checkpoint);
  VarTransformer model(VarArch::from_checkpoint(file));
  load_strict(*model, file);
  freeze_for_inference(*model);
  return model;
}

Vqvae load_vqvae(const ModelSource& source) {
  check_source(source, "VQVAE");
  if (!source.random_config.empty()) {
    Vqvae vqvae(VqvaeArch::named(source.random_config));
    random_init(*vqvae, source.init_seed);
    freeze_for_inference(*vqvae);
    return vqvae;
  }
  SafetensorsFile file(source.checkpoint);
  Vqvae vqvae(VqvaeArch::from_checkpoint(file));
  load_strict(*vqvae, file);
  freeze_for_inference(*vqvae);
  return vqvae;
}

VarArch var_architecture(const ModelSource& source) {
  check_source(source, "VAR model");
  if (!source.random_config.empty()) return VarArch::named(source.random_config);
  return VarArch::from_checkpoint(SafetensorsFile(source.checkpoint));
}

VqvaeArch vqvae_architecture(const ModelSource& source) {
  check_source(source, "VQVAE");
  if (!source.random_config.empty()) return VqvaeArch::named(source.random_config);
  return VqvaeArch::from_checkpoint(SafetensorsFile(source.checkpoint));
}

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
