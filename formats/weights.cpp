#include "formats/weights.h"

#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

namespace {
std::string shape_str(c10::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s.begin(), s.end(), ", ")); }
}  // namespace

std::map<std::string, torch::Tensor> state_dict(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace(b.key(), b.value());
  return out;
}

void load_strict(torch::nn::Module& module, const SafetensorsFile& file, const std::string& prefix,
                 const KeyFilter& ignore_unexpected) {
  const auto expected = state_dict(module);
  std::vector<std::string> missing, unexpected, misshaped, mistyped;
  std::map<std::string, int64_t> converted;  // "Half -> Float" -> number of tensors
  std::set<std::string> seen;
  for (const auto& [key, info] : file.entries()) {
    if (key.compare(0, prefix.size(), prefix) != 0) {
      if (!(ignore_unexpected && ignore_unexpected(key))) unexpected.push_back(key);
      continue;
    }
    const std::string name = key.substr(prefix.size());
    auto it = expected.find(name);
    if (it == expected.end()) {
      if (!(ignore_unexpected && ignore_unexpected(key))) unexpected.push_back(key);
      continue;
    }
    seen.insert(name);
    if (c10::IntArrayRef(info.shape) != it->second.sizes())
      misshaped.push_back(fmt::format("{} (file {}, model {})", key, shape_str(info.shape), shape_str(it->second.sizes())));
    else if (info.dtype != it->second.scalar_type()) {
      // A floating-point tensor stored in another floating-point type (fp16/bf16 checkpoints are common on
      // model hubs) is converted; anything else (integer buffers, integer <-> float) is a wrong type.
      if (c10::isFloatingType(info.dtype) && it->second.is_floating_point())
        converted[fmt::format("{} -> {}", c10::toString(info.dtype), c10::toString(it->second.scalar_type()))] += 1;
      else
        mistyped.push_back(fmt::format("{} (file {}, model {})", key, c10::toString(info.dtype),
                                       c10::toString(it->second.scalar_type())));
    }
  }
  for (const auto& [name, t] : expected)
    if (!seen.count(name)) missing.push_back(prefix + name);

  if (!missing.empty() || !unexpected.empty() || !misshaped.empty() || !mistyped.empty()) {
    std::ostringstream msg;
    msg << file.path() << ": checkpoint does not match the model:";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg << " " << keys.size() << " " << what << " key" << (keys.size() > 1 ? "s" : "") << ": "
          << fmt::format("{}", fmt::join(keys, ", ")) << ";";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("mis-shaped", misshaped);
    list("wrongly typed", mistyped);
    std::string text = msg.str();
    text.pop_back();
    throw std::runtime_error(text);
  }

  torch::NoGradGuard no_grad;
  std::vector<std::string> non_finite;
  std::set<std::string> parameters;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) parameters.insert(p.key());
  for (const auto& [name, target] : expected) {
    auto source = file.tensor(prefix + name);
    target.copy_(source);
    // One pass over the weights at load: a NaN or Inf weight would otherwise generate a "completed" run
    // of garbage (argmax over NaN logits). Buffers may hold -inf by design (the attention mask), so for
    // them only NaN counts.
    if (target.is_floating_point()) {
      const int64_t bad = parameters.count(name) ? target.numel() - target.isfinite().sum().item<int64_t>()
                                                 : target.isnan().sum().item<int64_t>();
      if (bad > 0) non_finite.push_back(fmt::format("{} ({} of {} values)", prefix + name, bad, target.numel()));
    }
  }
  if (!non_finite.empty())
    throw std::runtime_error(fmt::format("{}: NaN or Inf weights in {} key{}: {}", file.path(), non_finite.size(),
                                         non_finite.size() > 1 ? "s" : "", fmt::join(non_finite, ", ")));
  if (!converted.empty()) {
    std::vector<std::string> what;
    for (const auto& [conversion, n] : converted) what.push_back(fmt::format("{} tensors {}", n, conversion));
    std::cerr << fmt::format("varbench: {}: converted {} on load\n", file.path(), fmt::join(what, ", "));
  }
}

void freeze_for_inference(torch::nn::Module& module) {
  module.eval();
  for (auto& p : module.parameters(/*recurse=*/true)) p.requires_grad_(false);
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) n += p.numel();
  return n;
}

int64_t parameter_bytes(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) n += p.numel() * p.element_size();
  for (const auto& b : module.buffers(true)) n += b.numel() * b.element_size();
  return n;
}

}  // namespace varbench
