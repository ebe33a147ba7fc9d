#include "engines/model/sampling.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

int64_t SamplingSettings::top_k_at(int64_t scale) const { return top_k.size() == 1 ? top_k[0] : top_k.at(scale); }
double SamplingSettings::temperature_at(int64_t scale) const {
  return temperature.size() == 1 ? temperature[0] : temperature.at(scale);
}
double SamplingSettings::guidance_at(int64_t scale, int64_t num_scales) const {
  const double ratio = static_cast<double>(scale) / static_cast<double>(num_scales - 1);
  return cfg * ratio;
}

void SamplingSettings::validate(int64_t num_scales) const {
  if (top_k.size() != 1 && static_cast<int64_t>(top_k.size()) != num_scales)
    throw std::runtime_error(fmt::format("top_k: {} values given; give one, or one per scale ({})", top_k.size(), num_scales));
  if (temperature.size() != 1 && static_cast<int64_t>(temperature.size()) != num_scales)
    throw std::runtime_error(
        fmt::format("temperature: {} values given; give one, or one per scale ({})", temperature.size(), num_scales));
  for (auto k : top_k)
    if (k < 0) throw std::runtime_error(fmt::format("top_k = {}: must be >= 0 (0 disables)", k));
  for (auto t : temperature)
    if (!(t > 0)) throw std::runtime_error(fmt::format("temperature = {}: must be > 0", t));
  if (!(top_p >= 0 && top_p <= 1)) throw std::runtime_error(fmt::format("top_p = {}: must be in [0, 1] (0 disables)", top_p));
  if (!std::isfinite(cfg)) throw std::runtime_error(fmt::format("cfg = {}: must be finite", cfg));
}

RngMode parse_rng_mode(const std::string& name) {
  if (name == "reference") return RngMode::kReference;
  if (name == "per-image") return RngMode::kPerImage;
  throw std::runtime_error(fmt::format("unknown rng mode '{}' (reference, per-image)", name));
}
std::string rng_mode_name(RngMode mode) { return mode == RngMode::kReference ? "reference" : "per-image"; }

torch::Tensor apply_guidance(const torch::Tensor& logits_2B, double t) {
  const int64_t B = logits_2B.size(0) / 2;
  return (1 + t) * logits_2B.narrow(0, 0, B) - t * logits_2B.narrow(0, B, B);
}

void filter_top_k_top_p_(torch::Tensor& logits, int64_t top_k, double top_p) {
  const int64_t V = logits.size(-1);
  const auto neg_inf = -std::numeric_limits<double>::infinity();
  if (top_k > 0 && top_k < V) {
    auto kth = std::get<0>(logits.topk(top_k, -1, /*largest=*/true, /*sorted=*/false)).amin(-1, /*keepdim=*/true);
    logits.masked_fill_(logits < kth, neg_inf);
  }
  if (top_p > 0) {
    auto [sorted_logits, sorted_idx] = logits.sort(-1, /*descending=*/false);
    auto remove_sorted = sorted_logits.softmax(-1).cumsum_(-1) <= (1 - top_p);
    remove_sorted.narrow(-1, V - 1, 1).fill_(false);  // never the largest
    logits.masked_fill_(remove_sorted.scatter(sorted_idx.dim() - 1, sorted_idx, remove_sorted), neg_inf);
  }
}

torch::Tensor token_probabilities(torch::Tensor logits, int64_t top_k, double top_p, double temperature) {
  filter_top_k_top_p_(logits, top_k, top_p);
  return (logits / temperature).softmax(-1);
}

