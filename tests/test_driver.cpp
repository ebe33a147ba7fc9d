// The driver: experiment files (errors with line and key, sweep expansion), failed runs inside a sweep,
// the result file's schema, resuming after a kill, report formats, shard detection.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "harness/experiment.h"
#include "harness/io/file_lock.h"
#include "harness/io/hdf5.h"
#include "harness/memory_probe.h"
#include "harness/sharding.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::run_varbench;
using testing::temp_dir;

// Small models, two images per run, one timed pass: a sweep of a few runs takes seconds.
std::string experiment(const std::string& engines, const std::string& extra = "") {
  return R"(
[experiment]
name = "t"
images = 2
batch_size = 1
warmup = 0
repetitions = 1
seed = 3
baseline = "large"
)" + extra + R"(
[models.large]
random_init = "tiny-d3"
[models.small]
random_init = "tiny-d2"
init_seed = 1
[vqvae]
random_init = "vqvae-ch32"
)" + engines;
}

const char* kTwoEngines = R"(
[[engines]]
name = "large"
type = "single"
model = "large"
[[engines]]
name = "code"
type = "collaborative"
drafter = "large"
refiner = "small"
draft_steps = [3, 6]
)";

std::string write(const std::string& dir, const std::string& text) {
  const auto path = dir + "/exp.toml";
  std::ofstream(path) << text;
  return path;
}

std::string parse_error(const std::string& text) {
  try {
    parse_experiment(text, "exp.toml");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(ExperimentFile, ExpandsListsIntoRunsWithStableNames) {
  auto x = parse_experiment(experiment(kTwoEngines, "batch_size = [1, 2]\n").replace(experiment(kTwoEngines).find("batch_size = 1"), 15, ""),
                            "exp.toml");
  ASSERT_EQ(x.runs.size(), 6u);  // large x 2 batch sizes, code x 2 N x 2 batch sizes
  EXPECT_EQ(x.runs[0].id, "large,batch_size=1");
  EXPECT_EQ(x.runs[1].id, "large,batch_size=2");
  EXPECT_EQ(x.runs[2].id, "code,batch_size=1,draft_steps=3");
  EXPECT_EQ(std::get<int64_t>(x.runs[5].engine_params.at("draft_steps")), 6);
  EXPECT_EQ(x.runs[5].batch_size, 2);
  EXPECT_EQ(x.baseline, "large");
}

TEST(ExperimentFile, PerScaleListsAndSweeps) {
  auto x = parse_experiment(experiment(kTwoEngines, "") +
                                "[sampling]\ntemperature = [1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.0, 1.0, 1.0]\ncfg = [1.5, 4.0]\n",
                            "exp.toml");
  ASSERT_EQ(x.runs.size(), 6u);
  EXPECT_EQ(x.runs[0].sampling.temperature.size(), 10u);
  EXPECT_EQ(x.runs[0].sampling.temperature[7], 1.0);
  EXPECT_EQ(x.runs[1].sampling.cfg, 4.0);
}

TEST(ExperimentFile, EnginesOverrideSamplingSettings) {
  // The paper's FID protocol: top-k 900 for VAR, 600 and a temperature for CoDe.
  auto x = parse_experiment(experiment(std::string(kTwoEngines).replace(std::string(kTwoEngines).find("model = \"large\""), 15,
                                                                        "model = \"large\"\nsampling = { top_k = 900, temperature = 1.0 }")) +
                                "[sampling]\ntop_k = 600\ntemperature = [1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.0, 1.0, 1.0]\n",
                            "exp.toml");
  ASSERT_EQ(x.runs.size(), 3u);
  EXPECT_EQ(x.runs[0].sampling.top_k, std::vector<int64_t>{900});
  EXPECT_EQ(x.runs[0].sampling.temperature, std::vector<double>{1.0});
  EXPECT_EQ(x.runs[1].sampling.top_k, std::vector<int64_t>{600});
  EXPECT_EQ(x.runs[1].sampling.temperature.size(), 10u);
  EXPECT_EQ(x.runs[0].engine_params.count("sampling"), 0u);
}

TEST(ExperimentFile, EveryShippedExperimentParses) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::source_path("experiments"))) {
    if (entry.path().extension() != ".toml") continue;
    ++files;
    Experiment x;
    EXPECT_NO_THROW(x = load_experiment(entry.path().string())) << entry.path();
    EXPECT_FALSE(x.runs.empty()) << entry.path();
  }
  EXPECT_GE(files, 7);
}

