#include "harness/experiment/experiment.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "harness/experiment/image_plan.h"

namespace varbench {

namespace {

// A setting's possible values: scalars, or per-scale lists (top_k, temperature).
using Value = std::variant<int64_t, double, bool, std::string, std::vector<double>>;

std::string value_text(const Value& v);
std::string value_string(const Value& v) { return value_text(v); }
std::string value_text(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) return x;
        else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::vector<double>>) return fmt::format("[{}]", fmt::join(x, " "));
        else return fmt::format("{}", x);
      },
      v);
}

class Parser {
 public:
  Parser(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const toml::node* node, const std::string& what) const {
    if (node && node->source().begin.line > 0)
      throw std::runtime_error(fmt::format("{}:{}: {}", path_, node->source().begin.line, what));
    throw std::runtime_error(fmt::format("{}: {}", path_, what));
  }

  void only_keys(const toml::table& t, const std::string& where, const std::set<std::string>& allowed) const {
    for (auto&& [k, v] : t)
      if (!allowed.count(std::string(k.str())))
        fail(&v, fmt::format("unknown key '{}' in [{}] (allowed: {})", k.str(), where, fmt::join(allowed, ", ")));
  }

  static Value scalar(const toml::node& n, bool& ok) {
    ok = true;
    if (auto i = n.value<int64_t>(); i && n.is_integer()) return *i;
    if (n.is_floating_point()) return *n.value<double>();
    if (n.is_boolean()) return *n.value<bool>();
    if (n.is_string()) return *n.value<std::string>();
    ok = false;
    return int64_t{0};
  }

  // A setting's values: a scalar, or a list of scalars (a sweep). With `per_scale`, a list of exactly
  // `scales` numbers is one per-scale value, and a list of such lists is a sweep of them.
  std::vector<Value> values(const toml::node* n, const std::string& key, bool per_scale = false, int64_t scales = 10) const {
    bool ok = false;
    if (!n->is_array()) {
      auto v = scalar(*n, ok);
      if (!ok) fail(n, fmt::format("'{}' must be a value or a list of values", key));
      return {v};
    }
    const auto& arr = *n->as_array();
    if (arr.empty()) fail(n, fmt::format("'{}' is an empty list", key));
    auto numbers = [&](const toml::array& a) {
      std::vector<double> out;
      for (const auto& e : a) {
        if (!e.is_number()) fail(&e, fmt::format("'{}': per-scale values must be numbers", key));
        out.push_back(*e.value<double>());
      }
      return out;
    };
    if (per_scale && arr.front().is_array()) {
      std::vector<Value> out;
      for (const auto& e : arr) {
        if (!e.is_array() || static_cast<int64_t>(e.as_array()->size()) != scales)
          fail(&e, fmt::format("'{}': each per-scale list needs {} values", key, scales));
        out.push_back(numbers(*e.as_array()));
      }
      return out;
    }
    if (per_scale && static_cast<int64_t>(arr.size()) == scales) return {numbers(arr)};
    std::vector<Value> out;
    for (const auto& e : arr) {
      auto v = scalar(e, ok);
      if (!ok) fail(&e, fmt::format("'{}': list entries must be numbers, strings or booleans", key));
      out.push_back(v);
    }
    return out;
  }

  template <typename T>
  T get(const toml::table& t, const std::string& key, T fallback) const {
    const auto* n = t.get(key);
    if (!n) return fallback;
    if constexpr (std::is_same_v<T, double>) {
      if (n->is_number()) return *n->value<double>();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      if (n->is_integer()) return *n->value<int64_t>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (n->is_boolean()) return *n->value<bool>();
    } else {
      if (n->is_string()) return *n->value<std::string>();
    }
    const char* wanted = std::is_same_v<T, double> ? "a number" : std::is_same_v<T, int64_t> ? "an integer"
                         : std::is_same_v<T, bool> ? "true or false" : "a string";
    fail(n, fmt::format("'{}' = {} must be {}{}", key, n->is_array() ? "[...]" : node_text(*n), wanted,
                        n->is_array() ? " (this setting cannot be swept: one value per experiment)" : ""));
  }