// ---------------------------------------------------------------------------------------------------
uint32_t hash32(uint32_t x) {  // "lowbias32" (C. Wellons): a full-avalanche 32-bit integer hash
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

namespace {
constexpr int64_t kLow32 = 0xFFFFFFFFLL;
// Low 32 bits of x * a for x in [0, 2^32), without leaving int64's range: split a into 16-bit halves.
torch::Tensor mul32(const torch::Tensor& x, uint32_t a) {
  const int64_t lo = a & 0xFFFF, hi = a >> 16;
  return (x * lo + (x * hi).bitwise_and(0xFFFF).__lshift__(16)).bitwise_and(kLow32);
}
uint32_t mix(uint32_t key, uint64_t value) {
  return hash32(hash32(key ^ static_cast<uint32_t>(value)) ^ static_cast<uint32_t>(value >> 32));
}
}  // namespace

torch::Tensor hash32(const torch::Tensor& x_in) {
  auto x = x_in.bitwise_and(kLow32);
  x = x.bitwise_xor(x.__rshift__(16));
  x = mul32(x, 0x7feb352dU);
  x = x.bitwise_xor(x.__rshift__(15));
  x = mul32(x, 0x846ca68bU);
  return x.bitwise_xor(x.__rshift__(16));
}

TokenSampler TokenSampler::reference(uint64_t seed, torch::Device device) {
  TokenSampler s;
  s.mode_ = RngMode::kReference;
  s.device_ = device;
  // A fresh generator of the device's kind (the official sampler keeps one per model on its device).
  s.generator_ = device.is_cpu() ? at::detail::createCPUGenerator(seed) : at::globalContext().defaultGenerator(device).clone();
  s.generator_.set_current_seed(seed);
  return s;
}

TokenSampler TokenSampler::per_image(uint64_t seed, const std::vector<int64_t>& image_indices, torch::Device device) {
  TokenSampler s;
  s.mode_ = RngMode::kPerImage;
  s.device_ = device;
  const uint32_t seed_key = mix(0x9e3779b9U, seed);
  for (int64_t index : image_indices) s.row_keys_cpu_.push_back(mix(seed_key, static_cast<uint64_t>(index)));
  std::vector<int64_t> keys(s.row_keys_cpu_.begin(), s.row_keys_cpu_.end());
  s.row_keys_ = torch::tensor(keys, torch::kLong).to(device, /*non_blocking=*/true);
  return s;
}

uint32_t TokenSampler::call_key(int64_t scale, RandomStream stream) {
  return hash32(hash32(static_cast<uint32_t>(scale)) ^ (static_cast<uint32_t>(stream) * 0x85ebca6bU));
}

torch::Tensor TokenSampler::random_bits(int64_t batch, int64_t count, uint32_t call) const {
  if (static_cast<int64_t>(row_keys_cpu_.size()) != batch)
    throw std::logic_error(fmt::format("per-image sampler has {} images, asked for {}", row_keys_cpu_.size(), batch));
  // bits[b, i] = hash(hash(row_key[b] ^ call) ^ hash(i)): the same integers on every device.
  if (device_.is_cpu()) {
    auto out = torch::empty({batch, count}, torch::kLong);
    auto* dst = out.data_ptr<int64_t>();
    at::parallel_for(0, batch * count, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const uint32_t key = hash32(row_keys_cpu_[j / count] ^ call);
        dst[j] = hash32(key ^ hash32(static_cast<uint32_t>(j % count)));
      }
    });
    return out;
  }
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device_);
  auto key = hash32(row_keys_.view({batch, 1}).bitwise_xor(static_cast<int64_t>(call)));
  return hash32(key.bitwise_xor(hash32(torch::arange(count, opts).view({1, count}))));
}

torch::Tensor TokenSampler::random_bits_at(const torch::Tensor& counters, uint32_t call) const {
  const int64_t batch = counters.size(0);
  if (static_cast<int64_t>(row_keys_cpu_.size()) != batch)
    throw std::logic_error(fmt::format("per-image sampler has {} images, asked for {}", row_keys_cpu_.size(), batch));
  if (device_.is_cpu()) {
    auto c = counters.contiguous();
    auto out = torch::empty_like(c);
    const int64_t per_row = c.numel() / batch;
    const auto* src = c.data_ptr<int64_t>();
    auto* dst = out.data_ptr<int64_t>();
    at::parallel_for(0, c.numel(), 4096, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const uint32_t key = hash32(row_keys_cpu_[j / per_row] ^ call);
        dst[j] = hash32(key ^ hash32(static_cast<uint32_t>(src[j])));
      }
    });
    return out;
  }
  std::vector<int64_t> shape(counters.dim(), 1);
  shape[0] = batch;
  auto key = hash32(row_keys_.view(shape).bitwise_xor(static_cast<int64_t>(call)));
  return hash32(key.bitwise_xor(hash32(counters)));
}

torch::Tensor TokenSampler::bits_to_gumbel(const torch::Tensor& bits) {
  // 23-bit uniforms strictly inside (0, 1), exact in float32: the largest is 1 - 2^-24, the largest float
  // below 1 (24 bits would round 1 - 2^-25 up to 1.0, an infinite Gumbel value and a NaN score).
  auto u = (bits.__rshift__(9).to(torch::kFloat32) + 0.5f) * (1.0f / 8388608.0f);
  return -(-u.log()).log();
}

