#include "harness/results/run_record.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

namespace varbench {

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = static_cast<size_t>(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

std::string comparison_context(const RunRecord& r) {
  static const std::set<std::string> axes{"device", "dtype", "batch_size", "cfg", "top_k", "top_p", "temperature"};
  std::string key = fmt::format("{}|{}|{}", r.spec.device, r.spec.dtype, r.spec.batch_size);
  for (const auto& [k, v] : r.spec.swept)
    if (axes.count(k)) key += "|" + k + "=" + v;
  return key;
}

std::vector<double> RunRecord::repetition_images_per_s(bool with_decode) const {
  std::map<int64_t, std::pair<double, double>> reps;  // repetition -> (images, ms)
  const auto& ms = with_decode ? batch_with_decode_ms : batch_ms;
  for (size_t i = 0; i < ms.size(); ++i) {
    reps[batch_repetition[i]].first += static_cast<double>(batch_images[i]);
    reps[batch_repetition[i]].second += ms[i];
  }
  std::vector<double> out;
  for (const auto& [rep, v] : reps)
    if (v.second > 0) out.push_back(v.first / (v.second / 1000.0));
  return out;
}

double RunRecord::median_images_per_s(bool with_decode) const { return median(repetition_images_per_s(with_decode)); }

double RunRecord::latency_percentile_ms(double q, bool with_decode) const {
  return percentile(with_decode ? batch_with_decode_ms : batch_ms, q);
}

}  // namespace varbench
