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

// Run attributes (/runs/<run>).
inline constexpr const char* kSchemaVersion = "schema_version";    // root
inline constexpr const char* kExperimentFile = "experiment_file";  // root
inline constexpr const char* kRunId = "run_id";
inline constexpr const char* kRunIndex = "run_index";
inline constexpr const char* kEngine = "engine";            // the [[engines]] entry's name
inline constexpr const char* kEngineType = "engine_type";
inline constexpr const char* kDevice = "device";
inline constexpr const char* kDtype = "dtype";
inline constexpr const char* kBatchSize = "batch_size";
inline constexpr const char* kNumImages = "num_images";
inline constexpr const char* kError = "error";              // one line, failed runs
inline constexpr const char* kIdentityJson = "identity_json";  // what resume and merge compare
inline constexpr const char* kSettingsJson = "settings_json";
inline constexpr const char* kMeasurement = "measurement";  // how the process measured (provenance.h measurement_of)
inline constexpr const char* kMixedHardware = "mixed_hardware";
inline constexpr const char* kSegments = "segments";        // processes that measured the run (resumed: 2)
inline constexpr const char* kShardMeasurementJson = "shard_measurement_json";
inline constexpr const char* kSegmentMeasurementJson = "segment_measurement_json";

// A run's partial file (<out>.partial/): its group "run", and the saved progress of a resumable run.
inline constexpr const char* kPartialRun = "run";
inline constexpr const char* kResume = "resume";
inline constexpr const char* kTimedBatches = "timed_batches";

// timing/: one row per timed batch, and one per phase of each batch.
inline constexpr const char* kBatchRepetition = "batch_repetition";
inline constexpr const char* kBatchImages = "batch_images";
inline constexpr const char* kBatchMs = "batch_ms";
inline constexpr const char* kBatchWithDecodeMs = "batch_with_decode_ms";
inline constexpr const char* kScaleMs = "scale_ms";
inline constexpr const char* kPhaseBatch = "phase_batch";
inline constexpr const char* kPhaseKind = "phase_kind";        // also in memory/
inline constexpr const char* kPhaseFirstScale = "phase_first_scale";  // also in memory/
inline constexpr const char* kPhaseLastScale = "phase_last_scale";    // also in memory/
inline constexpr const char* kPhaseMs = "phase_ms";
inline constexpr const char* kPhaseKinds = "phase_kinds";      // attribute: the names of the phase_kind codes

// memory/: attributes, and one row per phase of the memory pass.
inline constexpr const char* kMeasured = "measured";
inline constexpr const char* kPeakBytes = "peak_bytes";
inline constexpr const char* kWeightsBytes = "weights_bytes";
inline constexpr const char* kKvCacheBytes = "kv_cache_bytes";
inline constexpr const char* kActivationsBytes = "activations_bytes";
inline constexpr const char* kPeakRssBytes = "peak_rss_bytes";
inline constexpr const char* kKvFilledBytes = "kv_filled_bytes";
inline constexpr const char* kPeakPhase = "peak_phase";
inline constexpr const char* kResidentAtStartBytes = "resident_at_start_bytes";
inline constexpr const char* kPhaseAllocatedBytes = "phase_allocated_bytes";
inline constexpr const char* kPhaseKvAllocatedBytes = "phase_kv_allocated_bytes";
inline constexpr const char* kPhaseKvFilledBytes = "phase_kv_filled_bytes";

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