namespace {
// A margin of candidates past k keeps logits tied with the k-th largest, as the full filter does (up to
// 16 ties; more in one row is not seen in real logits).
constexpr int64_t kTieMargin = 16;

// Gumbel value of 32 random bits, as bits_to_gumbel computes it (float32 throughout).
inline float gumbel_of_bits(uint32_t bits) {
  const float u = (static_cast<float>(bits >> 9) + 0.5f) * (1.0f / 8388608.0f);
  return -std::log(-std::log(u));
}

// Unsigned keys in the order of the floats they come from (finite values; -0 sorts below +0).
inline uint32_t order_key(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// One row's scratch for the per-row sampler.
struct RowScratch {
  std::vector<uint32_t> keys, narrow_a, narrow_b;
  std::vector<uint32_t> histogram;
  std::vector<uint64_t> candidates, sorted;  // (order key << 32) | vocabulary index
  explicit RowScratch(int64_t V)
      : keys(static_cast<size_t>(V)),
        narrow_a(static_cast<size_t>(V)),
        narrow_b(static_cast<size_t>(V)),
        histogram(2048),
        candidates(static_cast<size_t>(V)) {}
};

// Order key of the k-th largest of the V keys in s.keys (1 <= k <= V), by radix selection over three
// digits (11, 11 and 10 bits): a histogram pass, then only the elements of the bucket that holds it.
// Branch-free filtering: which side of a threshold a logit falls on is a coin flip to the branch predictor.
uint32_t kth_largest_key(int64_t V, int64_t k, RowScratch& s) {
  const uint32_t* cur = s.keys.data();
  size_t n = static_cast<size_t>(V);
  int64_t remaining = k;  // rank of the wanted key among `cur`, from the top
  constexpr int kShift[3] = {21, 10, 0};
  constexpr uint32_t kBuckets[3] = {2048, 2048, 1024};
  uint32_t* out = s.narrow_a.data();
  for (int d = 0; d < 3; ++d) {
    const uint32_t mask = kBuckets[d] - 1;
    std::fill(s.histogram.begin(), s.histogram.begin() + kBuckets[d], 0u);
    for (size_t i = 0; i < n; ++i) ++s.histogram[(cur[i] >> kShift[d]) & mask];
    uint32_t bucket = mask;
    for (;; --bucket) {
      if (static_cast<int64_t>(s.histogram[bucket]) >= remaining) break;
      remaining -= s.histogram[bucket];
    }
    size_t m = 0;
    for (size_t i = 0; i < n; ++i) {
      out[m] = cur[i];
      m += ((cur[i] >> kShift[d]) & mask) == bucket;
    }
    cur = out;
    n = m;
    if (n == 1) break;
    out = (out == s.narrow_a.data()) ? s.narrow_b.data() : s.narrow_a.data();
  }
  return cur[0];  // every element left has the same key
}

// Sorts (key << 32 | index) ascending by key, stably (ties stay in index order): LSD radix over the key's
// four bytes.
void radix_sort_by_key(std::vector<uint64_t>& v, std::vector<uint64_t>& tmp) {
  tmp.resize(v.size());
  for (int shift = 32; shift < 64; shift += 8) {
    size_t count[257] = {};
    for (uint64_t e : v) ++count[((e >> shift) & 0xFF) + 1];
    for (int i = 0; i < 256; ++i) count[i + 1] += count[i];
    for (uint64_t e : v) tmp[count[(e >> shift) & 0xFF]++] = e;
    v.swap(tmp);
  }
}

inline float value_of(uint64_t candidate, const float* row) { return row[candidate & 0xFFFFFFFFu]; }
}  // namespace

torch::Tensor TokenSampler::sample_top_k_candidates(const torch::Tensor& logits, int64_t scale, int64_t top_k, double top_p,
                                                    double temperature) const {
  if (logits.is_cpu() && logits.scalar_type() == torch::kFloat32)
    return sample_top_k_candidates_cpu_kernel(logits, scale, top_k, top_p, temperature);
  return sample_top_k_candidates_tensor_ops(logits, scale, top_k, top_p, temperature);
}

torch::Tensor TokenSampler::sample_top_k_candidates_cpu_kernel(const torch::Tensor& logits_in, int64_t scale, int64_t top_k,
                                                               double top_p, double temperature) const {
  const int64_t B = logits_in.size(0), l = logits_in.size(1), V = logits_in.size(2);
  if (static_cast<int64_t>(row_keys_cpu_.size()) != B)
    throw std::logic_error(fmt::format("per-image sampler has {} images, asked for {}", row_keys_cpu_.size(), B));
  if (top_k <= 0 || top_k > V) throw std::logic_error(fmt::format("top-k candidates with k = {} of {}", top_k, V));
  const auto logits = logits_in.contiguous();
  const float* x = logits.data_ptr<float>();
  auto tokens = torch::empty({B, l}, torch::kLong);
  int64_t* out = tokens.data_ptr<int64_t>();
  const uint32_t call = call_key(scale, RandomStream::kToken);
  const size_t cap = static_cast<size_t>(std::min(V, top_k + kTieMargin));
  const float temperature_f = static_cast<float>(temperature);  // x / T in float, as the tensor ops divide
  at::parallel_for(0, B * l, 8, [&](int64_t begin, int64_t end) {
    RowScratch s(V);
    std::vector<float> mass;
    for (int64_t r = begin; r < end; ++r) {
      const float* row = x + r * V;
      const int64_t b = r / l, position = r % l;
      // Top-k: every logit >= the k-th largest, in ascending order (ties in index order).
      for (int64_t i = 0; i < V; ++i) s.keys[static_cast<size_t>(i)] = order_key(row[i]);
      const uint32_t kth = kth_largest_key(V, top_k, s);
      s.candidates.resize(static_cast<size_t>(V));
      size_t count = 0;
      for (int64_t i = 0; i < V; ++i) {
        const uint32_t key = s.keys[static_cast<size_t>(i)];
        s.candidates[count] = (static_cast<uint64_t>(key) << 32) | static_cast<uint64_t>(i);
        count += key >= kth;
      }
      s.candidates.resize(count);
      radix_sort_by_key(s.candidates, s.sorted);
      auto& cand = s.candidates;
      size_t first_kept = cand.size() > cap ? cand.size() - cap : 0;  // more ties than the margin: the cap largest
      // Top-p: drop the ascending prefix whose cumulative mass is <= 1-p, never the largest.
      if (top_p > 0) {
        const float max_value = value_of(cand.back(), row);
        mass.resize(cand.size());
        double total = 0;
        for (size_t i = first_kept; i < cand.size(); ++i) total += (mass[i] = std::exp(value_of(cand[i], row) - max_value));
        const double budget = (1.0 - top_p) * total;
        double cumulative = 0;
        size_t dropped_end = first_kept;
        while (dropped_end + 1 < cand.size() && (cumulative += mass[dropped_end]) <= budget) ++dropped_end;
        first_kept = dropped_end;
      }
      // Gumbel-max over the kept candidates: the noise of a vocabulary entry depends on (image, scale,
      // position, entry) only, as in a full draw.
      const uint32_t key = hash32(row_keys_cpu_[static_cast<size_t>(b)] ^ call);
      float best = -std::numeric_limits<float>::infinity();
      int64_t best_index = static_cast<int64_t>(cand.back() & 0xFFFFFFFFu);
      for (size_t i = first_kept; i < cand.size(); ++i) {
        const uint32_t index = static_cast<uint32_t>(cand[i] & 0xFFFFFFFFu);
        const uint32_t counter = static_cast<uint32_t>(position * V) + index;
        const float score = row[index] / temperature_f + gumbel_of_bits(hash32(key ^ hash32(counter)));
        if (score > best) {
          best = score;
          best_index = index;
        }
      }
      out[r] = best_index;
    }
  });
  return tokens;
}

torch::Tensor TokenSampler::sample_top_k_candidates_tensor_ops(const torch::Tensor& logits, int64_t scale, int64_t top_k,
                                                               double top_p, double temperature) const {
  const int64_t l = logits.size(1), V = logits.size(2);
  const int64_t candidates = std::min(V, top_k + kTieMargin);
  auto [values, index] = logits.topk(candidates, -1, /*largest=*/true, /*sorted=*/true);  // descending
  const auto neg_inf = -std::numeric_limits<double>::infinity();
  values = values.masked_fill(values < values.narrow(-1, top_k - 1, 1), neg_inf);
  if (top_p > 0) {
    // Ascending cumulative mass (the candidates reversed); drop <= 1 - p, never the largest.
    auto ascending = values.flip(-1);
    auto drop = ascending.softmax(-1).cumsum(-1) <= (1 - top_p);
    drop.narrow(-1, candidates - 1, 1).fill_(false);
    values = values.masked_fill(drop.flip(-1), neg_inf);
  }
  auto log_probs = (values / temperature).log_softmax(-1);
  auto position = torch::arange(l, index.options()).view({1, l, 1});
  auto noise = bits_to_gumbel(random_bits_at(position * V + index, call_key(scale, RandomStream::kToken)));
  auto best = (log_probs + noise).argmax(-1, /*keepdim=*/true);
  return index.gather(-1, best).squeeze(-1);
}

torch::Tensor TokenSampler::uniforms(int64_t batch, int64_t positions, int64_t scale, RandomStream stream, int64_t width) {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device_);
  if (mode_ == RngMode::kReference) return torch::rand({batch, positions, width}, generator_, f64).squeeze(-1);
  // Two 32-bit words per uniform -> 53 random bits, in [0, 1).
  auto bits = random_bits(batch, 2 * positions * width, call_key(scale, stream)).view({batch, positions, width, 2});
  auto hi = bits.select(-1, 0).__rshift__(5).to(torch::kFloat64);  // 27 bits
  auto lo = bits.select(-1, 1).__rshift__(6).to(torch::kFloat64);  // 26 bits
  auto u = (hi * 67108864.0 + lo) * (1.0 / 9007199254740992.0);
  return width == 1 ? u.squeeze(-1) : u;
}

