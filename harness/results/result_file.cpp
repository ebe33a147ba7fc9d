#include "harness/results/result_file.h"

#include <csignal>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engines/engine.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {
// "setup,scale,prefix,draft,verify,decode": the names of the phase_kind codes, by id (engines/registry.cpp).
std::string phase_kinds_text() {
  std::string out;
  const auto names = phase_kind_names();
  for (size_t k = 0; k < names.size(); ++k) out += (k ? "," : "") + names[k];
  return out;
}
}  // namespace


namespace fs = std::filesystem;

std::string run_group_name(const std::string& run_id) {
  std::string out = run_id;
  for (auto& c : out)
    if (c == '/') c = '|';
  return out;
}

namespace {
// Holds back the signals that end a sweep (Ctrl-C, Slurm's SIGTERM) while the result file is open for
// writing; they are delivered when the guard ends.
class SignalHold {
 public:
  SignalHold() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, &previous_);
  }
  ~SignalHold() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

 private:
  sigset_t previous_;
};

std::string partial_dir(const std::string& out) { return out + ".partial"; }
}  // namespace

RunWriter::RunWriter(std::string path, const RunSpec& spec, int64_t num_images, const ScaleSchedule& schedule,
                     int64_t image_px, bool store_images, bool resume)
    : path_(std::move(path)) {
  if (resume) {
    file_ = std::make_unique<h5::File>(path_, h5::File::Mode::kReadWrite);
    auto g = file_->root().group(schema::kPartialRun);
    resumed_timed_batches_ = g.group(schema::kResume).attr_int(schema::kTimedBatches);
    samples_ = std::make_unique<SampleWriter>(g, num_images, schedule, image_px, image_px, store_images, SampleWriter::kExisting);
    return;
  }
  file_ = std::make_unique<h5::File>(path_, h5::File::Mode::kCreate);
  auto g = file_->root().create_group(schema::kPartialRun);
  samples_ = std::make_unique<SampleWriter>(g, num_images, schedule, image_px, image_px, store_images);
}

void RunWriter::checkpoint(const RunRecord& record, int64_t timed_batches, const std::string& measurement) {
  SignalHold hold;  // a consistent file: never half a checkpoint
  auto g = group();
  write_measurements(g, record);
  auto resume = g.require_group(schema::kResume);
  resume.set_attr(schema::kIdentityJson, record.identity_json);
  resume.set_attr(schema::kTimedBatches, timed_batches);
  resume.set_attr(schema::kMeasurement, measurement);
  file_->flush();
}

void RunWriter::close() {
  samples_.reset();
  file_.reset();
}

ResultFile::ResultFile(std::string path, std::string experiment_path, std::string experiment_text)
    : path_(std::move(path)), experiment_path_(std::move(experiment_path)), experiment_text_(std::move(experiment_text)) {
  const auto parent = fs::path(path_).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  lock_ = std::make_unique<FileLock>(path_);
  if (fs::exists(path_) && !h5::is_readable_hdf5(path_))
    throw std::runtime_error(fmt::format("{}: exists but is not a readable HDF5 file; move it away", path_));
}

std::map<std::string, StoredRun> ResultFile::stored_runs() const {
  std::map<std::string, StoredRun> out;
  if (!fs::exists(path_)) return out;
  h5::File f(path_, h5::File::Mode::kReadOnly);
  auto root = f.root();
  if (!root.has(schema::kRuns)) return out;
  auto runs = root.group(schema::kRuns);
  for (const auto& name : runs.children()) {
    auto g = runs.group(name);
    auto& run = out[g.has_attr(schema::kRunId) ? g.attr_string(schema::kRunId) : name];
    run.status = g.has_attr(schema::kStatus) ? g.attr_string(schema::kStatus) : "";
    run.identity_json = g.has_attr(schema::kIdentityJson) ? g.attr_string(schema::kIdentityJson) : "";
  }
  return out;
}

