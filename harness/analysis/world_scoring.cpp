#include "harness/analysis/world_scoring.h"

#include <cmath>
#include <iostream>
#include <map>
#include <random>

#include <fmt/format.h>

#include "formats/file_lock.h"
#include "formats/hdf5.h"
#include "harness/results/record_reader.h"
#include "harness/platform/error_text.h"
#include "harness/experiment/experiment.h"
#include "harness/platform/provenance.h"
#include "harness/experiment/run_identity.h"
#include "harness/results/sample_writer.h"
#include "metrics/image_sources.h"
#include "metrics/uncertainty.h"
#include "metrics/world_features.h"
#include "metrics/world_quality.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {

// Scores are up to date when they were computed from this many images with the same feature network and
// reference by content (a network retrained into the same path is another network), and their intervals
// with the same bootstrap.
bool up_to_date(const h5::Group& run, int64_t images, const std::string& network_identity, const std::string& reference_identity,
                const metrics::BootstrapSettings& bootstrap) {
  if (!run.has(schema::kMetricsWorld)) return false;
  const auto m = run.group(schema::kMetricsWorld);
  auto same = [&](const char* attr, const std::string& value) { return m.has_attr(attr) && m.attr_string(attr) == value; };
  auto same_int = [&](const char* attr, int64_t value) { return m.has_attr(attr) && m.attr_int(attr) == value; };
  return same_int(schema::kNumImages, images) && same("feature_network_identity", network_identity) &&
         same("reference_identity", reference_identity) && same_int("bootstrap_resamples", bootstrap.resamples) &&
         same_int("bootstrap_seed", static_cast<int64_t>(bootstrap.seed));
}

void set_interval(const h5::Group& m, const std::string& key, const metrics::Interval& interval) {
  if (!std::isfinite(interval.lower)) return;
  m.set_attr(key + "_lower", interval.lower);
  m.set_attr(key + "_upper", interval.upper);
}

// The per-image ingredients of a scored run, read back from its metrics_world group.
metrics::WorldImageScores image_scores_of(const h5::Group& run, const std::string& where, const metrics::WorldReference& reference) {
  const auto m = run.group(schema::kMetricsWorld);
  auto read_matrix = [&](const char* name) {
    auto ds = m.dataset(name);
    const auto dims = ds.dims();
    const auto values = ds.read<float>();
    return torch::tensor(values, torch::kFloat32).view({static_cast<int64_t>(dims.at(0)), static_cast<int64_t>(dims.at(1))});
  };
  const auto labels = torch::tensor(run.dataset(schema::kLabels).read<int64_t>(), torch::kInt64);
  return metrics::world_image_scores(read_matrix("features"), read_matrix("logits"), labels, where, reference);
}

metrics::WorldQuality point_of(const h5::Group& run) {
  const auto m = run.group(schema::kMetricsWorld);
  metrics::WorldQuality q;
  q.images = m.attr_int(schema::kNumImages);
  q.fd = m.attr_double("fd");
  q.class_accuracy = m.attr_double("class_accuracy");
  q.precision = m.attr_double("precision");
  q.recall = m.attr_double("recall");
  if (m.has_attr("kid")) q.kid = m.attr_double("kid");
  return q;
}

std::string scores_id_of(const h5::Group& run) {
  const auto m = run.group(schema::kMetricsWorld);
  return m.has_attr("scores_id") ? m.attr_string("scores_id") : "";
}
}  // namespace

