// `token_pruning`: FastVAR-style cached token pruning (Guo et al., 2025). From `prune_from_scale` on,
// only the `keep_ratio` share of a scale's tokens whose inputs lie farthest from the scale's mean input
// (the high-frequency ones) runs through the transformer and enters the KV cache; the others take the
// previous scale's final hidden states, bilinearly upsampled. All tokens are then sampled from the head.
#include <fmt/format.h>

#include "engines/engine.h"

namespace varbench {

EngineBuilder plan_token_pruning_engine(ParamReader& p, const ModelCatalog& catalog) {
  const auto model = p.text("model");
  const int64_t S = catalog.get(model, "model").schedule.num_scales();
  SingleLoopOptions o;
  o.prune_from_scale = p.integer("prune_from_scale", S - 2);
  o.keep_ratio = p.number("keep_ratio", 0.5);
  if (o.prune_from_scale < 1 || o.prune_from_scale > S - 1)
    throw std::runtime_error(fmt::format("engine 'token_pruning': prune_from_scale = {} is outside 1..{}", o.prune_from_scale, S - 1));
  if (!(o.keep_ratio > 0 && o.keep_ratio <= 1))
    throw std::runtime_error(fmt::format("engine 'token_pruning': keep_ratio = {} is outside (0, 1]", o.keep_ratio));
  return single_model_engine("token_pruning", model, catalog, o);
}

}  // namespace varbench
