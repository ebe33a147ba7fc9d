#pragma once
// The verification step of the speculative engine, exposed for tests: given the target's and the
// draft's distributions of one scale and the drafted tokens, which tokens survive and what replaces the
// others (see engines/speculative.cpp for the rule).
#include <torch/torch.h>

#include "engines/model/generation.h"
#include "engines/model/sampling.h"

namespace varbench {

// The speculative engine's phases: the draft model samples scales first..last; the target scores them in
// one pass, accepts, resamples and rolls back.
inline constexpr PhaseKind kSpeculativeDraftPhase{3, "draft"};
inline constexpr PhaseKind kSpeculativeVerifyPhase{4, "verify"};

struct DraftVerdict {
  torch::Tensor accepted;  // [B, l] bool
  torch::Tensor tokens;    // [B, l] int64: drafted where accepted, resampled from norm(max(0, p - q)) elsewhere
};

// p, q: [B, l, V] probabilities actually sampled; drafted: [B, l]. `neighbours` ([V, k] codes nearest to
// each code) switches to the relaxed neighbourhood rule; undefined = exact.
DraftVerdict verify_draft(const torch::Tensor& p, const torch::Tensor& q, const torch::Tensor& drafted, int64_t scale,
                          TokenSampler& sampler, const torch::Tensor& neighbours = {});

}  // namespace varbench
