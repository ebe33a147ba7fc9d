// Where one generation's time goes, part by part and scale by scale, each part beside its bound on this
// machine (CPU; random weights of a named architecture):
//   build/tests/benchmarks/bench_breakdown [--model var-d16] [--vqvae vqvae-ch160] [--batch 1]
//       [--rng per-image|reference] [--threads 0] [--repeats 3] [--json FILE]
// The bounds come from rates measured here first: the large-GEMM rate (FLOP/s), the rate a GEMM with few
// rows streams its weights (bytes/s), and the memory copy rate (bytes/s). A part's bound is, summed over
// its calls, max(FLOPs / GEMM rate, bytes / streaming rate) for matrix products (the GEMMs, the embedding
// and head projections, attention's FLOPs) and bytes / copy rate for the elementwise parts; "of bound" is
// bound / measured. The run is the plain large-only loop with guidance (2B rows), per-image RNG; the part
// scopes (engines/model/part_profile.h) cost one thread-local read each when no profile is active, and
// the table reports the generation's time with and without them. --rng picks the path: per-image (the
// default: fast kernels and the per-row sampler) or reference (the official code's ops and draws).
// OMP_WAIT_POLICY=ACTIVE in the environment runs it under OpenMP's default spinning waits instead of the
// passive waits every varbench program sets (harness/platform/cpu_runtime.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engines/model/generation.h"
#include "engines/model/loading.h"
#include "engines/model/part_profile.h"
#include "harness/platform/cpu_runtime.h"
#include "harness/platform/memory_probe.h"
#include "harness/platform/provenance.h"

namespace varbench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

template <class F>
double best_seconds(int repeats, F&& f) {
  f();
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t = Clock::now();
    f();
    best = std::min(best, seconds_since(t));
  }
  return best;
}

struct MachineRates {
  double gemm_flops_per_s = 0, weight_stream_bytes_per_s = 0, copy_bytes_per_s = 0;
};

// The three rates the bounds use, measured on this machine with the same threads.
MachineRates measure_rates(int64_t width) {
  c10::InferenceMode inference;
  MachineRates r;
  {  // a large-scale shape: 1024 rows through a width -> 4 x width projection
    auto x = torch::randn({1024, width}), w = torch::randn({4 * width, width});
    const double t = best_seconds(5, [&] { torch::linear(x, w); });
    r.gemm_flops_per_s = 2.0 * 1024 * double(width) * 4 * double(width) / t;
  }
  {  // few rows: the time is the weights' bytes going through the cores (12 C^2 weights, as in one block)
    auto x = torch::randn({8, width}), w = torch::randn({12 * width, width});
    const double t = best_seconds(9, [&] { torch::linear(x, w); });
    r.weight_stream_bytes_per_s = double(w.numel() * 4) / t;
  }
  {  // a copy far larger than the caches: bytes read + bytes written
    auto a = torch::randn({16 << 20}), b = torch::empty_like(a);
    const double t = best_seconds(5, [&] { b.copy_(a); });
    r.copy_bytes_per_s = 2.0 * double(a.numel() * 4) / t;
  }
  return r;
}

double bound_seconds(Part part, const PartTotals& t, const MachineRates& r) {
  if (part_is_gemm(part)) return std::max(t.flops / r.gemm_flops_per_s, t.bytes / r.weight_stream_bytes_per_s);
  if (part == Part::kAttention || part == Part::kFhatUpdate || part == Part::kDecode)
    return std::max(t.flops / r.gemm_flops_per_s, t.bytes / r.copy_bytes_per_s);
  return t.bytes / r.copy_bytes_per_s;
}

// Files the parts of each scale under it: the scale boundaries of the loop move the profile on.
class ScaleTagger : public ScaleObserver {
 public:
  explicit ScaleTagger(PartProfile& p) : profile_(p) {}
  void phase_done(PhaseKind phase, int64_t, int64_t last_scale) override {
    if (phase == kSetupPhase) profile_.set_scale(0);
    if (phase == kScalePhase) profile_.set_scale(last_scale + 1);
  }