namespace {
// Every scored run against the experiment's baseline run of its context (harness/results/run_record.h
// comparison_context), into /runs/<run>/metrics_world/vs_baseline. Recomputed when either run was scored
// again (their scores_id), the baseline changed, or the bootstrap did; removed when the run has no baseline.
void compare_with_baseline(const std::string& result_path, h5::File& file, const QualitySpec& q,
                           const metrics::BootstrapSettings& bootstrap, const WorldScoringOptions& o,
                           std::optional<metrics::WorldReference>& reference, WorldScoringOutcome& outcome,
                           std::map<std::string, metrics::WorldImageScores> cache) {
  const auto root = file.root();
  if (!root.has_attr(schema::kExperimentToml)) return;
  std::string baseline;
  try {
    baseline = parse_experiment(root.attr_string(schema::kExperimentToml), result_path).baseline;
  } catch (const std::exception& e) {  // the scores stand; only the comparisons need the experiment
    std::cerr << fmt::format("  comparisons with the baseline run skipped: the file's experiment does not parse: {}\n", one_line(e));
    return;
  }
  const auto runs = root.group(schema::kRuns);
  std::map<std::string, std::string> baseline_of_context;  // context -> baseline run
  std::vector<std::pair<std::string, std::string>> scored;  // (run, context)
  for (const auto& name : runs.children()) {
    const auto run = runs.group(name);
    if (!run.has(schema::kMetricsWorld) || !run.group(schema::kMetricsWorld).has("features")) continue;
    const auto record = read_run_record(result_path, run, name);
    if (record.status != schema::kCompleted) continue;
    const auto context = comparison_context(record);
    if (!baseline.empty() && record.spec.engine_name == baseline) baseline_of_context.emplace(context, name);
    scored.emplace_back(name, context);
  }
  // `cache` holds the per-image scores of the runs scored just now; the others are read back from their group.
  auto scores_of = [&](const std::string& name) -> const metrics::WorldImageScores& {
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, image_scores_of(runs.group(name), result_path + ":/runs/" + name, *reference)).first;
    return it->second;
  };
  for (const auto& [name, context] : scored) {
    const auto run = runs.group(name);
    const auto m = run.group(schema::kMetricsWorld);
    const auto b = baseline_of_context.find(context);
    if (b == baseline_of_context.end() || b->second == name) {
      if (m.has(schema::kVsBaseline)) m.remove(schema::kVsBaseline);
      continue;
    }
    const auto base = runs.group(b->second);
    if (m.has(schema::kVsBaseline)) {
      const auto v = m.group(schema::kVsBaseline);
      auto same = [&](const char* attr, const std::string& value) { return v.has_attr(attr) && v.attr_string(attr) == value; };
      if (!o.recompute && same("baseline_run", b->second) && same("run_scores_id", scores_id_of(run)) &&
          same("baseline_scores_id", scores_id_of(base)) && v.has_attr("bootstrap_resamples") &&
          v.attr_int("bootstrap_resamples") == bootstrap.resamples && v.attr_int("bootstrap_seed") == static_cast<int64_t>(bootstrap.seed))
        continue;
      m.remove(schema::kVsBaseline);
    }
    try {
      if (!reference) reference = metrics::load_world_reference(q.reference);
      const auto c = metrics::compare_world_quality(scores_of(name), point_of(run), scores_of(b->second), point_of(base), *reference, bootstrap);
      const auto v = m.create_group(schema::kVsBaseline);
      v.set_attr("baseline_run", b->second);
      v.set_attr("paired", static_cast<int64_t>(c.paired));
      v.set_attr("images", c.images);
      v.set_attr("verdict", c.verdict);
      for (const auto& [key, value, interval] :
           {std::tuple{"fd_difference", c.fd_difference, c.fd_difference_interval},
            {"class_accuracy_difference", c.class_accuracy_difference, c.class_accuracy_difference_interval},
            {"precision_difference", c.precision_difference, c.precision_difference_interval},
            {"recall_difference", c.recall_difference, c.recall_difference_interval},
            {"kid_difference", c.kid_difference, c.kid_difference_interval}}) {
        if (!std::isfinite(value)) continue;
        v.set_attr(key, value);
        set_interval(v, key, interval);
      }
      v.set_attr("fd_detectable_difference", c.fd_detectable_difference);
      if (c.paired) {
        v.set_attr("fd_permutation_p", c.fd_permutation_p);
        v.set_attr("permutations", c.permutations);
        v.set_attr("mcnemar_p", c.mcnemar_p);
      }
      v.set_attr("interval_confidence", bootstrap.confidence);
      v.set_attr("bootstrap_resamples", bootstrap.resamples);
      v.set_attr("bootstrap_seed", static_cast<int64_t>(bootstrap.seed));
      v.set_attr("run_scores_id", scores_id_of(run));
      v.set_attr("baseline_scores_id", scores_id_of(base));
      file.flush();
      if (!o.quiet)
        std::cerr << fmt::format("  {} vs {}: FD {:+.3f} [{:+.3f}, {:+.3f}]{}: {}\n", name, b->second, c.fd_difference,
                                 c.fd_difference_interval.lower, c.fd_difference_interval.upper,
                                 c.paired ? fmt::format(" (paired, permutation p = {:.3f})", c.fd_permutation_p) : " (not paired)",
                                 c.verdict);
    } catch (const std::exception& e) {
      ++outcome.failed;
      std::cerr << fmt::format("  {}: comparison with {} failed: {}\n", name, b->second, one_line(e));
    }
  }
}
}  // namespace

