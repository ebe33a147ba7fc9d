#pragma once
// What the driver measured for one run: raw timing samples, memory, engine counters; the statistics the
// reports show are derived from these (never stored instead of them).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/experiment/experiment.h"
#include "harness/results/schema.h"

namespace varbench {

struct RunRecord {
  RunSpec spec;
  std::string status = schema::kCompleted;  // schema::kCompleted or kFailed
  std::string error;                 // one line, for failed runs
  int64_t num_images = 0;
  int64_t num_scales = 0;

  // One entry per timed batch.
  std::vector<int64_t> batch_repetition;         // repetition the batch belongs to
  std::vector<int64_t> batch_images;             // images in the batch
  std::vector<double> batch_ms;                  // transformer and sampling, VQVAE decode excluded
  std::vector<double> batch_with_decode_ms;      // the same batch including the decode
  std::vector<std::vector<double>> scale_ms;     // per scale phase (NaN for scales without a phase of their own)
  // Every phase of every timed batch, in order (engines/model/generation.h Phase): the batch's row in the
  // batch_* arrays, the kind, the scales covered (-1 for set-up and decode) and the time.
  std::vector<int64_t> phase_batch, phase_kind, phase_first_scale, phase_last_scale;
  std::vector<double> phase_ms;

  // Memory (bytes), from the untimed memory pass (one batch, the first): per phase the allocator's peak
  // above the level before the batch (the resident weights) and the KV cache bytes alive (allocated and
  // filled) at that peak. peak = weights + the largest phase peak, and the split is taken at that phase:
  // peak = weights + kv_cache (allocated, alive) + activations (everything else allocated) exactly.
  struct MemoryPhase {
    int64_t kind = 0, first_scale = -1, last_scale = -1;
    int64_t allocated_bytes = 0, kv_allocated_bytes = 0, kv_filled_bytes = 0;
  };
  bool memory_measured = false;
  int64_t weights_bytes = 0;  // every module the run keeps resident: its transformers and the VQVAE
  int64_t kv_cache_bytes = 0, kv_filled_bytes = 0, activations_bytes = 0, peak_bytes = 0, peak_rss_bytes = -1;
  int64_t peak_phase = -1;  // index into memory_phases
  // Device memory live when the run's memory pass began (after the cache was emptied): the models resident
  // then, which the driver holds to the run's own (harness/driver.cpp); -1 where not tracked.
  int64_t resident_at_start_bytes = -1;
  std::vector<MemoryPhase> memory_phases;

  std::map<std::string, std::string> models;  // model name -> "depth=<d> source=<checkpoint or random:config>"
  std::string identity_json;  // harness/experiment/run_identity.h: what resume and merge compare
  // How its timings were measured (provenance.h measurement_of); a merged run whose shards were measured
  // on different hardware has mixed_hardware and every shard's measurement, " / "-joined.
  std::string measurement;
  bool mixed_hardware = false;
  // Processes that measured it: 1, or 2 when an interrupted attempt's saved batches were resumed (its
  // timings then come from two processes, possibly on other hardware).
  int64_t segments = 1;
  std::vector<std::string> segment_measurements;  // with segments > 1: each process's measurement_of
  std::map<std::string, std::vector<double>> per_scale;  // engine series summed over the timed batches of rep 0
  std::map<std::string, double> counters;
  // Quality in the toy world's feature space (/runs/<run>/metrics_world: fd, class_accuracy, precision,
  // recall, kid, kid_std, each with its 95% interval as <key>_lower, <key>_upper), when scored.
  std::map<std::string, double> world_quality;
  // Against the experiment's baseline run (/runs/<run>/metrics_world/vs_baseline): differences run - baseline
  // with their intervals and tests (fd_difference, fd_difference_lower, ..., fd_permutation_p, mcnemar_p,
  // fd_detectable_difference), the baseline run's name and the verdict ("better", "worse",
  // "indistinguishable at 95%"); empty when there is none.
  std::map<std::string, double> world_vs_baseline;
  std::string world_baseline_run, world_verdict;

  // Derived statistics.
  std::vector<double> repetition_images_per_s(bool with_decode) const;
  double median_images_per_s(bool with_decode) const;
  double latency_percentile_ms(double q, bool with_decode) const;  // over timed batches
};

// What a run is compared on with the experiment's baseline run: everything but its engine and the engine's
// own parameters (device, dtype, batch size and the swept sampling settings). Speed-ups and quality
// comparisons pair a run with the baseline run of the same context.
std::string comparison_context(const RunRecord& r);

double percentile(std::vector<double> v, double q);  // linear interpolation, q in [0, 1]
double median(std::vector<double> v);

}  // namespace varbench
