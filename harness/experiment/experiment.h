#pragma once
// Experiment files (TOML) and their expansion into runs. The sweepable settings (device, dtype, batch
// size, sampling, engine parameters) may be lists; the runs
// are the Cartesian product, ordered so that the expensive axes (device, dtype: they decide which
// models are loaded) change least. Documented in docs/experiments.md.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engines/engine.h"
#include "engines/model/loading.h"
#include "engines/model/sampling.h"

namespace varbench {

struct ModelSpec {
  std::string name;
  std::string checkpoint;
  std::string config;  // named architecture: random init, or the random-init override of a checkpoint
  uint64_t init_seed = 0;
  int64_t line = 0;  // where the experiment file declares it (0: unknown)
  ModelSource source(bool random_override) const;  // throws naming the model when the override has no config
};

// One run: everything that decides what is generated and how it is measured.
struct RunSpec {
  std::string id;           // stable name of the run (HDF5 group), from the engine and the swept values
  int64_t index = 0;        // position in the sweep
  std::string engine_name;  // the [[engines]] entry's name
  std::string engine_type;
  EngineParams engine_params;
  std::string device = "cpu";
  std::string dtype = "fp32";
  int64_t batch_size = 1;
  SamplingSettings sampling;
  std::map<std::string, std::string> swept;  // axis -> value for the axes with more than one value
  // Where the experiment file gives it: "engine" -> the [[engines]] entry, each parameter -> its key,
  // "sampling" -> the sampling table that applies (0: unknown). For errors that name file:line.
  std::map<std::string, int64_t> lines;
  std::string settings_json() const;          // the requested settings, for the result file
};

// [quality]: scores every completed run after the sweep (harness/analysis/world_scoring.h). Only the toy world's
// feature network is scored inline; Inception FID over 50,000 images is `varbench score`'s job.
struct QualitySpec {
  std::string features;   // "world"
  std::string network;    // the feature network's safetensors
  std::string reference;  // reference features (.npz: features, labels)
  // The intervals' bootstrap (metrics/uncertainty.h): resamples over the generated images (also the
  // permutations of the paired test against the baseline run) and the seed of the draws.
  int64_t resamples = 1000;
  uint64_t interval_seed = 0;
  int64_t line = 0;
};

struct Experiment {
  std::string path, name, toml_text;
  std::string out;  // result file
  int64_t threads = 0;
  int64_t warmup_batches = 1;
  int64_t repetitions = 3;
  std::vector<int64_t> classes;  // one entry per image slot group (see images_per_class)
  int64_t images_per_class = 1;
  uint64_t seed = 0;
  RngMode rng = RngMode::kPerImage;
  bool store_images = true;
  std::string baseline;  // engine name whose runs give the speed-ups
  std::vector<ModelSpec> models;
  ModelSpec vqvae;
  std::vector<RunSpec> runs;
  std::optional<QualitySpec> quality;
};

// Parses and expands; throws one-line errors naming the file, line and key.
Experiment load_experiment(const std::string& path);
Experiment parse_experiment(const std::string& toml_text, const std::string& path);

}  // namespace varbench
