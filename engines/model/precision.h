#pragma once
// Numeric precision of a model run. CPU runs are fp32; CUDA runs may use pure fp16/bf16 weights, or
// follow the official samplers, which keep fp32 weights under fp16 autocast: matmul and conv outputs are
// fp16, norms and softmax fp32, K is cached in fp32 (it leaves F.normalize in fp32) and V in fp16.
// bf16-autocast is the same with bf16 (what CUDA users commonly run), and the one low precision CPU runs
// take: CPU autocast supports bf16.
#include <torch/torch.h>

#include <string>

namespace varbench {

enum class Precision { kFloat32, kFloat16, kBFloat16, kAutocastFloat16, kAutocastBFloat16 };

struct PrecisionPolicy {
  Precision precision = Precision::kFloat32;
  torch::ScalarType weight_dtype = torch::kFloat32;
  bool autocast = false;
  torch::ScalarType autocast_dtype = torch::kFloat16;
  torch::ScalarType key_cache_dtype = torch::kFloat32;
  torch::ScalarType value_cache_dtype = torch::kFloat32;

  // The dtype matmuls and attention run in: the autocast dtype under autocast, the weights' otherwise.
  torch::ScalarType compute_dtype() const { return autocast ? autocast_dtype : weight_dtype; }

  static PrecisionPolicy of(Precision p);
};

// "fp32", "fp16", "bf16", "fp16-autocast", "bf16-autocast"; throws listing the names otherwise.
Precision parse_precision(const std::string& name);
std::string precision_name(Precision p);
// The dtypes a CPU run can take: fp32, bf16-autocast.
bool cpu_supports(Precision p);

}  // namespace varbench
