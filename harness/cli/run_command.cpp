// varbench run EXPERIMENT.toml: every run of an experiment file, measured by the driver, recorded in one
// HDF5 file, summarised in a table.
#include <filesystem>
#include <optional>
#include <thread>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/cli/commands.h"
#include "harness/platform/device.h"
#include "harness/driver.h"
#include "harness/results/record_reader.h"
#include "harness/experiment/experiment.h"
#include "harness/experiment/experiment_check.h"
#include "harness/experiment/memory_plan.h"
#include "harness/platform/provenance.h"
#include "harness/analysis/report.h"
#include "harness/experiment/sharding.h"
#include "harness/analysis/world_scoring.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {

struct RunOptions {
  std::string experiment, out, format = "md", device, shard;
  bool random_init = false, fresh = false, quiet = false, dry_run = false, wide = false, no_table = false;
  double memory_capacity_gb = 0;  // 0: the CUDA device's own, where one is visible
  std::vector<std::string> rerun;
  int threads = -1;
};

std::string context_json(const Provenance& p, const std::string& experiment) {
  nlohmann::json j{{"date", p.timestamp_utc},          {"host_name", p.hostname},
                   {"executable", "varbench"},         {"num_cpus", std::thread::hardware_concurrency()},
                   {"library_build_type", p.build_type}, {"varbench_git_revision", p.git_revision},
                   {"libtorch_version", p.libtorch_version}, {"cuda_version", p.cuda_version},
                   {"cudnn_version", p.cudnn_version}, {"blas", p.blas}, {"attention_backend", p.attention_backend},
                   {"device_name", p.device_name},     {"threads", p.threads}, {"openmp_wait_policy", p.openmp_wait_policy}, {"test_slowdown", p.test_slowdown},
                   {"experiment", experiment}};
  return j.dump();
}

// The device memory the runs are planned against: --memory-capacity-gb, else the first CUDA device's own.
std::optional<int64_t> memory_capacity(const RunOptions& o, const Experiment& x) {
  if (o.memory_capacity_gb > 0) return static_cast<int64_t>(o.memory_capacity_gb * 1024.0 * 1024.0 * 1024.0);
  for (const auto& r : x.runs)
    if (auto c = device_capacity_bytes(o.device.empty() ? r.device : o.device)) return c;
  return std::nullopt;
}