std::unique_ptr<RunWriter> ResultFile::begin_run(const RunSpec& spec, int64_t num_images, const ScaleSchedule& schedule,
                                                 int64_t image_px, bool store_images, const std::string& identity_json) const {
  fs::create_directories(partial_dir(path_));
  const auto partial = (fs::path(partial_dir(path_)) / (run_group_name(spec.id) + ".h5")).string();
  // An interrupted earlier attempt at this very run (same identity) with saved batches goes on; a file
  // killed mid-write, of another identity or without a checkpoint starts over.
  bool resumable = false;
  if (fs::exists(partial) && h5::is_readable_hdf5(partial)) {
    try {
      h5::File f(partial, h5::File::Mode::kReadOnly);
      const auto root = f.root();
      if (root.has("run/resume")) {
        const auto resume = root.group("run/resume");
        resumable = resume.attr_string(schema::kIdentityJson) == identity_json && resume.attr_int(schema::kTimedBatches) > 0;
      }
    } catch (const std::exception&) {
      resumable = false;
    }
  }
  if (resumable) {
    try {
      return std::make_unique<RunWriter>(partial, spec, num_images, schedule, image_px, store_images, true);
    } catch (const std::exception&) {
      // unreadable after all: start over
    }
  }
  fs::remove(partial);
  return std::make_unique<RunWriter>(partial, spec, num_images, schedule, image_px, store_images);
}

void write_run_record(const h5::Group& g, const RunRecord& r, const Provenance& provenance) {
  write_provenance(g, provenance);
  g.set_attr(schema::kRunId, r.spec.id);
  g.set_attr(schema::kRunIndex, r.spec.index);
  g.set_attr(schema::kEngine, r.spec.engine_name);
  g.set_attr(schema::kEngineType, r.spec.engine_type);
  for (const auto& [k, v] : r.spec.engine_params) g.set_attr("param_" + k, param_to_string(v));
  g.set_attr(schema::kStatus, r.status);
  if (!r.error.empty()) g.set_attr(schema::kError, r.error);
  g.set_attr(schema::kSettingsJson, r.spec.settings_json());
  if (!r.identity_json.empty()) g.set_attr(schema::kIdentityJson, r.identity_json);
  g.set_attr(schema::kDevice, r.spec.device);
  g.set_attr(schema::kDtype, r.spec.dtype);
  g.set_attr(schema::kBatchSize, r.spec.batch_size);
  g.set_attr(schema::kNumImages, r.num_images);
  if (r.segments > 1) {
    g.set_attr(schema::kSegments, r.segments);
    nlohmann::json parts = nlohmann::json::array();
    for (const auto& m : r.segment_measurements) parts.push_back({{schema::kMeasurement, m}});
    g.set_attr(schema::kSegmentMeasurementJson, parts.dump());
    g.set_attr(schema::kMixedHardware, static_cast<int64_t>(r.mixed_hardware));
  }
  for (const auto& [k, v] : r.spec.swept) g.set_attr("swept_" + k, v);
  for (const auto& [k, v] : r.models) g.set_attr("model_" + k, v);
  if (r.status != schema::kCompleted) return;
  if (g.has(schema::kResume)) g.remove(schema::kResume);  // the run is whole: nothing to resume
  write_measurements(g, r);
}

void write_measurements(const h5::Group& g, const RunRecord& r) {
  for (const char* name : {schema::kTiming, schema::kMemory, schema::kEngineStats})
    if (g.has(name)) g.remove(name);
  auto timing = g.require_group(schema::kTiming);
  const uint64_t n = r.batch_ms.size();
  timing.write<int64_t>(schema::kBatchRepetition, r.batch_repetition);
  timing.write<int64_t>(schema::kBatchImages, r.batch_images);
  timing.write<double>(schema::kBatchMs, r.batch_ms);
  timing.write<double>(schema::kBatchWithDecodeMs, r.batch_with_decode_ms);
  std::vector<double> scale_flat;
  for (const auto& row : r.scale_ms) scale_flat.insert(scale_flat.end(), row.begin(), row.end());
  timing.write<double>(schema::kScaleMs, {n, static_cast<uint64_t>(r.num_scales)}, scale_flat.data());
  timing.set_attr("decode_excluded_from", schema::kBatchMs);
  timing.write<int64_t>(schema::kPhaseBatch, r.phase_batch);
  timing.write<int64_t>(schema::kPhaseKind, r.phase_kind);
  timing.write<int64_t>(schema::kPhaseFirstScale, r.phase_first_scale);
  timing.write<int64_t>(schema::kPhaseLastScale, r.phase_last_scale);
  timing.write<double>(schema::kPhaseMs, r.phase_ms);
  timing.set_attr(schema::kPhaseKinds, phase_kinds_text());

  auto memory = g.require_group(schema::kMemory);
  memory.set_attr(schema::kMeasured, static_cast<int64_t>(r.memory_measured));
  memory.set_attr(schema::kPeakBytes, r.peak_bytes);
  memory.set_attr(schema::kWeightsBytes, r.weights_bytes);
  memory.set_attr(schema::kKvCacheBytes, r.kv_cache_bytes);
  memory.set_attr(schema::kActivationsBytes, r.activations_bytes);
  memory.set_attr(schema::kPeakRssBytes, r.peak_rss_bytes);
  memory.set_attr(schema::kResidentAtStartBytes, r.resident_at_start_bytes);
  memory.set_attr(schema::kKvFilledBytes, r.kv_filled_bytes);
  memory.set_attr(schema::kPeakPhase, r.peak_phase);
  memory.set_attr(schema::kPhaseKinds, phase_kinds_text());
  std::vector<int64_t> kind, first, last, allocated, kv_allocated, kv_filled;
  for (const auto& p : r.memory_phases) {
    kind.push_back(p.kind);
    first.push_back(p.first_scale);
    last.push_back(p.last_scale);
    allocated.push_back(p.allocated_bytes);
    kv_allocated.push_back(p.kv_allocated_bytes);
    kv_filled.push_back(p.kv_filled_bytes);
  }
  memory.write<int64_t>(schema::kPhaseKind, kind);
  memory.write<int64_t>(schema::kPhaseFirstScale, first);
  memory.write<int64_t>(schema::kPhaseLastScale, last);
  memory.write<int64_t>(schema::kPhaseAllocatedBytes, allocated);
  memory.write<int64_t>(schema::kPhaseKvAllocatedBytes, kv_allocated);
  memory.write<int64_t>(schema::kPhaseKvFilledBytes, kv_filled);

  if (!r.per_scale.empty() || !r.counters.empty()) {
    auto extra = g.require_group(schema::kEngineStats);
    for (const auto& [k, v] : r.per_scale) extra.write<double>(k, v);
    for (const auto& [k, v] : r.counters) extra.set_attr(k, v);
  }
}

