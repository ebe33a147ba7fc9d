#include "harness/world_scoring.h"

#include <iostream>

#include <fmt/format.h>

#include "formats/file_lock.h"
#include "formats/hdf5.h"
#include "harness/error_text.h"
#include "harness/provenance.h"
#include "harness/run_identity.h"
#include "harness/sample_writer.h"
#include "metrics/image_sources.h"
#include "metrics/world_features.h"
#include "metrics/world_quality.h"

namespace varbench {

namespace {
constexpr const char* kGroup = "metrics_world";

// Scores are up to date when they were computed from this many images with the same feature network and
// reference by content (a network retrained into the same path is another network).
bool up_to_date(const h5::Group& run, int64_t images, const std::string& network_identity, const std::string& reference_identity) {
  if (!run.has(kGroup)) return false;
  const auto m = run.group(kGroup);
  auto same = [&](const char* attr, const std::string& value) { return m.has_attr(attr) && m.attr_string(attr) == value; };
  return m.has_attr("num_images") && m.attr_int("num_images") == images && same("feature_network_identity", network_identity) &&
         same("reference_identity", reference_identity);
}
}  // namespace

WorldScoringOutcome score_runs_world(const std::string& result_path, const QualitySpec& q, const WorldScoringOptions& o) {
  WorldScoringOutcome outcome;
  FileLock lock(result_path);  // scores go into the result file: never beside a running sweep
  h5::File file(result_path, h5::File::Mode::kReadWrite);
  const auto root = file.root();
  if (!root.has("runs")) throw std::runtime_error(result_path + ": no /runs group (not a varbench result file)");
  const auto runs = root.group("runs");
  std::optional<metrics::WorldFeatureNet> net;  // loaded when a run needs scoring
  std::optional<metrics::WorldReference> reference;
  const auto network_identity = file_identity(q.network), reference_identity = file_identity(q.reference);
  for (const auto& name : runs.children()) {
    if (!o.runs.empty() && !o.runs.count(name)) continue;
    const auto run = runs.group(name);
    const std::string status = run.has_attr("status") ? run.attr_string("status") : "";
    if (status != "completed" || !run.has(schema::kImages) || !run.has(schema::kLabels)) continue;
    // The null engine generates nothing (its images are blank placeholders): no quality to score.
    if (run.has_attr("engine_type") && run.attr_string("engine_type") == "null") continue;
    const auto where = result_path + ":/runs/" + name;
    try {
      auto images = run.dataset(schema::kImages);
      const auto n = static_cast<int64_t>(images.rows());
      if (!o.recompute && up_to_date(run, n, network_identity, reference_identity)) {
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
      if (run.has(kGroup)) run.remove(kGroup);
      const auto m = run.create_group(kGroup);
      m.set_attr("fd", s.fd);
      m.set_attr("precision", s.precision);
      m.set_attr("recall", s.recall);
      m.set_attr("class_accuracy", s.class_accuracy);
      if (s.kid) {
        m.set_attr("kid", *s.kid);
        m.set_attr("kid_std", *s.kid_std);
      }
      m.set_attr("num_images", s.images);
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
        std::cerr << fmt::format("  {}: FD {:.3f}, class accuracy {:.3f}, precision {:.3f}, recall {:.3f} ({} images)\n", name, s.fd,
                                 s.class_accuracy, s.precision, s.recall, s.images);
    } catch (const std::exception& e) {
      ++outcome.failed;
      std::cerr << fmt::format("  {}: world quality failed: {}\n", name, one_line(e));
    }
  }
  return outcome;
}

}  // namespace varbench
