// `early_exit`: stop after a scale and decode the partial f_hat (what the image looks like when the last
// scales are skipped); the skipped scales have no tokens.
#include <fmt/format.h>

#include "engines/engine.h"

namespace varbench {

EngineBuilder plan_early_exit_engine(ParamReader& p, const ModelCatalog& catalog) {
  const auto model = p.text("model");
  const int64_t S = catalog.get(model, "model").schedule.num_scales();
  SingleLoopOptions o;
  o.exit_after_scale = p.integer("exit_after_scale");
  if (o.exit_after_scale < 0 || o.exit_after_scale > S - 2)
    throw std::runtime_error(fmt::format("engine 'early_exit': exit_after_scale = {} is outside 0..{}", o.exit_after_scale, S - 2));
  return single_model_engine("early_exit", model, catalog, o);
}

}  // namespace varbench
