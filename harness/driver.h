#pragma once
// The driver: runs an experiment's runs, owning the clock, the memory probe and the recorder. Engines
// only generate; every timestamp and memory figure is taken here, the same way for all of them.
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "harness/experiment.h"
#include "harness/result_file.h"
#include "harness/run_record.h"

namespace varbench {

struct DriverOptions {
  bool random_override = false;  // random-init every checkpoint model from its config (speed/memory only)
  bool fresh = false;            // rerun every run the result file already has
  std::set<std::string> rerun;   // rerun these runs (by run id) even where the file has them
  std::string device_override;   // replaces every run's device
  int64_t shard_index = 0, shard_count = 1;  // images by global index: batch k goes to shard k % count
  bool quiet = false;
};

struct SweepOutcome {
  std::vector<RunRecord> records;  // runs executed now
  int64_t failed = 0, skipped = 0;  // skipped: completed in the file with the identity asked for now
  std::vector<std::string> stale;  // runs in the file that the experiment does not ask for (run ids)
};

SweepOutcome run_experiment(const Experiment& experiment, const DriverOptions& options, const ResultFile& results);

// Reads every run record of a result file (timing, memory, status), for reports and comparisons.
std::vector<RunRecord> read_run_records(const std::string& path);

}  // namespace varbench
