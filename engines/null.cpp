// `null`: the shapes of a generation with no model: zero tokens, a zero map, no decode. Timing it
// through the driver measures the driver's own overhead (clock, observer, recorder).
#include "engines/engine.h"

namespace varbench {

class NullEngine : public Engine {
 public:
  NullEngine(std::string model_name, const ModelSet& models)
      : model_name_(std::move(model_name)), arch_(models.get(model_name_, "model")->arch()),
        device_(models.get(model_name_, "model")->pos_1LC.device()) {}
  std::string type() const override { return "null"; }
  std::vector<std::string> models_used() const override { return {}; }
  std::string shape_model() const override { return model_name_; }
  BatchResult generate(const GenerationRequest& request, ScaleObserver& observer) override {
    const int64_t B = request.labels.size(0);
    GenerationState state(B, arch_.schedule.sides, arch_.code_dim, device_);
    for (int64_t s = 0; s < arch_.schedule.num_scales(); ++s) {
      state.tokens.push_back(torch::zeros({B, arch_.schedule.tokens(s)}, torch::TensorOptions().dtype(torch::kLong).device(device_)));
      observer.scale_done(s);
    }
    observer.transformer_done();
    BatchResult r{std::move(state), 0};
    r.decodable = false;
    return r;
  }

 private:
  std::string model_name_;
  VarArch arch_;
  torch::Device device_;
};

EngineBuilder plan_null_engine(ParamReader& p, const ModelCatalog& catalog) {
  auto model = p.text("model");
  catalog.get(model, "model");
  return {{model}, [=](const ModelSet& models) { return std::make_unique<NullEngine>(model, models); }};
}

}  // namespace varbench
