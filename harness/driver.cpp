#include "harness/driver.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engines/model/torch_compat.h"
#include "formats/weights.h"
#include "harness/platform/device.h"
#include "harness/platform/error_text.h"
#include "harness/experiment/experiment_check.h"
#include "harness/results/record_reader.h"
#include "harness/experiment/image_plan.h"
#include "harness/platform/memory_probe.h"
#include "harness/platform/progress.h"
#include "harness/experiment/run_identity.h"
#include "harness/platform/provenance.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {

// Marks the engine's phase boundaries on the run's timeline; the driver reads the times afterwards.
class TimingObserver : public ScaleObserver {
 public:
  struct Mark {
    PhaseKind phase;
    int64_t first_scale, last_scale;
    size_t mark;  // the phase runs from the previous boundary to this mark
  };
  TimingObserver(device::Timeline& timeline, torch::Device device)
      : timeline_(timeline), device_(device), slowdown_(test_slowdown_fraction()), start_(std::chrono::steady_clock::now()) {}
  void phase_done(PhaseKind phase, int64_t first_scale, int64_t last_scale) override {
    timeline_.mark();
    marks_.push_back({phase, first_scale, last_scale, timeline_.marks() - 1});
  }
  void transformer_done() override {
    // VARBENCH_TEST_SLOWDOWN: a sleep, not a busy loop, so that the batch is slower by exactly that share
    // (spinning on this 2-core VM also slowed the batch's own work by ~8%: an overstated slowdown). On a
    // GPU the host only enqueues: the batch's work is waited for first, so the host time since the batch
    // began is its device time, and the device then idles for the sleep before the next mark's event
    // (a synchronisation inside the batch, only in this test mode).
    if (slowdown_ > 0) {
      device::synchronize(device_);
      std::this_thread::sleep_for((std::chrono::steady_clock::now() - start_) * slowdown_);
    }
    timeline_.mark();
    transformer_mark_ = timeline_.marks() - 1;
  }
  const std::vector<Mark>& marks() const { return marks_; }
  size_t transformer_mark() const { return transformer_mark_; }

 private:
  device::Timeline& timeline_;
  torch::Device device_;
  std::vector<Mark> marks_;
  size_t transformer_mark_ = 0;
  double slowdown_;
  std::chrono::steady_clock::time_point start_;
};

// The memory pass: at every phase boundary, the allocator's peak since the previous one and the KV cache
// bytes alive at it; then a new phase starts.
class MemoryObserver : public ScaleObserver {
 public:
  explicit MemoryObserver(MemoryProbe& probe) : probe_(probe) {}
  void phase_done(PhaseKind phase, int64_t first_scale, int64_t last_scale) override {
    const auto kv = probe_.kv_at_peak();
    phases_.push_back({phase.id, first_scale, last_scale, probe_.peak_above_start_bytes(), kv.allocated, kv.filled});
    probe_.reset_peak();
  }
  // Between the last phase and this point the engine only frees (caches released): nothing to record.
  void transformer_done() override { probe_.reset_peak(); }
  std::vector<RunRecord::MemoryPhase>& phases() { return phases_; }

 private:
  MemoryProbe& probe_;
  std::vector<RunRecord::MemoryPhase> phases_;
};

// The models resident on one (device, dtype): the VQVAE, and the transformers of the run at hand. A run
// loads what it lacks and frees what it does not use first, so that a sweep holds one run's models at a
// time, never all of an experiment's (Table 1 names eleven, ~52 GB of fp32 weights).
struct LoadedGroup {
  std::map<std::string, std::string> sources;  // model name -> where its weights came from
  std::string device_name, dtype;
  torch::Device device = torch::kCPU;
  ModelSet models;
  std::string vqvae_error;
};

// Why a model did not load, in one line; an absent checkpoint file says so and names the way out.
std::string load_failure(const ModelSpec& spec, const std::exception& e, bool random_override) {
  const auto absent = absent_checkpoint(spec, random_override);  // deleted since the experiment was checked
  return absent.empty() ? one_line(e) : absent;
}