  static std::string node_text(const toml::node& n) {
    bool ok = false;
    auto v = scalar(n, ok);
    if (!ok) return "a table";
    if (n.is_string()) return "'" + *n.value<std::string>() + "'";
    return value_text(v);
  }

  ModelSpec model(const toml::table& t, const std::string& name, const std::string& where) const {
    only_keys(t, where, {"checkpoint", "config", "random_init", "init_seed"});
    ModelSpec m;
    m.name = name;
    m.line = t.source().begin.line;
    m.checkpoint = get<std::string>(t, "checkpoint", "");
    m.config = get<std::string>(t, "config", get<std::string>(t, "random_init", ""));
    m.init_seed = static_cast<uint64_t>(get<int64_t>(t, "init_seed", 0));
    if (t.get("config") && t.get("random_init")) fail(t.get("random_init"), fmt::format("[{}]: give config or random_init, not both", where));
    if (m.checkpoint.empty() && m.config.empty())
      fail(&t, fmt::format("[{}] needs checkpoint = \"...\" or random_init = \"<config>\"", where));
    return m;
  }

 private:
  std::string path_;
};

double to_double(const Value& v, const std::string& key, const Parser& p, const toml::node* n) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  p.fail(n, fmt::format("'{}' = {} must be a number", key,
                        std::holds_alternative<std::string>(v) ? "'" + value_string(v) + "'" : value_string(v)));
}

// Next combination of axis indices, last axis fastest; false after the last one.
bool advance(std::vector<size_t>& at, const std::vector<size_t>& sizes) {
  for (size_t i = at.size(); i-- > 0;) {
    if (++at[i] < sizes[i]) return true;
    at[i] = 0;
  }
  return false;
}

int64_t to_int(const Value& v, const std::string& key, const Parser& p, const toml::node* n) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  p.fail(n, fmt::format("'{}' = {} must be an integer", key,
                        std::holds_alternative<std::string>(v) ? "'" + value_string(v) + "'" : value_string(v)));
}

}  // namespace

ModelSource ModelSpec::source(bool random_override) const {
  if (random_override || checkpoint.empty()) {
    if (config.empty())
      throw std::runtime_error(fmt::format("model '{}': the random-init override needs config = \"<name>\" next to its checkpoint", name));
    return {"", config, init_seed};
  }
  return {checkpoint, "", init_seed};
}

std::string RunSpec::settings_json() const {
  nlohmann::json j;
  j["engine"] = engine_name;
  j["engine_type"] = engine_type;
  for (const auto& [k, v] : engine_params) j["engine_params"][k] = param_to_string(v);
  j["device"] = device;
  j["dtype"] = dtype;
  j["batch_size"] = batch_size;
  j["cfg"] = sampling.cfg;
  j["top_k"] = sampling.top_k;
  j["top_p"] = sampling.top_p;
  j["temperature"] = sampling.temperature;
  j["more_smooth"] = sampling.more_smooth;
  return j.dump();
}

Experiment load_experiment(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the experiment file", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_experiment(ss.str(), path);
}

