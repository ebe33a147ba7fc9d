// `guidance_cutoff`: classifier-free guidance only on the early scales; from `cutoff_scale` on only the
// conditional branch runs (half the rows, half the KV cache traffic).
#include <fmt/format.h>

#include "engines/engine.h"

namespace varbench {

EngineBuilder plan_guidance_cutoff_engine(ParamReader& p, const ModelCatalog& catalog) {
  const auto model = p.text("model");
  const int64_t S = catalog.get(model, "model").schedule.num_scales();
  SingleLoopOptions o;
  o.guidance_off_from = p.integer("cutoff_scale");
  if (o.guidance_off_from < 1 || o.guidance_off_from > S - 1)
    throw std::runtime_error(fmt::format("engine 'guidance_cutoff': cutoff_scale = {} is outside 1..{}", o.guidance_off_from, S - 1));
  return single_model_engine("guidance_cutoff", model, catalog, o);
}

}  // namespace varbench