// The group's device and precision, with the VQVAE; transformers come with the runs (hold_models).
LoadedGroup open_group(const Experiment& x, const std::string& device_name, const std::string& dtype, bool random_override) {
  LoadedGroup g;
  g.device_name = device_name;
  g.dtype = dtype;
  g.device = device::resolve(device_name);
  const auto precision = parse_precision(dtype);
  if (g.device.is_cpu() && !cpu_supports(precision))
    throw std::runtime_error(fmt::format("dtype {} on cpu: CPU runs are fp32 or bf16-autocast", dtype));
  g.models.policy = PrecisionPolicy::of(precision);
  try {
    auto v = load_vqvae(x.vqvae.source(random_override));
    place(*v, g.device, torch::kFloat32);
    g.models.vqvae = v;
  } catch (const std::exception& e) {
    g.vqvae_error = load_failure(x.vqvae, e, random_override);
  }
  return g;
}

// Makes `needed` the group's transformers: the others are freed (and the device cache emptied) before any
// is loaded, so the two never sit on the device together. A model that failed to load is tried again by
// the next run that needs it.
void hold_models(LoadedGroup& g, const std::vector<std::string>& needed, const Experiment& x, bool random_override) {
  const std::set<std::string> keep(needed.begin(), needed.end());
  bool freed = false;
  for (auto it = g.models.transformers.begin(); it != g.models.transformers.end();) {
    if (keep.count(it->first)) {
      ++it;
      continue;
    }
    g.sources.erase(it->first);
    it = g.models.transformers.erase(it);
    freed = true;
  }
  g.models.load_errors.clear();
  if (freed) device::empty_cache(g.device);
  for (const auto& spec : x.models) {
    if (!keep.count(spec.name) || g.models.transformers.count(spec.name)) continue;
    try {
      const auto source = spec.source(random_override);
      auto m = load_var(source);
      m->label = spec.name;
      place(*m, g.device, g.models.policy.weight_dtype);
      g.sources[spec.name] = source.describe();
      g.models.transformers.emplace(spec.name, m);
    } catch (const std::exception& e) {
      g.models.load_errors[spec.name] = load_failure(spec, e, random_override);
    }
  }
}

// Test hooks: VARBENCH_TEST_KILL_AFTER_BATCHES=n sends this process SIGKILL after n batches (warm-up and
// timed), as a crash would, and VARBENCH_TEST_SIGNAL_AFTER_BATCHES=n sends it SIGTERM, as Slurm's
// preemption or `scancel` would, so the resume tests can stop a sweep at a known point.
void batch_finished() {
  auto after = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? std::atoll(v) : int64_t{-1};
  };
  static const int64_t kill_after = after("VARBENCH_TEST_KILL_AFTER_BATCHES");
  static const int64_t signal_after = after("VARBENCH_TEST_SIGNAL_AFTER_BATCHES");
  static int64_t done = 0;
  ++done;
  if (kill_after >= 0 && done >= kill_after) std::raise(SIGKILL);
  if (signal_after >= 0 && done == signal_after) std::raise(SIGTERM);
}

std::atomic<int> stop_signal_received{0};
extern "C" void on_stop_signal(int signal) { stop_signal_received.store(signal); }

// The batch in flight is done and a stop was asked for: its run's progress is saved by the caller.
struct StopRequested : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Timed batches between two checkpoints of a run's progress at most this long apart (a SIGKILL loses at
// most that much work; SIGTERM loses none).
constexpr double kCheckpointSeconds = 60;

struct Batch {
  int64_t first = 0, size = 0;  // rows of the shard's image list
};

