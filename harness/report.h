#pragma once
// Tables of run results: one row per run with throughput, latency percentiles, speed-up against the
// experiment's baseline and the memory split. One row schema feeds markdown, CSV and JSON; the JSON
// follows Google Benchmark's layout, so its tools/compare.py can compare two result files.
#include <cmath>
#include <string>
#include <vector>

#include "harness/run_record.h"

namespace varbench {

enum class ReportFormat { kMarkdown, kCsv, kJson };
ReportFormat parse_report_format(const std::string& name);  // md | csv | json

struct ReportRow {
  std::string run_id, engine, params, status, error, device, dtype;
  int64_t batch_size = 0, num_images = 0, repetitions = 0;
  double images_per_s = 0, images_per_s_with_decode = 0;
  double latency_p50_ms = 0, latency_p90_ms = 0, latency_with_decode_p50_ms = 0;
  double speedup = 0, speedup_with_decode = 0;  // 0: no baseline run to compare with
  double peak_mb = 0, weights_mb = 0, kv_cache_mb = 0, kv_filled_mb = 0, activations_mb = 0;
  bool memory_measured = false;
  // Quality in the toy world's feature space (NaN: not scored) and the speculative engines' acceptance
  // (accepted / drafted tokens over all scales; NaN for other engines).
  double world_fd = NAN, class_accuracy = NAN, world_precision = NAN, world_recall = NAN, acceptance = NAN;
  // The `null` engine's row: its latency is the driver's own overhead per batch; throughput and speed-up
  // of a run that generates nothing are not numbers to print.
  bool driver_overhead = false;
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
