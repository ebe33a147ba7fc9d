#pragma once
// Every name in a result file, in one place: writers and readers spell groups, datasets, attributes and
// run states only through these (the layout is documented in docs/hdf5-schema.md).
#include <cstdint>
#include <string>

namespace varbench::schema {

// Root attributes.
inline constexpr const char* kExperimentToml = "experiment_toml";  // the text of the sweep that wrote the file last

// Groups: /runs/<run>/{timing, memory, engine_stats, metrics, metrics_world/vs_baseline, feature_stats/<profile>}.
inline constexpr const char* kRuns = "runs";
inline constexpr const char* kTiming = "timing";
inline constexpr const char* kMemory = "memory";
inline constexpr const char* kEngineStats = "engine_stats";
inline constexpr const char* kMetrics = "metrics";               // Inception metrics (varbench score)
inline constexpr const char* kMetricsWorld = "metrics_world";    // toy-world metrics (world scoring)
inline constexpr const char* kVsBaseline = "vs_baseline";        // inside metrics_world: the paired comparison
inline constexpr const char* kFeatureStats = "feature_stats";    // cached Inception statistics (metrics/evaluation_set)

// A run's state: the attribute and its values.
inline constexpr const char* kStatus = "status";
inline constexpr const char* kCompleted = "completed";
inline constexpr const char* kFailed = "failed";
inline constexpr const char* kRunning = "running";  // written when a run starts; a file left so was killed

// Per-image datasets of a run (and of `varbench generate`'s file).
inline constexpr const char* kLabels = "labels";
inline constexpr const char* kIndexInClass = "index_in_class";
inline constexpr const char* kImageIndex = "image_index";
inline constexpr const char* kSeeds = "seeds";
inline constexpr const char* kTokens = "tokens";  // group of scale_0 .. scale_9
inline constexpr const char* kImages = "images";
std::string token_dataset(int64_t scale);

}  // namespace varbench::schema