TEST(ExperimentFile, ErrorsNameTheLineAndKey) {
  EXPECT_NE(parse_error("[experiment\nname = 1").find("exp.toml:1:"), std::string::npos);
  auto e = parse_error(experiment(kTwoEngines, "colour = \"blue\"\n"));
  EXPECT_NE(e.find("exp.toml:10: unknown key 'colour' in [experiment]"), std::string::npos) << e;
  e = parse_error(experiment("[[engines]]\ntype = \"warp\"\nmodel = \"large\"\n"));
  EXPECT_NE(e.find("unknown engine type 'warp'"), std::string::npos) << e;
  EXPECT_NE(e.find("exp.toml:19:"), std::string::npos) << e;
  e = parse_error(experiment(kTwoEngines, "rng = \"dice\"\n"));
  EXPECT_NE(e.find("unknown rng mode 'dice'"), std::string::npos) << e;
  e = parse_error(experiment(kTwoEngines).replace(experiment(kTwoEngines).find("baseline = \"large\""), 18, "baseline = \"fast\""));
  EXPECT_NE(e.find("baseline = 'fast' names no [[engines]] entry"), std::string::npos) << e;
  e = parse_error(experiment(kTwoEngines) + "[sampling]\ntop_k = [[1, 2]]\n");
  EXPECT_NE(e.find("each per-scale list needs 10 values"), std::string::npos) << e;
}

TEST(Sweep, AFailingRunIsRecordedTheOthersCompleteAndTheExitCodeIsNonZero) {
  const auto dir = temp_dir("sweep_fail");
  const auto toml = experiment(std::string(kTwoEngines) + R"(
[[engines]]
name = "broken"
type = "collaborative"
drafter = "large"
refiner = "small"
draft_steps = 12
[[engines]]
name = "missing"
type = "single"
model = "gone"
)") + "[models.gone]\ncheckpoint = \"/nonexistent/var_d99.safetensors\"\nconfig = \"tiny-d2\"\n";
  const auto dry = run_varbench("run " + write(dir, toml) + " --dry-run");
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_NE(dry.output.find("missing checkpoints (the runs that use them would fail; --random-init runs them with random weights): "
                            "/nonexistent/var_d99.safetensors (gone)"),
            std::string::npos)
      << dry.output;
  const auto r = run_varbench("run " + write(dir, toml) + " --out " + dir + "/r.h5 --threads 2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("draft_steps = 12 is outside 1..9"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/var_d99.safetensors: no such checkpoint file (--random-init runs the experiment with "
                          "random weights of 'tiny-d2': speed and memory only)"),
            std::string::npos)
      << r.output;
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  auto runs = f.root().group("runs");
  EXPECT_EQ(runs.group("large").attr_string("status"), "completed");
  EXPECT_EQ(runs.group("code,draft_steps=3").attr_string("status"), "completed");
  EXPECT_EQ(runs.group("code,draft_steps=6").attr_string("status"), "completed");
  EXPECT_EQ(runs.group("broken").attr_string("status"), "failed");
  EXPECT_NE(runs.group("missing").attr_string("error").find("var_d99.safetensors"), std::string::npos);
}

