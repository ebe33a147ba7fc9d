#pragma once
// Inception scoring of a result file (`varbench score`, the default feature network): FID with its 95%
// interval, sFID, IS (ADM and torch-fidelity), precision/recall and KID of every completed run with stored
// images, against one reference set, written to /runs/<run>/metrics. The toy world's twin is
// world_scoring.h.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "metrics/evaluation_set.h"
#include "metrics/inception.h"
#include "metrics/uncertainty.h"

namespace varbench {

struct InceptionScoringOptions {
  std::string results;    // the result file (written: /runs/<run>/metrics, feature caches)
  std::string reference;  // how the reference was named (recorded beside the scores)
  std::string inception;  // weights file; "" = use feature caches as they are (no extraction possible)
  metrics::Profile profile = metrics::Profile::kAdm;
  int64_t batch_size = 50;
  bool recompute = false;  // extract features again even where a run has a cache
  int64_t kid_subsets = 100, kid_subset_size = 1000;
  metrics::BootstrapSettings bootstrap;  // of the FID's interval
};

// The FID's 95% interval: a bootstrap over interleaved groups of the run's images (metrics/uncertainty.h).
inline constexpr int64_t kFidBootstrapGroups = 50;

struct RunInceptionScores {
  std::string run;
  int64_t images = 0;
  std::optional<double> fid, sfid, is_adm, is_adm_std, is_tf, is_tf_std, precision, recall, kid, kid_std;
  metrics::Interval fid_interval;  // bounds NaN when the run has too few images for the grouped bootstrap
  std::string error;               // one line, when this run could not be scored
};

// The network, asked for only when features must be extracted (`label`: what they are of, for errors).
using InceptionNetworkFn = std::function<metrics::FidInception&(const std::string& label)>;

// Scores every completed run with images; a run that fails is reported in its row and the others go on.
// Holds the result file's lock: never beside a running sweep.
std::vector<RunInceptionScores> score_runs_inception(const InceptionScoringOptions& options, const metrics::EvaluationSet& reference,
                                                     const InceptionNetworkFn& network);

}  // namespace varbench