Experiment parse_experiment(const std::string& text, const std::string& path) {
  Parser p(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column, e.description()));
  }
  p.only_keys(root, "top level", {"experiment", "sampling", "models", "vqvae", "engines", "quality"});
  Experiment x;
  x.path = path;
  x.toml_text = text;

  static const toml::table empty;
  const auto* exp_node = root.get("experiment");
  if (exp_node && !exp_node->is_table()) p.fail(exp_node, "[experiment] must be a table");
  const toml::table& exp = exp_node ? *exp_node->as_table() : empty;
  p.only_keys(exp, "experiment",
              {"name", "out", "device", "dtype", "threads", "warmup", "repetitions", "images", "classes", "images_per_class",
               "batch_size", "seed", "rng", "store_images", "baseline"});
  x.name = p.get<std::string>(exp, "name", "experiment");
  x.out = p.get<std::string>(exp, "out", "results/" + x.name + ".h5");
  x.threads = p.get<int64_t>(exp, "threads", 0);
  x.warmup_batches = p.get<int64_t>(exp, "warmup", 1);
  x.repetitions = p.get<int64_t>(exp, "repetitions", 3);
  if (x.warmup_batches < 0) p.fail(exp.get("warmup"), "warmup must be >= 0");
  if (x.repetitions < 1) p.fail(exp.get("repetitions"), "repetitions must be >= 1");
  x.seed = static_cast<uint64_t>(p.get<int64_t>(exp, "seed", 0));
  try {
    x.rng = parse_rng_mode(p.get<std::string>(exp, "rng", "per-image"));
  } catch (const std::exception& e) {
    p.fail(exp.get("rng"), e.what());
  }
  x.store_images = p.get<bool>(exp, "store_images", true);
  x.baseline = p.get<std::string>(exp, "baseline", "");
  x.images_per_class = p.get<int64_t>(exp, "images_per_class", 1);
  if (exp.get("classes")) {
    try {
      x.classes = parse_class_list(p.get<std::string>(exp, "classes", ""), 1000);
    } catch (const std::exception& e) {
      p.fail(exp.get("classes"), e.what());
    }
    if (exp.get("images")) p.fail(exp.get("images"), "give either images or classes (+ images_per_class)");
  } else {
    const int64_t images = p.get<int64_t>(exp, "images", 8);
    if (images < 1) p.fail(exp.get("images"), "images must be >= 1");
    for (int64_t i = 0; i < images; ++i) x.classes.push_back(i % 1000);
    x.images_per_class = 1;
  }
  if (x.images_per_class < 1) p.fail(exp.get("images_per_class"), "images_per_class must be >= 1");

  auto axis = [&](const toml::table& t, const std::string& key, Value fallback, bool per_scale = false) {
    const auto* n = t.get(key);
    return n ? p.values(n, key, per_scale) : std::vector<Value>{fallback};
  };
  const auto devices = axis(exp, "device", std::string("cpu"));
  const auto dtypes = axis(exp, "dtype", std::string("fp32"));
  for (const auto& [key, vals] : {std::pair{"device", &devices}, std::pair{"dtype", &dtypes}})
    for (const auto& v : *vals)
      if (!std::holds_alternative<std::string>(v))
        p.fail(exp.get(key), fmt::format("'{}' = {} must be a string, e.g. {}", key, value_string(v),
                                         std::string(key) == "device" ? "\"cpu\" or \"cuda\"" : "\"fp32\" or \"fp16\""));
  const auto batches = axis(exp, "batch_size", int64_t{1});

  const auto* samp_node = root.get("sampling");
  if (samp_node && !samp_node->is_table()) p.fail(samp_node, "[sampling] must be a table");
  const toml::table& samp = samp_node ? *samp_node->as_table() : empty;
  p.only_keys(samp, "sampling", {"cfg", "top_k", "top_p", "temperature", "more_smooth"});
  const auto cfgs = axis(samp, "cfg", 1.5);
  const auto top_ks = axis(samp, "top_k", int64_t{900}, true);
  const auto top_ps = axis(samp, "top_p", 0.96);
  const auto temps = axis(samp, "temperature", 1.0, true);
  const bool more_smooth = p.get<bool>(samp, "more_smooth", false);

  if (const auto* q = root.get("quality")) {
    if (!q->is_table()) p.fail(q, "[quality] must be a table");
    const auto& t = *q->as_table();
    p.only_keys(t, "quality", {"features", "network", "reference", "resamples", "interval_seed"});
    QualitySpec spec;
    spec.features = p.get<std::string>(t, "features", "world");
    if (spec.features != "world")
      p.fail(t.get("features"), fmt::format("[quality] features = '{}': only \"world\" (the toy world's feature network) is "
                                            "scored inline; Inception FID is `varbench score`'s", spec.features));
    spec.network = p.get<std::string>(t, "network", "");
    spec.reference = p.get<std::string>(t, "reference", "");
    if (spec.network.empty() || spec.reference.empty())
      p.fail(q, "[quality] needs network = \"<features>.safetensors\" and reference = \"<reference>.npz\"");
    spec.resamples = p.get<int64_t>(t, "resamples", int64_t{1000});
    if (spec.resamples < 100 || spec.resamples > 100000)
      p.fail(t.get("resamples"), fmt::format("[quality] resamples = {}: between 100 and 100000 (the bootstrap behind every quality "
                                             "interval; 95% intervals need at least a few hundred)",
                                             spec.resamples));
    const auto seed = p.get<int64_t>(t, "interval_seed", int64_t{0});
    if (seed < 0) p.fail(t.get("interval_seed"), fmt::format("[quality] interval_seed = {}: must be >= 0", seed));
    spec.interval_seed = static_cast<uint64_t>(seed);
    spec.line = q->source().begin.line;
    x.quality = spec;
  }

  // Models.
  const auto* models_node = root.get("models");
  if (!models_node || !models_node->is_table()) p.fail(models_node, "an experiment needs a [models.<name>] table");
  for (auto&& [k, v] : *models_node->as_table()) {
    if (!v.is_table()) p.fail(&v, fmt::format("[models.{}] must be a table", k.str()));
    x.models.push_back(p.model(*v.as_table(), std::string(k.str()), "models." + std::string(k.str())));
  }
  const auto* vq = root.get("vqvae");
  if (!vq || !vq->is_table()) p.fail(vq, "an experiment needs a [vqvae] table (checkpoint or random_init)");
  x.vqvae = p.model(*vq->as_table(), "vqvae", "vqvae");

  // Engines.
  const auto* engines_node = root.get("engines");
  if (!engines_node || !engines_node->is_array_of_tables()) p.fail(engines_node, "an experiment needs [[engines]] entries");
  std::set<std::string> names;
  struct EngineAxes {
    std::string name, type;
    const toml::node* node;
    std::vector<std::pair<std::string, std::vector<Value>>> params;
    std::map<std::string, std::vector<Value>> sampling;  // per-engine overrides of [sampling]
    std::map<std::string, const toml::node*> nodes;      // parameter or sampling key -> where it is given
    const toml::node* sampling_node = nullptr;
  };
  std::vector<EngineAxes> engines;
  for (const auto& e : *engines_node->as_array()) {
    const auto& t = *e.as_table();
    EngineAxes ea;
    ea.node = &e;
    ea.type = p.get<std::string>(t, "type", "");
    if (ea.type.empty()) p.fail(&e, "[[engines]] entry without type");
    bool known = false;
    for (const auto& type : engine_types()) known = known || type.name == ea.type;
    if (!known) {
      std::vector<std::string> types;
      for (const auto& type : engine_types()) types.push_back(type.name);
      p.fail(t.get("type"), fmt::format("unknown engine type '{}' (known: {})", ea.type, fmt::join(types, ", ")));
    }
    ea.name = p.get<std::string>(t, "name", ea.type);
    if (!names.insert(ea.name).second) p.fail(&e, fmt::format("two [[engines]] named '{}'", ea.name));
    for (auto&& [k, v] : t) {
      const std::string key(k.str());
      if (key == "type" || key == "name") continue;
      if (key == "sampling") {  // e.g. sampling = { top_k = 900, temperature = 1.0 }
        if (!v.is_table()) p.fail(&v, "an engine's sampling must be a table, e.g. sampling = { top_k = 900 }");
        p.only_keys(*v.as_table(), "engines.sampling", {"cfg", "top_k", "top_p", "temperature"});
        ea.sampling_node = &v;
        for (auto&& [sk, sv] : *v.as_table()) {
          const std::string skey(sk.str());
          ea.sampling[skey] = p.values(&sv, skey, skey == "top_k" || skey == "temperature");
          ea.nodes["sampling." + skey] = &sv;
        }
        continue;
      }
      ea.params.emplace_back(key, p.values(&v, key));
      ea.nodes[key] = &v;
    }
    engines.push_back(std::move(ea));
  }
  if (!x.baseline.empty() && !names.count(x.baseline))
    p.fail(exp.get("baseline"), fmt::format("baseline = '{}' names no [[engines]] entry", x.baseline));

  // Expansion: device, dtype outermost; then engines in file order and their parameter lists; then
  // sampling; batch size innermost.
  std::vector<std::pair<std::string, std::vector<Value>>> global{{"cfg", cfgs}, {"top_k", top_ks}, {"top_p", top_ps}, {"temperature", temps}};
  for (const auto& device : devices)
    for (const auto& dtype : dtypes)
      for (const auto& ea : engines) {
        std::vector<std::pair<std::string, std::vector<Value>>> axes = ea.params;
        for (const auto& [key, vals] : global) axes.emplace_back(key, ea.sampling.count(key) ? ea.sampling.at(key) : vals);
        axes.emplace_back("batch_size", batches);
        std::vector<size_t> at(axes.size(), 0), sizes;
        for (const auto& a : axes) sizes.push_back(a.second.size());
        do {
          RunSpec r;
          r.index = static_cast<int64_t>(x.runs.size());
          r.engine_name = ea.name;
          r.engine_type = ea.type;
          r.device = value_string(device);
          r.dtype = value_string(dtype);
          r.sampling.more_smooth = more_smooth;
          r.lines["engine"] = ea.node->source().begin.line;
          for (const auto& [key, node] : ea.nodes) r.lines[key] = node->source().begin.line;
          // Where a sampling value comes from: the engine's own sampling table, else [sampling].
          auto sampling_key = [&](const std::string& key) -> const toml::node* {
            if (auto it = ea.nodes.find("sampling." + key); it != ea.nodes.end()) return it->second;
            return samp.get(key) ? samp.get(key) : samp_node;
          };
          if (devices.size() > 1) r.swept["device"] = r.device;
          if (dtypes.size() > 1) r.swept["dtype"] = r.dtype;
          for (size_t i = 0; i < axes.size(); ++i) {
            const auto& [key, vals] = axes[i];
            const Value& v = vals[at[i]];
            if (vals.size() > 1) r.swept[key] = value_string(v);
            if (i < ea.params.size()) {  // an engine parameter
              if (const auto* b = std::get_if<bool>(&v)) r.engine_params[key] = *b;
              else if (const auto* n = std::get_if<int64_t>(&v)) r.engine_params[key] = *n;
              else if (const auto* d = std::get_if<double>(&v)) r.engine_params[key] = *d;
              else if (const auto* t = std::get_if<std::string>(&v)) r.engine_params[key] = *t;
              else p.fail(ea.node, fmt::format("engine parameter '{}' cannot be a per-scale list", key));
            } else if (key == "cfg") {
              r.sampling.cfg = to_double(v, key, p, sampling_key(key));
            } else if (key == "top_k") {
              if (const auto* vec = std::get_if<std::vector<double>>(&v)) {
                for (double k : *vec)
                  if (k != std::floor(k)) p.fail(sampling_key(key), fmt::format("'top_k' = {}: per-scale values must be integers", k));
                r.sampling.top_k.assign(vec->begin(), vec->end());
              } else {
                r.sampling.top_k = {to_int(v, key, p, sampling_key(key))};
              }
            } else if (key == "top_p") {
              r.sampling.top_p = to_double(v, key, p, sampling_key(key));
            } else if (key == "temperature") {
              if (const auto* vec = std::get_if<std::vector<double>>(&v)) r.sampling.temperature = *vec;
              else r.sampling.temperature = {to_double(v, key, p, sampling_key(key))};
            } else if (key == "batch_size") {
              r.batch_size = to_int(v, key, p, exp.get("batch_size"));
              if (r.batch_size < 1) p.fail(exp.get("batch_size"), fmt::format("batch_size = {} must be >= 1", r.batch_size));
            }
          }
          try {
            parse_precision(r.dtype);
          } catch (const std::exception& e) {
            p.fail(exp.get("dtype"), e.what());
          }
          try {
            r.sampling.validate(10);
          } catch (const std::exception& e) {  // the message starts with the key
            const std::string what = e.what();
            const auto key = what.substr(0, what.find_first_of(" :"));
            p.fail(sampling_key(key), what);
          }
          // A stable name: the engine, then every swept value (resuming matches runs by it).
          r.id = ea.name;
          for (const auto& [k, v] : r.swept) r.id += fmt::format(",{}={}", k, v);
          x.runs.push_back(std::move(r));
        } while (advance(at, sizes));
      }
  return x;
}

}  // namespace varbench
