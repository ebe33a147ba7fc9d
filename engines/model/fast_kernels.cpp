#include "engines/model/fast_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace varbench {

namespace {
// gelu(x) = x / (1 + exp(t)), t = x (k1 + k2 x^2) = -2 sqrt(2/pi) (x + 0.044715 x^3).
constexpr float kK1 = -1.5957691216057308f;            // -2 sqrt(2/pi)
constexpr float kK2 = -1.5957691216057308f * 0.044715f;
// exp(t) = 2^n p(r), n = round(t log2 e), r = t - n ln 2 (ln 2 split in two so n ln2_hi is exact); p is
// exp's Taylor polynomial of degree 7 (|r| <= ln2/2: truncation below 1e-8 relative). 2^n is built from
// its exponent bits, so t is clamped to where it stays a normal float: below, exp(t) < 2e-38 and gelu is x;
// above, exp(t) is taken as infinite and gelu as a signed zero (x / inf).
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kTMin = -87.0f, kTMax = 88.0f;
constexpr float kC[8] = {1.0f, 1.0f, 1.0f / 2, 1.0f / 6, 1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040};

// The scalar sequence; the vector loop below performs the same operations lane by lane (fused
// multiply-adds where this has std::fma), so an element's result does not depend on where it falls.
#define VARBENCH_GELU_SCALAR_BODY                                              \
  const float x2 = x * x;                                                       \
  const float t_unclamped = x * std::fma(kK2, x2, kK1);                         \
  const float t = std::min(std::max(t_unclamped, kTMin), kTMax);                \
  const float n = std::nearbyint(t * kLog2e);                                   \
  float r = std::fma(-n, kLn2Hi, t);                                            \
  r = std::fma(-n, kLn2Lo, r);                                                  \
  float p = kC[7];                                                              \
  for (int c = 6; c >= 0; --c) p = std::fma(p, r, kC[c]);                       \
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;                   \
  float scale;                                                                  \
  std::memcpy(&scale, &bits, sizeof scale);                                     \
  const float e = t_unclamped > kTMax ? std::numeric_limits<float>::infinity() : p * scale; \
  return x / (1.0f + e);

inline float gelu_scalar(float x) { VARBENCH_GELU_SCALAR_BODY }

void gelu_portable(float* data, int64_t n) {
  for (int64_t i = 0; i < n; ++i) data[i] = gelu_scalar(data[i]);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline float gelu_scalar_fma(float x) { VARBENCH_GELU_SCALAR_BODY }

__attribute__((target("avx2,fma"))) void gelu_avx2(float* data, int64_t n) {
  const __m256 k1 = _mm256_set1_ps(kK1), k2 = _mm256_set1_ps(kK2), t_min = _mm256_set1_ps(kTMin),
               t_max = _mm256_set1_ps(kTMax), log2e = _mm256_set1_ps(kLog2e), ln2_hi = _mm256_set1_ps(kLn2Hi),
               ln2_lo = _mm256_set1_ps(kLn2Lo), one = _mm256_set1_ps(1.0f),
               infinity = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(data + i);
    const __m256 x2 = _mm256_mul_ps(x, x);
    const __m256 t_unclamped = _mm256_mul_ps(x, _mm256_fmadd_ps(k2, x2, k1));
    const __m256 t = _mm256_min_ps(_mm256_max_ps(t_unclamped, t_min), t_max);
    const __m256 nf = _mm256_round_ps(_mm256_mul_ps(t, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(nf, ln2_hi, t);
    r = _mm256_fnmadd_ps(nf, ln2_lo, r);
    __m256 p = _mm256_set1_ps(kC[7]);
    for (int c = 6; c >= 0; --c) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[c]));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), infinity,
                                      _mm256_cmp_ps(t_unclamped, t_max, _CMP_GT_OQ));
    const __m256 y = _mm256_div_ps(x, _mm256_add_ps(one, e));
    _mm256_storeu_ps(data + i, y);
  }
  for (; i < n; ++i) data[i] = gelu_scalar_fma(data[i]);
}

bool cpu_has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif
}  // namespace

void gelu_tanh_fast_(torch::Tensor& x) {
  if (!x.is_cpu() || x.scalar_type() != torch::kFloat32 || !x.is_contiguous())
    throw std::logic_error("gelu_tanh_fast_: expects a contiguous float32 CPU tensor");
  float* data = x.data_ptr<float>();
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__)
    if (cpu_has_avx2_fma()) return gelu_avx2(data + begin, end - begin);
#endif
    gelu_portable(data + begin, end - begin);
  });
}

}  // namespace varbench
