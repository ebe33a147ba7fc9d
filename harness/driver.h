#pragma once
// The driver: runs an experiment's runs, owning the clock, the memory probe and the recorder. Engines
// only generate; every timestamp and memory figure is taken here, the same way for all of them.
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "harness/experiment/experiment.h"
#include "harness/results/result_file.h"
#include "harness/results/run_record.h"

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
  std::vector<std::string> stale;    // runs in the file that the experiment does not ask for (run ids), kept
  std::vector<std::string> removed;  // such runs --fresh removed from the file
  int stop_signal = 0;             // SIGTERM or SIGUSR1 stopped the sweep (install_stop_signals)
  std::string stop_message;        // what was saved, and how to go on
};

// SIGTERM (Slurm's preemption or time limit, scancel) and SIGUSR1 (sbatch --signal) ask a sweep to stop:
// the batch in flight finishes, its run's progress is saved in the run's partial file, and run_experiment
// returns with stop_signal set. Running the same experiment again resumes that run after its last saved
// batch. Installed by `varbench run`.
void install_stop_signals();

SweepOutcome run_experiment(const Experiment& experiment, const DriverOptions& options, const ResultFile& results);

}  // namespace varbench
