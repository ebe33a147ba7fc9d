#pragma once
// Every `varbench` subcommand registers itself here, by name, in one function (no static initialisers).
#include <CLI/CLI.hpp>

#include <functional>

namespace varbench {

// A subcommand's action returns the process exit code.
using CommandAction = std::function<int()>;

void register_generate_command(CLI::App& app, CommandAction& action);
void register_run_command(CLI::App& app, CommandAction& action);
void register_compare_command(CLI::App& app, CommandAction& action);
void register_merge_command(CLI::App& app, CommandAction& action);
void register_report_command(CLI::App& app, CommandAction& action);
void register_score_command(CLI::App& app, CommandAction& action);
void register_fid_command(CLI::App& app, CommandAction& action);
void register_features_command(CLI::App& app, CommandAction& action);

}  // namespace varbench
