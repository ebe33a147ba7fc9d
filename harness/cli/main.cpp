// varbench: one executable, one subcommand per job.
#include <iostream>

#include <CLI/CLI.hpp>

#include "harness/cli/commands.h"
#include "harness/platform/cpu_runtime.h"
#include "harness/platform/error_text.h"
#include "harness/platform/memory_probe.h"
#include "harness/platform/provenance.h"

int main(int argc, char** argv) {
  varbench::use_passive_openmp_waits(argv);
  varbench::keep_freed_memory_for_reuse();
  varbench::install_cpu_memory_tracking();  // before any tensor exists
  varbench::set_command_line(argc, argv);
  CLI::App app{"varbench: a research harness for Visual AutoRegressive (VAR) image generators"};
  app.set_version_flag("--version", [] { return varbench::version_text(); });
  app.require_subcommand(1);
  varbench::CommandAction action;
  varbench::register_generate_command(app, action);
  varbench::register_run_command(app, action);
  varbench::register_compare_command(app, action);
  varbench::register_merge_command(app, action);
  varbench::register_report_command(app, action);
  varbench::register_score_command(app, action);
  varbench::register_fid_command(app, action);
  varbench::register_features_command(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action();
  } catch (const std::exception& e) {
    std::cerr << "varbench: error: " << varbench::error_message(e) << "\n";
    return 1;
  }
}
