#pragma once
// Feature statistics in float64. A stream of feature batches is summarised by mergeable sufficient
// statistics (n, sum, sum of outer products): shards of one image set combine exactly by addition, and
// the Gaussian summary (mean, unbiased covariance as np.cov) is derived at the end.
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "formats/hdf5.h"
#include "formats/image_files.h"

namespace varbench::metrics {

// Mean and covariance of a feature distribution (what FID compares).
struct GaussianStats {
  torch::Tensor mu;     // [D] float64, CPU
  torch::Tensor sigma;  // [D, D] float64, CPU, symmetric
  int64_t n = 0;        // samples behind them; 0 when read from stored statistics that do not say
  std::string source;   // file (and key) for messages
  int64_t dims() const { return mu.size(0); }
  // Shapes [D] and [D, D], every value finite; throws one line naming `source`.
  void validate() const;
};

struct FeatureStats {
  int64_t n = 0;
  torch::Tensor sum;        // [D] float64
  torch::Tensor sum_outer;  // [D, D] float64: sum over samples of x x^T

  FeatureStats() = default;
  explicit FeatureStats(int64_t dims);
  int64_t dims() const { return sum.defined() ? sum.size(0) : 0; }
  // Adds a batch [B, D] (any floating dtype and device). Non-finite features are an error naming `where`
  // and the first offending row (a NaN would otherwise surface as a meaningless FID).
  void add(const torch::Tensor& features, const std::string& where);
  // Shards of one stream: n, sum and sum_outer add (exact up to float64 addition).
  FeatureStats& merge(const FeatureStats& other);
  // mu = sum / n; sigma = (sum_outer - n mu mu^T) / (n - 1), symmetrised. Needs n >= 2.
  GaussianStats gaussian(const std::string& source) const;
};

// Per-image features or logits [N, D] as a contiguous CPU float64 matrix. Throws one line naming
// `source` for another rank or a non-finite row (reported as image `first_image` + row: a NaN would
// otherwise surface as a meaningless score). `what` names the rows' kind in that message.
torch::Tensor finite_f64_rows(const torch::Tensor& x, const std::string& source, const char* what = "features",
                              int64_t first_image = 0);

// The cache layout of a run group: <group>/ attr n, datasets sum [D], sum_outer [D, D] (float64).
void write_feature_stats(const h5::Group& group, const FeatureStats& stats);
FeatureStats read_feature_stats(const h5::Group& group);

// An .npy array as a CPU tensor (uint8, int64, float32, float64), copying; throws naming `where`.
torch::Tensor npy_to_tensor(const io::NpyArray& array, const std::string& where);
io::NpyArray tensor_to_npy(const torch::Tensor& t);

// Stored statistics of an ADM / pytorch-fid .npz (`mu`, `sigma` or `mu_s`, `sigma_s`), as float64.
GaussianStats read_npz_gaussian(const io::NpzReader& npz, const std::string& mu_key, const std::string& sigma_key);

}  // namespace varbench::metrics
