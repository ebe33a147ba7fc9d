#pragma once
// Building models from checkpoints (safetensors, official keys, architecture read off the shapes) or
// from a named config with random weights, and placing them on a device in a precision.
#include <cstdint>
#include <string>

#include "engines/model/precision.h"
#include "engines/model/var_transformer.h"
#include "engines/model/vqvae.h"

namespace varbench {

// Where a model's weights come from: a checkpoint path, or a named config initialised from a seed.
struct ModelSource {
  std::string checkpoint;     // .safetensors (convert .pth with scripts/convert_checkpoint.py)
  std::string random_config;  // e.g. "var-d30", "tiny-d2", "vqvae-ch32"
  uint64_t init_seed = 0;
  std::string describe() const;
};

VarTransformer load_var(const ModelSource& source);
Vqvae load_vqvae(const ModelSource& source);

// The architecture alone, from the config name or the checkpoint's header (no weight is read): what an
// experiment can be checked against before any work.
VarArch var_architecture(const ModelSource& source);
VqvaeArch vqvae_architecture(const ModelSource& source);

// Moves to `device`; floating-point weights take the policy's dtype (integer buffers stay integer).
void place(torch::nn::Module& module, torch::Device device, torch::ScalarType dtype);

}  // namespace varbench
