#pragma once
// CPU kernels of the fast path (Kernels::kFast): fp32 computations that round differently from the
// official code's ops, so only runs that do not promise bit-identity with it (per-image RNG) use them.
#include <torch/torch.h>

namespace varbench {

// In place: x * sigmoid(2 u), u = sqrt(2/pi) (x + 0.044715 x^3), which is the tanh-approximated GELU
// 0.5 x (1 + tanh(u)) rewritten around one exponential (vectorised with AVX2 where the CPU has it, an
// identical scalar sequence otherwise and for the tail). Relative error to torch's tanh-GELU: a few float32
// ulps (tests/test_kernels.cpp). libtorch 1.13 as Debian builds it evaluates tanh element by element
// through libm, ~6x slower. x: contiguous float32 on the CPU.
void gelu_tanh_fast_(torch::Tensor& x);

}  // namespace varbench
