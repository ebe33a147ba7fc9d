// varbench report RESULTS.h5: the run table, then scripts/figures.py for the paper's figures and tables.
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/cli/commands.h"
#include "harness/results/record_reader.h"
#include "harness/experiment/experiment.h"
#include "formats/hdf5.h"
#include "harness/analysis/report.h"
#include "varbench/build_info.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {
struct ReportOptions {
  std::vector<std::string> results;
  std::string format = "md", out, baseline;
  bool no_figures = false, wide = false;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int report_command(const ReportOptions& o) {
  for (const auto& path : o.results) {
    std::string baseline = o.baseline;
    if (baseline.empty()) {
      h5::File f(path, h5::File::Mode::kReadOnly);
      if (f.root().has_attr(schema::kExperimentToml))
        baseline = parse_experiment(f.root().attr_string(schema::kExperimentToml), path).baseline;
    }
    std::vector<std::string> others;
    const auto records = read_requested_run_records(path, &others);
    std::cout << "## " << path << "\n\n" << format_report(report_rows(records, baseline), parse_report_format(o.wide ? "wide" : o.format), records) << "\n";
    if (!others.empty())
      std::cout << fmt::format("Not in the table: {} run{} of an earlier version of the experiment ({}); `varbench run --fresh` "
                               "removes them.\n\n",
                               others.size(), others.size() > 1 ? "s" : "", fmt::join(others, ", "));
  }
  if (o.no_figures) return 0;
  const char* python = std::getenv("VARBENCH_PYTHON");
  const auto script = std::filesystem::path(build_info::kSourceDir) / "scripts" / "figures.py";
  std::string cmd = fmt::format("{} {}", python ? python : build_info::kPython, quote(script.string()));
  for (const auto& p : o.results) cmd += " " + quote(p);
  if (!o.out.empty()) cmd += " --out " + quote(o.out);
  std::cout.flush();
  const int status = std::system(cmd.c_str());
  if (status != 0) throw std::runtime_error(fmt::format("{} failed (status {})", script.string(), status));
  return 0;
}
}  // namespace

void register_report_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<ReportOptions>();
  auto* cmd = app.add_subcommand("report", "Tables of result files and the paper's figures (scripts/figures.py)");
  cmd->add_option("results", o->results, "Result files (.h5)")->required();
  cmd->add_option("--format", o->format, "Table format: md (compact), wide (every column), csv or json")->capture_default_str();
  cmd->add_flag("--wide", o->wide, "Every column in the table (--format wide)");
  cmd->add_option("--baseline", o->baseline, "Engine the speed-ups refer to (default: the experiment's)");
  cmd->add_option("--out", o->out, "Folder for figures (default: results/figures/<name>)");
  cmd->add_flag("--no-figures", o->no_figures, "Tables only");
  cmd->callback([o, &action] { action = [o] { return report_command(*o); }; });
}

}  // namespace varbench
