// Running at a cluster's scale: each process takes its rank's GPU (the environment logic, on the CPU), a
// sweep holds only the models of the run at hand on its device (measured by the CPU tracking allocator), a
// preempted run resumes from its last batch, and the result file's lock works where flock does not.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <cstdlib>
#include <map>

#include <unistd.h>

#include "formats/file_lock.h"
#include "formats/hdf5.h"
#include "harness/platform/device.h"
#include "harness/driver.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::run_varbench;

std::function<const char*(const char*)> environment(std::map<std::string, std::string> vars) {
  auto held = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [held](const char* name) -> const char* {
    const auto it = held->find(name);
    return it == held->end() ? nullptr : it->second.c_str();
  };
}

TEST(RankDevice, EachLocalRankTakesItsOwnGpuAndAnExplicitIndexIsNotNeeded) {
  // No launcher: GPU 0, from nowhere.
  auto none = device::cuda_index_for_process(8, environment({}));
  EXPECT_EQ(none.index, 0);
  EXPECT_EQ(none.source, "");
  // torchrun: LOCAL_RANK.
  auto torchrun = device::cuda_index_for_process(8, environment({{"LOCAL_RANK", "5"}, {"RANK", "13"}}));
  EXPECT_EQ(torchrun.index, 5);
  EXPECT_EQ(torchrun.source, "LOCAL_RANK=5");
  // srun: SLURM_LOCALID (the node-local rank, not SLURM_PROCID).
  auto srun = device::cuda_index_for_process(4, environment({{"SLURM_LOCALID", "3"}, {"SLURM_PROCID", "7"}}));
  EXPECT_EQ(srun.index, 3);
  EXPECT_EQ(srun.source, "SLURM_LOCALID=3");
  // torchrun inside an srun task: the torchrun worker's rank, not the task's.
  auto both = device::cuda_index_for_process(8, environment({{"SLURM_LOCALID", "0"}, {"LOCAL_RANK", "6"}}));
  EXPECT_EQ(both.index, 6);
  // One visible GPU (the scheduler bound the task to it through CUDA_VISIBLE_DEVICES): that one.
  EXPECT_EQ(device::cuda_index_for_process(1, environment({{"SLURM_LOCALID", "3"}})).index, 0);
  // More ranks than GPUs: an error naming both, never a silent pile-up on one GPU.
  EXPECT_EQ(testing::error_of([] { device::cuda_index_for_process(4, environment({{"LOCAL_RANK", "4"}})); }),
            "LOCAL_RANK=4 but only 4 CUDA devices are visible: give the device explicitly (cuda:N), or launch at most one "
            "rank per GPU");
  EXPECT_EQ(testing::error_of([] { device::cuda_index_for_process(4, environment({{"LOCAL_RANK", "x1"}})); }),
            "LOCAL_RANK='x1' is not a local rank (an integer >= 0)");
}

// A CPU-only build knows before any work that it cannot run `device = "cuda"`: a static error. A CUDA build
// on a machine without a GPU (a login node, this CI) finds out per run: the run fails naming the cause.
TEST(RankDevice, ACudaDeviceIsAStaticErrorOnACpuOnlyBuildAndAFailedRunWithoutAGpu) {
  if (device::cuda_available()) GTEST_SKIP() << "a GPU is present: `cuda` runs here (the cuda-labelled tests run them)";
  const auto dir = testing::temp_dir("cuda_on_cpu_build");
  std::ofstream(dir + "/exp.toml") << testing::experiment_toml("name = \"c\"\nimages = 1\ndevice = \"cuda\"\ndtype = \"fp32\"\n",
                                                               {{"m", "tiny-d2"}}, testing::single_engine("m", "m"));
  const auto r = run_varbench("run " + dir + "/exp.toml --out " + dir + "/c.h5");
  EXPECT_EQ(r.exit_code, 1);
  if (!device::cuda_built()) {
    EXPECT_NE(r.output.find("device = 'cuda': this varbench was built against a CPU-only libtorch"), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir + "/c.h5")) << "a static error stops before the result file is touched";
  } else {
    EXPECT_NE(r.output.find("run 'm' failed: device 'cuda': no CUDA device is available"), std::string::npos) << r.output;
    h5::File f(dir + "/c.h5", h5::File::Mode::kReadOnly);
    EXPECT_EQ(f.root().group("runs/m").attr_string("status"), "failed");
  }
}

