// varbench merge OUT.h5 SHARDS...: one result file from the shards of a sharded sweep.
#include <iostream>

#include <fmt/format.h>

#include "harness/cli/commands.h"
#include "harness/results/merge.h"

namespace varbench {

void register_merge_command(CLI::App& app, CommandAction& action) {
  struct Options {
    std::string out;
    std::vector<std::string> shards;
    bool overwrite = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("merge", "Merge the result files of a sharded run (every image exactly once, checked)");
  cmd->add_option("out", o->out, "Merged result file (.h5)")->required();
  cmd->add_option("shards", o->shards, "Shard result files (varbench run --shard I/N)")->required();
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing merged file");
  cmd->callback([o, &action] {
    action = [o] {
      const auto s = merge_results(o->out, o->shards, o->overwrite);
      std::cout << fmt::format("merged {} runs of {} images from {} shards into {}\n", s.runs, s.images, o->shards.size(), o->out);
      return 0;
    };
  });
}

}  // namespace varbench
