#pragma once
// Tables of run results: one row per run with throughput, latency percentiles, speed-up against the
// experiment's baseline and the memory split. One row schema feeds markdown, CSV and JSON; the JSON
// follows Google Benchmark's layout, so its tools/compare.py can compare two result files.
#include <cmath>
#include <string>
#include <vector>

#include "harness/results/run_record.h"

namespace varbench {

// kMarkdown: the compact table a terminal shows (about 120 columns: run, img/s, speed-up, peak memory,
// headline quality, verdict against the baseline, each with its interval); kWide: every column in markdown;
// CSV and JSON always hold every column.
enum class ReportFormat { kMarkdown, kWide, kCsv, kJson };
ReportFormat parse_report_format(const std::string& name);  // md | wide | csv | json

struct ReportRow {
  std::string run_id, engine, params, status, error, device, dtype;
  int64_t batch_size = 0, num_images = 0, repetitions = 0;
  double images_per_s = 0, images_per_s_with_decode = 0;
  double latency_p50_ms = 0, latency_p90_ms = 0, latency_with_decode_p50_ms = 0;
  double speedup = 0, speedup_with_decode = 0;  // 0: no baseline run to compare with
  // 95% interval of the speed-up: the Hodges-Lehmann shift of the per-image batch times, run against baseline,
  // with its Moses interval (harness/analysis/rank_tests.h), the batch the unit; NaN without a baseline.
  double speedup_lower = NAN, speedup_upper = NAN;
  double peak_mb = 0, weights_mb = 0, kv_cache_mb = 0, kv_filled_mb = 0, activations_mb = 0;
  bool memory_measured = false;
  // Quality in the toy world's feature space (NaN: not scored) and the speculative engines' acceptance
  // (accepted / drafted tokens over all scales; NaN for other engines).
  double world_fd = NAN, class_accuracy = NAN, world_precision = NAN, world_recall = NAN, acceptance = NAN;
  // Their 95% intervals (metrics/uncertainty.h; NaN where not computed), and the comparison with the
  // experiment's baseline run: FD difference run - baseline with its paired interval, the smallest FD
  // difference the run size detects (80% power), the verdict ("better", "worse", "indistinguishable at 95%";
  // "" without one) and the baseline run's name.
  double world_fd_lower = NAN, world_fd_upper = NAN, class_accuracy_lower = NAN, class_accuracy_upper = NAN;
  double world_precision_lower = NAN, world_precision_upper = NAN, world_recall_lower = NAN, world_recall_upper = NAN;
  double fd_difference = NAN, fd_difference_lower = NAN, fd_difference_upper = NAN, fd_detectable_difference = NAN;
  double class_accuracy_difference = NAN, class_accuracy_difference_lower = NAN, class_accuracy_difference_upper = NAN;
  double fd_permutation_p = NAN, mcnemar_p = NAN;
  std::string quality_verdict, quality_baseline_run;
  // The `null` engine's row: its latency is the driver's own overhead per batch; throughput and speed-up
  // of a run that generates nothing are not numbers to print.
  bool driver_overhead = false;
  bool is_baseline = false;  // the run its context's speed-ups and quality comparisons refer to
  // Timings that do not compare as they stand: the run's shards were measured on different hardware, or
  // its speed-up's baseline was ("" when neither).
  std::string hardware_note;
};

// Rows in run order; `baseline` is the engine name the speed-ups refer to (runs are matched on device,
// dtype, batch size and sampling settings).
std::vector<ReportRow> report_rows(const std::vector<RunRecord>& records, const std::string& baseline);
std::string format_report(const std::vector<ReportRow>& rows, ReportFormat format, const std::vector<RunRecord>& records,
                          const std::string& context_json = "{}");

}  // namespace varbench
