#pragma once
// Deterministic random initialisation from a seed, so real-size models can be timed without weights and
// small ones exercise every code path. Not the official training init: the AdaLN gammas are not
// shrunk to 1e-5 and the head is scaled to give peaked (not uniform) token distributions, so that
// guidance, top-k/top-p and temperature all change what is sampled.
#include <cstdint>

#include "engines/model/var_transformer.h"
#include "engines/model/vqvae.h"

namespace varbench {

void random_init(VarTransformerImpl& model, uint64_t seed);
void random_init(VqvaeImpl& vqvae, uint64_t seed);

}  // namespace varbench
