// varbench compare BASELINE.h5 CURRENT.h5, or --ab BASE_BIN CANDIDATE_BIN EXPERIMENT.toml: the
// speed-regression gate, on two result files or on interleaved runs of two builds.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/ab_rounds.h"
#include "harness/commands.h"
#include "harness/compare.h"
#include "harness/driver.h"

namespace varbench {

namespace {
struct CompareOptions {
  std::vector<std::string> inputs;
  std::string tolerance = "5%", out_dir;
  double alpha = 0.05;
  bool with_decode = false, ab = false;
  int rounds = 12;
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
  plan.out_dir = o.out_dir.empty() ? "results/ab/" + std::filesystem::path(plan.experiment).stem().string() : o.out_dir;
  const auto files = run_ab_rounds(plan, std::cerr);
  const auto c = compare_runs(records_of(files.base), records_of(files.candidate), tolerance, o.alpha, o.with_decode);
  std::cout << fmt::format("A/B: {} (base) against {} (candidate) on {}, {} rounds alternating (A B, B A, ...); "
                           "the rounds' repetitions pooled per run; result files and logs in {}\n\n",
                           plan.base_binary, plan.candidate_binary, plan.experiment, plan.rounds, plan.out_dir)
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
                "Run EXPERIMENT.toml with both executables, alternating over --rounds rounds, and compare the pooled "
                "repetitions");
  cmd->add_option("--rounds", o->rounds, "A/B rounds (each runs the experiment once per side)")->capture_default_str();
  cmd->add_option("--out-dir", o->out_dir, "A/B result files and logs (default: results/ab/<experiment>)");
  cmd->add_option("--tolerance", o->tolerance, "Slowdown allowed before a run fails (5% or 0.05)")->capture_default_str();
  cmd->add_option("--alpha", o->alpha, "Significance level of the Mann-Whitney U test (the interval is 1 - alpha)")
      ->capture_default_str();
  cmd->add_flag("--with-decode", o->with_decode, "Compare latency including the VQVAE decode");
  cmd->callback([o, &action] { action = [o] { return compare_command(*o); }; });
}

}  // namespace varbench
