// Google Benchmark programs for the model layer (CPU, random weights): one scale step of d16-sized
// blocks, a full small-model generation, the VQVAE decode and token sampling.
//   build/tests/benchmarks/bench_model --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <thread>

#include "engines/model/generation.h"
#include "engines/model/loading.h"
#include "engines/model/random_init.h"
#include "harness/platform/cpu_runtime.h"
#include "harness/platform/memory_probe.h"

namespace varbench {
namespace {

void use_all_cores() {
  static bool once = [] {
    torch::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
    return true;
  }();
  (void)once;
}

// Two blocks of VAR-d16's width (1024, 16 heads): the step cost scales linearly with depth.
VarTransformer d16_sized_blocks() {
  static VarTransformer m = [] {
    auto arch = VarArch::named("var-d16");
    arch.name = "d16-width-2-blocks";
    arch.depth = 2;
    VarTransformer model(arch);
    random_init(*model, 0);
    return model;
  }();
  return m;
}

// Cached step of one scale (everything before it already in the cache), conditional + unconditional.
void BM_ScaleStep_D16Blocks(benchmark::State& state) {
  use_all_cores();
  c10::InferenceMode inference;
  const int64_t batch = state.range(0), scale = state.range(1);
  auto model = d16_sized_blocks();
  const auto& sched = model->arch().schedule;
  GenerationState gs(batch, sched.sides, 32, torch::kCPU);
  auto labels = torch::arange(batch, torch::kLong);
  for (int64_t s = 0; s < scale; ++s) gs.next_inputs.push_back(torch::randn({batch, sched.tokens(s + 1), 32}));
  for (auto _ : state) {
    state.PauseTiming();
    ModelPass pass(model, labels, true, PrecisionPolicy::of(Precision::kFloat32), sched.total_tokens());
    if (scale > 0) {  // positions 0..begin(scale) count as cached: zeros, not uninitialised memory
      for (int64_t i = 0; i < model->arch().depth; ++i) {
        pass.cache().layer(i)->keys.zero_();
        pass.cache().layer(i)->values.zero_();
      }
      pass.cache().advance(sched.begin(scale));
    }
    state.ResumeTiming();
    auto logits = pass.step(gs, scale);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.counters["tokens"] = static_cast<double>(2 * batch * sched.tokens(scale));
  // Seconds per block and step (the time includes the head, which is small next to two blocks).
  state.counters["s_per_block"] = benchmark::Counter(static_cast<double>(state.iterations() * model->arch().depth),
                                                     benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ScaleStep_D16Blocks)
    ->ArgsProduct({{1, 16}, {5, 9}})
    ->ArgNames({"batch", "scale"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Every scale of a small model (tiny-d2), transformer and sampling, no decode.
void BM_GenerateSmallModel(benchmark::State& state) {
  use_all_cores();
  c10::InferenceMode inference;
  const int64_t batch = state.range(0);
  static auto model = load_var({"", "tiny-d2", 0});
  static auto vqvae = load_vqvae({"", "vqvae-ch32", 1});
  GenerationRequest r;
  r.labels = torch::arange(batch, torch::kLong);
  for (int64_t i = 0; i < batch; ++i) r.image_indices.push_back(i);
  for (auto _ : state) {
    auto s = generate_single(model, vqvae, r, PrecisionPolicy::of(Precision::kFloat32));
    benchmark::DoNotOptimize(s.f_hat.data_ptr());
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_GenerateSmallModel)->Arg(1)->Arg(8)->ArgName("batch")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_VqvaeDecode(benchmark::State& state) {
  use_all_cores();
  c10::InferenceMode inference;
  const int64_t batch = state.range(0);
  const std::string config = state.range(1) == 160 ? "vqvae-ch160" : "vqvae-ch32";
  auto vqvae = load_vqvae({"", config, 1});
  auto f_hat = torch::randn({batch, 32, 16, 16});
  for (auto _ : state) {
    auto img = vqvae->decode(f_hat);
    benchmark::DoNotOptimize(img.data_ptr());
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_VqvaeDecode)
    ->Args({1, 32})
    ->Args({8, 32})
    ->Args({1, 160})
    ->ArgNames({"batch", "ch"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Filtering (top-k 900, top-p 0.96) and drawing the 256 tokens of the last scale.
void BM_SampleLastScale(benchmark::State& state) {
  use_all_cores();
  c10::InferenceMode inference;
  const int64_t batch = state.range(0);
  const auto mode = state.range(1) ? RngMode::kReference : RngMode::kPerImage;
  auto logits = torch::randn({batch, 256, 4096});
  std::vector<int64_t> idx(batch);
  for (int64_t i = 0; i < batch; ++i) idx[i] = i;
  auto sampler = mode == RngMode::kReference ? TokenSampler::reference(0, torch::kCPU) : TokenSampler::per_image(0, idx, torch::kCPU);
  SamplingSettings settings;
  for (auto _ : state) {
    state.PauseTiming();
    auto l = logits.clone();
    state.ResumeTiming();
    auto t = sampler.sample(l, 9, settings);
    benchmark::DoNotOptimize(t.data_ptr());
  }
  state.SetLabel(rng_mode_name(mode));
}
BENCHMARK(BM_SampleLastScale)
    ->ArgsProduct({{1, 16}, {0, 1}})
    ->ArgNames({"batch", "reference"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Per-image sampling of the last scale among the top-k candidates (top-k 900, top-p 0.96): Arg 1 = 0 the
// tensor ops every device runs, 1 the CPU per-row kernel (TokenSampler::sample_top_k_candidates).
void BM_SampleTopKCandidates(benchmark::State& state) {
  use_all_cores();
  c10::InferenceMode inference;
  const int64_t batch = state.range(0);
  const bool kernel = state.range(1) == 1;
  auto logits = torch::randn({batch, 256, 4096}).mul_(2.5);
  std::vector<int64_t> idx(batch);
  for (int64_t i = 0; i < batch; ++i) idx[i] = i;
  auto sampler = TokenSampler::per_image(0, idx, torch::kCPU);
  for (auto _ : state) {
    auto t = kernel ? sampler.sample_top_k_candidates_cpu_kernel(logits, 9, 900, 0.96, 1.0)
                    : sampler.sample_top_k_candidates_tensor_ops(logits, 9, 900, 0.96, 1.0);
    benchmark::DoNotOptimize(t.data_ptr());
  }
  state.counters["positions_per_s"] =
      benchmark::Counter(static_cast<double>(batch * 256 * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SampleTopKCandidates)
    ->ArgsProduct({{1, 16}, {0, 1}})
    ->ArgNames({"batch", "kernel"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace varbench

int main(int argc, char** argv) {
  varbench::use_passive_openmp_waits(argv);
  varbench::keep_freed_memory_for_reuse();  // as the varbench executable does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