TEST(ResultFile, FollowsTheSchema) {
  const auto dir = temp_dir("schema");
  const auto r = run_varbench("run " + write(dir, experiment(kTwoEngines)) + " --out " + dir + "/r.h5 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  auto root = f.root();
  EXPECT_EQ(root.attr_int("schema_version"), 1);
  for (const char* a : {"git_revision", "build_type", "libtorch_version", "device_name", "timestamp_utc", "experiment_toml"})
    EXPECT_TRUE(root.has_attr(a)) << a;
  auto run = root.group("runs/code,draft_steps=6");
  for (const char* a : {"engine", "engine_type", "status", "settings_json", "device", "dtype", "batch_size", "num_images", "git_revision"})
    EXPECT_TRUE(run.has_attr(a)) << a;
  EXPECT_EQ(run.attr_string("param_draft_steps"), "6");
  EXPECT_EQ(nlohmann::json::parse(run.attr_string("settings_json"))["engine_params"]["drafter"], "large");
  EXPECT_EQ(run.dataset("labels").dims(), (std::vector<uint64_t>{2}));
  EXPECT_EQ(run.dataset("tokens/scale_9").dims(), (std::vector<uint64_t>{2, 256}));
  EXPECT_EQ(run.dataset("images").dims(), (std::vector<uint64_t>{2, 256, 256, 3}));
  EXPECT_EQ(run.dataset("timing/batch_ms").dims(), (std::vector<uint64_t>{2}));
  EXPECT_EQ(run.dataset("timing/scale_ms").dims(), (std::vector<uint64_t>{2, 10}));
  for (double ms : run.dataset("timing/batch_ms").read<double>()) EXPECT_GT(ms, 0);
  auto memory = run.group("memory");
  EXPECT_EQ(memory.attr_int("measured"), 1);
  EXPECT_GT(memory.attr_int("kv_cache_bytes"), 0);
  EXPECT_GE(memory.attr_int("peak_bytes"), memory.attr_int("weights_bytes") + memory.attr_int("kv_cache_bytes"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.h5.partial")) << "the staging folder outlives the runs";
}

TEST(ResultFile, ResumingAfterAKillGivesTheUninterruptedDatasets) {
  const auto dir = temp_dir("resume");
  const auto toml = write(dir, experiment(kTwoEngines));
  ASSERT_EQ(run_varbench("run " + toml + " --out " + dir + "/whole.h5 --threads 2").exit_code, 0);
  // Killed (SIGKILL) in the middle of the second run: the first is in the file, the second is lost.
  const auto killed = testing::run_command("VARBENCH_TEST_KILL_AFTER_BATCHES=3 " + std::string(VARBENCH_BINARY) + " run " + toml +
                                           " --out " + dir + "/resumed.h5 --threads 2");
  EXPECT_NE(killed.exit_code, 0);
  {
    h5::File f(dir + "/resumed.h5", h5::File::Mode::kReadOnly);  // readable after the kill
    EXPECT_EQ(f.root().group("runs").children(), (std::vector<std::string>{"large"}));
  }
  const auto resumed = run_varbench("run " + toml + " --out " + dir + "/resumed.h5 --threads 2");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("1 already completed"), std::string::npos) << resumed.output;
  h5::File a(dir + "/whole.h5", h5::File::Mode::kReadOnly), b(dir + "/resumed.h5", h5::File::Mode::kReadOnly);
  for (const char* run : {"large", "code,draft_steps=3", "code,draft_steps=6"}) {
    auto ga = a.root().group(std::string("runs/") + run), gb = b.root().group(std::string("runs/") + run);
    for (const char* d : {"labels", "image_index", "seeds"}) EXPECT_EQ(ga.dataset(d).read<int64_t>(), gb.dataset(d).read<int64_t>()) << run << d;
    for (int s = 0; s < 10; ++s) {
      const auto name = "tokens/scale_" + std::to_string(s);
      EXPECT_EQ(ga.dataset(name).read<int32_t>(), gb.dataset(name).read<int32_t>()) << run << " " << name;
    }
    EXPECT_EQ(ga.dataset("images").read<uint8_t>(), gb.dataset("images").read<uint8_t>()) << run;
  }
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

std::string stored_identity(const std::string& file, const std::string& run) {
  h5::File f(file, h5::File::Mode::kReadOnly);
  return f.root().group("runs/" + run).attr_string("identity_json");
}

TEST(Resume, AnEditedExperimentStopsBeforeAnyWorkNamingTheRunAndWhatDiffers) {
  const auto dir = temp_dir("resume_edited");
  const auto out = " --out " + dir + "/r.h5 --threads 2";
  const std::string one_engine = "[[engines]]\nname = \"large\"\ntype = \"single\"\nmodel = \"large\"\n";
  const auto original = experiment(one_engine);
  ASSERT_EQ(run_varbench("run " + write(dir, original) + out + " --quiet").exit_code, 0);
  const auto before = stored_identity(dir + "/r.h5", "large");
  EXPECT_NE(before.find("\"seed\":\"3\""), std::string::npos) << before;
  // The issue's sequence: seed 3 -> 4 and one image fewer, into the same result file.
  const auto edited = replaced(replaced(original, "seed = 3", "seed = 4"), "images = 2", "images = 1");
  const auto again = run_varbench("run " + write(dir, edited) + out);
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find(dir + "/r.h5 holds runs other than the ones asked for: run 'large' was made with classes 0,1 -> 0, "
                              "images 2 -> 1, seed 3 -> 4; nothing was run"),
            std::string::npos)
      << again.output;
  EXPECT_EQ(stored_identity(dir + "/r.h5", "large"), before) << "the refused rerun must not touch the file";
  // The same edit with --fresh: the new run replaces the old one.
  const auto fresh = run_varbench("run " + write(dir, edited) + out + " --fresh");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.output;
  EXPECT_NE(fresh.output.find("1 runs done now, 0 already completed"), std::string::npos) << fresh.output;
  EXPECT_NE(stored_identity(dir + "/r.h5", "large").find("\"seed\":\"4\""), std::string::npos);
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  EXPECT_EQ(f.root().group("runs/large").dataset("labels").dims(), (std::vector<uint64_t>{1}));
}

TEST(Resume, SettingsOutsideTheFileCountTooAndAnUnchangedRunIsReused) {
  const auto dir = temp_dir("resume_settings");
  const auto toml = write(dir, experiment(kTwoEngines));
  const auto run = [&](const std::string& args) { return run_varbench("run " + toml + " --out " + dir + "/r.h5 " + args); };
  ASSERT_EQ(run("--threads 2 --quiet").exit_code, 0);
  const auto same = run("--threads 2");
  ASSERT_EQ(same.exit_code, 0) << same.output;
  EXPECT_NE(same.output.find("0 runs done now, 3 already completed"), std::string::npos) << same.output;
  // Another thread count is another measurement of every run.
  const auto threads = run("--threads 1");
  EXPECT_NE(threads.exit_code, 0);
  EXPECT_NE(threads.output.find("run 'large' was made with threads 2 -> 1"), std::string::npos) << threads.output;
  EXPECT_NE(threads.output.find("run 'code,draft_steps=6' was made with threads 2 -> 1"), std::string::npos) << threads.output;
}

TEST(Resume, RerunReplacesOneRunAndRunsNoLongerAskedForAreNamedNotTabled) {
  const auto dir = temp_dir("resume_rerun");
  const auto out = " --out " + dir + "/r.h5 --threads 2";
  const auto original = experiment(kTwoEngines);
  ASSERT_EQ(run_varbench("run " + write(dir, original) + out + " --quiet").exit_code, 0);
  // An engine-level sampling change touches one run only.
  const auto edited = replaced(original, "model = \"large\"\n", "model = \"large\"\nsampling = { top_k = 100 }\n");
  const auto refused = run_varbench("run " + write(dir, edited) + out);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("run 'large' was made with top_k 900 -> 100; nothing was run"), std::string::npos) << refused.output;
  const auto unknown = run_varbench("run " + write(dir, edited) + out + " --rerun nosuch");
  EXPECT_NE(unknown.output.find("--rerun nosuch: " + dir + "/exp.toml has no such run (its runs: large, code,draft_steps=3, code,draft_steps=6)"),
            std::string::npos)
      << unknown.output;
  const auto rerun = run_varbench("run " + write(dir, edited) + out + " --rerun large");
  ASSERT_EQ(rerun.exit_code, 0) << rerun.output;
  EXPECT_NE(rerun.output.find("1 runs done now, 2 already completed"), std::string::npos) << rerun.output;
  // CoDe dropped from the experiment: its runs stay in the file, named, and out of the table.
  const auto without_code = replaced(edited, R"([[engines]]
name = "code"
type = "collaborative"
drafter = "large"
refiner = "small"
draft_steps = [3, 6]
)", "");
  const auto table = run_varbench("run " + write(dir, without_code) + out + " --format csv");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find("also holds 2 runs this experiment does not ask for (not in the table; `varbench report` shows them): "
                              "code,draft_steps=3, code,draft_steps=6"),
            std::string::npos)
      << table.output;
  size_t mentions = 0;
  for (auto at = table.output.find("code,draft_steps=3"); at != std::string::npos; at = table.output.find("code,draft_steps=3", at + 1))
    ++mentions;
  EXPECT_EQ(mentions, 1u) << "a stale run in the table (only the note may name it):\n" << table.output;
}

