#include "harness/analysis/inception_scoring.h"

#include <cmath>
#include <iostream>

#include <fmt/format.h>

#include "formats/file_lock.h"
#include "formats/hdf5.h"
#include "harness/experiment/run_identity.h"
#include "harness/platform/error_text.h"
#include "harness/platform/progress.h"
#include "harness/platform/provenance.h"
#include "harness/results/schema.h"
#include "metrics/extract.h"
#include "metrics/frechet.h"
#include "metrics/image_sources.h"
#include "metrics/inception_score.h"
#include "metrics/kid.h"
#include "metrics/precision_recall.h"

namespace varbench {

namespace {

// Features of one run: the cache when it covers every image, otherwise extracted and cached.
metrics::ExtractedFeatures run_features(const h5::Group& run, const std::string& file, const InceptionScoringOptions& o,
                                        const InceptionNetworkFn& network, const std::string& label) {
  const auto cache_path = std::string(schema::kFeatureStats) + "/" + metrics::profile_name(o.profile);
  auto images = run.dataset(schema::kImages);
  const int64_t n = static_cast<int64_t>(images.rows());
  // The cache is of the network that made it: with --inception given, a cache of other weights (by
  // content; or of unrecorded weights) is extracted again. Without --inception the cache is what there is.
  const auto weights_identity = o.inception.empty() ? std::string() : file_identity(o.inception);
  const bool same_network = o.inception.empty() || (run.has(cache_path) && run.group(cache_path).has_attr("inception_identity") &&
                                                    run.group(cache_path).attr_string("inception_identity") == weights_identity);
  if (!o.recompute && same_network && run.has(cache_path + "/pool3/features") && run.has(cache_path + "/logits/features") &&
      run.has(cache_path + "/spatial/sum") && run.group(cache_path + "/pool3").attr_int("n") == n)
    return metrics::read_feature_cache(run.group(cache_path), o.profile);
  metrics::ExtractOptions eo;
  eo.profile = o.profile;
  eo.batch_size = o.batch_size;
  auto source = metrics::open_hdf5_images(std::move(images), file);
  auto f = metrics::extract_features(network(label), *source, eo, progress_bar("features " + label));
  metrics::write_feature_cache(run.require_group(cache_path), f);
  run.group(cache_path).set_attr("inception_identity", weights_identity);  // extraction needs --inception: never ""
  return f;
}

}  // namespace

std::vector<RunInceptionScores> score_runs_inception(const InceptionScoringOptions& o, const metrics::EvaluationSet& ref,
                                                     const InceptionNetworkFn& network) {
  const auto ref_pool3 = metrics::prepare_frechet_reference(*ref.pool3);
  std::optional<metrics::FrechetReference> ref_spatial;
  if (ref.spatial) ref_spatial = metrics::prepare_frechet_reference(*ref.spatial);

  // Radii of the reference manifold, once for all runs (10,000 x 10,000 distances for the ADM batch).
  torch::Tensor ref_radii;
  if (ref.pool3_features.defined() && ref.pool3_features.size(0) > 3)
    ref_radii = metrics::manifold_radii(ref.pool3_features, ref.name, 3, progress_bar("reference manifold"));

  FileLock lock(o.results);  // `score` writes metrics into the result file: never beside a running sweep
  h5::File file(o.results, h5::File::Mode::kReadWrite);
  const auto root = file.root();
  if (!root.has(schema::kRuns)) throw std::runtime_error(o.results + ": no /runs group (not a varbench result file)");
  const auto runs = root.group(schema::kRuns);
  std::vector<RunInceptionScores> rows;
  for (const auto& name : runs.children()) {
    const auto run = runs.group(name);
    const std::string status = run.has_attr(schema::kStatus) ? run.attr_string(schema::kStatus) : "";
    if (status != schema::kCompleted || !run.has(schema::kImages)) {
      std::cerr << fmt::format("  {}: skipped ({})\n", name, status != schema::kCompleted ? "status " + (status.empty() ? "unknown" : status)
                                                                                    : "no images stored");
      continue;
    }
    RunInceptionScores r;
    r.run = name;
    try {
      const auto f = run_features(run, o.results, o, network, name);
      r.images = f.count();
      const auto src = o.results + ":/runs/" + name;
      auto skipped = [&](const std::string& what) { std::cerr << fmt::format("  {}: {} skipped\n", name, what); };
      r.fid = metrics::frechet_distance(f.pool3_stats.gaussian(src + " (pool3)"), ref_pool3).distance;
      if (f.pool3.defined() && r.images >= 2 * kFidBootstrapGroups)
        r.fid_interval = metrics::grouped_frechet_interval(f.pool3, *r.fid, ref_pool3, kFidBootstrapGroups, o.bootstrap);
      else
        skipped(fmt::format("the FID's interval ({} images; the bootstrap over {} groups needs {})", r.images, kFidBootstrapGroups,
                            2 * kFidBootstrapGroups));
      if (ref_spatial) r.sfid = metrics::frechet_distance(f.spatial_stats.gaussian(src + " (spatial)"), *ref_spatial).distance;
      const auto is_adm = metrics::inception_score_adm(f.logits, src);
      r.is_adm = is_adm.mean;
      r.is_adm_std = is_adm.std;
      if (r.images >= 10) {
        const auto is_tf = metrics::inception_score_torch_fidelity(f.logits, src);
        r.is_tf = is_tf.mean;
        r.is_tf_std = is_tf.std;
      } else {
        skipped(fmt::format("Inception Score with 10 splits ({} images)", r.images));
      }
      if (ref.pool3_features.defined() && r.images > 3 && ref.pool3_features.size(0) > 3) {
        const auto pr = metrics::precision_recall(ref.pool3_features, ref.name, f.pool3, src, 3,
                                                  progress_bar("precision/recall " + name), ref_radii);
        r.precision = pr.precision;
        r.recall = pr.recall;
      } else {
        skipped(ref.pool3_features.defined() ? fmt::format("precision/recall ({} images; k=3 needs 4)", r.images)
                                             : std::string("precision/recall (the reference has no per-image features)"));
      }
      if (ref.pool3_features.defined() && r.images >= o.kid_subset_size && ref.pool3_features.size(0) >= o.kid_subset_size) {
        const auto kid = metrics::kernel_inception_distance(f.pool3, src, ref.pool3_features, ref.name, o.kid_subsets,
                                                            o.kid_subset_size, 2020, progress_bar("KID " + name));
        r.kid = kid.mean;
        r.kid_std = kid.std;
      } else {
        skipped(fmt::format("KID (subsets of {} from {} images)", o.kid_subset_size, r.images));
      }
      if (run.has(schema::kMetrics)) run.remove(schema::kMetrics);
      const auto m = run.create_group(schema::kMetrics);
      auto put = [&](const char* key, const std::optional<double>& v) {
        if (v) m.set_attr(key, *v);
      };
      put("fid", r.fid);
      if (std::isfinite(r.fid_interval.lower)) {
        m.set_attr("fid_lower", r.fid_interval.lower);
        m.set_attr("fid_upper", r.fid_interval.upper);
        m.set_attr("interval_confidence", o.bootstrap.confidence);
        m.set_attr("bootstrap_resamples", o.bootstrap.resamples);
        m.set_attr("bootstrap_seed", static_cast<int64_t>(o.bootstrap.seed));
        m.set_attr("bootstrap_groups", kFidBootstrapGroups);
      }
      put("sfid", r.sfid);
      put("inception_score", r.is_adm);
      put("inception_score_std", r.is_adm_std);
      put("inception_score_torch_fidelity", r.is_tf);
      put("inception_score_torch_fidelity_std", r.is_tf_std);
      put("precision", r.precision);
      put("recall", r.recall);
      put("kid", r.kid);
      put("kid_std", r.kid_std);
      m.set_attr("num_images", r.images);
      m.set_attr("reference", o.reference);
      m.set_attr("reference_statistics", ref.statistics_origin);
      m.set_attr("profile", metrics::profile_name(o.profile));
      m.set_attr("inception_weights", o.inception);
      m.set_attr("timestamp_utc", utc_timestamp());
      file.flush();
    } catch (const std::exception& e) {
      r.error = one_line(e);
      std::cerr << fmt::format("  {}: failed: {}\n", name, r.error);
    }
    rows.push_back(r);
  }
  return rows;
}

}  // namespace varbench
