#include "harness/experiment/memory_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "engines/model/precision.h"
#include "engines/model/torch_compat.h"
#include "engines/model/vqvae.h"
#include "formats/weights.h"
#include "harness/platform/device.h"
#include "harness/experiment/experiment_check.h"

namespace varbench {

namespace {

// The activation model's coefficients, in tensors of the named shape held at once (module comment).
constexpr double kSamplingTensors = 5.2;    // of B x L x V fp32, at a scale's sampling
constexpr double kScoreTensors = 2.0;       // of rows x heads x L x T: scores and softmax, when materialised
constexpr double kAttentionStreams = 9.4;   // of rows x L x width around the attention
constexpr double kMlpTensors = 4.0;         // of rows x L x mlp_hidden
constexpr double kDecodeTensors = 6.03;     // of B x ch x H x W fp32 in the VQVAE decoder
constexpr double kVerifyFactor = 2.35;      // speculative verify pass over the target's scale step

int64_t bytes_of(torch::ScalarType t) { return static_cast<int64_t>(c10::elementSize(t)); }

struct Stage {
  std::string what;
  int64_t kv_bytes = 0, activation_bytes = 0;
};

class Estimator {
 public:
  Estimator(const PrecisionPolicy& policy, bool scores_materialised, int64_t batch)
      : policy_(policy), scores_(scores_materialised), batch_(batch), rows_(2 * batch) {}

  // Bytes of a KV cache of `capacity` tokens (every run is guided: 2B rows).
  int64_t kv(const VarArch& a, int64_t capacity) const {
    return a.depth * rows_ * capacity * a.width * (bytes_of(policy_.key_cache_dtype) + bytes_of(policy_.value_cache_dtype));
  }
  // Activations of a pass over `tokens` new tokens attending to `attended`, sampling `sampled` of them.
  int64_t pass(const VarArch& a, int64_t tokens, int64_t attended, int64_t sampled) const {
    const double elt = static_cast<double>(bytes_of(policy_.compute_dtype()));
    const double sampling = kSamplingTensors * batch_ * sampled * a.vocab_size * 4.0;
    const double attention = (scores_ ? kScoreTensors * rows_ * a.heads * tokens * attended * elt : 0.0) +
                             kAttentionStreams * rows_ * tokens * a.width * elt;
    const double mlp = kMlpTensors * rows_ * tokens * a.mlp_hidden * elt;
    return static_cast<int64_t>(std::max({sampling, attention, mlp}));
  }
  int64_t step(const VarArch& a, int64_t scale) const {
    const auto& s = a.schedule;
    return pass(a, s.tokens(scale), s.end(scale), s.tokens(scale));
  }
  int64_t decode(const VqvaeArch& v, int64_t side_px) const {
    return static_cast<int64_t>(kDecodeTensors * batch_ * v.ch * v.ch_mult.front() * side_px * side_px * 4.0);
  }
  int64_t batch() const { return batch_; }

 private:
  PrecisionPolicy policy_;
  bool scores_;
  int64_t batch_, rows_;
};

int64_t vqvae_parameter_bytes(const VqvaeArch& arch) {
  torch::NoGradGuard no_grad;
  Vqvae v(arch);  // built once per plan on the CPU (~0.4 GB for the official tokenizer), counted, freed
  return parameter_bytes(*v);
}

// Whether the attention on `device` holds the full score matrix (the explicit formula, or SDPA's math
// kernel); a CUDA device not visible here is assumed to run SDPA's fused kernels, which do not.
bool scores_materialised(const std::string& device, torch::ScalarType dtype) {
  const bool cuda = device.rfind("cuda", 0) == 0 || device == "auto";
  if (cuda && !device::cuda_available()) return false;
  const auto backend = compat::attention_backend(cuda ? device::resolve(device) : torch::Device(torch::kCPU), dtype);
  return backend.rfind("explicit", 0) == 0 || backend.find("cached step: math") != std::string::npos;
}

std::string gib(int64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0)); }

}  // namespace

