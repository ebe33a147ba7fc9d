#include "engines/model/precision.h"

#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

PrecisionPolicy PrecisionPolicy::of(Precision p) {
  PrecisionPolicy policy;
  policy.precision = p;
  switch (p) {
    case Precision::kFloat32:
      break;
    case Precision::kFloat16:
      policy.weight_dtype = policy.key_cache_dtype = policy.value_cache_dtype = torch::kFloat16;
      break;
    case Precision::kBFloat16:
      policy.weight_dtype = policy.key_cache_dtype = policy.value_cache_dtype = torch::kBFloat16;
      break;
    case Precision::kAutocastFloat16:
    case Precision::kAutocastBFloat16: {
      const auto low = p == Precision::kAutocastFloat16 ? torch::kFloat16 : torch::kBFloat16;
      policy.autocast = true;
      policy.autocast_dtype = low;
      policy.key_cache_dtype = torch::kFloat32;
      policy.value_cache_dtype = low;
      break;
    }
  }
  return policy;
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "fp16") return Precision::kFloat16;
  if (name == "bf16") return Precision::kBFloat16;
  if (name == "fp16-autocast") return Precision::kAutocastFloat16;
  if (name == "bf16-autocast") return Precision::kAutocastBFloat16;
  throw std::runtime_error(fmt::format("unknown dtype '{}' (fp32, fp16, bf16, fp16-autocast, bf16-autocast)", name));
}

std::string precision_name(Precision p) {
  switch (p) {
    case Precision::kFloat32: return "fp32";
    case Precision::kFloat16: return "fp16";
    case Precision::kBFloat16: return "bf16";
    case Precision::kAutocastFloat16: return "fp16-autocast";
    case Precision::kAutocastBFloat16: return "bf16-autocast";
  }
  return "?";
}

bool cpu_supports(Precision p) { return p == Precision::kFloat32 || p == Precision::kAutocastBFloat16; }

}  // namespace varbench
