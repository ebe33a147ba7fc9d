#include "harness/results/record_reader.h"

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engines/engine.h"
#include "harness/platform/provenance.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {

// Result-file arrays that readers index by each other's positions: a damaged file is refused on read,
// naming file and dataset, instead of being read out of bounds later.
h5::Dataset checked_column(const std::string& path, const h5::Group& g, const char* name, H5T_class_t type_class, uint64_t rank) {
  if (!g.has(name)) throw std::runtime_error(fmt::format("{}: {}/{} is missing", path, g.path(), name));
  auto ds = g.dataset(name);
  if (ds.type_class() != type_class || ds.dims().size() != rank)
    throw std::runtime_error(fmt::format("{}: {}: expected a {}-dimensional {} dataset", path, ds.path(), rank,
                                         type_class == H5T_INTEGER ? "integer" : "floating-point"));
  return ds;
}

// Every column has as many rows as `reference`.
void check_rows(const std::string& path, const h5::Group& g, const char* reference, size_t rows,
                std::initializer_list<std::pair<const char*, size_t>> columns) {
  for (const auto& [name, n] : columns)
    if (n != rows)
      throw std::runtime_error(fmt::format("{}: {}/{} has {} rows, {}/{} {}: the file is damaged", path, g.path(), name, n, g.path(),
                                           reference, rows));
}

}  // namespace

std::vector<RunRecord> read_run_records(const std::string& path) {
  std::vector<RunRecord> out;
  h5::File f(path, h5::File::Mode::kReadOnly);
  auto root = f.root();
  if (!root.has(schema::kRuns)) return out;
  auto runs = root.group(schema::kRuns);
  for (const auto& name : runs.children()) out.push_back(read_run_record(path, runs.group(name), name));
  std::sort(out.begin(), out.end(), [](const RunRecord& a, const RunRecord& b) { return a.spec.index < b.spec.index; });
  return out;
}

std::vector<RunRecord> read_requested_run_records(const std::string& path, std::vector<std::string>* others) {
  std::optional<std::set<std::string>> asked;
  {
    h5::File f(path, h5::File::Mode::kReadOnly);
    const auto root = f.root();
    if (root.has_attr(schema::kExperimentToml)) {
      std::set<std::string> ids;
      for (const auto& run : parse_experiment(root.attr_string(schema::kExperimentToml), path).runs) ids.insert(run.id);
      asked = std::move(ids);
    }
  }
  std::vector<RunRecord> out;
  for (auto& r : read_run_records(path)) {
    if (!asked || asked->count(r.spec.id))
      out.push_back(std::move(r));
    else if (others)
      others->push_back(r.spec.id);
  }
  return out;
}

