// The driver: experiment files (errors with line and key, sweep expansion), failed runs inside a sweep,
// the result file's schema, resuming after a kill, report formats, shard detection.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "engines/model/loading.h"
#include "engines/model/random_init.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "harness/driver.h"
#include "harness/results/record_reader.h"
#include "harness/experiment/experiment.h"
#include "formats/file_lock.h"
#include "formats/hdf5.h"
#include "harness/platform/memory_probe.h"
#include "harness/analysis/report.h"
#include "harness/experiment/sharding.h"
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

// A tiny-d2 checkpoint with its weights edited: NaN in one (refused at load) or huge but finite ones
// (logits overflow to Inf at scale 0, found by the per-batch logits check).
std::string edited_checkpoint(const std::string& dir, const std::string& name, float head_weight_value, bool one_nan) {
  auto model = load_var({"", "tiny-d2", 7});
  auto tensors = state_dict(*model);
  for (auto& [k, v] : tensors) v = v.clone();
  if (one_nan) tensors.at("head.weight")[0][0] = std::numeric_limits<float>::quiet_NaN();
  else tensors.at("head.weight").fill_(head_weight_value);
  const auto path = dir + "/" + name + ".safetensors";
  save_safetensors(path, tensors);
  return path;
}

TEST(Sweep, AFailingRunIsRecordedTheOthersCompleteAndTheExitCodeIsNonZero) {
  const auto dir = temp_dir("sweep_fail");
  const auto toml = experiment(std::string(kTwoEngines) + R"(
[[engines]]
name = "poisoned"
type = "single"
model = "poisoned"
[[engines]]
name = "overflowing"
type = "collaborative"
drafter = "overflowing"
refiner = "small"
draft_steps = 2
)") + "[models.poisoned]\ncheckpoint = \"" + edited_checkpoint(dir, "nan", 0, true) + "\"\n" +
                    "[models.overflowing]\ncheckpoint = \"" + edited_checkpoint(dir, "huge", 3e38f, false) + "\"\n";
  const auto dry = run_varbench("run " + write(dir, toml) + " --dry-run");
  EXPECT_EQ(dry.exit_code, 0) << dry.output;  // nothing static is wrong: the files exist and their headers read
  const auto r = run_varbench("run " + write(dir, toml) + " --out " + dir + "/r.h5 --threads 2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("run 'poisoned' failed: model 'poisoned' could not be loaded: " + dir + "/nan.safetensors: NaN or Inf weights in 1 key: head.weight (1 of "),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("run 'overflowing' failed: model 'overflowing' produced non-finite logits (NaN or Inf) at scale 0"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("3 runs done now, 0 already completed, 2 failed"), std::string::npos) << r.output;
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  auto runs = f.root().group("runs");
  EXPECT_EQ(runs.group("large").attr_string("status"), "completed");
  EXPECT_EQ(runs.group("code,draft_steps=3").attr_string("status"), "completed");
  EXPECT_EQ(runs.group("code,draft_steps=6").attr_string("status"), "completed");
  EXPECT_EQ(runs.group("poisoned").attr_string("status"), "failed");
  EXPECT_EQ(runs.group("overflowing").attr_string("status"), "failed");
  EXPECT_NE(runs.group("overflowing").attr_string("error").find("at scale 0"), std::string::npos);
}

TEST(Sweep, StaticErrorsStopBeforeAnyWorkNamingFileLineAndKey) {
  const auto dir = temp_dir("sweep_static");
  const auto toml = experiment(std::string(kTwoEngines) + R"(
[[engines]]
name = "broken"
type = "collaborative"
drafter = "large"
refiner = "small"
draft_steps = [4, 12]
[[engines]]
name = "typo"
type = "speculative"
draft = "smal"
target = "large"
[[engines]]
name = "missing"
type = "single"
model = "gone"
)") + "[models.gone]\ncheckpoint = \"/nonexistent/var_d99.safetensors\"\nconfig = \"tiny-d2\"\n";
  const auto path = write(dir, toml);
  const auto out = dir + "/r.h5";
  for (const auto& args : {std::string(" --dry-run"), " --out " + out}) {
    const auto r = run_varbench("run " + path + args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find(path + ":35: [[engines]] 'broken' (collaborative): draft_steps = 12 is outside 1..9"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find(path + ":39: [[engines]] 'typo' (speculative): draft = 'smal': no such model (models: gone, large, small)"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find(path + ":45: [models.gone] /nonexistent/var_d99.safetensors: no such checkpoint file (--random-init runs "
                                   "the experiment with random weights of 'tiny-d2': speed and memory only)"),
              std::string::npos)
        << r.output;
    EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;  // no libtorch backtrace
  }
  EXPECT_FALSE(std::filesystem::exists(out));  // no work, not even an empty result file
  // With random weights the checkpoint is not needed; the engine errors stay.
  const auto random = run_varbench("run " + path + " --dry-run --random-init");
  EXPECT_EQ(random.output.find("var_d99"), std::string::npos) << random.output;
  EXPECT_NE(random.output.find("2 problems"), std::string::npos) << random.output;
}

TEST(ExperimentFile, WrongTypesNameTheLineKeyAndValue) {
  const auto base = experiment(kTwoEngines);
  EXPECT_EQ(parse_error(base + "[sampling]\ncfg = \"high\"\n"), "exp.toml:30: 'cfg' = 'high' must be a number");
  EXPECT_EQ(parse_error(base + "[sampling]\ntop_p = true\n"), "exp.toml:30: 'top_p' = true must be a number");
  EXPECT_EQ(parse_error(base + "[sampling]\ntop_k = 1.5\n"), "exp.toml:30: 'top_k' = 1.5 must be an integer");
  EXPECT_EQ(parse_error(base + "[sampling]\ntop_p = 1.5\n"), "exp.toml:30: top_p = 1.5: must be in [0, 1] (0 disables)");
  auto e = parse_error(std::string(base).replace(base.find("warmup = 0"), 10, "warmup = [0, 1]"));
  EXPECT_EQ(e, "exp.toml:6: 'warmup' = [...] must be an integer (this setting cannot be swept: one value per experiment)");
  e = parse_error(std::string(base).replace(base.find("seed = 3"), 8, "seed = \"three\""));
  EXPECT_EQ(e, "exp.toml:8: 'seed' = 'three' must be an integer");
  e = parse_error(experiment(kTwoEngines, "device = 0\n"));
  EXPECT_EQ(e, "exp.toml:10: 'device' = 0 must be a string, e.g. \"cpu\" or \"cuda\"");
  // A per-engine sampling override is named at its own line.
  e = parse_error(experiment(std::string(kTwoEngines).replace(std::string(kTwoEngines).find("model = \"large\""), 15,
                                                              "model = \"large\"\nsampling = { cfg = \"x\" }")));
  EXPECT_EQ(e, "exp.toml:23: 'cfg' = 'x' must be a number");
}

TEST(ResultFile, ADamagedFileIsRefusedNamingFileAndDataset) {
  const auto dir = temp_dir("damaged_results");
  const auto path = dir + "/damaged.h5";
  auto write_run = [&](uint64_t ms_rows, bool float_repetition) {
    h5::File f(path, h5::File::Mode::kCreate);
    auto run = f.root().create_group("runs/large");
    run.set_attr("status", "completed");
    auto t = run.create_group("timing");
    if (float_repetition) t.write<double>("batch_repetition", {0.0, 1.0, 2.0});
    else t.write<int64_t>("batch_repetition", {0, 1, 2});
    t.write<int64_t>("batch_images", {2, 2, 2});
    t.write<double>("batch_ms", std::vector<double>(ms_rows, 1.0));
    t.write<double>("batch_with_decode_ms", {1.0, 1.0, 1.0});
    const std::vector<double> scales(3 * 10, 0.1);
    t.write<double>("scale_ms", {3, 10}, scales.data());
  };
  write_run(3, false);
  EXPECT_EQ(testing::error_of([&] { read_run_records(path); }), "");
  write_run(2, false);
  EXPECT_EQ(testing::error_of([&] { read_run_records(path); }),
            path + ": /runs/large/timing/batch_ms has 2 rows, /runs/large/timing/batch_repetition 3: the file is damaged");
  write_run(3, true);
  EXPECT_EQ(testing::error_of([&] { read_run_records(path); }),
            path + ": /runs/large/timing/batch_repetition: expected a 1-dimensional integer dataset");
  // Through the command line: one line, exit code 1, no backtrace.
  const auto r = run_varbench("report " + path + " --no-figures");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("varbench: error: " + path + ": /runs/large/timing/batch_repetition: expected"), std::string::npos) << r.output;
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
  EXPECT_EQ(memory.attr_int("peak_bytes"),
            memory.attr_int("weights_bytes") + memory.attr_int("kv_cache_bytes") + memory.attr_int("activations_bytes"));
  const auto phase_kv = memory.dataset("phase_kv_allocated_bytes").read<int64_t>();
  EXPECT_GT(*std::max_element(phase_kv.begin(), phase_kv.end()), 0);  // alive during the scales
  EXPECT_EQ(memory.attr_string("phase_kinds"), "setup,scale,prefix,draft,verify,decode");
  // CoDe's phases: drafter set-up, scales 0..5, refiner set-up, prefix pass, scales 6..9, decode.
  const auto kinds = run.dataset("timing/phase_kind").read<int64_t>();
  const std::vector<int64_t> one_batch{0, 1, 1, 1, 1, 1, 1, 0, 2, 1, 1, 1, 1, 5};
  ASSERT_EQ(kinds.size(), 2 * one_batch.size());
  EXPECT_EQ(std::vector<int64_t>(kinds.begin(), kinds.begin() + one_batch.size()), one_batch);
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.h5.partial")) << "the staging folder outlives the runs";
}

TEST(ResultFile, ResumingAfterAKillGivesTheUninterruptedDatasets) {
  const auto dir = temp_dir("resume");
  const auto toml = write(dir, experiment(kTwoEngines));
  ASSERT_EQ(run_varbench("run " + toml + " --out " + dir + "/whole.h5 --threads 2").exit_code, 0);
  // Killed (SIGKILL) in the middle of the second run (each run: its memory pass and two timed batches):
  // the first is in the file, the second is lost.
  const auto killed = testing::run_command("VARBENCH_TEST_KILL_AFTER_BATCHES=5 " + std::string(VARBENCH_BINARY) + " run " + toml +
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

TEST(Resume, SettingsOutsideTheFileCountTooButHowTheMachineMeasuresDoesNot) {
  const auto dir = temp_dir("resume_settings");
  const auto toml = write(dir, experiment(kTwoEngines));
  const auto run = [&](const std::string& args) { return run_varbench("run " + toml + " --out " + dir + "/r.h5 " + args); };
  ASSERT_EQ(run("--threads 2 --quiet").exit_code, 0);
  const auto same = run("--threads 2");
  ASSERT_EQ(same.exit_code, 0) << same.output;
  EXPECT_NE(same.output.find("0 runs done now, 3 already completed"), std::string::npos) << same.output;
  // Another thread count (a requeue onto another node type) measures differently but generates the same
  // runs: they are reused, and each run keeps the provenance of the process that measured it.
  const auto threads = run("--threads 1");
  ASSERT_EQ(threads.exit_code, 0) << threads.output;
  EXPECT_NE(threads.output.find("0 runs done now, 3 already completed"), std::string::npos) << threads.output;
  // The device asked for on the command line defines the runs.
  const auto device = run("--device auto");
  EXPECT_NE(device.exit_code, 0);
  EXPECT_NE(device.output.find("run 'large' was made with device cpu -> auto"), std::string::npos) << device.output;
  EXPECT_NE(device.output.find("run 'code,draft_steps=6' was made with device cpu -> auto"), std::string::npos) << device.output;
}

TEST(Resume, AnEngineDefaultWrittenOutIsTheSameRunAndABuildOfAnotherTypeIsNot) {
  const auto dir = temp_dir("resume_defaults");
  const std::string speculative = "[[engines]]\nname = \"large\"\ntype = \"single\"\nmodel = \"large\"\n"
                                  "[[engines]]\nname = \"spec\"\ntype = \"speculative\"\ndraft = \"small\"\ntarget = \"large\"\n";
  const auto out = " --out " + dir + "/r.h5 --threads 2";
  ASSERT_EQ(run_varbench("run " + write(dir, experiment(speculative)) + out + " --quiet").exit_code, 0);
  const auto identity = stored_identity(dir + "/r.h5", "spec");
  for (const char* key : {"\"param.lookahead\":\"1\"", "\"param.acceptance\":\"exact\"", "\"git_revision\":", "\"build_type\":"})
    EXPECT_NE(identity.find(key), std::string::npos) << key << " in " << identity;
  EXPECT_EQ(identity.find("threads"), std::string::npos) << identity;
  const auto explicit_default = run_varbench("run " + write(dir, experiment(speculative + "lookahead = 1\n")) + out);
  ASSERT_EQ(explicit_default.exit_code, 0) << explicit_default.output;
  EXPECT_NE(explicit_default.output.find("0 runs done now, 2 already completed"), std::string::npos) << explicit_default.output;
  const auto other = run_varbench("run " + write(dir, experiment(speculative + "lookahead = 2\n")) + out);
  EXPECT_NE(other.output.find("run 'spec' was made with param.lookahead 1 -> 2"), std::string::npos) << other.output;
  // A Debug build's run is not a Release build's (its speed, and possibly its numerics, differ).
  {
    h5::File f(dir + "/r.h5", h5::File::Mode::kReadWrite);
    auto g = f.root().group("runs/spec");
    auto stored = nlohmann::json::parse(g.attr_string("identity_json"));
    ASSERT_EQ(stored["build_type"], "Release");
    stored["build_type"] = "Debug";
    g.set_attr("identity_json", stored.dump());
  }
  const auto debug = run_varbench("run " + write(dir, experiment(speculative)) + out);
  EXPECT_NE(debug.exit_code, 0);
  EXPECT_NE(debug.output.find("run 'spec' was made with build_type Debug -> Release"), std::string::npos) << debug.output;
}

// Checkpoints are identified by content: a copy elsewhere (a fresh clone, node-local staging) is the same
// model, an edited file is not.
TEST(Resume, ACopiedCheckpointResumesAndAnEditedOneDoesNot) {
  const auto dir = temp_dir("resume_copied");
  for (const char* node : {"a", "b"}) {
    std::filesystem::create_directories(dir + "/" + node);
    for (const char* file : {"var-small.safetensors", "vqvae.safetensors"})
      std::filesystem::copy_file(testing::source_path(std::string("models/toy-world/") + file), dir + "/" + node + "/" + file);
  }
  auto toml = [&](const std::string& node) {
    return write(dir, R"(
[experiment]
name = "copied"
images = 1
warmup = 0
repetitions = 1
[models.small]
checkpoint = ")" + dir + "/" + node + R"(/var-small.safetensors"
[vqvae]
checkpoint = ")" + dir + "/" + node + R"(/vqvae.safetensors"
[[engines]]
name = "small"
type = "single"
model = "small"
)");
  };
  const auto out = " --out " + dir + "/r.h5 --threads 2";
  ASSERT_EQ(run_varbench("run " + toml("a") + out + " --quiet").exit_code, 0);
  const auto copy = run_varbench("run " + toml("b") + out);
  ASSERT_EQ(copy.exit_code, 0) << copy.output;
  EXPECT_NE(copy.output.find("0 runs done now, 1 already completed"), std::string::npos) << copy.output;
  {  // one byte of the copy changed (a float's lowest mantissa byte near the end of the data)
    std::fstream f(dir + "/b/var-small.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-8, std::ios::end);
    char c = 0;
    f.read(&c, 1);
    c ^= 1;
    f.seekp(-8, std::ios::end);
    f.write(&c, 1);
  }
  const auto edited = run_varbench("run " + toml("b") + out);
  EXPECT_NE(edited.exit_code, 0);
  EXPECT_NE(edited.output.find("run 'small' was made with model.small mix64 "), std::string::npos) << edited.output;
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
  EXPECT_NE(table.output.find("also holds 2 runs this experiment does not ask for (kept, but left out of tables, comparisons and "
                              "merges; --fresh removes them): code,draft_steps=3, code,draft_steps=6"),
            std::string::npos)
      << table.output;
  size_t mentions = 0;
  for (auto at = table.output.find("code,draft_steps=3"); at != std::string::npos; at = table.output.find("code,draft_steps=3", at + 1))
    ++mentions;
  EXPECT_EQ(mentions, 1u) << "a stale run in the table (only the note may name it):\n" << table.output;
  // The report leaves them out too, naming them; compare judges only the runs asked for.
  const auto report = run_varbench("report " + dir + "/r.h5 --no-figures --format csv");
  ASSERT_EQ(report.exit_code, 0) << report.output;
  EXPECT_NE(report.output.find("Not in the table: 2 runs of an earlier version of the experiment (code,draft_steps=3, "
                               "code,draft_steps=6)"),
            std::string::npos)
      << report.output;
  const auto compared = run_varbench("compare " + dir + "/r.h5 " + dir + "/r.h5");
  EXPECT_NE(compared.output.find("left out 2 runs its experiment does not ask for: code,draft_steps=3, code,draft_steps=6"),
            std::string::npos)
      << compared.output;
  EXPECT_EQ(compared.output.find("| code,draft_steps=3"), std::string::npos) << compared.output;
  // --fresh leaves only the runs asked for in the file, and says which it removed.
  const auto fresh = run_varbench("run " + write(dir, without_code) + out + " --fresh --quiet");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.output;
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  EXPECT_EQ(f.root().group("runs").children(), std::vector<std::string>{"large"});
  EXPECT_EQ(f.root().attr_string("experiment_toml"), without_code);
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

TEST(Report, TheNullEngineShowsItsOverheadPerBatchNotThroughput) {
  auto record = [](const std::string& engine, const std::string& type, std::vector<double> ms) {
    RunRecord r;
    r.spec.id = r.spec.engine_name = engine;
    r.spec.engine_type = type;
    r.spec.batch_size = 4;
    r.status = "completed";
    r.num_images = 8;
    r.batch_ms = r.batch_with_decode_ms = ms;
    r.batch_repetition = {0, 0, 1, 1};
    r.batch_images = {4, 4, 4, 4};
    return r;
  };
  const std::vector<RunRecord> records{record("large", "single", {2000, 2000, 2000, 2000}), record("null", "null", {0.03, 0.04, 0.03, 0.05})};
  const auto rows = report_rows(records, "large");
  EXPECT_TRUE(rows[1].driver_overhead);
  EXPECT_FALSE(std::isfinite(rows[1].images_per_s));
  EXPECT_EQ(rows[1].speedup, 0.0);
  EXPECT_NEAR(rows[1].latency_p50_ms, 0.035, 1e-12);
  const auto md = format_report(rows, ReportFormat::kWide, records);
  EXPECT_NE(md.find("| null  | null   |        | 4     | 8      | -     | -         | 0.035  | 0.047  | -          | -        | -            | -       | -          | -     | -            | -      |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("ok: the driver's own overhead per batch (no model runs)"), std::string::npos) << md;
  // The compact table: the overhead in its note, no throughput; the baseline's speed-up without an interval.
  const auto compact = format_report(rows, ReportFormat::kMarkdown, records);
  EXPECT_NE(compact.find("| null  | -     | -                 | -       | overhead 0.035 ms/batch (p50) |"), std::string::npos) << compact;
  EXPECT_NE(compact.find("| large | 2.00  | 1.00x             |"), std::string::npos) << compact;
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

// The memory pass of one run, read back from its result file.
RunRecord measured_run(const std::string& dir, const std::string& model_toml, int64_t batch) {
  const auto toml = fmt::format(R"(
[experiment]
name = "m"
images = {0}
batch_size = {0}
warmup = 0
repetitions = 1
[models.m]
{1}
[vqvae]
random_init = "vqvae-ch32"
[[engines]]
name = "one"
type = "single"
model = "m"
)", batch, model_toml);
  const auto r = run_varbench("run " + write(dir, toml) + " --out " + dir + "/m.h5 --threads 2 --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto records = read_run_records(dir + "/m.h5");
  EXPECT_EQ(records.size(), 1u);
  return records.at(0);
}

// Every part of the split against an independent computation: weights from the tensors' sizes, KV from
// 2 (K, V) x depth x batch x 2 branches x positions x width x 4 bytes.
void check_split(const RunRecord& r, const VarArch& arch, int64_t model_bytes, int64_t batch) {
  const auto vqvae = load_vqvae({"", "vqvae-ch32", 0});
  int64_t vqvae_bytes = 0;
  for (const auto& [k, t] : state_dict(*vqvae)) vqvae_bytes += t.numel() * t.element_size();
  EXPECT_EQ(r.weights_bytes, model_bytes + vqvae_bytes);
  auto kv = [&](int64_t positions) { return 2 * arch.depth * batch * 2 * positions * arch.width * 4; };
  ASSERT_FALSE(r.memory_phases.empty());
  EXPECT_EQ(r.memory_phases.front().kind, kSetupPhase.id);
  // The set-up phase's peak is the allocation that completes the cache: the cache is in it as KV (not as
  // activations), the whole of it, none filled yet.
  EXPECT_EQ(r.memory_phases.front().kv_allocated_bytes, kv(680));
  EXPECT_EQ(r.memory_phases.front().kv_filled_bytes, 0);
  EXPECT_GE(r.memory_phases.front().allocated_bytes, kv(680));
  EXPECT_EQ(r.memory_phases.back().kind, kDecodePhase.id);
  EXPECT_EQ(r.memory_phases.back().kv_allocated_bytes, 0);  // the cache is freed before the decode
  for (const auto& p : r.memory_phases)
    if (p.kind == kScalePhase.id) {
      EXPECT_EQ(p.kv_allocated_bytes, kv(680)) << "scale " << p.first_scale;
      EXPECT_EQ(p.kv_filled_bytes, kv(arch.schedule.end(p.first_scale))) << "scale " << p.first_scale;
      EXPECT_GE(p.allocated_bytes, p.kv_allocated_bytes);
    }
  const auto& peak = r.memory_phases.at(r.peak_phase);
  for (const auto& p : r.memory_phases) EXPECT_LE(p.allocated_bytes, peak.allocated_bytes);
  EXPECT_EQ(r.peak_bytes, r.weights_bytes + r.kv_cache_bytes + r.activations_bytes);  // sums exactly
  EXPECT_EQ(r.kv_cache_bytes, peak.kv_allocated_bytes);
}

TEST(MemorySplit, WhenTheDecodeIsThePeakTheKvCacheIsNotInIt) {
  const auto dir = temp_dir("memory_decode_peak");
  const auto r = measured_run(dir, "random_init = \"tiny-d2\"", 4);
  const auto model = load_var({"", "tiny-d2", 0});
  int64_t bytes = 0;
  for (const auto& [k, t] : state_dict(*model)) bytes += t.numel() * t.element_size();
  check_split(r, model->arch(), bytes, 4);
  EXPECT_EQ(r.memory_phases.at(r.peak_phase).kind, kDecodePhase.id);
  EXPECT_EQ(r.kv_cache_bytes, 0);
  EXPECT_EQ(r.kv_filled_bytes, 0);
}

TEST(MemorySplit, WhenTheKvCacheIsThePeakItIsSplitAtTheLastScale) {
  // Deep and narrow (48 blocks of width 128): the KV cache of batch 1 (67 MB) outweighs the decode.
  const auto dir = temp_dir("memory_kv_peak");
  auto arch = VarArch::named("tiny-d2");
  arch.depth = 48;
  VarTransformer model(arch);
  random_init(*model, 5);
  save_safetensors(dir + "/deep.safetensors", state_dict(*model));
  int64_t bytes = 0;
  for (const auto& [k, t] : state_dict(*model)) bytes += t.numel() * t.element_size();
  const auto r = measured_run(dir, "checkpoint = \"" + dir + "/deep.safetensors\"", 1);
  check_split(r, arch, bytes, 1);
  const auto& peak = r.memory_phases.at(r.peak_phase);
  EXPECT_EQ(peak.kind, kScalePhase.id);
  EXPECT_EQ(r.kv_cache_bytes, 2 * 48 * 1 * 2 * 680 * 128 * 4);
  EXPECT_EQ(r.kv_filled_bytes, 2 * 48 * 1 * 2 * arch.schedule.end(peak.first_scale) * 128 * 4);
}

TEST(MemoryProbe, SplitsAPeakIntoTheKvCacheAndActivationsAsTheAllocatorCountsThem) {
  // A known activation tensor, then a KV cache whose last allocation sets the peak: the KV part is the
  // cache's bytes from its shape, and what is left (the activations) is exactly the tensor.
  MemoryProbe probe(torch::kCPU);
  probe.start();
  const auto scratch = torch::empty({1000, 1000}, torch::kFloat32);  // 4 000 000 bytes
  KvCache cache(2, 3, 4, 50, 8, torch::kFloat32, torch::kFloat16, torch::kCPU);
  const int64_t kv_bytes = 2 * 3 * 4 * 50 * 8 * (4 + 2);  // layers x rows x heads x positions x head_dim x (K + V bytes)
  EXPECT_EQ(cache.bytes(), kv_bytes);
  EXPECT_EQ(probe.peak_above_start_bytes(), 4000000 + kv_bytes);
  EXPECT_EQ(probe.kv_at_peak().allocated, kv_bytes);
  EXPECT_EQ(probe.peak_above_start_bytes() - probe.kv_at_peak().allocated, 4000000);
}

TEST(MemorySplit, TheFirstRunOfAProcessMeasuresTheSameMemoryAsTheSecond) {
  const auto dir = temp_dir("memory_first_run");
  const auto toml = R"(
[experiment]
name = "first-run"
images = 2
batch_size = 2
warmup = 1
repetitions = 1
[models.m]
random_init = "tiny-d2"
[vqvae]
random_init = "vqvae-ch32"
[[engines]]
name = "first"
type = "single"
model = "m"
[[engines]]
name = "second"
type = "single"
model = "m"
)";
  const auto r = run_varbench("run " + write(dir, toml) + " --out " + dir + "/m.h5 --threads 2 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto records = read_run_records(dir + "/m.h5");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].peak_bytes, records[1].peak_bytes);
  EXPECT_EQ(records[0].kv_cache_bytes, records[1].kv_cache_bytes);
  EXPECT_EQ(records[0].activations_bytes, records[1].activations_bytes);
}

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
