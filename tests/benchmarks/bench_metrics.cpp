// Google Benchmark programs for the metrics, on 2 threads (the setting of the reference timings):
//   * the Frechet distance at d = 2048, with the reference's square-root factor cached and without,
//     on both linear-algebra backends, and the symmetric eigenvalue problem behind it (LAPACK band
//     route, libtorch's eigvalsh, Eigen's SelfAdjointEigenSolver);
//   * Inception feature throughput from a folder of 256x256 PNG files (decoding included), with the
//     network as varbench runs it (BatchNorm folded, channels-last) and as the reference lays it out.
//
//   build/tests/benchmarks/bench_metrics --benchmark_counters_tabular=true
//
// VARBENCH_FID_STATS=DIR reads the statistics from DIR/reference.npz and DIR/sample.npz (mu, sigma),
// which scripts/bench_fid_reference.py writes and times with scipy and torch-fidelity's route; without
// it, full-rank statistics of random correlated features are made here.
#include <benchmark/benchmark.h>

#include <Eigen/Eigenvalues>

#include <cstdlib>
#include <filesystem>

#include "formats/image_files.h"
#include "harness/platform/cpu_runtime.h"
#include "harness/platform/memory_probe.h"
#include "metrics/extract.h"
#include "metrics/frechet.h"
#include "metrics/linalg.h"

namespace varbench {
namespace {

constexpr int kThreads = 2;

void pin_threads() {
  torch::set_num_threads(kThreads);
  metrics::linalg::set_blas_threads(kThreads);
  // As varbench's main() does: Inception batches allocate hundreds of MB of activations, and glibc would
  // otherwise unmap and page-fault them in again at every layer (2.7x the CPU time per image here).
  keep_freed_memory_for_reuse();
}

struct FidInputs {
  metrics::GaussianStats reference, sample;
};

metrics::GaussianStats random_stats(int64_t n, int64_t d, double shift, uint64_t seed) {
  torch::manual_seed(seed);
  const auto mix = torch::eye(d, torch::kFloat64) + torch::randn({d, d}, torch::kFloat64) * (0.5 / std::sqrt(d));
  metrics::FeatureStats s(d);
  for (int64_t i = 0; i < n; i += 1024) {
    const auto z = torch::randn({std::min<int64_t>(1024, n - i), d}, torch::kFloat64);
    s.add(torch::mm(z, mix).add_(shift).abs_(), "random");
  }
  return s.gaussian("random features");
}

const FidInputs& fid_inputs() {
  static FidInputs in = [] {
    pin_threads();
    FidInputs in;
    if (const char* dir = std::getenv("VARBENCH_FID_STATS")) {
      io::NpzReader ref(std::string(dir) + "/reference.npz"), smp(std::string(dir) + "/sample.npz");
      in.reference = metrics::read_npz_gaussian(ref, "mu", "sigma");
      in.sample = metrics::read_npz_gaussian(smp, "mu", "sigma");
    } else {
      in.reference = random_stats(10000, 2048, 0.0, 1);
      in.sample = random_stats(5000, 2048, 0.1, 2);
    }
    return in;
  }();
  return in;
}

// 0: the default (dsygst + dsyevd), 1: dsygst + the two-stage band eigenvalues, 2: libtorch only.
metrics::linalg::Backend backend_of(int64_t arg) {
  return arg == 0 ? metrics::linalg::Backend::kAuto : arg == 1 ? metrics::linalg::Backend::kBand : metrics::linalg::Backend::kLibtorch;
}

void label_backend(benchmark::State& state) {
  state.SetLabel(state.range(0) == 0 ? "auto" : state.range(0) == 1 ? "lapack-band" : "libtorch");
}

// The usual case: many sample sets scored against one reference whose factor is computed once.
void BM_Frechet_CachedReference(benchmark::State& state) {
  const auto& in = fid_inputs();
  metrics::linalg::set_backend(backend_of(state.range(0)));
  const auto reference = metrics::prepare_frechet_reference(in.reference);
  double fid = 0;
  for (auto _ : state) fid = metrics::frechet_distance(in.sample, reference).distance;
  state.counters["fid"] = fid;
  label_backend(state);
  metrics::linalg::set_backend(metrics::linalg::Backend::kAuto);
}
BENCHMARK(BM_Frechet_CachedReference)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);

void BM_Frechet_Uncached(benchmark::State& state) {
  const auto& in = fid_inputs();
  metrics::linalg::set_backend(backend_of(state.range(0)));
  double fid = 0;
  for (auto _ : state) fid = metrics::frechet_distance(in.sample, in.reference);
  state.counters["fid"] = fid;
  label_backend(state);
  metrics::linalg::set_backend(metrics::linalg::Backend::kAuto);
}
BENCHMARK(BM_Frechet_Uncached)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);

