// varbench compare BASELINE.h5 CURRENT.h5: the speed-regression gate.
#include <iostream>

#include "harness/commands.h"
#include "harness/compare.h"
#include "harness/driver.h"

namespace varbench {

namespace {
struct CompareOptions {
  std::string baseline, current, tolerance = "5%";
  double alpha = 0.05;
  bool with_decode = false;
};

int compare_command(const CompareOptions& o) {
  const double tolerance = parse_tolerance(o.tolerance);
  const auto c = compare_runs(read_run_records(o.baseline), read_run_records(o.current), tolerance, o.alpha, o.with_decode);
  std::cout << format_comparison(c, tolerance, o.alpha);
  return c.regressions > 0 ? 1 : 0;
}
}  // namespace

void register_compare_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<CompareOptions>();
  auto* cmd = app.add_subcommand("compare", "Compare the speed of two result files run by run; exit 1 on a significant slowdown");
  cmd->add_option("baseline", o->baseline, "Baseline result file (.h5), e.g. results/baselines/...")->required();
  cmd->add_option("current", o->current, "Current result file (.h5)")->required();
  cmd->add_option("--tolerance", o->tolerance, "Slowdown allowed before a run fails (5% or 0.05)")->capture_default_str();
  cmd->add_option("--alpha", o->alpha, "Significance level of the Mann-Whitney U test")->capture_default_str();
  cmd->add_flag("--with-decode", o->with_decode, "Compare latency including the VQVAE decode");
  cmd->callback([o, &action] { action = [o] { return compare_command(*o); }; });
}

}  // namespace varbench