void execute_run(const Experiment& x, const RunSpec& run, LoadedGroup& group, Engine& engine, const ImagePlan& plan,
                 const std::vector<int64_t>& image_index, const ResultFile& results, RunRecord& rec, ProgressBar& progress) {
  const auto device = group.device;
  auto& models = group.models;
  const auto& arch = models.get(engine.shape_model(), "model")->arch();
  const int64_t S = arch.schedule.num_scales();
  const int64_t px = arch.schedule.final_side() * (models.vqvae ? models.vqvae->arch().downsample() : 16);
  const int64_t N = static_cast<int64_t>(image_index.size());
  rec.num_images = N;
  rec.num_scales = S;
  std::vector<Batch> batches;
  for (int64_t first = 0; first < N; first += run.batch_size) batches.push_back({first, std::min(run.batch_size, N - first)});

  auto writer = results.begin_run(run, N, arch.schedule, px, x.store_images, rec.identity_json);
  // An interrupted earlier attempt saved its first timed batches: their measurements are taken back, and
  // the loop below goes on after them (warm-up and the memory pass run again: this process is cold).
  const int64_t resumed_batches = writer->resumed_timed_batches();
  // How this process measures (device, threads, wait policy): saved with every checkpoint, compared on resume.
  const auto measurement = measurement_of(collect_provenance(device, models.policy.compute_dtype()));
  if (resumed_batches > 0) {
    auto saved = read_run_record(writer->path(), writer->group(), run.id);
    rec.batch_repetition = std::move(saved.batch_repetition);
    rec.batch_images = std::move(saved.batch_images);
    rec.batch_ms = std::move(saved.batch_ms);
    rec.batch_with_decode_ms = std::move(saved.batch_with_decode_ms);
    rec.scale_ms = std::move(saved.scale_ms);
    rec.phase_batch = std::move(saved.phase_batch);
    rec.phase_kind = std::move(saved.phase_kind);
    rec.phase_first_scale = std::move(saved.phase_first_scale);
    rec.phase_last_scale = std::move(saved.phase_last_scale);
    rec.phase_ms = std::move(saved.phase_ms);
    rec.per_scale = std::move(saved.per_scale);
    rec.counters = std::move(saved.counters);
    if (static_cast<int64_t>(rec.batch_ms.size()) != resumed_batches)
      throw std::runtime_error(fmt::format("{}: the saved progress holds {} timed batches, its note says {}: delete the file to start "
                                           "the run over",
                                           writer->path(), rec.batch_ms.size(), resumed_batches));
    rec.segments = 2;
    // The saved batches were measured by another process, perhaps on another node: both are recorded, and
    // the run says when they differ.
    const auto resume = writer->group().group(schema::kResume);
    rec.segment_measurements = {resume.has_attr(schema::kMeasurement) ? resume.attr_string(schema::kMeasurement) : "?", measurement};
    rec.mixed_hardware = rec.segment_measurements[0] != rec.segment_measurements[1];
    std::cerr << fmt::format("\nvarbench run: run '{}' resumes after its timed batch {} of {} (saved by an "
                                                    "interrupted earlier attempt in {})\n",
                                                    run.id, resumed_batches, x.repetitions * static_cast<int64_t>(batches.size()),
                                                    writer->path());
  }
  auto last_checkpoint = std::chrono::steady_clock::now();
  for (const auto& name : engine.models_used()) {
    auto m = models.get(name, "model");
    rec.weights_bytes += parameter_bytes(*m);
    rec.models[name] = fmt::format("depth={} source={}", m->arch().depth, group.sources.at(name));
  }
  const bool decodes = !engine.models_used().empty();  // the null engine neither runs a model nor decodes
  if (decodes && models.vqvae) rec.weights_bytes += parameter_bytes(*models.vqvae);

  c10::InferenceMode inference;
  MemoryProbe probe(device);

  auto request_for = [&](const Batch& b) {
    GenerationRequest r;
    std::vector<int64_t> labels;
    for (int64_t i = b.first; i < b.first + b.size; ++i) {
      labels.push_back(plan.labels[image_index[i]]);
      r.image_indices.push_back(image_index[i]);
    }
    r.labels = torch::tensor(labels, torch::kLong).to(device);
    r.rng_mode = x.rng;
    r.seed = x.rng == RngMode::kReference ? reference_batch_seed(plan, image_index[b.first], x.seed) : x.seed;
    r.sampling = run.sampling;
    return r;
  };
  auto decode = [&](const BatchResult& res) {
    // The VQVAE decodes under the run's autocast on CUDA; on the CPU in fp32 (libtorch 1.13's CPU autocast
    // has no fp32 policy for group_norm, whose bf16 input then meets fp32 weights).
    compat::AutocastGuard autocast(models.policy.autocast && !device.is_cpu(), models.policy.autocast_dtype);
    return res.decodable ? models.vqvae->decode(res.state.f_hat) : torch::Tensor();
  };

  // The memory pass (the first warm-up batch, or one extra untimed batch without warm-up): phase by phase,
  // the allocator's peak and the KV cache alive at it. Then the other warm-up batches: the same work,
  // untimed, discarded.
  if (!batches.empty()) {
    device::synchronize(device);
    device::empty_cache(device);
    // After emptying the cache (which may release library workspaces too): they exist again before the
    // probe starts, so they are never the run's activations.
    device::warm_up_libraries(device, models.policy.compute_dtype());
    probe.start();
    rec.resident_at_start_bytes = probe.tracks_tensors() ? probe.live_at_start_bytes() : -1;
    MemoryObserver memory(probe);
    auto res = engine.run(request_for(batches[0]), memory);
    decode(res);
    device::synchronize(device);
    memory.phase_done(kDecodePhase, -1, -1);
    check_pending_logits();
    rec.memory_phases = std::move(memory.phases());
    rec.peak_rss_bytes = probe.peak_rss_bytes();
    if (x.warmup_batches > 0) progress.advance();
    batch_finished();
  }
  for (int64_t w = 1; w < x.warmup_batches && !batches.empty(); ++w) {
    ScaleObserver ignore;
    auto res = engine.run(request_for(batches[w % batches.size()]), ignore);
    decode(res);
    device::synchronize(device);
    check_pending_logits();
    progress.advance();
    batch_finished();
  }

  int64_t timed_row = 0;  // (repetition, batch) in the order they run; rows before resumed_batches are done
  for (int64_t rep = 0; rep < x.repetitions; ++rep) {
    for (const auto& b : batches) {
      if (timed_row++ < resumed_batches) {
        progress.advance();
        continue;
      }
      auto request = request_for(b);
      auto timeline = device::make_timeline(device);
      TimingObserver observer(*timeline, device);
      timeline->mark();
      auto res = engine.run(request, observer);
      auto images = decode(res);
      timeline->mark();
      const auto intervals = timeline->elapsed_ms();  // synchronises: the batch is done
      check_pending_logits();                          // reads the batch's logits checks (GPU), now that it is
      std::vector<double> at(intervals.size() + 1, 0.0);
      for (size_t i = 0; i < intervals.size(); ++i) at[i + 1] = at[i] + intervals[i];
      std::vector<double> per_scale(S, std::numeric_limits<double>::quiet_NaN());
      const auto batch_row = static_cast<int64_t>(rec.batch_ms.size());
      auto record_phase = [&](PhaseKind phase, int64_t first, int64_t last, double ms) {
        rec.phase_batch.push_back(batch_row);
        rec.phase_kind.push_back(phase.id);
        rec.phase_first_scale.push_back(first);
        rec.phase_last_scale.push_back(last);
        rec.phase_ms.push_back(ms);
      };
      size_t previous = 0;
      for (const auto& m : observer.marks()) {
        const double ms = at[m.mark] - at[previous];
        if (m.phase == kScalePhase) per_scale[m.first_scale] = ms;
        record_phase(m.phase, m.first_scale, m.last_scale, ms);
        previous = m.mark;
      }
      record_phase(kDecodePhase, -1, -1, at.back() - at[observer.transformer_mark()]);
      rec.batch_repetition.push_back(rep);
      rec.batch_images.push_back(b.size);
      rec.batch_ms.push_back(at[observer.transformer_mark()]);
      rec.batch_with_decode_ms.push_back(at.back());
      rec.scale_ms.push_back(per_scale);
      if (rep == 0) {
        std::vector<int64_t> labels, in_class, seeds;
        for (int64_t i = 0; i < b.size; ++i) {
          labels.push_back(plan.labels[request.image_indices[i]]);
          in_class.push_back(plan.index_in_class[request.image_indices[i]]);
          seeds.push_back(static_cast<int64_t>(request.seed));
        }
        auto u8 = images.defined() ? images_to_uint8(images) : torch::zeros({b.size, px, px, 3}, torch::kUInt8);
        writer->samples().write_batch(b.first, labels, in_class, seeds, res.state.tokens, u8, request.image_indices);
        for (const auto& [k, v] : res.per_scale) {
          auto& acc = rec.per_scale[k];
          acc.resize(v.size(), 0.0);
          for (size_t i = 0; i < v.size(); ++i) acc[i] += v[i];
        }
        for (const auto& [k, v] : res.counters) rec.counters[k] += v;
      }
      progress.advance();
      batch_finished();
      const int stop = stop_signal_received.load();
      if (stop != 0 || std::chrono::steady_clock::now() - last_checkpoint > std::chrono::duration<double>(kCheckpointSeconds)) {
        writer->checkpoint(rec, timed_row, measurement);
        last_checkpoint = std::chrono::steady_clock::now();
      }
      if (stop != 0)
        throw StopRequested(fmt::format("{} after timed batch {} of {} of run '{}': its progress is saved in {}; the same command "
                                        "resumes it",
                                        strsignal(stop), timed_row, x.repetitions * static_cast<int64_t>(batches.size()), run.id,
                                        writer->path()));
    }
  }

  // The split at the phase with the largest peak. On CUDA the KV figure is the largest alive in that phase,
  // which can exceed what was alive at the allocator's peak moment; it is capped so the parts still sum.
  rec.memory_measured = probe.tracks_tensors();
  for (size_t i = 0; i < rec.memory_phases.size(); ++i)
    if (rec.peak_phase < 0 || rec.memory_phases[i].allocated_bytes > rec.memory_phases[rec.peak_phase].allocated_bytes)
      rec.peak_phase = static_cast<int64_t>(i);
  if (rec.peak_phase >= 0) {
    const auto& at_peak = rec.memory_phases[rec.peak_phase];
    rec.kv_cache_bytes = std::min(at_peak.kv_allocated_bytes, at_peak.allocated_bytes);
    rec.kv_filled_bytes = std::min(at_peak.kv_filled_bytes, rec.kv_cache_bytes);
    rec.activations_bytes = at_peak.allocated_bytes - rec.kv_cache_bytes;
    rec.peak_bytes = rec.weights_bytes + at_peak.allocated_bytes;
  }
  results.commit(*writer, rec, collect_provenance(device, models.policy.compute_dtype()));
}

