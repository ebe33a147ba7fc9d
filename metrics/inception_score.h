#pragma once
// Inception Score, exp(E_x KL(p(y|x) || p(y))), from the 1008-way logits without the fc bias, in float64
// (softmax and log-softmax of the logits; p(y) is the mean of p(y|x) over the split). Two split rules:
//   ADM evaluator   consecutive chunks of 5000 images in file order (the last one may be shorter); the
//                   score is the mean over chunks. (The evaluator computes a float32 softmax in
//                   TensorFlow; float64 here differs from it by rounding only.)
//   torch-fidelity  10 splits [i N/10, (i+1) N/10) of the images permuted by
//                   np.random.RandomState(2020).permutation(N); mean and population std over splits.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace varbench::metrics {

struct InceptionScore {
  double mean = 0;
  double std = 0;  // population std over the splits (np.std)
  std::vector<double> split_scores;
};

// logits: [N, C] floating. `source` names the data in errors.
InceptionScore inception_score_adm(const torch::Tensor& logits, const std::string& source, int64_t split_size = 5000);
InceptionScore inception_score_torch_fidelity(const torch::Tensor& logits, const std::string& source, int64_t splits = 10,
                                              uint32_t seed = 2020);

}  // namespace varbench::metrics