WorldScoringOutcome score_runs_world(const std::string& result_path, const QualitySpec& q, const WorldScoringOptions& o) {
  WorldScoringOutcome outcome;
  FileLock lock(result_path);  // scores go into the result file: never beside a running sweep
  h5::File file(result_path, h5::File::Mode::kReadWrite);
  const auto root = file.root();
  if (!root.has(schema::kRuns)) throw std::runtime_error(result_path + ": no /runs group (not a varbench result file)");
  const auto runs = root.group(schema::kRuns);
  std::optional<metrics::WorldFeatureNet> net;  // loaded when a run needs scoring
  std::optional<metrics::WorldReference> reference;
  const auto network_identity = file_identity(q.network), reference_identity = file_identity(q.reference);
  metrics::BootstrapSettings bootstrap;
  bootstrap.resamples = bootstrap.permutations = q.resamples;
  bootstrap.seed = q.interval_seed;
  std::mt19937_64 ids(std::random_device{}());
  std::map<std::string, metrics::WorldImageScores> scored_now;  // per-image scores, reused by the comparisons
  for (const auto& name : runs.children()) {
    if (!o.runs.empty() && !o.runs.count(name)) continue;
    const auto run = runs.group(name);
    const std::string status = run.has_attr(schema::kStatus) ? run.attr_string(schema::kStatus) : "";
    if (status != schema::kCompleted || !run.has(schema::kImages) || !run.has(schema::kLabels)) continue;
    // The null engine generates nothing (its images are blank placeholders): no quality to score.
    if (run.has_attr(schema::kEngineType) && run.attr_string(schema::kEngineType) == "null") continue;
    const auto where = result_path + ":/runs/" + name;
    try {
      auto images = run.dataset(schema::kImages);
      const auto n = static_cast<int64_t>(images.rows());
      if (!o.recompute && up_to_date(run, n, network_identity, reference_identity, bootstrap)) {
        ++outcome.up_to_date;
        continue;
      }
      if (!net) {
        net = metrics::load_world_feature_net(q.network, torch::kCPU);
        reference = metrics::load_world_reference(q.reference);
      }
      auto source = metrics::open_hdf5_images(std::move(images), result_path);
      const auto out = metrics::world_features_of(*net, *source, o.batch_size);
      const auto labels_values = run.dataset(schema::kLabels).read<int64_t>();
      const auto labels = torch::tensor(labels_values, torch::kInt64);
      const auto s = metrics::world_quality(out.features, out.logits, labels, where, *reference);
      auto image_scores = metrics::world_image_scores(out.features, out.logits, labels, where, *reference);
      const auto intervals = metrics::world_quality_intervals(image_scores, s, *reference, bootstrap);
      scored_now.insert_or_assign(name, std::move(image_scores));
      if (run.has(schema::kMetricsWorld)) run.remove(schema::kMetricsWorld);
      const auto m = run.create_group(schema::kMetricsWorld);
      m.set_attr("fd", s.fd);
      m.set_attr("precision", s.precision);
      m.set_attr("recall", s.recall);
      m.set_attr("class_accuracy", s.class_accuracy);
      if (s.kid) {
        m.set_attr("kid", *s.kid);
        m.set_attr("kid_std", *s.kid_std);
      }
      m.set_attr(schema::kNumImages, s.images);
      // 95% intervals (metrics/uncertainty.h): FD, recall and KID by a bootstrap over the generated images
      // with the reference fixed, centred on the estimate; class accuracy and precision by Wilson's interval.
      set_interval(m, "fd", intervals.fd);
      set_interval(m, "class_accuracy", intervals.class_accuracy);
      set_interval(m, "precision", intervals.precision);
      set_interval(m, "recall", intervals.recall);
      set_interval(m, "kid", intervals.kid);
      m.set_attr("fd_bootstrap_sd", intervals.fd_bootstrap_sd);
      m.set_attr("interval_confidence", bootstrap.confidence);
      m.set_attr("bootstrap_resamples", bootstrap.resamples);
      m.set_attr("bootstrap_seed", static_cast<int64_t>(bootstrap.seed));
      m.set_attr("interval_method",
                 std::string("fd, recall, kid: bootstrap over generated images (reference fixed), centred percentile; "
                             "class_accuracy, precision: Wilson score"));
      // Names this scoring: a comparison with the baseline run is current while both runs' scores_id are.
      m.set_attr("scores_id", fmt::format("{}-{:016x}", utc_timestamp(), ids()));
      // Per-image features and logits, for analyses beyond the aggregates (two-sample tests, per-class).
      const auto features = out.features.contiguous(), logits = out.logits.contiguous();
      m.write<float>("features", {static_cast<uint64_t>(n), static_cast<uint64_t>(features.size(1))}, features.data_ptr<float>());
      m.write<float>("logits", {static_cast<uint64_t>(n), static_cast<uint64_t>(logits.size(1))}, logits.data_ptr<float>());
      m.set_attr("feature_network", q.network);
      m.set_attr("reference", q.reference);
      m.set_attr("feature_network_identity", network_identity);
      m.set_attr("reference_identity", reference_identity);
      m.set_attr("reference_images", reference->features.size(0));
      m.set_attr("timestamp_utc", utc_timestamp());
      file.flush();
      ++outcome.scored;
      if (!o.quiet)
        std::cerr << fmt::format("  {}: FD {:.3f} [{:.3f}, {:.3f}], class accuracy {:.3f} [{:.3f}, {:.3f}], precision {:.3f}, recall "
                                 "{:.3f} ({} images)\n",
                                 name, s.fd, intervals.fd.lower, intervals.fd.upper, s.class_accuracy, intervals.class_accuracy.lower,
                                 intervals.class_accuracy.upper, s.precision, s.recall, s.images);
    } catch (const std::exception& e) {
      ++outcome.failed;
      std::cerr << fmt::format("  {}: world quality failed: {}\n", name, one_line(e));
    }
  }
  compare_with_baseline(result_path, file, q, bootstrap, o, reference, outcome, std::move(scored_now));
  return outcome;
}

}  // namespace varbench
