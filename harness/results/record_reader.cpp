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
  r.spec.id = str(schema::kRunId, name);
  r.spec.index = g.has_attr(schema::kRunIndex) ? g.attr_int(schema::kRunIndex) : 0;
  r.spec.engine_name = str(schema::kEngine);
  r.spec.engine_type = str(schema::kEngineType, r.spec.engine_name);
  r.spec.device = str(schema::kDevice);
  r.spec.dtype = str(schema::kDtype);
  r.spec.batch_size = g.has_attr(schema::kBatchSize) ? g.attr_int(schema::kBatchSize) : 0;
  r.status = str(schema::kStatus, schema::kRunning);
  r.error = str(schema::kError);
  r.num_images = g.has_attr(schema::kNumImages) ? g.attr_int(schema::kNumImages) : 0;
  r.measurement = measurement_of(g);
  r.mixed_hardware = g.has_attr(schema::kMixedHardware) && g.attr_int(schema::kMixedHardware) != 0;
  for (const char* parts : {schema::kShardMeasurementJson, schema::kSegmentMeasurementJson})
    if (r.mixed_hardware && g.has_attr(parts)) {
      std::set<std::string> distinct;
      for (const auto& part : nlohmann::json::parse(g.attr_string(parts))) distinct.insert(part.value(schema::kMeasurement, "?"));
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
    r.batch_repetition = column(schema::kBatchRepetition, H5T_INTEGER, 1).read<int64_t>();
    r.batch_images = column(schema::kBatchImages, H5T_INTEGER, 1).read<int64_t>();
    r.batch_ms = column(schema::kBatchMs, H5T_FLOAT, 1).read<double>();
    r.batch_with_decode_ms = column(schema::kBatchWithDecodeMs, H5T_FLOAT, 1).read<double>();
    auto sd = column(schema::kScaleMs, H5T_FLOAT, 2);
    const auto dims = sd.dims();
    const auto flat = sd.read<double>();
    r.num_scales = static_cast<int64_t>(dims[1]);
    for (uint64_t i = 0; i < dims[0]; ++i) r.scale_ms.emplace_back(flat.begin() + i * dims[1], flat.begin() + (i + 1) * dims[1]);
    const size_t batches = r.batch_repetition.size();
    check_rows(path, t, schema::kBatchRepetition, batches,
               {{schema::kBatchImages, r.batch_images.size()}, {schema::kBatchMs, r.batch_ms.size()},
                {schema::kBatchWithDecodeMs, r.batch_with_decode_ms.size()}, {schema::kScaleMs, r.scale_ms.size()}});
    if (t.has(schema::kPhaseKind)) {  // files of varbench before phases have none
      r.phase_batch = column(schema::kPhaseBatch, H5T_INTEGER, 1).read<int64_t>();
      r.phase_kind = column(schema::kPhaseKind, H5T_INTEGER, 1).read<int64_t>();
      r.phase_first_scale = column(schema::kPhaseFirstScale, H5T_INTEGER, 1).read<int64_t>();
      r.phase_last_scale = column(schema::kPhaseLastScale, H5T_INTEGER, 1).read<int64_t>();
      r.phase_ms = column(schema::kPhaseMs, H5T_FLOAT, 1).read<double>();
      const size_t phases = r.phase_kind.size();
      const auto phase_kinds = static_cast<int64_t>(phase_kind_names().size());
      check_rows(path, t, schema::kPhaseKind, phases,
                 {{schema::kPhaseBatch, r.phase_batch.size()}, {schema::kPhaseFirstScale, r.phase_first_scale.size()},
                  {schema::kPhaseLastScale, r.phase_last_scale.size()}, {schema::kPhaseMs, r.phase_ms.size()}});
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
    r.memory_measured = m.attr_int(schema::kMeasured) != 0;
    r.peak_bytes = m.attr_int(schema::kPeakBytes);
    r.weights_bytes = m.attr_int(schema::kWeightsBytes);
    r.kv_cache_bytes = m.attr_int(schema::kKvCacheBytes);
    r.activations_bytes = m.attr_int(schema::kActivationsBytes);
    r.peak_rss_bytes = m.attr_int(schema::kPeakRssBytes);
    if (m.has_attr(schema::kKvFilledBytes)) r.kv_filled_bytes = m.attr_int(schema::kKvFilledBytes);
    if (m.has_attr(schema::kPeakPhase)) r.peak_phase = m.attr_int(schema::kPeakPhase);
    if (m.has_attr(schema::kResidentAtStartBytes)) r.resident_at_start_bytes = m.attr_int(schema::kResidentAtStartBytes);
    if (m.has(schema::kPhaseKind)) {
      std::vector<std::vector<int64_t>> cols;
      for (const char* name : {schema::kPhaseKind, schema::kPhaseFirstScale, schema::kPhaseLastScale, schema::kPhaseAllocatedBytes,
                               schema::kPhaseKvAllocatedBytes, schema::kPhaseKvFilledBytes}) {
        cols.push_back(checked_column(path, m, name, H5T_INTEGER, 1).read<int64_t>());
        check_rows(path, m, schema::kPhaseKind, cols.front().size(), {{name, cols.back().size()}});
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
  if (g.has_attr(schema::kSegments)) r.segments = g.attr_int(schema::kSegments);
  return r;
}

}  // namespace varbench
