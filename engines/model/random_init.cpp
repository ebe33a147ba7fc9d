#include "engines/model/random_init.h"

#include <cmath>

namespace varbench {

namespace {
void trunc_normal_(torch::Tensor t, double std, torch::Generator& gen) {
  t.normal_(0, std, gen).clamp_(-2 * std, 2 * std);
}
}  // namespace

void random_init(VarTransformerImpl& m, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  const double C = static_cast<double>(m.arch().width);
  const double init_std = std::sqrt(1.0 / C / 3.0);  // the official automated init_std
  // Parameters are visited in registration order, so the values depend only on the seed and the arch.
  for (auto& p : m.named_parameters(true)) {
    const std::string& key = p.key();
    auto t = p.value();
    auto cpu = torch::empty(t.sizes(), torch::kFloat32);
    if (key.find("scale_mul_1H11") != std::string::npos) {
      cpu.normal_(std::log(4.0), 0.3, gen);
    } else if (key.size() >= 4 && key.compare(key.size() - 4, 4, "bias") == 0) {
      cpu.normal_(0, 0.02, gen);
    } else if (key == "head.weight") {
      trunc_normal_(cpu, 1.0 / std::sqrt(C), gen);  // logits of std ~1
    } else if (key.find("ada_lin") != std::string::npos || key.find("ada_gss") != std::string::npos) {
      trunc_normal_(cpu, 0.5 * init_std, gen);
    } else if (key.find("proj.weight") != std::string::npos || key.find("fc2.weight") != std::string::npos) {
      trunc_normal_(cpu, init_std / std::sqrt(2.0 * m.arch().depth), gen);
    } else {
      trunc_normal_(cpu, init_std, gen);
    }
    t.copy_(cpu);
  }
}

void random_init(VqvaeImpl& v, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : v.named_parameters(true)) {
    const std::string& key = p.key();
    auto t = p.value();
    auto cpu = torch::empty(t.sizes(), torch::kFloat32);
    if (key.find("norm") != std::string::npos) {  // GroupNorm affine: near identity
      cpu.normal_(key.compare(key.size() - 6, 6, "weight") == 0 ? 1.0 : 0.0, 0.05, gen);
    } else if (key == "quantize.embedding.weight") {
      cpu.normal_(0, 1, gen);
    } else if (t.dim() == 4) {  // conv weight: PyTorch's default bound 1/sqrt(fan_in)
      const double fan_in = static_cast<double>(t.size(1) * t.size(2) * t.size(3));
      cpu.uniform_(-1 / std::sqrt(fan_in), 1 / std::sqrt(fan_in), gen);
    } else {  // conv bias
      cpu.uniform_(-0.05, 0.05, gen);
    }
    t.copy_(cpu);
  }
}

}  // namespace varbench
