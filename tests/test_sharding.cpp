// Sharded sweeps: 4 shards merged equal one unsharded run (tokens, images, FID statistics), and merge
// refuses incomplete or overlapping shard sets, naming the image indices. A shard writes a file of its own
// even with --out, never resumes another shard's run, and merge refuses shards made with other settings.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "formats/hdf5.h"
#include "tests/test_support.h"

namespace varbench {
namespace {

using testing::run_varbench;

const std::string kExperiment = testing::experiment_toml("name = \"shards\"\nimages = 8\nbatch_size = 2\nseed = 11\n",
                                                         {{"large", "tiny-d2"}}, testing::single_engine("large", "large"));

// One test: the unsharded run and the four shards (with their feature statistics) are made once.
TEST(ShardedSweep, FourShardsMergeIntoTheUnshardedRunAndMergeRefusesBadShardSets) {
  const auto dir = testing::temp_dir("sharding");
  std::ofstream(dir + "/exp.toml") << kExperiment;
  const auto toml = dir + "/exp.toml";
  const std::string score = " --ref " + testing::fixture("inception/set_a.npz") + " --inception " +
                            testing::fixture("inception/inception_random.safetensors") + " --threads 2";
  auto whole_run = run_varbench("run " + toml + " --out " + dir + "/whole.h5 --threads 2 --quiet");
  ASSERT_EQ(whole_run.exit_code, 0) << whole_run.output;
  ASSERT_EQ(run_varbench("score " + dir + "/whole.h5" + score).exit_code, 0);
  // Every shard is given the same --out: each writes that name with its shard in it.
  auto shard = [&](int i) { return fmt::format("{}/sh.shard-{}-of-4.h5", dir, i); };
  for (int i = 0; i < 4; ++i) {
    // The shard comes from the scheduler's environment, as in a Slurm array job.
    const auto r = testing::run_command(fmt::format("SLURM_ARRAY_TASK_ID={} SLURM_ARRAY_TASK_COUNT=4 {} run {} --out {}/sh.h5 --threads 2",
                                                    i, VARBENCH_BINARY, toml, dir));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("1 runs done now, 0 already completed"), std::string::npos) << r.output;
    ASSERT_TRUE(std::filesystem::exists(shard(i))) << r.output;
    ASSERT_EQ(run_varbench("score " + shard(i) + score).exit_code, 0);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/sh.h5")) << "no shard may write the --out file itself";

  const auto merged = dir + "/merged.h5";
  const auto r = run_varbench(fmt::format("merge {} {} {} {} {}", merged, shard(2), shard(0), shard(3), shard(1)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  {
  h5::File a(dir + "/whole.h5", h5::File::Mode::kReadOnly), b(merged, h5::File::Mode::kReadOnly);
  auto ga = a.root().group("runs/large"), gb = b.root().group("runs/large");
  EXPECT_EQ(gb.attr_int("num_images"), 8);
  for (const char* d : {"labels", "index_in_class", "image_index", "seeds"})
    EXPECT_EQ(ga.dataset(d).read<int64_t>(), gb.dataset(d).read<int64_t>()) << d;
  for (int s = 0; s < 10; ++s) {
    const auto name = "tokens/scale_" + std::to_string(s);
    EXPECT_EQ(ga.dataset(name).read<int32_t>(), gb.dataset(name).read<int32_t>()) << name;
  }
  EXPECT_EQ(ga.dataset("images").read<uint8_t>(), gb.dataset("images").read<uint8_t>());
  EXPECT_EQ(gb.dataset("timing/batch_ms").dims(), (std::vector<uint64_t>{4}));  // every shard's batch
  // FID statistics: sums of the shards equal the one pass to 1e-12 (relative to the largest entry).
  for (const char* feature : {"pool3", "spatial"}) {
    const std::string base = std::string("feature_stats/adm/") + feature;
    EXPECT_EQ(ga.group(base).attr_int("n"), gb.group(base).attr_int("n"));
    for (const char* d : {"sum", "sum_outer"}) {
      const auto x = ga.dataset(base + "/" + d).read<double>(), y = gb.dataset(base + "/" + d).read<double>();
      ASSERT_EQ(x.size(), y.size());
      double scale = 0, worst = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        scale = std::max(scale, std::abs(x[i]));
        worst = std::max(worst, std::abs(x[i] - y[i]));
      }
      EXPECT_LE(worst, 1e-12 * scale) << base << "/" << d;
    }
  }
  }  // closes the files: HDF5 locks a file that another process has open
  // The merged file scores like the unsharded one.
  ASSERT_EQ(run_varbench("score " + merged + score).exit_code, 0);
  h5::File a(dir + "/whole.h5", h5::File::Mode::kReadOnly), c(merged, h5::File::Mode::kReadOnly);
  const double fid_merged = c.root().group("runs/large/metrics").attr_double("fid");
  const double fid_whole = a.root().group("runs/large/metrics").attr_double("fid");
  EXPECT_NEAR(fid_merged, fid_whole, 1e-9 * std::max(1.0, std::abs(fid_whole)));

  // A missing shard: refused, naming the indices.
  const auto missing = run_varbench(fmt::format("merge {}/m1.h5 {} {} {}", dir, shard(0), shard(1), shard(3)));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("run 'large': 2 of 8 images missing, indices 4-5"), std::string::npos) << missing.output;
  // A shard given twice: refused, naming the duplicated indices.
  const auto twice = run_varbench(fmt::format("merge {}/m2.h5 {} {} {} {} {}", dir, shard(0), shard(1), shard(2), shard(3), shard(1)));
  EXPECT_NE(twice.exit_code, 0);
  EXPECT_NE(twice.output.find("images 2-3 appear in more than one shard"), std::string::npos) << twice.output;
}

TEST(ShardedSweep, AShardNeverResumesAnotherShardsRunAndMergeRefusesShardsOfOtherSettings) {
  const auto dir = testing::temp_dir("shard_identity");
  std::ofstream(dir + "/exp.toml") << kExperiment;
  const auto run = [&](const std::string& args) { return run_varbench("run " + dir + "/exp.toml --out " + dir + "/s.h5 " + args); };
  ASSERT_EQ(run("--shard 0/2 --threads 2 --quiet").exit_code, 0);
  // Shard 1 finding shard 0's file under its own name (a copy, a mistyped path) must not take it as done.
  std::filesystem::copy_file(dir + "/s.shard-0-of-2.h5", dir + "/s.shard-1-of-2.h5");
  const auto other = run("--shard 1/2 --threads 2");
  EXPECT_NE(other.exit_code, 0) << other.output;
  EXPECT_NE(other.output.find("run 'large' was made with shard 0/2 -> 1/2"), std::string::npos) << other.output;
  EXPECT_NE(other.output.find("nothing was run"), std::string::npos) << other.output;
  // Shard 1 made with another requested device: another run, and merge names the setting.
  ASSERT_EQ(run("--shard 1/2 --threads 2 --device auto --fresh --quiet").exit_code, 0);
  const auto merge = run_varbench(fmt::format("merge {0}/m.h5 {0}/s.shard-0-of-2.h5 {0}/s.shard-1-of-2.h5", dir));
  EXPECT_NE(merge.exit_code, 0) << merge.output;
  EXPECT_NE(merge.output.find("run 'large' was made with other settings in " + dir + "/s.shard-1-of-2.h5 than in " + dir +
                              "/s.shard-0-of-2.h5: device cpu -> auto"),
            std::string::npos)
      << merge.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/m.h5"));
  // The same settings: they merge, and the merged run says it is merged (no shard resumes into it).
  ASSERT_EQ(run("--shard 1/2 --threads 2 --fresh --quiet").exit_code, 0);
  const auto ok = run_varbench(fmt::format("merge {0}/m.h5 {0}/s.shard-0-of-2.h5 {0}/s.shard-1-of-2.h5", dir));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  h5::File m(dir + "/m.h5", h5::File::Mode::kReadOnly);
  EXPECT_NE(m.root().group("runs/large").attr_string("identity_json").find("\"shard\":\"merged from 2 shards\""), std::string::npos);
  EXPECT_EQ(m.root().group("runs/large").attr_int("mixed_hardware"), 0);
}

// Two "nodes": each its own copy of the checkpoints under the same relative path (node-local staging) and
// its own thread count. The shards merge (what they generated is the same run), and the merged run and
// every speed table say that its timings span hardware.
TEST(ShardedSweep, ShardsFromNodesWithOtherThreadsAndCheckpointCopiesMergeAndSayTheirTimingsSpanHardware) {
  const auto dir = testing::temp_dir("shard_nodes");
  const std::string toml = R"(
[experiment]
name = "nodes"
images = 4
batch_size = 2
warmup = 0
repetitions = 1
baseline = "small"
[models.small]
checkpoint = "ckpt/var-small.safetensors"
[vqvae]
checkpoint = "ckpt/vqvae.safetensors"
[[engines]]
name = "small"
type = "single"
model = "small"
)";
  std::ofstream(dir + "/exp.toml") << toml;
  for (const char* node : {"node-a", "node-b"}) {
    std::filesystem::create_directories(dir + "/" + node + "/ckpt");
    for (const char* file : {"var-small.safetensors", "vqvae.safetensors"})
      std::filesystem::copy_file(testing::source_path(std::string("models/toy-world/") + file), dir + "/" + node + "/ckpt/" + file);
  }
  auto shard = [&](const char* node, int index, int threads) {
    return testing::run_command(fmt::format("cd {0}/{1} && {2} run {0}/exp.toml --out {0}/n.h5 --shard {3}/2 --threads {4} --quiet",
                                            dir, node, VARBENCH_BINARY, index, threads));
  };
  ASSERT_EQ(shard("node-a", 0, 1).exit_code, 0);
  ASSERT_EQ(shard("node-b", 1, 2).exit_code, 0);
  const auto merge = run_varbench(fmt::format("merge {0}/m.h5 {0}/n.shard-0-of-2.h5 {0}/n.shard-1-of-2.h5", dir));
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  {
    h5::File m(dir + "/m.h5", h5::File::Mode::kReadOnly);
    const auto g = m.root().group("runs/small");
    EXPECT_EQ(g.attr_int("mixed_hardware"), 1);
    const auto shards = g.attr_string("shard_measurement_json");
    EXPECT_NE(shards.find("| 1 threads |"), std::string::npos) << shards;
    EXPECT_NE(shards.find("| 2 threads |"), std::string::npos) << shards;
    EXPECT_NE(shards.find("\"hostname\""), std::string::npos) << shards;
  }
  const auto report = run_varbench(fmt::format("report {0}/m.h5 --out {0}/figures", dir));
  EXPECT_NE(report.output.find("ok; timings span hardware: measured on "), std::string::npos) << report.output;
}

TEST(ShardedSweep, AShardWithoutABatchCompletesEmptyAndMerges) {
  // More shards than batches (a Slurm array larger than the work): the extra shard has nothing to do.
  const auto dir = testing::temp_dir("shard_empty");
  std::string text = kExperiment;
  text.replace(text.find("images = 8"), 10, "images = 2");
  std::ofstream(dir + "/exp.toml") << text;
  for (int i = 0; i < 2; ++i) {
    const auto r = run_varbench(fmt::format("run {0}/exp.toml --out {0}/e.h5 --shard {1}/2 --threads 2", dir, i));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("1 runs done now, 0 already completed, 0 failed"), std::string::npos) << r.output;
  }
  {
    h5::File empty(dir + "/e.shard-1-of-2.h5", h5::File::Mode::kReadOnly);
    EXPECT_EQ(empty.root().group("runs/large").dataset("labels").dims(), (std::vector<uint64_t>{0}));
  }
  const auto merge = run_varbench(fmt::format("merge {0}/m.h5 {0}/e.shard-0-of-2.h5 {0}/e.shard-1-of-2.h5", dir));
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  h5::File m(dir + "/m.h5", h5::File::Mode::kReadOnly);
  EXPECT_EQ(m.root().group("runs/large").dataset("labels").dims(), (std::vector<uint64_t>{2}));
}