void ResultFile::commit(RunWriter& writer, const RunRecord& record, const Provenance& provenance) const {
  write_run_record(writer.group(), record, provenance);
  const std::string partial = writer.path();
  writer.close();
  move_into_result(partial, record.spec.id, provenance);
  fs::remove(partial);
  remove_partial_dir_if_empty();
}

void ResultFile::record_failure(const RunRecord& record, const Provenance& provenance) const {
  fs::create_directories(partial_dir(path_));
  const auto partial = (fs::path(partial_dir(path_)) / (run_group_name(record.spec.id) + ".failed.h5")).string();
  {
    h5::File f(partial, h5::File::Mode::kCreate);
    write_run_record(f.root().create_group(schema::kPartialRun), record, provenance);
  }
  move_into_result(partial, record.spec.id, provenance);
  fs::remove(partial);
  remove_partial_dir_if_empty();
}

void ResultFile::remove_partial_dir_if_empty() const {
  std::error_code not_empty;  // remove() of a non-empty folder fails, which is what we want then
  fs::remove(partial_dir(path_), not_empty);
}

void ResultFile::prepare_sweep(const std::vector<std::string>& remove, const Provenance& provenance) const {
  if (!fs::exists(path_)) return;
  SignalHold hold;
  h5::File out(path_, h5::File::Mode::kReadWrite);
  auto root = out.root();
  write_root(root, provenance);
  if (root.has(schema::kRuns)) {
    const auto runs = root.group(schema::kRuns);
    for (const auto& id : remove)
      if (runs.has(run_group_name(id))) runs.remove(run_group_name(id));
  }
  out.flush();
}

void ResultFile::write_root(const h5::Group& root, const Provenance& provenance) const {
  root.set_attr(schema::kSchemaVersion, int64_t{1});
  write_provenance(root, provenance);
  root.set_attr(schema::kExperimentFile, experiment_path_);
  root.set_attr(schema::kExperimentToml, experiment_text_);
}

void ResultFile::move_into_result(const std::string& partial, const std::string& run_id, const Provenance& provenance) const {
  SignalHold hold;
  const bool fresh = !fs::exists(path_);
  h5::File out(path_, fresh ? h5::File::Mode::kCreate : h5::File::Mode::kReadWrite);
  auto root = out.root();
  // The root describes the experiment and process that wrote the file last (prepare_sweep wrote it
  // before the sweep; a file created now gets it here).
  if (fresh) write_root(root, provenance);
  auto runs = root.require_group(schema::kRuns);
  const auto name = run_group_name(run_id);
  if (runs.has(name)) runs.remove(name);  // a failed or interrupted earlier attempt
  h5::File in(partial, h5::File::Mode::kReadOnly);
  if (H5Ocopy(in.root().id(), schema::kPartialRun, runs.id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0)
    throw std::runtime_error(fmt::format("{}: cannot copy run '{}' from {}", path_, run_id, partial));
  out.flush();
}

}  // namespace varbench