int run_command(const RunOptions& o) {
  if (const double slowdown = test_slowdown_fraction(); slowdown > 0)
    std::cerr << fmt::format("varbench: VARBENCH_TEST_SLOWDOWN={}: every timed batch is made {:.0f}% slower (a check of the "
                             "regression gate; recorded as test_slowdown)\n",
                             slowdown, 100 * slowdown);
  auto x = load_experiment(o.experiment);
  if (o.threads >= 0) x.threads = o.threads;
  const auto shard = detect_shard(o.shard);
  std::string out = o.out.empty() ? x.out : o.out;
  // A shard writes its own file, named after the shard, with or without --out: shards never share one.
  if (shard.sharded()) {
    const auto p = std::filesystem::path(out);
    out = (p.parent_path() / fmt::format("{}.shard-{}-of-{}{}", p.stem().string(), shard.index, shard.count, p.extension().string())).string();
  }
  const auto format = parse_report_format(o.wide ? "wide" : o.format);
  if (o.dry_run) {
    std::cout << fmt::format("{}: {} runs, {} images each{} -> {}\n", o.experiment, x.runs.size(),
                             x.classes.size() * x.images_per_class,
                             shard.sharded() ? fmt::format(" (shard {}/{})", shard.index, shard.count) : "", out);
    for (const auto& r : x.runs)
      std::cout << fmt::format("  {:>3} {}  [{} {} batch {}] {}\n", r.index, r.id, o.device.empty() ? r.device : o.device, r.dtype,
                               r.batch_size, r.settings_json());
    const auto problems = experiment_problems(x, CheckOptions{o.random_init, o.device});
    {
      const auto plan = plan_memory(x, o.random_init, o.device);
      const auto capacity = memory_capacity(o, x);
      std::cout << "\nmemory plan (estimates: harness/experiment/memory_plan.h)\n" << format_memory_plan(plan, capacity);
      if (capacity)
        for (const auto& over : runs_over_capacity(plan, *capacity)) std::cout << "does not fit: " << over << "\n";
    }
    if (!problems.empty())
      std::cout << fmt::format("{} problem{} (`varbench run` would stop before its first run):\n  {}\n", problems.size(),
                               problems.size() > 1 ? "s" : "", fmt::join(problems, "\n  "));
    return problems.empty() ? 0 : 1;
  }
  check_experiment(x, CheckOptions{o.random_init, o.device});  // before the result file is touched
  // A run that cannot fit on its device is refused before the sweep, naming estimate and capacity.
  if (const auto capacity = memory_capacity(o, x)) {
    const auto over = runs_over_capacity(plan_memory(x, o.random_init, o.device), *capacity);
    if (!over.empty())
      throw std::runtime_error(fmt::format("{}: {} (memory plan: `varbench run {} --dry-run`; nothing was run)", o.experiment,
                                           fmt::join(over, "; "), o.experiment));
  }
  install_stop_signals();  // SIGTERM/SIGUSR1: finish the batch, save the run's progress, exit
  DriverOptions d;
  d.random_override = o.random_init;
  d.fresh = o.fresh;
  d.rerun = std::set<std::string>(o.rerun.begin(), o.rerun.end());
  d.device_override = o.device;
  d.shard_index = shard.index;
  d.shard_count = shard.count;
  d.quiet = o.quiet;
  if (!o.quiet)
    std::cerr << fmt::format("varbench run: {} ({} runs{}) -> {}\n", o.experiment, x.runs.size(),
                             shard.sharded() ? fmt::format(", shard {}/{} from {}", shard.index, shard.count, shard.source) : "", out);
  const auto outcome = [&] {
    ResultFile results(out, o.experiment, x.toml_text);  // holds the file's lock until the sweep is done
    return run_experiment(x, d, results);
  }();
  if (outcome.stop_signal != 0) {
    std::cerr << fmt::format("\nvarbench run: stopped by {}; {} runs completed now, {} failed; `varbench run {}` with the same "
                             "options resumes (runs completed are kept, the interrupted one goes on from its last saved batch)\n",
                             outcome.stop_message, outcome.records.size() - outcome.failed, outcome.failed, o.experiment);
    return 128 + outcome.stop_signal;
  }
  int64_t scoring_failures = 0;
  if (x.quality && shard.sharded()) {
    std::cerr << fmt::format("varbench run: [quality] is not scored per shard (FD of a part is not the FD of the whole): "
                             "`varbench merge`, then `varbench score MERGED.h5 --features world`\n");
  } else if (x.quality && std::filesystem::exists(out)) {
    if (!o.quiet) std::cerr << fmt::format("varbench run: quality in the toy world's feature space ({})\n", x.quality->network);
    WorldScoringOptions so;
    for (const auto& r : x.runs) so.runs.insert(r.id);
    so.quiet = o.quiet;
    scoring_failures = score_runs_world(out, *x.quality, so).failed;
  }
  // The table shows the runs this experiment asks for (the file's root holds its text since the sweep
  // began); others the file holds (of an earlier version of the experiment) are named, never mixed in.
  const auto records = std::filesystem::exists(out) ? read_requested_run_records(out) : outcome.records;
  if (!outcome.stale.empty())
    std::cerr << fmt::format("varbench run: {} also holds {} run{} this experiment does not ask for (kept, but left out of "
                             "tables, comparisons and merges; --fresh removes them): {}\n",
                             out, outcome.stale.size(), outcome.stale.size() > 1 ? "s" : "", fmt::join(outcome.stale, ", "));
  if (!outcome.removed.empty() && !o.quiet)
    std::cerr << fmt::format("varbench run: --fresh removed {} run{} this experiment no longer asks for: {}\n", outcome.removed.size(),
                             outcome.removed.size() > 1 ? "s" : "", fmt::join(outcome.removed, ", "));
  const auto rows = report_rows(records, x.baseline);
  if (!o.no_table) std::cout << format_report(rows, format, records, context_json(collect_provenance(torch::kCPU), o.experiment));
  // The sweep's peak on its device: the largest of what each run found resident (only its own models,
  // harness/driver.cpp) plus what it allocated above that.
  const RunRecord* peak_run = nullptr;
  int64_t sweep_peak_bytes = -1;
  for (const auto& r : records)
    if (r.status == schema::kCompleted && r.memory_measured && r.resident_at_start_bytes >= 0) {
      const int64_t bytes = r.resident_at_start_bytes + (r.peak_bytes - r.weights_bytes);
      if (bytes > sweep_peak_bytes) sweep_peak_bytes = bytes, peak_run = &r;
    }
  if (!o.quiet && peak_run)
    std::cerr << fmt::format("varbench run: sweep peak device memory {:.1f} MiB, in run '{}' ({:.1f} MiB resident when it began: "
                             "its own models)\n",
                             sweep_peak_bytes / 1048576.0, peak_run->spec.id, peak_run->resident_at_start_bytes / 1048576.0);
  if (!o.quiet)
    std::cerr << fmt::format("varbench run: {} runs done now, {} already completed, {} failed; results in {}\n",
                             outcome.records.size() - outcome.failed, outcome.skipped, outcome.failed, out);
  return outcome.failed > 0 || scoring_failures > 0 ? 1 : 0;
}

}  // namespace

void register_run_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "Run an experiment file: every run timed, measured and recorded in one HDF5 file");
  cmd->add_option("experiment", o->experiment, "Experiment file (.toml)")->required();
  cmd->add_option("--out", o->out, "Result file (default: [experiment] out, or results/<name>.h5)");
  cmd->add_option("--format", o->format,
                  "Table format on stdout: md (compact), wide (every column), csv or json (Google Benchmark layout)")
      ->capture_default_str();
  cmd->add_flag("--wide", o->wide, "Every column in the table (--format wide)");
  cmd->add_flag("--no-table", o->no_table, "No table on stdout (`varbench report` prints it)");
  cmd->add_flag("--random-init", o->random_init, "Random weights for every model (from its config): speed and memory only");
  cmd->add_option("--device", o->device, "Override every run's device (cpu, cuda, cuda:N, auto)");
  cmd->add_option("--shard", o->shard, "Run shard I/N of every run's images (default: from Slurm or torchrun variables)");
  cmd->add_option("--threads", o->threads, "CPU threads (0 = all cores; default: the experiment's)");
  cmd->add_flag("--fresh", o->fresh, "Rerun every run the result file already holds");
  cmd->add_option("--rerun", o->rerun, "Rerun this run (by name) even where the result file holds it; repeatable");
  cmd->add_flag("--dry-run", o->dry_run, "List the runs with their settings, problems and memory plan, and exit");
  cmd->add_option("--memory-capacity-gb", o->memory_capacity_gb,
                  "Device memory (GiB) to plan every run against; a run estimated above it is refused before the sweep "
                  "(default: the CUDA device's own, where one is visible)");
  cmd->add_flag("--quiet", o->quiet, "No progress or summary on stderr");
  cmd->callback([o, &action] { action = [o] { return run_command(*o); }; });
}

}  // namespace varbench
