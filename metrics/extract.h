#pragma once
// Inception features of an image set, streamed in batches: sufficient statistics of pool3 and of the
// sFID spatial features, and (optionally) the pool3 features and unbiased logits themselves, which
// precision/recall, KID and the Inception Score need per image. The next batch is read and decoded on a
// second thread while the network runs on the current one.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "formats/hdf5.h"
#include "metrics/image_sources.h"
#include "metrics/inception.h"
#include "metrics/preprocess.h"
#include "metrics/progress.h"
#include "metrics/statistics.h"

namespace varbench::metrics {

struct ExtractOptions {
  Profile profile = Profile::kAdm;
  int64_t batch_size = 50;  // pytorch-fid's default; results do not depend on it beyond float rounding
  bool keep_features = true;  // pool3 [N, 2048] and logits [N, 1008], float32 on the CPU
};

struct ExtractedFeatures {
  std::string source;
  Profile profile = Profile::kAdm;
  FeatureStats pool3_stats, spatial_stats;
  torch::Tensor pool3;   // [N, 2048] float32 (when kept)
  torch::Tensor logits;  // [N, 1008] float32 (when kept)
  int64_t count() const { return pool3_stats.n; }
};

ExtractedFeatures extract_features(FidInception& net, ImageSource& images, const ExtractOptions& options,
                                   const ProgressFn& progress = nullptr);


// Cache of a run group (<run>/feature_stats/<profile>/, see docs/hdf5-schema.md):
//   pool3/   attr n, sum [2048], sum_outer [2048, 2048] (float64), features [N, 2048] (float32)
//   spatial/ attr n, sum [2023], sum_outer [2023, 2023] (float64)
//   logits/  attr n, features [N, 1008] (float32)
void write_feature_cache(const h5::Group& profile_group, const ExtractedFeatures& features);
// Reads the cache; throws naming the group if a part is missing or inconsistent.
ExtractedFeatures read_feature_cache(const h5::Group& profile_group, Profile profile);

}  // namespace varbench::metrics