torch::Tensor TokenSampler::gumbel(int64_t batch, int64_t positions, int64_t width, int64_t scale, RandomStream stream) {
  if (mode_ == RngMode::kReference) {
    auto e = torch::empty({batch, positions, width}, torch::TensorOptions().device(device_)).exponential_(1, generator_);
    return -e.log();
  }
  return bits_to_gumbel(random_bits(batch, positions * width, call_key(scale, stream)).view({batch, positions, width}));
}

torch::Tensor TokenSampler::draw(const torch::Tensor& probs, int64_t scale, RandomStream stream) {
  const int64_t B = probs.size(0), l = probs.size(1), V = probs.size(2);
  if (mode_ == RngMode::kReference) {
    // On a GPU, torch.multinomial asserts on the device for a NaN probability, which ends the process's
    // CUDA context. Non-finite logits (the run fails at the batch's end: check_pending_logits) give NaN
    // rows; they are drawn from as if uniform meanwhile. Finite probabilities pass unchanged, so the draw
    // stays the official one; the CPU never gets here with NaN (ModelPass::logits throws first).
    const auto p = probs.is_cuda() ? probs.nan_to_num(1.0) : probs;
    return torch::multinomial(p.reshape({-1, V}), 1, /*replacement=*/true, generator_).view({B, l});
  }
  // Gumbel-max: argmax(log p + G) is an exact sample of p. Unlike an inverse CDF over the vocabulary, a
  // last-bit change of the probabilities (batch-size dependent GEMM rounding) moves the outcome only
  // when the two best perturbed scores tie, not whenever one token's mass shifts the whole CDF.
  return (probs.to(torch::kFloat32).log() + gumbel(B, l, V, scale, stream)).argmax(-1);
}

