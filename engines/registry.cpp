// Engine registry: one table of every engine type (name, description, factory, its own phases).
#include <algorithm>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "engines/engine.h"
#include "engines/speculative.h"

namespace varbench {

EngineBuilder plan_single_engine(ParamReader& p, const ModelCatalog& catalog);
EngineBuilder plan_collaborative_engine(ParamReader& p, const ModelCatalog& catalog);
EngineBuilder plan_speculative_engine(ParamReader& p, const ModelCatalog& catalog);
EngineBuilder plan_early_exit_engine(ParamReader& p, const ModelCatalog& catalog);
EngineBuilder plan_guidance_cutoff_engine(ParamReader& p, const ModelCatalog& catalog);
EngineBuilder plan_token_pruning_engine(ParamReader& p, const ModelCatalog& catalog);
EngineBuilder plan_null_engine(ParamReader& p, const ModelCatalog& catalog);
extern const PhaseKind kCollaborativePrefixPhase;

const std::vector<EngineType>& engine_types() {
  static const std::vector<EngineType> types{
      {"single", "one model over every scale (large-only or small-only): model", plan_single_engine, {}},
      {"collaborative", "CoDe: drafter runs scales 0..N-1, refiner the rest: drafter, refiner, draft_steps (N, 1..9)",
       plan_collaborative_engine, {kCollaborativePrefixPhase}},
      {"speculative",
       "small model drafts scales, large model verifies them in one masked pass: draft, target, lookahead, acceptance "
       "(exact | neighbourhood), neighbourhood_k",
       plan_speculative_engine, {kSpeculativeDraftPhase, kSpeculativeVerifyPhase}},
      {"early_exit", "stop after a scale and decode the partial map: model, exit_after_scale", plan_early_exit_engine, {}},
      {"guidance_cutoff", "classifier-free guidance off from a scale on: model, cutoff_scale", plan_guidance_cutoff_engine, {}},
      {"token_pruning", "FastVAR-style pruning at the last scales: model, prune_from_scale, keep_ratio", plan_token_pruning_engine,
       {}},
      {"null", "the same shapes with no model, to measure the driver's own overhead: model (for the shapes)", plan_null_engine, {}},
  };
  return types;
}

std::vector<std::string> phase_kind_names() {
  std::vector<PhaseKind> kinds{kSetupPhase, kScalePhase, kDecodePhase};
  for (const auto& type : engine_types()) kinds.insert(kinds.end(), type.phases.begin(), type.phases.end());
  std::vector<std::string> names;
  for (const auto& kind : kinds) {
    if (kind.id < 0) throw std::logic_error(fmt::format("phase '{}' has the negative id {}", kind.name, kind.id));
    if (static_cast<size_t>(kind.id) >= names.size()) names.resize(kind.id + 1);
    if (!names[kind.id].empty() && names[kind.id] != kind.name)
      throw std::logic_error(fmt::format("phases '{}' and '{}' share the id {}", names[kind.id], kind.name, kind.id));
    names[kind.id] = kind.name;
  }
  return names;
}

EngineBuilder plan_engine(const std::string& type, const EngineParams& params, const ModelCatalog& catalog) {
  ParamReader p(type, params);
  const auto& types = engine_types();
  const auto it = std::find_if(types.begin(), types.end(), [&](const EngineType& t) { return t.name == type; });
  if (it == types.end()) {
    std::vector<std::string> names;
    for (const auto& t : types) names.push_back(t.name);
    throw std::runtime_error(fmt::format("unknown engine type '{}' (known: {})", type, fmt::join(names, ", ")));
  }
  EngineBuilder builder = it->plan(p, catalog);
  p.finish();
  builder.params = p.effective();
  return builder;
}

std::unique_ptr<Engine> make_engine(const std::string& type, const EngineParams& params, const ModelSet& models) {
  return plan_engine(type, params, models.catalog())(models);
}

// ---------------------------------------------------------------------------------------------------
std::string param_to_string(const ParamValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) return x;
        else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else return fmt::format("{}", x);
      },
      v);
}