// The eigenvalues of a dense symmetric 2048 x 2048 matrix: 0 the default, one-stage dsyevd (through
// libtorch), 1 the LAPACK two-stage band route, 2 Eigen (compiled with this project's flags).
void BM_SymmetricEigenvalues(benchmark::State& state) {
  const auto& in = fid_inputs();
  const auto m = in.reference.sigma;
  const int64_t which = state.range(0);
  if (which == 2) {
    Eigen::Map<const Eigen::MatrixXd> map(m.data_ptr<double>(), m.size(0), m.size(1));
    const Eigen::MatrixXd dense = map;
    for (auto _ : state) {
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(dense, Eigen::EigenvaluesOnly);
      benchmark::DoNotOptimize(solver.eigenvalues().data());
    }
    state.SetLabel("eigen");
    return;
  }
  metrics::linalg::set_backend(backend_of(which));
  for (auto _ : state) benchmark::DoNotOptimize(metrics::linalg::symmetric_eigenvalues(m).data_ptr());
  label_backend(state);
  metrics::linalg::set_backend(metrics::linalg::Backend::kAuto);
}
BENCHMARK(BM_SymmetricEigenvalues)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2);

// ------------------------------------------------------------------------------------------------
constexpr int64_t kPngImages = 50;

const std::string& png_folder() {
  static std::string dir = [] {
    const auto d = (std::filesystem::temp_directory_path() / "varbench_bench_metrics_png").string();
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    torch::manual_seed(3);
    for (int64_t i = 0; i < kPngImages; ++i) {
      // Smooth gradients plus noise: a realistic PNG size and decode cost, unlike flat images.
      auto ramp = torch::linspace(0, 255, 256).view({1, 256, 1}) * 0.5 + torch::linspace(0, 255, 256).view({256, 1, 1}) * 0.5;
      auto img = (ramp + torch::randn({256, 256, 3}) * 20 + static_cast<double>(i)).clamp(0, 255).to(torch::kUInt8).contiguous();
      io::write_png(d + "/" + std::to_string(1000 + i) + ".png", img.data_ptr<uint8_t>(), 256, 256);
    }
    return d;
  }();
  return dir;
}

// Images per second through PNG decoding, preprocessing, the network and the statistics. Arg 0: as
// varbench runs it (BatchNorm folded into the convolutions, channels-last); 1: the reference's layout
// (separate BatchNorm, NCHW), which is what pytorch-fid executes.
void BM_InceptionFeatures_PngFolder(benchmark::State& state) {
  pin_threads();
  const auto& dir = png_folder();
  metrics::FidInception net;  // default-initialised weights: the cost does not depend on their values
  net->eval();
  if (state.range(0) == 0) net->prepare_for_inference();
  metrics::ExtractOptions options;
  options.profile = metrics::Profile::kPytorchFid;
  options.batch_size = kPngImages;
  {  // warm-up: oneDNN creates its primitives for this batch shape on the first call
    auto images = metrics::open_png_folder(dir);
    metrics::extract_features(net, *images, options);
  }
  for (auto _ : state) {
    auto images = metrics::open_png_folder(dir);
    auto f = metrics::extract_features(net, *images, options);
    benchmark::DoNotOptimize(f.pool3.data_ptr());
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * kPngImages), benchmark::Counter::kIsRate);
  state.SetLabel(state.range(0) == 0 ? "fused-channels-last" : "reference-layout");
}
BENCHMARK(BM_InceptionFeatures_PngFolder)->Arg(0)->Arg(1)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(2);

}  // namespace
}  // namespace varbench

int main(int argc, char** argv) {
  varbench::use_passive_openmp_waits(argv);  // as varbench's main() does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
