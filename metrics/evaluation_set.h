#pragma once
// One side of a comparison, from whatever the user points at:
//   *.npz            ADM-style: `arr_0` (uint8 N x H x W x 3 images) and/or stored statistics `mu`,
//                    `sigma` (and `mu_s`, `sigma_s` for sFID); or a file written by `varbench features`
//                    (the same keys plus per-image `pool3` and `logits` features and the profile).
//   FILE.h5[:RUN]    the images of a run of a varbench result file (/runs/RUN/images); RUN may be omitted
//                    when exactly one run has images. A feature cache of the run is used when present.
//   a directory      PNG files, sorted by name.
// Stored statistics take precedence over statistics computed from images (as in the ADM evaluator and
// pytorch-fid), unless `ignore_stored_statistics`; images are still read when per-image features are
// needed (precision/recall, KID, Inception Score).
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>

#include "metrics/extract.h"
#include "metrics/frechet.h"
#include "metrics/statistics.h"

namespace varbench::metrics {

struct EvaluationSet {
  std::string name;                      // as given
  std::optional<GaussianStats> pool3;    // FID statistics
  std::optional<GaussianStats> spatial;  // sFID statistics
  std::string statistics_origin;         // "stored" | "computed" | "cached"
  torch::Tensor pool3_features;          // [N, 2048] float32 or undefined
  torch::Tensor logits;                  // [N, 1008] float32 or undefined
  int64_t num_images = 0;                // images behind the features (0: statistics only)
};

struct EvaluationSetOptions {
  ExtractOptions extract;
  bool need_features = true;            // per-image pool3/logits wanted (not only statistics)
  bool ignore_stored_statistics = false;
  std::string images_dataset = "images";  // dataset of a run group holding its images
};

// Writes every key of a `varbench features` file: mu, sigma, mu_s, sigma_s (float64), n (int64: images),
// pool3, logits (float32, unless `statistics_only`), profile (uint8 bytes of the profile name).
// `stored`, when given, replaces the computed statistics (e.g. those an ADM reference batch ships, which
// the ADM evaluator uses for FID/sFID); `n` is then omitted, as those files do not record it.
struct StoredStatistics {
  GaussianStats pool3, spatial;
};
void write_features_npz(const std::string& path, const ExtractedFeatures& features, bool statistics_only,
                        const StoredStatistics* stored = nullptr);

// Resolves "FILE.h5" / "FILE.h5:RUN" to the run group path ("runs/RUN"); throws listing the runs.
std::string resolve_run(const std::string& file, const std::string& run);
bool is_hdf5_spec(const std::string& spec, std::string* file, std::string* run);

// `net` is loaded lazily through `load_net` only when images have to be read.
EvaluationSet load_evaluation_set(const std::string& spec, const EvaluationSetOptions& options,
                                  const std::function<FidInception&()>& load_net, const ProgressFn& progress);

}  // namespace varbench::metrics
