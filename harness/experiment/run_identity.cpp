#include "harness/experiment/run_identity.h"

#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/experiment/image_plan.h"
#include "varbench/build_info.h"

namespace varbench {

namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<int64_t>& v) { return fmt::format("{}", fmt::join(v, ",")); }
std::string join(const std::vector<double>& v) { return fmt::format("{}", fmt::join(v, ",")); }

// "0-7" for 0,1,...,7; "980,980,437" otherwise (the class list as the experiment gave it, expanded).
std::string class_list(const std::vector<int64_t>& classes) {
  bool consecutive = !classes.empty();
  for (size_t i = 1; i < classes.size() && consecutive; ++i) consecutive = classes[i] == classes[i - 1] + 1;
  if (consecutive && classes.size() > 2) return fmt::format("{}-{}", classes.front(), classes.back());
  return join(classes);
}

fs::path hash_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (xdg && *xdg) return fs::path(xdg) / "varbench" / "checkpoint-hashes.tsv";
  if (home && *home) return fs::path(home) / ".cache" / "varbench" / "checkpoint-hashes.tsv";
  return {};
}

// (canonical path, size, mtime) -> hash, one line each: "<hash>\t<size>\t<mtime_ns>\t<path>".
struct HashCache {
  std::mutex mutex;
  std::map<std::string, uint64_t> known;  // key: size \t mtime \t path
  bool loaded = false;

  static std::string key(uint64_t size, int64_t mtime, const std::string& path) {
    return fmt::format("{}\t{}\t{}", size, mtime, path);
  }
  void load() {
    if (loaded) return;
    loaded = true;
    const auto file = hash_cache_path();
    if (file.empty()) return;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      const auto tab = line.find('\t');
      if (tab == std::string::npos) continue;
      try {
        known[line.substr(tab + 1)] = std::stoull(line.substr(0, tab), nullptr, 16);
      } catch (const std::exception&) {  // a damaged line is only a lost cache entry
      }
    }
  }
  void store(const std::string& k, uint64_t hash) {
    known[k] = hash;
    const auto file = hash_cache_path();
    if (file.empty()) return;
    std::error_code ignored;  // the cache is an optimisation: an unwritable home only costs a rehash
    fs::create_directories(file.parent_path(), ignored);
    std::ofstream(file, std::ios::app) << fmt::format("{:016x}\t{}\n", hash, k);
  }
};

HashCache& hash_cache() {
  static HashCache cache;
  return cache;
}

}  // namespace

uint64_t content_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open to hash it", path));
  constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL, kPrime2 = 0xC2B2AE3D27D4EB4FULL;
  uint64_t h = kPrime2, length = 0;
  std::vector<char> buffer(8 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const size_t n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, buffer.data() + i, 8);
      h ^= w * kPrime1;
      h = ((h << 31) | (h >> 33)) * kPrime2;
    }
    for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(buffer[i])) * kPrime1;
    length += n;
  }
  h ^= length;  // files that differ only by trailing zero bytes hash apart
  h ^= h >> 33;
  h *= kPrime1;
  h ^= h >> 29;
  return h;
}

std::string file_identity(const std::string& path) {
  std::error_code error;
  const auto canonical = fs::weakly_canonical(path, error).string();
  const auto size = fs::file_size(path, error);
  if (error) return fmt::format("{} (absent)", path);
  const auto written = fs::last_write_time(path, error);
  if (error) return fmt::format("{} (absent)", path);
  const auto mtime = static_cast<int64_t>(written.time_since_epoch().count());
  auto& cache = hash_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.load();
  const auto key = HashCache::key(size, mtime, canonical);
  auto it = cache.known.find(key);
  const uint64_t hash = it != cache.known.end() ? it->second : content_hash(path);
  if (it == cache.known.end()) cache.store(key, hash);
  return fmt::format("mix64 {:016x} ({} bytes)", hash, size);
}

std::string checkpoint_identity(const ModelSource& source) {
  if (source.checkpoint.empty()) return source.describe();
  return file_identity(source.checkpoint);
}

RunIdentity run_identity(const Experiment& x, const RunSpec& run, const IdentityContext& c, const ModelCatalog& catalog) {
  RunIdentity id;
  id["engine"] = run.engine_name;
  id["engine_type"] = run.engine_type;
  // The engine's parameters with its defaults filled in, and the models it runs; an engine that cannot be
  // planned (the sweep stops before it runs) falls back on the parameters as written.
  EngineParams params = run.engine_params;
  std::vector<std::string> models;
  try {
    auto plan = plan_engine(run.engine_type, run.engine_params, catalog);
    params = std::move(plan.params);
    models = std::move(plan.models);
  } catch (const std::exception&) {
    for (const auto& [k, v] : run.engine_params)
      if (const auto* name = std::get_if<std::string>(&v)) models.push_back(*name);
  }
  for (const auto& [k, v] : params) id["param." + k] = param_to_string(v);
  id["cfg"] = fmt::format("{}", run.sampling.cfg);
  id["top_k"] = join(run.sampling.top_k);
  id["top_p"] = fmt::format("{}", run.sampling.top_p);
  id["temperature"] = join(run.sampling.temperature);
  id["more_smooth"] = run.sampling.more_smooth ? "true" : "false";
  id["seed"] = std::to_string(x.seed);
  id["rng"] = rng_mode_name(x.rng);
  id["images"] = std::to_string(static_cast<int64_t>(x.classes.size()) * x.images_per_class);
  id["classes"] = class_list(x.classes);
  id["images_per_class"] = std::to_string(x.images_per_class);
  id["batch_size"] = std::to_string(run.batch_size);
  id["device"] = c.device_override.empty() ? run.device : c.device_override;
  id["dtype"] = run.dtype;
  id["warmup"] = std::to_string(x.warmup_batches);
  id["repetitions"] = std::to_string(x.repetitions);
  id["store_images"] = x.store_images ? "true" : "false";
  id["shard"] = fmt::format("{}/{}", c.shard_index, c.shard_count);
  // Models by content: a copy, a fresh clone or node-local staging of the same file is the same model.
  for (const auto& name : models)
    for (const auto& m : x.models)
      if (m.name == name) id["model." + m.name] = checkpoint_identity(m.source(c.random_override));
  id["vqvae"] = checkpoint_identity(x.vqvae.source(c.random_override));
  id["varbench_version"] = build_info::kVersion;
  id["git_revision"] = build_info::kGitRevision;  // "-dirty" when the build had uncommitted changes
  id["build_type"] = build_info::kBuildType;
  id["libtorch_version"] = TORCH_VERSION;
  return id;
}

std::string identity_json(const RunIdentity& identity) { return nlohmann::json(identity).dump(); }

RunIdentity parse_identity_json(const std::string& json) {
  const auto j = nlohmann::json::parse(json);  // throws nlohmann::json::parse_error
  RunIdentity id;
  for (const auto& [k, v] : j.items()) id[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return id;
}

std::vector<std::string> identity_differences(const RunIdentity& stored, const RunIdentity& requested,
                                              const std::set<std::string>& ignore) {
  std::set<std::string> keys;
  for (const auto& [k, v] : stored) keys.insert(k);
  for (const auto& [k, v] : requested) keys.insert(k);
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (ignore.count(k)) continue;
    const auto a = stored.find(k), b = requested.find(k);
    const std::string old_value = a == stored.end() ? "(absent)" : a->second;
    const std::string new_value = b == requested.end() ? "(absent)" : b->second;
    if (old_value != new_value) out.push_back(fmt::format("{} {} -> {}", k, old_value, new_value));
  }
  return out;
}

}  // namespace varbench
