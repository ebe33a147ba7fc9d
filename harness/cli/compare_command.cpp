// varbench compare BASELINE.h5 CURRENT.h5, or --ab BASE_BIN CANDIDATE_BIN EXPERIMENT.toml: the
// speed-regression gate, on two result files or on interleaved runs of two builds.
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/analysis/ab_rounds.h"
#include "harness/cli/commands.h"
#include "harness/analysis/compare.h"
#include "harness/results/record_reader.h"

namespace varbench {

namespace {
struct CompareOptions {
  std::vector<std::string> inputs;
  std::string tolerance = "5%", out_dir;
  double alpha = 0.05;
  bool with_decode = false, ab = false;
  int rounds = 12;
  std::optional<uint64_t> order_seed;
};

// The runs each file's experiment asks for (runs of an earlier version of it are left out, and named).
std::vector<RunRecord> records_of(const std::vector<std::string>& files) {
  std::vector<RunRecord> all;
  for (const auto& f : files) {
    std::vector<std::string> others;
    auto r = read_requested_run_records(f, &others);
    if (!others.empty())
      std::cerr << fmt::format("varbench compare: {}: left out {} run{} its experiment does not ask for: {}\n", f, others.size(),
                               others.size() > 1 ? "s" : "", fmt::join(others, ", "));
    all.insert(all.end(), std::make_move_iterator(r.begin()), std::make_move_iterator(r.end()));
  }
  return all;
}

int compare_command(const CompareOptions& o) {
  const double tolerance = parse_tolerance(o.tolerance);
  if (!(o.alpha > 0 && o.alpha < 1)) throw std::runtime_error(fmt::format("--alpha {}: must be in (0, 1)", o.alpha));
  if (!o.ab) {
    if (o.inputs.size() != 2)
      throw std::runtime_error(fmt::format("compare takes BASELINE.h5 CURRENT.h5 ({} given), or --ab BASE_BIN CANDIDATE_BIN "
                                           "EXPERIMENT.toml",
                                           o.inputs.size()));
    const auto c = compare_runs(records_of({o.inputs[0]}), records_of({o.inputs[1]}), tolerance, o.alpha, o.with_decode);
    std::cout << format_comparison(c, tolerance, o.alpha);
    return c.regressions > 0 ? 1 : 0;
  }
  if (o.inputs.size() != 3)
    throw std::runtime_error(fmt::format("compare --ab takes BASE_BIN CANDIDATE_BIN EXPERIMENT.toml ({} given)", o.inputs.size()));
  AbPlan plan;
  plan.base_binary = o.inputs[0];
  plan.candidate_binary = o.inputs[1];
  plan.experiment = o.inputs[2];
  plan.rounds = o.rounds;
  // The signed-rank test over the rounds cannot reach p < alpha with too few of them: refused before any work.
  if (smallest_signed_rank_p(o.rounds) >= o.alpha)
    throw std::runtime_error(fmt::format("--rounds {}: the signed-rank test over {} rounds cannot reach p < {} (its smallest p is "
                                         "{:.3g}); use at least {}",
                                         o.rounds, o.rounds, o.alpha, smallest_signed_rank_p(o.rounds),
                                         [&] { int r = 1; while (smallest_signed_rank_p(r) >= o.alpha) ++r; return r; }()));
  plan.order_seed = o.order_seed ? *o.order_seed : std::random_device{}() * 4294967296ull + std::random_device{}();
  plan.out_dir = o.out_dir.empty() ? "results/ab/" + std::filesystem::path(plan.experiment).stem().string() : o.out_dir;
  const auto files = run_ab_rounds(plan, std::cerr);
  std::vector<std::vector<RunRecord>> base_rounds, candidate_rounds;
  for (const auto& f : files.base) base_rounds.push_back(records_of({f}));
  for (const auto& f : files.candidate) candidate_rounds.push_back(records_of({f}));
  const auto c = compare_rounds(base_rounds, candidate_rounds, tolerance, o.alpha, o.with_decode);
  int base_first = 0;
  for (bool b : files.base_first) base_first += b;
  std::cout << fmt::format("A/B: {} (base) against {} (candidate) on {}, {} rounds paired (base first in {}, candidate "
                           "first in {}; order seed {}, --order-seed repeats it); result files, logs and ab-order.txt in {}\n\n",
                           plan.base_binary, plan.candidate_binary, plan.experiment, plan.rounds, base_first,
                           plan.rounds - base_first, plan.order_seed, plan.out_dir)
            << format_comparison(c, tolerance, o.alpha);
  return c.regressions > 0 ? 1 : 0;
}
}  // namespace

void register_compare_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<CompareOptions>();
  auto* cmd = app.add_subcommand(
      "compare",
      "Compare the speed of two result files run by run, or (--ab) of two builds run alternately on this machine; "
      "exit 1 on a significant slowdown");
  cmd->add_option("inputs", o->inputs, "BASELINE.h5 CURRENT.h5, or with --ab: BASE_BIN CANDIDATE_BIN EXPERIMENT.toml")
      ->required();
  cmd->add_flag("--ab", o->ab,
                "Run EXPERIMENT.toml with both executables once per round over --rounds rounds and compare them round "
                "by round (Wilcoxon signed-rank over the rounds)");
  cmd->add_option("--rounds", o->rounds, "A/B rounds (each runs the experiment once per side)")->capture_default_str();
  cmd->add_option("--order-seed", o->order_seed,
                  "Seed of the A/B order of the sides (drawn per pair of rounds, balanced within it; default: a fresh "
                  "seed, printed)");
  cmd->add_option("--out-dir", o->out_dir, "A/B result files and logs (default: results/ab/<experiment>)");
  cmd->add_option("--tolerance", o->tolerance, "Slowdown allowed before a run fails (5% or 0.05)")->capture_default_str();
  cmd->add_option("--alpha", o->alpha, "Significance level of the Mann-Whitney U test (the interval is 1 - alpha)")
      ->capture_default_str();
  cmd->add_flag("--with-decode", o->with_decode, "Compare latency including the VQVAE decode");
  cmd->callback([o, &action] { action = [o] { return compare_command(*o); }; });
}

}  // namespace varbench
