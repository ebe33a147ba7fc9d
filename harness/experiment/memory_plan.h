#pragma once
// A memory plan before any work: each run's peak device memory estimated from the architectures, batch
// size and dtype, split as the driver measures it (weights / KV cache / activations at the peak), so that a
// run that cannot fit on the device is refused before the sweep starts instead of failing an hour in.
//
// Weights and KV cache are computed exactly (parameter counts; cache capacity x rows x width x dtype). The
// activations are a model of what the generation holds at its largest moment, calibrated on the CPU
// (libtorch 1.13, tracking allocator; tests/test_memory_plan.cpp holds it to 10% of the measured split, and
// measured 0.1-2.2% off on its single, CoDe, speculative and KV-bound runs):
//  - a scale step: the largest of sampling (~5.2 fp32 logits-sized tensors of L x V per image),
//    attention (the score matrix and its softmax, 2 x rows x heads x L x T, where the attention kernel
//    materialises them, plus ~9.4 rows x L x width tensors) and the MLP (4 rows x L x mlp_hidden);
//  - the VQVAE decode: ~6.03 tensors of B x ch x H x W in fp32 at the output resolution;
//  - CoDe: the drafter's cache (its N scales only) during the draft, then the refiner's, whose prefix pass
//    attends over end(N) tokens; speculative: both caches, the verify pass at ~2.35 x the target's step
//    (one measured point: treat as rough).
// On CUDA the caching allocator rounds blocks and SDPA's fused kernels hold no score matrix: the plan is
// an estimate there, not a guarantee; leave headroom.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/experiment/experiment.h"

namespace varbench {

struct RunMemoryPlan {
  std::string run_id, device, dtype, peak_stage;
  int64_t batch_size = 0;
  int64_t weights_bytes = 0, kv_cache_bytes = 0, activations_bytes = 0, peak_bytes = 0;  // at the peak stage
};

// Every run of the experiment (device as overridden by `device_override` when not empty).
std::vector<RunMemoryPlan> plan_memory(const Experiment& experiment, bool random_override, const std::string& device_override);

// The device's memory in bytes: a CUDA device's total memory when one is visible; nullopt otherwise
// (the CPU is not planned against a capacity unless one is given).
std::optional<int64_t> device_capacity_bytes(const std::string& device);

// The plan as a markdown table, with a line for the sweep's peak (the largest run: the driver holds one
// run's models at a time) and, given a capacity, whether each run fits.
std::string format_memory_plan(const std::vector<RunMemoryPlan>& plan, std::optional<int64_t> capacity_bytes);

// The runs whose estimate exceeds the capacity, one line each naming run, estimate and capacity.
std::vector<std::string> runs_over_capacity(const std::vector<RunMemoryPlan>& plan, int64_t capacity_bytes);

}  // namespace varbench