TEST(ShardedSweep, AnEditedExperimentRunWithFreshMergesFromTheNewText) {
  // 4 images in 2 shards, then the experiment edited to 6 images and run again with --fresh: the shard
  // files' experiment text is the new one, so merge plans (and checks) 6 images, not 4.
  const auto dir = testing::temp_dir("shard_fresh");
  std::string text = kExperiment;
  text.replace(text.find("images = 8"), 10, "images = 4");
  std::ofstream(dir + "/exp.toml") << text;
  auto run_shards = [&](const std::string& extra) {
    for (int i = 0; i < 2; ++i) {
      const auto r = run_varbench(fmt::format("run {0}/exp.toml --out {0}/e.h5 --shard {1}/2 --threads 2 --quiet{2}", dir, i, extra));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  };
  run_shards("");
  text.replace(text.find("images = 4"), 10, "images = 6");
  std::ofstream(dir + "/exp.toml") << text;
  run_shards(" --fresh");
  const auto merge = run_varbench(fmt::format("merge {0}/m.h5 {0}/e.shard-0-of-2.h5 {0}/e.shard-1-of-2.h5", dir));
  ASSERT_EQ(merge.exit_code, 0) << merge.output;
  h5::File m(dir + "/m.h5", h5::File::Mode::kReadOnly);
  EXPECT_EQ(m.root().group("runs/large").dataset("labels").dims(), (std::vector<uint64_t>{6}));
  EXPECT_EQ(m.root().attr_string("experiment_toml"), text);
}

}  // namespace
}  // namespace varbench