// The runs of the file that are reused: completed with the identity requested now. Any other completed
// run of the same name stops the sweep before it starts (one message naming every such run and what
// differs), unless --fresh or --rerun replaces it. Runs of the file that the experiment no longer asks for
// go to `stale`.
std::set<std::string> reusable_runs(const Experiment& x, const DriverOptions& o, const ResultFile& results,
                                    const std::map<std::string, RunIdentity>& identities, std::vector<std::string>& stale) {
  for (const auto& name : o.rerun)
    if (!identities.count(name)) {
      std::vector<std::string> names;
      for (const auto& run : x.runs) names.push_back(run.id);
      throw std::runtime_error(fmt::format("--rerun {}: {} has no such run (its runs: {})", name, x.path, fmt::join(names, ", ")));
    }
  std::set<std::string> reuse;
  std::vector<std::string> conflicts;
  for (const auto& [id, stored] : results.stored_runs()) {
    const auto requested = identities.find(id);
    if (requested == identities.end()) {
      stale.push_back(id);
      continue;
    }
    if (o.fresh || o.rerun.count(id) || stored.status != schema::kCompleted) continue;
    if (stored.identity_json.empty()) {
      conflicts.push_back(fmt::format("run '{}' was made by a varbench that recorded no run identity", id));
      continue;
    }
    RunIdentity old_identity;
    try {
      old_identity = parse_identity_json(stored.identity_json);
    } catch (const std::exception&) {
      conflicts.push_back(fmt::format("run '{}' has a damaged identity_json attribute", id));
      continue;
    }
    const auto differences = identity_differences(old_identity, requested->second);
    if (differences.empty())
      reuse.insert(id);
    else
      conflicts.push_back(fmt::format("run '{}' was made with {}", id, fmt::join(differences, ", ")));
  }
  if (!conflicts.empty())
    throw std::runtime_error(fmt::format("{} holds runs other than the ones asked for: {}; nothing was run: --fresh replaces "
                                         "every run, --rerun NAME one, or write to another --out",
                                         results.path(), fmt::join(conflicts, "; ")));
  return reuse;
}

}  // namespace