torch::Tensor TokenSampler::sample(torch::Tensor& logits, int64_t scale, const SamplingSettings& settings) {
  const int64_t k = settings.top_k_at(scale);
  // Per-image with top-k: filter and draw among the k candidates instead of the whole vocabulary (the
  // filtered-out tokens have probability 0 and the noise of a token does not depend on the others).
  // more_smooth needs the filtered full logits, so it keeps the full path.
  if (mode_ == RngMode::kPerImage && k > 0 && k < logits.size(-1) && !settings.more_smooth)
    return sample_top_k_candidates(logits, scale, k, settings.top_p, settings.temperature_at(scale));
  auto probs = token_probabilities(logits, settings.top_k_at(scale), settings.top_p, settings.temperature_at(scale));
  return draw(probs, scale);
}

torch::Tensor TokenSampler::gumbel_soft_weights(const torch::Tensor& logits, int64_t scale, int64_t num_scales) {
  // Official: tau = max(0.27 * (1 - 0.95 r), 0.005), logits scaled by (1 + r), Gumbel noise from the rng.
  const double ratio = static_cast<double>(scale) / static_cast<double>(num_scales - 1);
  const double tau = std::max(0.27 * (1 - ratio * 0.95), 0.005);
  auto scaled = logits.mul(1 + ratio);
  auto noise = gumbel(scaled.size(0), scaled.size(1), scaled.size(2), scale, RandomStream::kGumbel).to(scaled.scalar_type());
  return ((scaled + noise) / tau).softmax(-1);
}

}  // namespace varbench
