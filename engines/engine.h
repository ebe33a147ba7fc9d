#pragma once
// The one small interface every decoding strategy implements. An engine turns a batch request into
// tokens and the final f_hat; it never takes time or measures memory itself: it reports scale
// boundaries to the driver's ScaleObserver, and the driver owns the clock, the memory probe and the
// recorder. Engines are registered by name in engines/registry.cpp.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "engines/model/generation.h"

namespace varbench {

// Engine parameters as an experiment file gives them (after expanding lists into runs).
using ParamValue = std::variant<int64_t, double, bool, std::string>;
using EngineParams = std::map<std::string, ParamValue>;
std::string param_to_string(const ParamValue& v);

// A model that an engine names but that could not be loaded (or resolved): the model's own error says why.
struct ModelUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What is known of an experiment's models before any weight is loaded: each one's architecture (from a
// named config, or a checkpoint's header), or why it has none. Engines check their parameters against it,
// so that a bad parameter stops a sweep before its first run.
struct ModelCatalog {
  std::map<std::string, VarArch> architectures;
  std::map<std::string, std::string> errors;  // models without an architecture, with the reason
  std::optional<VqvaeArch> vqvae;
  const VarArch& get(const std::string& name, const std::string& role) const;  // throws naming the role
};

// The models an experiment loaded, by the names the experiment gave them, on the run's device, plus the
// VQVAE they share.
struct ModelSet {
  std::map<std::string, VarTransformer> transformers;
  std::map<std::string, std::string> load_errors;  // models that failed to load, with the reason
  Vqvae vqvae{nullptr};
  PrecisionPolicy policy;
  VarTransformer get(const std::string& name, const std::string& role) const;  // throws naming the role
  ModelCatalog catalog() const;
};

struct BatchResult {
  GenerationState state;             // tokens of every sampled scale and the final f_hat
  int64_t kv_cache_peak_bytes = 0;   // largest total of KV caches held at once, from the cache tensors
  bool decodable = true;             // false for the null engine (no VQVAE decode)
  // Per-scale series (e.g. speculative "drafted_tokens" / "accepted_tokens") and scalar counters
  // (e.g. "large_passes"), summed over batches by the driver.
  std::map<std::string, std::vector<double>> per_scale;
  std::map<std::string, double> counters;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string type() const = 0;
  // Names of the ModelSet transformers this engine runs (their weights count towards the run's memory).
  virtual std::vector<std::string> models_used() const = 0;
  // The model whose architecture fixes the output shapes (scale schedule, image size).
  virtual std::string shape_model() const { return models_used().front(); }
  // Generates one batch under inference mode (no autograd graph, no version counters, whoever calls).
  BatchResult run(const GenerationRequest& request, ScaleObserver& observer) {
    c10::InferenceMode inference;
    return generate(request, observer);
  }

 protected:
  virtual BatchResult generate(const GenerationRequest& request, ScaleObserver& observer) = 0;
};

// Reads an engine's parameters, rejecting unknown keys and wrong types with the key's name.
class ParamReader {
 public:
  ParamReader(std::string engine, const EngineParams& params);
  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt);
  double number(const std::string& key, std::optional<double> fallback = std::nullopt);
  bool boolean(const std::string& key, std::optional<bool> fallback = std::nullopt);
  std::string text(const std::string& key, std::optional<std::string> fallback = std::nullopt);
  void finish() const;  // throws on keys never asked for
  // Every parameter asked for, with the value the engine uses: given, or its default filled in.
  const EngineParams& effective() const { return effective_; }

 private:
  template <typename T>
  T record(const std::string& key, T value) {
    effective_[key] = value;
    return value;
  }
  const ParamValue* find(const std::string& key, bool required);
  std::string engine_;
  const EngineParams& params_;
  std::vector<std::string> used_;
  EngineParams effective_;
};

// An engine whose parameters have been read and checked, waiting for its models. Each engine file has one
// factory `EngineBuilder plan_<type>_engine(ParamReader&, const ModelCatalog&)` that does every check
// that needs no weights, so that the same checks serve the static validation of an experiment file and
// the construction of the engine.
// `models` names the ModelSet entries the engine needs loaded (the transformers it runs; the null engine's
// shape model), known before any weight is: the driver loads just those for the run and frees the others.
// `params` holds every parameter with its default filled in (what defines the output: `lookahead = 1`
// written out is the same engine as left out).
struct EngineBuilder {
  std::vector<std::string> models;
  std::function<std::unique_ptr<Engine>(const ModelSet&)> build;
  EngineParams params;  // filled in by plan_engine
  std::unique_ptr<Engine> operator()(const ModelSet& loaded) const { return build(loaded); }
};

// One model over the scale loop (engines/single.cpp): `single`, and the baselines that are the same loop
// with options (early exit, guidance cutoff, token pruning) build on it under their own type name.
EngineBuilder single_model_engine(const std::string& type, const std::string& model, const ModelCatalog& catalog,
                                  const SingleLoopOptions& options);

// An engine type as the registry lists it (engines/registry.cpp): the name experiment files use, a
// one-line description (for --help and errors), the factory, and the phases of its own that it reports
// to the observer beyond the model's setup, scale and decode (engines/model/generation.h).
struct EngineType {
  std::string name;
  std::string description;
  EngineBuilder (*plan)(ParamReader& params, const ModelCatalog& catalog);
  std::vector<PhaseKind> phases;
};
const std::vector<EngineType>& engine_types();
// The name of every phase kind by id (the model's and every engine's; "" for an unused id), for result
// files and reports. Throws if two kinds share an id.
std::vector<std::string> phase_kind_names();
// Reads and checks an engine's parameters against the models' architectures; throws naming the engine
// type, key and value for bad parameters or unknown models.
EngineBuilder plan_engine(const std::string& type, const EngineParams& params, const ModelCatalog& catalog);
// plan_engine, then the engine on the loaded models.
std::unique_ptr<Engine> make_engine(const std::string& type, const EngineParams& params, const ModelSet& models);

}  // namespace varbench