// Three models of different sizes, runs over one or two of them: each run finds only its own models
// resident, so the sweep's peak is its largest run's, not the sum of every model.
TEST(SweepResidency, EachRunHoldsOnlyItsOwnModelsAndTheSweepPeakIsTheLargestRuns) {
  const auto dir = testing::temp_dir("residency");
  std::ofstream(dir + "/exp.toml") << testing::experiment_toml(
      "name = \"resident\"\nimages = 2\nbatch_size = 2\nthreads = 2\n", {{"d4", "tiny-d4"}, {"d3", "tiny-d3"}, {"d2", "tiny-d2"}},
      testing::single_engine("d4", "d4") + testing::collaborative_engine("code", "d3", "d2", 3) + testing::single_engine("d2", "d2") +
          testing::single_engine("d4-again", "d4"));
  const auto r = run_varbench("run " + dir + "/exp.toml --out " + dir + "/r.h5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  h5::File f(dir + "/r.h5", h5::File::Mode::kReadOnly);
  std::map<std::string, int64_t> weights, resident, peak;
  for (const char* run : {"d4", "code", "d2", "d4-again"}) {
    auto m = f.root().group(std::string("runs/") + run + "/memory");
    weights[run] = m.attr_int("weights_bytes");
    resident[run] = m.attr_int("resident_at_start_bytes");
    peak[run] = resident[run] + m.attr_int("peak_bytes") - weights[run];
  }
  const int64_t all_models = weights["d4"] + weights["code"] + weights["d2"];  // each counts the VQVAE once more
  for (const auto& [run, bytes] : resident) {
    // Resident: the run's transformers and the VQVAE (weights_bytes), plus a few non-parameter buffers
    // (under 1% here); never another run's model (the smallest, d2, is ~40% of d4's weights).
    EXPECT_GE(bytes, weights[run]) << run;
    EXPECT_LE(bytes, weights[run] + weights[run] / 100) << run << ": models of other runs were resident";
  }
  EXPECT_LT(resident["d4"], all_models / 2);
  // The sweep peak (largest of resident + what the run allocated above it) is the largest run's own peak.
  int64_t sweep_peak = 0, largest_run = 0;
  for (const auto& [run, bytes] : peak) {
    sweep_peak = std::max(sweep_peak, bytes);
    largest_run = std::max(largest_run, f.root().group(std::string("runs/") + run + "/memory").attr_int("peak_bytes"));
  }
  EXPECT_LE(sweep_peak, largest_run + largest_run / 100);
  EXPECT_NE(r.output.find("sweep peak device memory"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace varbench

namespace varbench {
namespace {

// An experiment of two runs, 6 images at batch 1, two repetitions: 12 timed batches per run.
const std::string kPreemptedExperiment = testing::experiment_toml(
    "name = \"preempted\"\nimages = 6\nbatch_size = 1\nwarmup = 1\nrepetitions = 2\nthreads = 2\nseed = 9\n",
    {{"large", "tiny-d3"}, {"small", "tiny-d2"}},
    testing::single_engine("large", "large") + testing::collaborative_engine("code", "large", "small", 4));

// `image_tolerance`: the largest difference of a pixel (uint8) allowed; 0 = identical.
void expect_same_samples(const std::string& a_path, const std::string& b_path, const std::string& run, int image_tolerance = 0) {
  h5::File a(a_path, h5::File::Mode::kReadOnly), b(b_path, h5::File::Mode::kReadOnly);
  const auto ga = a.root().group("runs/" + run), gb = b.root().group("runs/" + run);
  EXPECT_EQ(gb.attr_string("status"), "completed") << run;
  for (const char* name : {"labels", "seeds", "image_index"})
    EXPECT_EQ(ga.dataset(name).read<int64_t>(), gb.dataset(name).read<int64_t>()) << run << " " << name;
  for (const auto& t : ga.group("tokens").children())
    EXPECT_EQ(ga.dataset("tokens/" + t).read<int32_t>(), gb.dataset("tokens/" + t).read<int32_t>()) << run << " tokens/" << t;
  const auto ia = ga.dataset("images").read<uint8_t>(), ib = gb.dataset("images").read<uint8_t>();
  ASSERT_EQ(ia.size(), ib.size());
  int worst = 0;
  for (size_t i = 0; i < ia.size(); ++i) worst = std::max(worst, std::abs(int(ia[i]) - int(ib[i])));
  EXPECT_LE(worst, image_tolerance) << run << " images";
  EXPECT_EQ(ga.dataset("timing/batch_repetition").read<int64_t>(), gb.dataset("timing/batch_repetition").read<int64_t>()) << run;
  EXPECT_EQ(ga.dataset("timing/batch_images").read<int64_t>(), gb.dataset("timing/batch_images").read<int64_t>()) << run;
  EXPECT_EQ(ga.dataset("timing/phase_kind").read<int64_t>(), gb.dataset("timing/phase_kind").read<int64_t>()) << run;
}

// SIGTERM (Slurm's preemption, scancel) mid-run: the batch in flight finishes, the run's progress is
// saved, varbench exits 128+15 saying so, and the same command resumes the run after its last batch; the
// result equals the uninterrupted sweep's (samples, the timing table's shape, engine statistics).
TEST(Preemption, SigtermMidRunSavesTheRunAndTheSameCommandResumesItToTheUninterruptedResult) {
  const auto dir = testing::temp_dir("preemption");
  std::ofstream(dir + "/exp.toml") << kPreemptedExperiment;
  ASSERT_EQ(run_varbench("run " + dir + "/exp.toml --out " + dir + "/whole.h5 --quiet").exit_code, 0);
  // Batch 5 of the process: the memory pass and 4 timed batches of 'large'.
  const auto stopped = testing::run_command("VARBENCH_TEST_SIGNAL_AFTER_BATCHES=5 " + std::string(VARBENCH_BINARY) + " run " + dir +
                                            "/exp.toml --out " + dir + "/p.h5");
  EXPECT_EQ(stopped.exit_code, 128 + 15) << stopped.output;
  EXPECT_NE(stopped.output.find("varbench run: stopped by Terminated after timed batch 4 of 12 of run 'large': its progress is saved in " +
                                dir + "/p.h5.partial/large.h5"),
            std::string::npos)
      << stopped.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/p.h5.partial/large.h5"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/p.h5.lock")) << "the lock goes with the process";
  const auto resumed = run_varbench("run " + dir + "/exp.toml --out " + dir + "/p.h5");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("run 'large' resumes after its timed batch 4 of 12"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("2 runs done now, 0 already completed, 0 failed"), std::string::npos) << resumed.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/p.h5.partial")) << "nothing left to resume";
  expect_same_samples(dir + "/whole.h5", dir + "/p.h5", "large");
  expect_same_samples(dir + "/whole.h5", dir + "/p.h5", "code");
  h5::File p(dir + "/p.h5", h5::File::Mode::kReadOnly);
  EXPECT_EQ(p.root().group("runs/large").attr_int("segments"), 2);
  EXPECT_EQ(p.root().group("runs/large").attr_int("mixed_hardware"), 0) << "one machine, one thread count";
  EXPECT_FALSE(p.root().group("runs/large").has("resume"));
  EXPECT_FALSE(p.root().group("runs/code").has_attr("segments"));

  // A stop in the second run keeps the first, completed one; a resume with another thread count (a
  // requeue onto another node type) goes on and says its timings span hardware.
  const auto second = testing::run_command("VARBENCH_TEST_SIGNAL_AFTER_BATCHES=16 " + std::string(VARBENCH_BINARY) + " run " + dir +
                                           "/exp.toml --out " + dir + "/q.h5 --threads 2");
  EXPECT_EQ(second.exit_code, 128 + 15) << second.output;
  EXPECT_NE(second.output.find("after timed batch 2 of 12 of run 'code'"), std::string::npos) << second.output;
  const auto other_node = run_varbench("run " + dir + "/exp.toml --out " + dir + "/q.h5 --threads 1");
  ASSERT_EQ(other_node.exit_code, 0) << other_node.output;
  EXPECT_NE(other_node.output.find("1 runs done now, 1 already completed"), std::string::npos) << other_node.output;
  EXPECT_NE(other_node.output.find("ok; timings span hardware: measured on "), std::string::npos) << other_node.output;
  // Tokens are the same; the images decoded by the one-thread process round differently (oneDNN's
  // convolutions depend on the thread count in their last bits): at most one level of 255.
  expect_same_samples(dir + "/whole.h5", dir + "/q.h5", "code", 1);
}

// Where flock does not work (or VARBENCH_LOCK=exclusive-create), the lock is the lock file's exclusive
// creation: a live holder is named, a holder killed on this host is taken over, one on another host is
// named with the way out.
TEST(Preemption, TheExclusiveCreateLockWorksWhereFlockDoesNot) {
  const auto dir = testing::temp_dir("lock_exclusive_create");
  const auto path = dir + "/r.h5";
  setenv("VARBENCH_LOCK", "exclusive-create", 1);
  {
    FileLock held(path);
    EXPECT_TRUE(held.exclusive_create());
    EXPECT_TRUE(std::filesystem::exists(path + ".lock"));
    const auto refused = testing::error_of([&] { FileLock again(path); });
    EXPECT_NE(refused.find(path + " is being written by pid " + std::to_string(getpid()) + " on host "), std::string::npos) << refused;
    EXPECT_NE(refused.find("exclusive-create lock"), std::string::npos) << refused;
    // The varbench binary honours it too.
    std::ofstream(dir + "/exp.toml") << kPreemptedExperiment;
    const auto r = run_varbench("run " + dir + "/exp.toml --out " + path);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("is being written by pid " + std::to_string(getpid())), std::string::npos) << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".lock")) << "the lock file goes with the lock";
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::ofstream(path + ".lock") << "999999999@" << host << "\n";  // a pid that cannot run: killed earlier
  {
    FileLock taken(path);
    std::ifstream in(path + ".lock");
    std::string holder;
    std::getline(in, holder);
    EXPECT_EQ(holder, std::to_string(getpid()) + "@" + host);
  }
  std::ofstream(path + ".lock") << "4242@another-node\n";
  const auto foreign = testing::error_of([&] { FileLock again(path); });
  EXPECT_NE(foreign.find("is being written by pid 4242 on host another-node"), std::string::npos) << foreign;
  EXPECT_NE(foreign.find("delete " + path + ".lock if that process is gone"), std::string::npos) << foreign;
  unsetenv("VARBENCH_LOCK");
  EXPECT_EQ(testing::error_of([&] { setenv("VARBENCH_LOCK", "nfs", 1); FileLock bad(path + "2"); }),
            "VARBENCH_LOCK='nfs': expected flock (the default) or exclusive-create");
  unsetenv("VARBENCH_LOCK");
}

}  // namespace
}  // namespace varbench