 private:
  PartProfile& profile_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Options {
  std::string model = "var-d16", vqvae = "vqvae-ch160", rng = "per-image", json;
  int64_t batch = 1;
  int threads = 0, repeats = 3;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") o.model = value();
    else if (a == "--vqvae") o.vqvae = value();
    else if (a == "--batch") o.batch = std::stoll(value());
    else if (a == "--rng") o.rng = value();
    else if (a == "--threads") o.threads = std::stoi(value());
    else if (a == "--repeats") o.repeats = std::stoi(value());
    else if (a == "--json") o.json = value();
    else throw std::runtime_error("unknown argument " + a + " (--model, --vqvae, --batch, --rng, --threads, --repeats, --json)");
  }
  return o;
}

int run(const Options& o) {
  const int threads = configure_threads(o.threads);
  auto model = load_var({"", o.model, 1});
  auto vqvae = load_vqvae({"", o.vqvae, 2});
  const auto& arch = model->arch();
  const auto rates = measure_rates(arch.width);
  c10::InferenceMode inference;
  GenerationRequest request;
  request.labels = torch::arange(o.batch, torch::kLong);
  for (int64_t i = 0; i < o.batch; ++i) request.image_indices.push_back(i);
  request.rng_mode = parse_rng_mode(o.rng);
  const auto policy = PrecisionPolicy::of(Precision::kFloat32);

  auto generate = [&](ScaleObserver* observer) {
    auto state = generate_single(model, vqvae, request, policy, observer);
    return state.f_hat;
  };
  generate(nullptr);  // warm-up
  std::vector<double> plain_s;
  for (int i = 0; i < o.repeats; ++i) {
    const auto t = Clock::now();
    generate(nullptr);
    plain_s.push_back(seconds_since(t));
  }
  // Profiled generations: one cell (scale, part) per repeat, reported as medians.
  std::map<int64_t, std::array<std::vector<PartTotals>, static_cast<size_t>(Part::kCount)>> cells;
  std::vector<double> profiled_s, transformer_s, decode_s;
  for (int i = 0; i < o.repeats; ++i) {
    PartProfile profile;
    ScaleTagger tagger(profile);
    const auto t = Clock::now();
    auto f_hat = generate(&tagger);
    transformer_s.push_back(seconds_since(t));
    profile.set_scale(-1);
    const auto td = Clock::now();
    {
      PartScope part(Part::kDecode, 0, 0);
      vqvae->decode(f_hat);
    }
    decode_s.push_back(seconds_since(td));
    profiled_s.push_back(transformer_s.back());
    for (const auto& [scale, parts] : profile.totals())
      for (size_t p = 0; p < parts.size(); ++p) cells[scale][p].push_back(parts[p]);
  }
  auto median_cell = [&](const std::vector<PartTotals>& v) {
    PartTotals m;
    if (v.empty()) return m;
    std::vector<double> s;
    for (const auto& t : v) s.push_back(t.seconds);
    m.seconds = median(s);
    m.flops = v.front().flops;
    m.bytes = v.front().bytes;
    m.calls = v.front().calls;
    return m;
  };

  const auto& sched = arch.schedule;
  fmt::print("bench_breakdown: {} (width {}, depth {}), {}, batch {} (guided: {} rows), fp32, {} RNG ({} kernels), {} threads, "
             "OMP_WAIT_POLICY {}\n",
             o.model, arch.width, arch.depth, o.vqvae, o.batch, 2 * o.batch, o.rng,
             kernels_for(request.rng_mode) == Kernels::kFast ? "fast" : "exact", threads, openmp_wait_policy());
  fmt::print("rates measured here: GEMM {:.1f} GFLOP/s (1024 x {} x {}), weight streaming {:.2f} GB/s (8 rows), copy {:.2f} GB/s\n\n",
             rates.gemm_flops_per_s / 1e9, arch.width, 4 * arch.width, rates.weight_stream_bytes_per_s / 1e9,
             rates.copy_bytes_per_s / 1e9);

  nlohmann::json out{{"model", o.model}, {"vqvae", o.vqvae}, {"batch", o.batch}, {"rng", o.rng}, {"threads", threads},
                     {"omp_wait_policy", openmp_wait_policy()},
                     {"rates", {{"gemm_gflops", rates.gemm_flops_per_s / 1e9},
                                {"weight_stream_gbps", rates.weight_stream_bytes_per_s / 1e9},
                                {"copy_gbps", rates.copy_bytes_per_s / 1e9}}}};
  // Per part over the whole generation.
  std::array<PartTotals, static_cast<size_t>(Part::kCount)> whole{};
  std::array<double, static_cast<size_t>(Part::kCount)> whole_bound{};
  for (const auto& [scale, parts] : cells)
    for (size_t p = 0; p < parts.size(); ++p) {
      const auto m = median_cell(parts[p]);
      whole[p].seconds += m.seconds;
      whole[p].flops += m.flops;
      whole[p].bytes += m.bytes;
      whole[p].calls += m.calls;
      whole_bound[p] += bound_seconds(static_cast<Part>(p), m, rates);
    }
  const double transformer = median(transformer_s), plain = median(plain_s);
  double parts_total = 0, bound_total = 0;
  fmt::print("| part | calls | ms | % of generation | GFLOP | MB | bound ms | of bound |\n|---|---|---|---|---|---|---|---|\n");
  for (size_t p = 0; p < whole.size(); ++p) {
    const auto& t = whole[p];
    if (t.calls == 0) continue;
    const auto part = static_cast<Part>(p);
    if (part != Part::kDecode) {
      parts_total += t.seconds;
      bound_total += whole_bound[p];
    }
    fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.2f} | {:.1f} | {:.1f} | {:.0f}% |\n", part_name(part), t.calls, t.seconds * 1e3,
               part == Part::kDecode ? 0.0 : 100 * t.seconds / transformer, t.flops / 1e9, t.bytes / 1e6,
               whole_bound[p] * 1e3, t.seconds > 0 ? 100 * whole_bound[p] / t.seconds : 0.0);
    out["parts"][part_name(part)] = {{"calls", t.calls}, {"ms", t.seconds * 1e3}, {"gflop", t.flops / 1e9},
                                     {"mb", t.bytes / 1e6}, {"bound_ms", whole_bound[p] * 1e3}};
  }
  const double other = transformer - parts_total;
  fmt::print("| (between parts) | | {:.1f} | {:.1f} | | | | |\n", other * 1e3, 100 * other / transformer);
  fmt::print("\ngeneration (transformer + sampling, no decode): {:.1f} ms profiled, {:.1f} ms without the part scopes; "
             "sum of part bounds {:.1f} ms ({:.0f}% of the unprofiled time); decode {:.1f} ms\n\n",
             transformer * 1e3, plain * 1e3, bound_total * 1e3, 100 * bound_total / plain, median(decode_s) * 1e3);
  out["generation_ms"] = plain * 1e3;
  out["generation_profiled_ms"] = transformer * 1e3;
  out["bound_ms"] = bound_total * 1e3;
  out["decode_ms"] = median(decode_s) * 1e3;

  // Per scale: its time, the GEMMs' share, its bound, and the part furthest above its bound.
  fmt::print("| scale | side | rows | ms | GEMM ms | bound ms | of bound | most time over bound |\n|---|---|---|---|---|---|---|---|\n");
  for (const auto& [scale, parts] : cells) {
    if (scale < 0 || scale >= sched.num_scales()) continue;
    double ms = 0, gemm = 0, bound = 0, worst_gap = -1;
    std::string worst;
    for (size_t p = 0; p < parts.size(); ++p) {
      const auto m = median_cell(parts[p]);
      const auto part = static_cast<Part>(p);
      const double b = bound_seconds(part, m, rates);
      ms += m.seconds;
      bound += b;
      if (part_is_gemm(part)) gemm += m.seconds;
      if (m.seconds - b > worst_gap) {
        worst_gap = m.seconds - b;
        worst = fmt::format("{} ({:.1f} ms over)", part_name(part), worst_gap * 1e3);
      }
    }
    const int64_t side = sched.sides[scale];
    fmt::print("| {} | {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.0f}% | {} |\n", scale, side, 2 * o.batch * side * side, ms * 1e3,
               gemm * 1e3, bound * 1e3, 100 * bound / ms, worst);
    out["scales"].push_back({{"scale", scale}, {"ms", ms * 1e3}, {"gemm_ms", gemm * 1e3}, {"bound_ms", bound * 1e3}});
  }
  if (!o.json.empty()) std::ofstream(o.json) << out.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace varbench

int main(int argc, char** argv) {
  varbench::use_passive_openmp_waits(argv);
  varbench::keep_freed_memory_for_reuse();
  try {
    return varbench::run(varbench::parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "bench_breakdown: error: " << e.what() << "\n";
    return 1;
  }
}