RunRecord read_run_record(const std::string& path, const h5::Group& g, const std::string& name) {
  RunRecord r;
  auto str = [&](const char* a, const std::string& fallback = "") { return g.has_attr(a) ? g.attr_string(a) : fallback; };
  r.spec.id = str("run_id", name);
  r.spec.index = g.has_attr("run_index") ? g.attr_int("run_index") : 0;
  r.spec.engine_name = str("engine");
  r.spec.engine_type = str("engine_type", r.spec.engine_name);
  r.spec.device = str("device");
  r.spec.dtype = str("dtype");
  r.spec.batch_size = g.has_attr("batch_size") ? g.attr_int("batch_size") : 0;
  r.status = str(schema::kStatus, schema::kRunning);
  r.error = str("error");
  r.num_images = g.has_attr("num_images") ? g.attr_int("num_images") : 0;
  r.measurement = measurement_of(g);
  r.mixed_hardware = g.has_attr("mixed_hardware") && g.attr_int("mixed_hardware") != 0;
  for (const char* parts : {"shard_measurement_json", "segment_measurement_json"})
    if (r.mixed_hardware && g.has_attr(parts)) {
      std::set<std::string> distinct;
      for (const auto& part : nlohmann::json::parse(g.attr_string(parts))) distinct.insert(part.value("measurement", "?"));
      r.measurement = fmt::format("{}", fmt::join(distinct, " / "));
    }
  for (const auto& attr : g.attr_names()) {
    if (attr.rfind("model_", 0) == 0) r.models[attr.substr(6)] = g.attr_string(attr);
    if (attr.rfind("swept_", 0) == 0) r.spec.swept[attr.substr(6)] = g.attr_string(attr);
    if (attr.rfind("param_", 0) == 0) r.spec.engine_params[attr.substr(6)] = g.attr_string(attr);
  }
  if (g.has(schema::kTiming)) {
    auto t = g.group(schema::kTiming);
    auto column = [&](const char* name, H5T_class_t type_class, uint64_t rank) { return checked_column(path, t, name, type_class, rank); };
    r.batch_repetition = column("batch_repetition", H5T_INTEGER, 1).read<int64_t>();
    r.batch_images = column("batch_images", H5T_INTEGER, 1).read<int64_t>();
    r.batch_ms = column("batch_ms", H5T_FLOAT, 1).read<double>();
    r.batch_with_decode_ms = column("batch_with_decode_ms", H5T_FLOAT, 1).read<double>();
    auto sd = column("scale_ms", H5T_FLOAT, 2);
    const auto dims = sd.dims();
    const auto flat = sd.read<double>();
    r.num_scales = static_cast<int64_t>(dims[1]);
    for (uint64_t i = 0; i < dims[0]; ++i) r.scale_ms.emplace_back(flat.begin() + i * dims[1], flat.begin() + (i + 1) * dims[1]);
    const size_t batches = r.batch_repetition.size();
    check_rows(path, t, "batch_repetition", batches,
               {{"batch_images", r.batch_images.size()}, {"batch_ms", r.batch_ms.size()},
                {"batch_with_decode_ms", r.batch_with_decode_ms.size()}, {"scale_ms", r.scale_ms.size()}});
    if (t.has("phase_kind")) {  // files of varbench before phases have none
      r.phase_batch = column("phase_batch", H5T_INTEGER, 1).read<int64_t>();
      r.phase_kind = column("phase_kind", H5T_INTEGER, 1).read<int64_t>();
      r.phase_first_scale = column("phase_first_scale", H5T_INTEGER, 1).read<int64_t>();
      r.phase_last_scale = column("phase_last_scale", H5T_INTEGER, 1).read<int64_t>();
      r.phase_ms = column("phase_ms", H5T_FLOAT, 1).read<double>();
      const size_t phases = r.phase_kind.size();
      const auto phase_kinds = static_cast<int64_t>(phase_kind_names().size());
      check_rows(path, t, "phase_kind", phases,
                 {{"phase_batch", r.phase_batch.size()}, {"phase_first_scale", r.phase_first_scale.size()},
                  {"phase_last_scale", r.phase_last_scale.size()}, {"phase_ms", r.phase_ms.size()}});
      for (size_t i = 0; i < phases; ++i)
        if (r.phase_batch[i] < 0 || r.phase_batch[i] >= static_cast<int64_t>(batches) || r.phase_kind[i] < 0 ||
            r.phase_kind[i] >= phase_kinds)
          throw std::runtime_error(fmt::format("{}: {}: phase row {} names batch {} or kind {} that does not exist: the file is damaged",
                                               path, t.path(), i, r.phase_batch[i], r.phase_kind[i]));
    }
    for (size_t i = 0; i < batches; ++i)
      if (r.batch_repetition[i] < 0 || r.batch_images[i] < 0)
        throw std::runtime_error(fmt::format("{}: {}: negative repetition or image count in row {}: the file is damaged", path,
                                             t.path(), i));
  }
  if (g.has(schema::kMemory)) {
    auto m = g.group(schema::kMemory);
    r.memory_measured = m.attr_int("measured") != 0;
    r.peak_bytes = m.attr_int("peak_bytes");
    r.weights_bytes = m.attr_int("weights_bytes");
    r.kv_cache_bytes = m.attr_int("kv_cache_bytes");
    r.activations_bytes = m.attr_int("activations_bytes");
    r.peak_rss_bytes = m.attr_int("peak_rss_bytes");
    if (m.has_attr("kv_filled_bytes")) r.kv_filled_bytes = m.attr_int("kv_filled_bytes");
    if (m.has_attr("peak_phase")) r.peak_phase = m.attr_int("peak_phase");
    if (m.has_attr("resident_at_start_bytes")) r.resident_at_start_bytes = m.attr_int("resident_at_start_bytes");
    if (m.has("phase_kind")) {
      std::vector<std::vector<int64_t>> cols;
      for (const char* name : {"phase_kind", "phase_first_scale", "phase_last_scale", "phase_allocated_bytes",
                               "phase_kv_allocated_bytes", "phase_kv_filled_bytes"}) {
        cols.push_back(checked_column(path, m, name, H5T_INTEGER, 1).read<int64_t>());
        check_rows(path, m, "phase_kind", cols.front().size(), {{name, cols.back().size()}});
      }
      for (size_t i = 0; i < cols[0].size(); ++i)
        r.memory_phases.push_back({cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i]});
      if (r.peak_phase >= static_cast<int64_t>(r.memory_phases.size()))
        throw std::runtime_error(fmt::format("{}: {}: peak_phase {} of {} phases: the file is damaged", path, m.path(), r.peak_phase,
                                             r.memory_phases.size()));
    }
  }
  if (g.has(schema::kEngineStats)) {
    auto e = g.group(schema::kEngineStats);
    for (const auto& child : e.children()) {
      auto ds = e.dataset(child);
      r.per_scale[child] = ds.read<double>();
      if (ds.dims().size() != 1 || (r.num_scales > 0 && static_cast<int64_t>(r.per_scale[child].size()) != r.num_scales))
        throw std::runtime_error(fmt::format("{}: {}: expected one value per scale ({}): the file is damaged", path, ds.path(),
                                             r.num_scales));
    }
    for (const auto& attr : e.attr_names()) r.counters[attr] = e.attr_double(attr);
  }
  if (g.has(schema::kMetricsWorld)) {
    auto m = g.group(schema::kMetricsWorld);
    for (const char* key : {"fd", "class_accuracy", "precision", "recall", "kid"})
      for (const std::string suffix : {"", "_lower", "_upper"})
        if (m.has_attr(key + suffix)) r.world_quality[key + suffix] = m.attr_double(key + suffix);
    for (const char* key : {"kid_std", "fd_bootstrap_sd", "bootstrap_resamples"})
      if (m.has_attr(key)) r.world_quality[key] = m.attr_double(key);
    if (m.has(schema::kVsBaseline)) {
      auto v = m.group(schema::kVsBaseline);
      for (const auto& attr : v.attr_names()) {
        if (attr == "baseline_run") r.world_baseline_run = v.attr_string(attr);
        else if (attr == "verdict") r.world_verdict = v.attr_string(attr);
        else if (attr.find("difference") != std::string::npos || attr.size() > 2 && attr.substr(attr.size() - 2) == "_p")
          r.world_vs_baseline[attr] = v.attr_double(attr);
      }
    }
  }
  if (g.has_attr("segments")) r.segments = g.attr_int("segments");
  return r;
}

}  // namespace varbench
