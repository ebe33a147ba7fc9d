#include "metrics/inception_score.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "metrics/statistics.h"

#include "metrics/numpy_random.h"

namespace varbench::metrics {

namespace {
torch::Tensor checked_f64(const torch::Tensor& logits, const std::string& source) {
  if (logits.dim() != 2 || logits.size(0) < 1)
    throw std::runtime_error(fmt::format("{}: Inception Score needs logits [N, C] with N >= 1, got [{}]", source,
                                         fmt::join(logits.sizes(), ", ")));
  return finite_f64_rows(logits, source, "logits");
}

// exp(mean_i KL(p_i || mean_j p_j)) over the rows of one split.
double split_score(const torch::Tensor& p, const torch::Tensor& log_p) {
  const auto q = p.mean(0, /*keepdim=*/true);
  return std::exp((p * (log_p - q.log())).sum(1).mean().item<double>());
}

InceptionScore summarise(std::vector<double> scores) {
  InceptionScore s;
  double sum = 0;
  for (double v : scores) sum += v;
  s.mean = sum / static_cast<double>(scores.size());
  double sq = 0;
  for (double v : scores) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / static_cast<double>(scores.size()));
  s.split_scores = std::move(scores);
  return s;
}
}  // namespace

InceptionScore inception_score_adm(const torch::Tensor& logits, const std::string& source, int64_t split_size) {
  const auto x = checked_f64(logits, source);
  const auto p = x.softmax(1), log_p = x.log_softmax(1);
  std::vector<double> scores;
  for (int64_t first = 0; first < x.size(0); first += split_size) {
    const int64_t last = std::min(first + split_size, x.size(0));
    scores.push_back(split_score(p.slice(0, first, last), log_p.slice(0, first, last)));
  }
  return summarise(std::move(scores));
}

InceptionScore inception_score_torch_fidelity(const torch::Tensor& logits, const std::string& source, int64_t splits,
                                              uint32_t seed) {
  const auto x0 = checked_f64(logits, source);
  const int64_t n = x0.size(0);
  if (n < splits)
    throw std::runtime_error(fmt::format("{}: {} images cannot fill {} Inception Score splits", source, n, splits));
  const auto order = LegacyRandomState(seed).permutation(n);
  const auto x = x0.index_select(0, torch::tensor(order, torch::kLong));
  const auto p = x.softmax(1), log_p = x.log_softmax(1);
  std::vector<double> scores;
  for (int64_t i = 0; i < splits; ++i) {
    const int64_t first = i * n / splits, last = (i + 1) * n / splits;
    scores.push_back(split_score(p.slice(0, first, last), log_p.slice(0, first, last)));
  }
  return summarise(std::move(scores));
}

}  // namespace varbench::metrics