TEST(ResultFileLock, ASecondWriterIsRefusedNamingTheHolder) {
  const auto dir = temp_dir("lock");
  const auto toml = write(dir, experiment(kTwoEngines));
  {
    FileLock held(dir + "/r.h5");
    EXPECT_NE(testing::error_of([&] { FileLock again(dir + "/r.h5"); }).find(dir + "/r.h5 is being written by pid " +
                                                                              std::to_string(getpid()) + " on host "),
              std::string::npos);
    const auto r = run_varbench("run " + toml + " --out " + dir + "/r.h5 --threads 2");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find(dir + "/r.h5 is being written by pid " + std::to_string(getpid())), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir + "/r.h5"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.h5.lock")) << "the lock file goes with the lock";
  const auto r = run_varbench("run " + toml + " --out " + dir + "/r.h5 --threads 2 --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.h5.lock"));
}

TEST(Report, FormatsAreParseable) {
  const auto dir = temp_dir("report");
  const auto toml = write(dir, experiment(kTwoEngines));
  const auto md = run_varbench("run " + toml + " --out " + dir + "/r.h5 --threads 2 --quiet");
  ASSERT_EQ(md.exit_code, 0) << md.output;
  EXPECT_NE(md.output.find("| code,draft_steps=3 |"), std::string::npos) << md.output;
  const auto csv = run_varbench("run " + toml + " --out " + dir + "/r.h5 --format csv --quiet");
  EXPECT_NE(csv.output.find("run,engine,params,batch"), std::string::npos) << csv.output;
  const auto js = run_varbench("run " + toml + " --out " + dir + "/r.h5 --format json --quiet");
  ASSERT_EQ(js.exit_code, 0) << js.output;
  auto j = nlohmann::json::parse(js.output);
  int iterations = 0;
  for (const auto& b : j["benchmarks"]) iterations += b["run_type"] == "iteration";
  EXPECT_EQ(iterations, 3);  // one repetition per run
  EXPECT_EQ(j["benchmarks"][0]["time_unit"], "ms");
  EXPECT_DOUBLE_EQ(j["varbench_rows"][0]["speedup"].get<double>(), 1.0);  // the baseline against itself
}

