#include "harness/experiment/image_plan.h"

#include <map>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

std::vector<int64_t> parse_class_list(const std::string& text, int64_t num_classes) {
  std::vector<int64_t> out;
  size_t start = 0;
  auto parse_int = [&](const std::string& s) -> int64_t {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != s.size()) throw std::runtime_error(fmt::format("classes '{}': '{}' is not a class index", text, s));
    if (v < 0 || v >= num_classes)
      throw std::runtime_error(fmt::format("classes '{}': class {} is outside 0..{}", text, v, num_classes - 1));
    return v;
  };
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t dash = item.find('-', 1);
    if (dash != std::string::npos) {
      const int64_t a = parse_int(item.substr(0, dash)), b = parse_int(item.substr(dash + 1));
      if (b < a) throw std::runtime_error(fmt::format("classes '{}': empty range '{}'", text, item));
      for (int64_t c = a; c <= b; ++c) out.push_back(c);
    } else {
      out.push_back(parse_int(item));
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

ImagePlan plan_images(const std::vector<int64_t>& classes, int64_t images_per_class) {
  if (images_per_class < 1) throw std::runtime_error(fmt::format("images per class = {}: must be >= 1", images_per_class));
  ImagePlan plan;
  std::map<int64_t, int64_t> seen;
  for (int64_t c : classes)
    for (int64_t j = 0; j < images_per_class; ++j) {
      plan.labels.push_back(c);
      plan.index_in_class.push_back(seen[c]++);
    }
  return plan;
}

uint64_t reference_batch_seed(const ImagePlan& plan, int64_t first, uint64_t seed) {
  return seed + static_cast<uint64_t>(plan.index_in_class.at(first));
}

}  // namespace varbench
