#include "harness/analysis/ab_rounds.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

extern char** environ;

namespace varbench {

namespace {
// Runs argv[0] with its output into `log`; returns its exit code (or 128 + signal).
int run_logged(const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) throw std::runtime_error(fmt::format("{}: cannot be started ({})", args[0], std::strerror(err)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error(fmt::format("{}: lost track of the process ({})", args[0], std::strerror(errno)));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
}  // namespace

std::vector<bool> ab_base_first_order(int rounds, uint64_t seed) {
  std::mt19937_64 draw(seed);
  std::vector<bool> order;
  for (int r = 0; r < rounds; r += 2) {
    const bool base_first = (draw() >> 63) != 0;  // the top bit: one fair coin per pair
    order.push_back(base_first);
    if (r + 1 < rounds) order.push_back(!base_first);
  }
  return order;
}

AbFiles run_ab_rounds(const AbPlan& plan, std::ostream& progress) {
  namespace fs = std::filesystem;
  for (const auto& [what, path] : {std::pair{"base", plan.base_binary}, std::pair{"candidate", plan.candidate_binary}})
    if (access(path.c_str(), X_OK) != 0) throw std::runtime_error(fmt::format("{} executable '{}': not found or not executable", what, path));
  if (!fs::is_regular_file(plan.experiment)) throw std::runtime_error(fmt::format("{}: no such experiment file", plan.experiment));
  if (plan.rounds < 2) throw std::runtime_error(fmt::format("--rounds {}: at least 2 (each side first once)", plan.rounds));
  fs::create_directories(plan.out_dir);
  AbFiles files;
  files.base_first = ab_base_first_order(plan.rounds, plan.order_seed);
  {
    // The draw, written before any round runs: a comparison can be repeated in the same order.
    std::ofstream record(plan.out_dir + "/ab-order.txt");
    record << "order_seed " << plan.order_seed << "\n";
    for (int r = 0; r < plan.rounds; ++r) record << "round " << r + 1 << (files.base_first[r] ? " base candidate\n" : " candidate base\n");
    if (!record) throw std::runtime_error(fmt::format("{}/ab-order.txt: cannot be written", plan.out_dir));
  }
  for (int r = 0; r < plan.rounds; ++r) {
    const bool base_first = files.base_first[r];
    for (int k = 0; k < 2; ++k) {
      const bool base = (k == 0) == base_first;
      const std::string side = base ? "base" : "candidate";
      const std::string& binary = base ? plan.base_binary : plan.candidate_binary;
      const std::string out = fmt::format("{}/{}-round-{}.h5", plan.out_dir, side, r);
      const std::string log = fmt::format("{}/{}-round-{}.log", plan.out_dir, side, r);
      progress << fmt::format("varbench compare --ab: round {}/{}: {} ({})\n", r + 1, plan.rounds, side, binary) << std::flush;
      // An earlier invocation's files of this round go first (result, log, and a killed run's progress,
      // which would otherwise be resumed): a side that fails before any work must not leave the round an
      // old file to judge. The lock stays: a concurrent comparison into the same folder is refused, not raced.
      for (const auto& stale : {out, log}) fs::remove(stale);
      fs::remove_all(out + ".partial");
      const int code = run_logged({binary, "run", plan.experiment, "--out", out, "--fresh", "--quiet"}, log);
      // Exit 1 with a result file it wrote now: some runs failed and the file says which; anything else
      // (no file, another code, a signal) is fatal.
      if (code != 0 && !(code == 1 && fs::exists(out)))
        throw std::runtime_error(fmt::format("{} side ({}) exited with {} in round {} of {}{}; its output is in {}", side, binary,
                                             code, r + 1, plan.rounds, code == 1 ? " without writing a result file" : "", log));
      (base ? files.base : files.candidate).push_back(out);
    }
  }
  return files;
}

}  // namespace varbench
