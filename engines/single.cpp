// `single`: one model over every scale; large-only and small-only are this engine with different models.
// The one-model baselines (early exit, guidance cutoff, token pruning) are variations of its loop and
// live in their own files.
#include "engines/engine.h"

namespace varbench {

class SingleModelEngine : public Engine {
 public:
  SingleModelEngine(std::string type, std::string model_name, const ModelSet& models, SingleLoopOptions options)
      : type_(std::move(type)), model_name_(std::move(model_name)), model_(models.get(model_name_, "model")),
        vqvae_(models.vqvae), policy_(models.policy), options_(options) {}
  std::string type() const override { return type_; }
  std::vector<std::string> models_used() const override { return {model_name_}; }
  BatchResult generate(const GenerationRequest& request, ScaleObserver& observer) override {
    int64_t kv_bytes = 0;
    auto state = run_single_loop(model_, vqvae_, request, policy_, options_, &observer, &kv_bytes);
    return BatchResult{std::move(state), kv_bytes};
  }

 private:
  std::string type_, model_name_;
  VarTransformer model_;
  Vqvae vqvae_;
  PrecisionPolicy policy_;
  SingleLoopOptions options_;
};

EngineBuilder single_model_engine(const std::string& type, const std::string& model, const ModelCatalog& catalog,
                                  const SingleLoopOptions& options) {
  catalog.get(model, "model");
  return {{model}, [=](const ModelSet& models) { return std::make_unique<SingleModelEngine>(type, model, models, options); }};
}

EngineBuilder plan_single_engine(ParamReader& p, const ModelCatalog& catalog) {
  return single_model_engine("single", p.text("model"), catalog, SingleLoopOptions{});
}

}  // namespace varbench
