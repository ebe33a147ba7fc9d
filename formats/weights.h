#pragma once
// Strict weight loading by checkpoint key: parameter and buffer names of varbench modules equal the
// official state_dict keys, and one error lists every missing, unexpected, mis-shaped and mis-typed key.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>

#include "formats/safetensors.h"

namespace varbench {

// Keys a checkpoint may carry that the module deliberately has no slot for (e.g. BatchNorm's
// num_batches_tracked in pytorch-fid's Inception weights).
using KeyFilter = std::function<bool(const std::string&)>;

// Copies every tensor of `file` into the module's parameters and buffers (names prefixed by `prefix`).
// Throws one std::runtime_error naming the file and listing all problems.
void load_strict(torch::nn::Module& module, const SafetensorsFile& file, const std::string& prefix = "",
                 const KeyFilter& ignore_unexpected = nullptr);

// Parameters and buffers by key, as the official state_dict would hold them.
std::map<std::string, torch::Tensor> state_dict(const torch::nn::Module& module);

// eval() and requires_grad(false) on every parameter, as the official samplers do before sampling: no
// autograd state is kept for weights (under autocast without inference mode, libtorch would otherwise
// cache an fp16 copy of every weight that requires grad).
void freeze_for_inference(torch::nn::Module& module);

int64_t parameter_count(const torch::nn::Module& module);
int64_t parameter_bytes(const torch::nn::Module& module);  // parameters and buffers, as held on the device

}  // namespace varbench