void install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signal : {SIGTERM, SIGUSR1}) sigaction(signal, &action, nullptr);
}

SweepOutcome run_experiment(const Experiment& x, const DriverOptions& o, const ResultFile& results) {
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw std::runtime_error(fmt::format("shard {}/{} is not a valid shard (0 <= I < N)", o.shard_index, o.shard_count));
  check_experiment(x, CheckOptions{o.random_override, o.device_override});
  configure_threads(static_cast<int>(x.threads));
  IdentityContext context;
  context.shard_index = o.shard_index;
  context.shard_count = o.shard_count;
  context.random_override = o.random_override;
  context.device_override = o.device_override;
  SweepOutcome out;
  std::map<std::string, RunIdentity> identities;  // by run id
  const auto catalog = experiment_catalog(x, o.random_override);
  for (const auto& run : x.runs) identities[run.id] = run_identity(x, run, context, catalog);
  const auto completed = reusable_runs(x, o, results, identities, out.stale);
  // --fresh replaces the file's runs: those the experiment no longer asks for go too (they would
  // otherwise be compared, reported and merged beside the new ones). Without it they stay, named.
  if (o.fresh) out.removed = std::exchange(out.stale, {});
  {
    // The root's provenance is of this sweep, on the device its first run asks for.
    torch::Device sweep_device = torch::kCPU;
    try {
      if (!x.runs.empty()) sweep_device = device::resolve(o.device_override.empty() ? x.runs.front().device : o.device_override);
    } catch (const std::exception&) {
    }
    results.prepare_sweep(out.removed, collect_provenance(sweep_device));
  }
  const auto plan = plan_images(x.classes, x.images_per_class);

  // Batches go to shards whole (batch k to shard k % count), so that every image is computed in the
  // same batch as in an unsharded run and the merged result is bit-identical.
  auto shard_images = [&](int64_t batch_size) {
    std::vector<int64_t> idx;
    for (int64_t first = 0, k = 0; first < plan.size(); first += batch_size, ++k)
      if (k % o.shard_count == o.shard_index)
        for (int64_t i = first; i < std::min(plan.size(), first + batch_size); ++i) idx.push_back(i);
    return idx;
  };

  int64_t total_batches = 0;
  for (const auto& run : x.runs) {
    if (completed.count(run.id)) continue;
    const int64_t n = static_cast<int64_t>(shard_images(run.batch_size).size());
    total_batches += x.warmup_batches + x.repetitions * ((n + run.batch_size - 1) / run.batch_size);
  }
  ProgressBar progress(total_batches, "runs", "batches");

  // The models each run needs, known from the architectures alone; runs that need the same models on the
  // same device and dtype run one after the other (in the experiment's order otherwise), so each set is
  // loaded once. A run whose engine cannot be planned fails below with the engine's own message.
  std::vector<std::vector<std::string>> needed(x.runs.size());
  std::vector<std::string> group_key(x.runs.size());
  for (size_t i = 0; i < x.runs.size(); ++i) {
    const auto& run = x.runs[i];
    try {
      needed[i] = plan_engine(run.engine_type, run.engine_params, catalog).models;
    } catch (const std::exception&) {
    }
    auto sorted = needed[i];
    std::sort(sorted.begin(), sorted.end());
    group_key[i] = fmt::format("{}\n{}\n{}", o.device_override.empty() ? run.device : o.device_override, run.dtype,
                               fmt::join(sorted, ","));
  }
  std::vector<size_t> order;
  {
    std::vector<std::string> keys;  // in order of first appearance
    for (const auto& k : group_key)
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    for (const auto& k : keys)
      for (size_t i = 0; i < x.runs.size(); ++i)
        if (group_key[i] == k) order.push_back(i);
  }

  std::unique_ptr<LoadedGroup> group;
  std::string group_error;
  for (const size_t i : order) {
    const auto& run = x.runs[i];
    if (completed.count(run.id)) {
      ++out.skipped;
      continue;
    }
    if (const int stop = stop_signal_received.load(); stop != 0) {
      out.stop_signal = stop;
      out.stop_message = fmt::format("{} before run '{}'", strsignal(stop), run.id);
      break;
    }
    RunRecord rec;
    rec.spec = run;
    rec.identity_json = identity_json(identities.at(run.id));
    if (!o.device_override.empty()) rec.spec.device = o.device_override;
    try {
      if (!group || group->device_name != rec.spec.device || group->dtype != rec.spec.dtype) {
        group.reset();  // frees the previous group's models first
        group_error.clear();
        try {
          group = std::make_unique<LoadedGroup>(open_group(x, rec.spec.device, rec.spec.dtype, o.random_override));
        } catch (const std::exception& e) {
          group_error = one_line(e);
        }
      }
      if (!group) throw std::runtime_error(group_error);
      if (!group->vqvae_error.empty() && rec.spec.engine_type != "null")
        throw std::runtime_error("VQVAE could not be loaded: " + group->vqvae_error);
      hold_models(*group, needed[i], x, o.random_override);
      auto engine = make_engine(rec.spec.engine_type, rec.spec.engine_params, group->models);
      execute_run(x, rec.spec, *group, *engine, plan, shard_images(rec.spec.batch_size), results, rec, progress);
    } catch (const StopRequested& e) {
      out.stop_signal = stop_signal_received.load();
      out.stop_message = e.what();
      break;
    } catch (const std::exception& e) {
      rec.status = schema::kFailed;
      rec.error = one_line(e);
      ++out.failed;
      forget_pending_logits();
      if (group) device::empty_cache(group->device);
      results.record_failure(rec, collect_provenance(torch::kCPU));
      if (!o.quiet) std::cerr << fmt::format("\nvarbench run: run '{}' failed: {}\n", rec.spec.id, rec.error);
    }
    out.records.push_back(std::move(rec));
  }
  std::sort(out.records.begin(), out.records.end(), [](const RunRecord& a, const RunRecord& b) { return a.spec.index < b.spec.index; });
  progress.finish();
  return out;
}

}  // namespace varbench
