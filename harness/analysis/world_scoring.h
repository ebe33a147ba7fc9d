#pragma once
// Quality of the runs of a result file in the toy world's feature space (metrics/world_quality.h): for
// every completed run with stored images, FD, precision/recall, KID and class accuracy against the
// reference set, written to /runs/<run>/metrics_world (docs/hdf5-schema.md). Used by `varbench run`
// after the sweep when the experiment has a [quality] table, and by `varbench score --features world`.
#include <cstdint>
#include <set>
#include <string>

#include "harness/experiment/experiment.h"

namespace varbench {

struct WorldScoringOptions {
  std::set<std::string> runs;  // run names to score; empty = every run
  bool recompute = false;      // score again where up-to-date scores exist
  bool quiet = false;
  int64_t batch_size = 256;
};

struct WorldScoringOutcome {
  int64_t scored = 0, up_to_date = 0, failed = 0;
};

// A run's failure (unreadable images, too few images) is reported on stderr and counted; the others are
// still scored. Scores already present for the same network, reference and image count are kept.
WorldScoringOutcome score_runs_world(const std::string& result_path, const QualitySpec& quality,
                                     const WorldScoringOptions& options);

}  // namespace varbench