std::vector<RunMemoryPlan> plan_memory(const Experiment& x, bool random_override, const std::string& device_override) {
  std::string vqvae_error;
  const auto catalog = experiment_catalog(x, random_override, &vqvae_error);
  const int64_t vqvae_bytes = catalog.vqvae ? vqvae_parameter_bytes(*catalog.vqvae) : 0;
  std::vector<RunMemoryPlan> out;
  for (const auto& run : x.runs) {
    RunMemoryPlan p;
    p.run_id = run.id;
    p.device = device_override.empty() ? run.device : device_override;
    p.dtype = run.dtype;
    p.batch_size = run.batch_size;
    EngineBuilder engine;
    try {
      engine = plan_engine(run.engine_type, run.engine_params, catalog);
    } catch (const std::exception&) {
      p.peak_stage = "(not planned: the experiment has a problem)";
      out.push_back(p);
      continue;
    }
    const auto policy = PrecisionPolicy::of(parse_precision(run.dtype));
    const Estimator e(policy, scores_materialised(p.device, policy.compute_dtype()), run.batch_size);
    std::vector<Stage> stages;
    const auto& type = run.engine_type;
    if (type != "null") {
      for (const auto& name : engine.models) {
        // Parameters, and the buffers that sit beside them in the weight dtype: a zero key bias per block,
        // the L x L attention mask, the L scale levels (int64).
        const auto& a = catalog.get(name, "model");
        const int64_t L = a.schedule.total_tokens(), w = bytes_of(policy.weight_dtype);
        p.weights_bytes += (a.parameter_count() + a.depth * a.width + L * L) * w + L * 8;
      }
      p.weights_bytes += vqvae_bytes;
      const auto& shape = catalog.get(engine.models.front(), "model");
      const int64_t S = shape.schedule.num_scales();
      const int64_t side_px = shape.schedule.final_side() * (catalog.vqvae ? catalog.vqvae->downsample() : 16);
      if (type == "collaborative") {
        const auto& drafter = catalog.get(engine.models[0], "drafter");
        const auto& refiner = catalog.get(engine.models[1], "refiner");
        const int64_t n = std::get<int64_t>(engine.params.at("draft_steps"));
        const auto& s = refiner.schedule;
        for (int64_t k = 0; k < n; ++k)
          stages.push_back({fmt::format("draft scale {}", k), e.kv(drafter, s.begin(n)), e.step(drafter, k)});
        // The refiner's masked pass over scales 0..N; in reference mode it computes every prefix token's logits.
        const int64_t sampled = x.rng == RngMode::kReference ? s.end(n) : s.tokens(n);
        stages.push_back({"refiner prefix", e.kv(refiner, s.total_tokens()), e.pass(refiner, s.end(n), s.end(n), sampled)});
        for (int64_t k = n + 1; k < S; ++k)
          stages.push_back({fmt::format("scale {}", k), e.kv(refiner, s.total_tokens()), e.step(refiner, k)});
      } else if (type == "speculative") {
        const auto& draft = catalog.get(engine.models[0], "draft");
        const auto& target = catalog.get(engine.models[1], "target");
        const int64_t both = e.kv(draft, draft.schedule.total_tokens()) + e.kv(target, target.schedule.total_tokens());
        for (int64_t k = 0; k < S; ++k)
          stages.push_back({fmt::format("verify scale {}", k), both, static_cast<int64_t>(kVerifyFactor * e.step(target, k))});
      } else {  // single and the single-model baselines (early exit, guidance cutoff, token pruning): at most single's
        const auto& m = catalog.get(engine.models.front(), "model");
        for (int64_t k = 0; k < S; ++k) stages.push_back({fmt::format("scale {}", k), e.kv(m, m.schedule.total_tokens()), e.step(m, k)});
      }
      if (catalog.vqvae) stages.push_back({"decode", 0, e.decode(*catalog.vqvae, side_px)});
    }
    for (const auto& st : stages)
      if (p.peak_stage.empty() || st.kv_bytes + st.activation_bytes > p.kv_cache_bytes + p.activations_bytes) {
        p.peak_stage = st.what;
        p.kv_cache_bytes = st.kv_bytes;
        p.activations_bytes = st.activation_bytes;
      }
    p.peak_bytes = p.weights_bytes + p.kv_cache_bytes + p.activations_bytes;
    out.push_back(p);
  }
  return out;
}

std::optional<int64_t> device_capacity_bytes(const std::string& device) {
  if ((device.rfind("cuda", 0) == 0 || device == "auto") && device::cuda_available()) return device::total_memory_bytes(device::resolve(device));
  return std::nullopt;
}

std::vector<std::string> runs_over_capacity(const std::vector<RunMemoryPlan>& plan, int64_t capacity) {
  std::vector<std::string> out;
  for (const auto& p : plan)
    if (p.peak_bytes > capacity)
      out.push_back(fmt::format("run '{}' needs an estimated {} GiB at its peak ({}: weights {} + KV cache {} + activations {} GiB), "
                                "more than the device's {} GiB",
                                p.run_id, gib(p.peak_bytes), p.peak_stage, gib(p.weights_bytes), gib(p.kv_cache_bytes),
                                gib(p.activations_bytes), gib(capacity)));
  return out;
}

std::string format_memory_plan(const std::vector<RunMemoryPlan>& plan, std::optional<int64_t> capacity) {
  std::string out = "| run | device | dtype | batch | weights GiB | KV cache GiB | activations GiB | peak GiB | at |";
  out += capacity ? " fits |\n|---|---|---|---|---|---|---|---|---|---|\n" : "\n|---|---|---|---|---|---|---|---|---|\n";
  const RunMemoryPlan* largest = nullptr;
  for (const auto& p : plan) {
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |", p.run_id, p.device, p.dtype, p.batch_size, gib(p.weights_bytes),
                       gib(p.kv_cache_bytes), gib(p.activations_bytes), gib(p.peak_bytes), p.peak_stage);
    if (capacity) out += p.peak_bytes <= *capacity ? " yes |" : " **no** |";
    out += "\n";
    if (!largest || p.peak_bytes > largest->peak_bytes) largest = &p;
  }
  if (largest)
    out += fmt::format("\nsweep peak: {} GiB (run '{}'; one run's models are resident at a time){}\n", gib(largest->peak_bytes),
                       largest->run_id, capacity ? fmt::format(", device capacity {} GiB", gib(*capacity)) : std::string());
  return out;
}

}  // namespace varbench