namespace {
template <typename Found, typename Known>
void check_model(const std::string& name, const std::string& role, const Found& found,
                 const std::map<std::string, std::string>& errors, const Known& known) {
  if (auto failed = errors.find(name); failed != errors.end())
    throw ModelUnavailable(fmt::format("{} '{}' could not be loaded: {}", role, name, failed->second));
  if (found == known.end()) {
    std::vector<std::string> names;
    for (const auto& [n, m] : known) names.push_back(n);
    for (const auto& [n, why] : errors) names.push_back(n);
    std::sort(names.begin(), names.end());
    throw std::runtime_error(fmt::format("{} = '{}': no such model (models: {})", role, name, fmt::join(names, ", ")));
  }
}
}  // namespace

VarTransformer ModelSet::get(const std::string& name, const std::string& role) const {
  auto it = transformers.find(name);
  check_model(name, role, it, load_errors, transformers);
  return it->second;
}

const VarArch& ModelCatalog::get(const std::string& name, const std::string& role) const {
  auto it = architectures.find(name);
  check_model(name, role, it, errors, architectures);
  return it->second;
}

ModelCatalog ModelSet::catalog() const {
  ModelCatalog c;
  for (const auto& [name, model] : transformers) c.architectures.emplace(name, model->arch());
  c.errors = load_errors;
  if (vqvae) c.vqvae = vqvae->arch();
  return c;
}

ParamReader::ParamReader(std::string engine, const EngineParams& params) : engine_(std::move(engine)), params_(params) {}

const ParamValue* ParamReader::find(const std::string& key, bool required) {
  used_.push_back(key);
  auto it = params_.find(key);
  if (it == params_.end()) {
    if (required) throw std::runtime_error(fmt::format("engine '{}': parameter '{}' is required", engine_, key));
    return nullptr;
  }
  return &it->second;
}

int64_t ParamReader::integer(const std::string& key, std::optional<int64_t> fallback) {
  const auto* v = find(key, !fallback);
  if (!v) return record(key, *fallback);
  if (const auto* i = std::get_if<int64_t>(v)) return record(key, *i);
  throw std::runtime_error(fmt::format("engine '{}': {} = {} must be an integer", engine_, key, param_to_string(*v)));
}

double ParamReader::number(const std::string& key, std::optional<double> fallback) {
  const auto* v = find(key, !fallback);
  if (!v) return record(key, *fallback);
  if (const auto* d = std::get_if<double>(v)) return record(key, *d);
  if (const auto* i = std::get_if<int64_t>(v)) return record(key, static_cast<double>(*i));
  throw std::runtime_error(fmt::format("engine '{}': {} = {} must be a number", engine_, key, param_to_string(*v)));
}

bool ParamReader::boolean(const std::string& key, std::optional<bool> fallback) {
  const auto* v = find(key, !fallback);
  if (!v) return record(key, *fallback);
  if (const auto* b = std::get_if<bool>(v)) return record(key, *b);
  throw std::runtime_error(fmt::format("engine '{}': {} = {} must be true or false", engine_, key, param_to_string(*v)));
}

std::string ParamReader::text(const std::string& key, std::optional<std::string> fallback) {
  const auto* v = find(key, !fallback);
  if (!v) return record(key, *fallback);
  if (const auto* s = std::get_if<std::string>(v)) return record(key, *s);
  throw std::runtime_error(fmt::format("engine '{}': {} = {} must be a string", engine_, key, param_to_string(*v)));
}

void ParamReader::finish() const {
  for (const auto& [key, value] : params_)
    if (std::find(used_.begin(), used_.end(), key) == used_.end())
      throw std::runtime_error(fmt::format("engine '{}': unknown parameter '{}'", engine_, key));
}

}  // namespace varbench