TEST(Sharding, ComesFromTheFlagOrTheSchedulersEnvironment) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  EXPECT_EQ(detect_shard("2/4", env({})).index, 2);
  auto slurm = detect_shard("", env({{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "5"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}));
  EXPECT_EQ(slurm.index, 2);
  EXPECT_EQ(slurm.count, 4);
  EXPECT_EQ(slurm.source, "slurm-array");
  auto srun = detect_shard("", env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "8"}}));
  EXPECT_EQ(srun.count, 8);
  auto torchrun = detect_shard("", env({{"RANK", "3"}, {"WORLD_SIZE", "4"}}));
  EXPECT_EQ(torchrun.index, 3);
  EXPECT_EQ(torchrun.source, "torchrun");
  EXPECT_FALSE(detect_shard("", env({})).sharded());
  EXPECT_THROW(detect_shard("4/4", env({})), std::runtime_error);
  EXPECT_THROW(detect_shard("1-4", env({})), std::runtime_error);
}

}  // namespace
}  // namespace varbench

namespace varbench {
namespace {

TEST(MemoryProbe, CountsEveryCpuTensorByte) {
  // tests/test_main.cpp installs the tracking allocator, as varbench's main does.
  MemoryProbe probe(torch::kCPU);
  probe.start();
  const int64_t before = cpu_tracked_live_bytes();
  {
    auto a = torch::empty({1000, 1000}, torch::kFloat32);  // 4 000 000 bytes
    EXPECT_EQ(cpu_tracked_live_bytes() - before, 4000000);
    auto b = torch::empty({500}, torch::kFloat64);
    EXPECT_EQ(cpu_tracked_live_bytes() - before, 4004000);
  }
  EXPECT_EQ(cpu_tracked_live_bytes(), before);
  EXPECT_EQ(probe.peak_above_start_bytes(), 4004000);
  EXPECT_TRUE(probe.tracks_tensors());
  EXPECT_GT(probe.peak_rss_bytes(), 0);
}

}  // namespace
}  // namespace varbench
