// varbench score / fid / features: quality metrics with the FID Inception (metrics/).
//   score     adds FID, sFID, IS, precision/recall and KID to every completed run of a result file
//   fid       compares two image sets or statistics files, printing what the ADM evaluator prints
//             (and pytorch-fid's "FID:" line); inputs are .npz, PNG folders or result files
//   features  writes statistics and per-image features of one image set (pytorch-fid --save-stats)
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "harness/cli/commands.h"
#include "harness/platform/device.h"
#include "formats/hdf5.h"
#include "formats/image_files.h"
#include "harness/platform/progress.h"
#include "harness/platform/provenance.h"  // configure_threads
#include "harness/analysis/inception_scoring.h"
#include "harness/analysis/world_scoring.h"
#include "harness/results/record_reader.h"
#include "metrics/evaluation_set.h"
#include "metrics/frechet.h"
#include "metrics/inception_score.h"
#include "metrics/kid.h"
#include "metrics/linalg.h"
#include "metrics/precision_recall.h"
#include "metrics/uncertainty.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {

using metrics::EvaluationSet;

struct MetricsOptions {
  std::string inception;
  std::string profile = "adm";
  int64_t batch_size = 50;
  int threads = 0;
  std::string device = "cpu";
  bool ignore_stored_stats = false;
  int64_t kid_subsets = 100;
  int64_t kid_subset_size = 1000;
};

void add_common_options(CLI::App* cmd, MetricsOptions& o) {
  cmd->add_option("--inception", o.inception,
                  "FID Inception weights (.safetensors converted from pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                  "with scripts/convert_checkpoint.py); needed whenever features are computed from images");
  cmd->add_option("--profile", o.profile, "Preprocessing: adm (TF1 resize, as the ADM evaluator) or pytorch-fid")
      ->check(CLI::IsMember({"adm", "pytorch-fid"}))
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "Images per Inception forward pass")->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--device", o.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
}

// The network, loaded on first use (inputs that are statistics only need none).
class LazyInception {
 public:
  LazyInception(std::string path, torch::Device device) : path_(std::move(path)), device_(device) {}
  metrics::FidInception& get(const std::string& why) {
    if (!net_) {
      if (path_.empty())
        throw std::runtime_error(fmt::format("--inception WEIGHTS.safetensors is required to compute features of {}", why));
      net_ = std::make_unique<metrics::FidInception>(metrics::load_fid_inception(path_, device_));
    }
    return *net_;
  }

 private:
  std::string path_;
  torch::Device device_;
  std::unique_ptr<metrics::FidInception> net_;
};

struct Setup {
  metrics::Profile profile;
  torch::Device device{torch::kCPU};
  int threads = 0;
};

Setup setup(const MetricsOptions& o) {
  Setup s;
  s.profile = metrics::parse_profile(o.profile);
  s.threads = configure_threads(o.threads);
  metrics::linalg::set_blas_threads(s.threads);
  s.device = device::resolve(o.device);
  if (o.batch_size < 1) throw std::runtime_error(fmt::format("--batch-size {}: must be >= 1", o.batch_size));
  return s;
}

EvaluationSet load_set(const std::string& spec, const MetricsOptions& o, const Setup& s, LazyInception& net,
                       bool need_features) {
  metrics::EvaluationSetOptions eo;
  eo.extract.profile = s.profile;
  eo.extract.batch_size = o.batch_size;
  eo.need_features = need_features;
  eo.ignore_stored_statistics = o.ignore_stored_stats;
  eo.images_dataset = schema::kImages;
  return metrics::load_evaluation_set(spec, eo, [&]() -> metrics::FidInception& { return net.get(spec); },
                                      progress_bar(fmt::format("features {}", std::filesystem::path(spec).filename().string())));
}

std::string fmt_value(const std::optional<double>& v, const char* format = "{:.4f}") {
  return v ? fmt::format(fmt::runtime(format), *v) : "-";
}

// ------------------------------------------------------------------------------------------------
struct FidOptions : MetricsOptions {
  std::string reference, sample;
  bool kid = false;
  bool save_stats = false;
  int64_t dims = 2048;
  int num_workers = 0;
};

struct FeaturesOptions : MetricsOptions {
  std::string input, output;
  bool statistics_only = false;
  bool keep_stored_stats = false;
  bool overwrite = false;
};
int run_features(const FeaturesOptions& o);

int run_fid(const FidOptions& o) {
  if (o.save_stats) {  // pytorch-fid's --save-stats: the first path is the input, the second the output
    FeaturesOptions f;
    static_cast<MetricsOptions&>(f) = o;
    f.input = o.reference;
    f.output = o.sample;
    f.statistics_only = true;
    return run_features(f);
  }
  const auto s = setup(o);
  LazyInception net(o.inception, s.device);
  std::cerr << fmt::format("varbench fid: {} vs {} (profile {}, {} threads, Frechet distance via {})\n", o.reference, o.sample,
                           metrics::profile_name(s.profile), s.threads, metrics::linalg::backend_name());
  const auto ref = load_set(o.reference, o, s, net, /*need_features=*/true);
  const auto smp = load_set(o.sample, o, s, net, /*need_features=*/true);
  if (smp.logits.defined())
    std::cout << fmt::format("Inception Score: {}\n", metrics::inception_score_adm(smp.logits, smp.name).mean);
  const auto fid = metrics::frechet_distance(*smp.pool3, metrics::prepare_frechet_reference(*ref.pool3));
  std::cout << fmt::format("FID: {}\n", fid.distance);
  if (ref.spatial && smp.spatial)
    std::cout << fmt::format("sFID: {}\n",
                             metrics::frechet_distance(*smp.spatial, metrics::prepare_frechet_reference(*ref.spatial)).distance);
  if (ref.pool3_features.defined() && smp.pool3_features.defined()) {
    const auto pr = metrics::precision_recall(ref.pool3_features, ref.name, smp.pool3_features, smp.name, 3,
                                              progress_bar("precision/recall"));
    std::cout << fmt::format("Precision: {}\nRecall: {}\n", pr.precision, pr.recall);
    if (o.kid) {
      const auto kid = metrics::kernel_inception_distance(smp.pool3_features, smp.name, ref.pool3_features, ref.name,
                                                          o.kid_subsets, o.kid_subset_size, 2020, progress_bar("KID"));
      std::cout << fmt::format("KID: {} +- {}\n", kid.mean, kid.std);
    }
  }
  return 0;
}

// ------------------------------------------------------------------------------------------------
int run_features(const FeaturesOptions& o) {
  const auto s = setup(o);
  if (std::filesystem::exists(o.output) && !o.overwrite)
    throw std::runtime_error(fmt::format("{}: exists; pass --overwrite to replace it", o.output));
  LazyInception net(o.inception, s.device);
  metrics::ExtractOptions eo;
  eo.profile = s.profile;
  eo.batch_size = o.batch_size;
  eo.keep_features = !o.statistics_only;
  std::unique_ptr<metrics::ImageSource> images;
  std::string file, run;
  if (metrics::is_hdf5_spec(o.input, &file, &run))
    images = metrics::open_hdf5_images(file, metrics::resolve_run(file, run) + "/" + schema::kImages);
  else if (std::filesystem::is_directory(o.input))
    images = metrics::open_png_folder(o.input);
  else
    images = metrics::open_npz_images(o.input, "arr_0");
  std::cerr << fmt::format("varbench features: {} images of {} (profile {}, {} threads)\n", images->size(), images->name(),
                           metrics::profile_name(s.profile), s.threads);
  std::optional<metrics::StoredStatistics> stored;
  if (o.keep_stored_stats) {
    io::NpzReader npz(o.input);  // the statistics a reference batch ships (e.g. the ADM evaluator's)
    stored = metrics::StoredStatistics{metrics::read_npz_gaussian(npz, "mu", "sigma"), metrics::read_npz_gaussian(npz, "mu_s", "sigma_s")};
  }
  const auto f = metrics::extract_features(net.get(o.input), *images, eo, progress_bar("features"));
  metrics::write_features_npz(o.output, f, o.statistics_only, stored ? &*stored : nullptr);
  std::cout << fmt::format("wrote {}: statistics{} of {} images, profile {}\n", o.output,
                           o.statistics_only ? "" : " and per-image features", f.count(), metrics::profile_name(s.profile));
  return 0;
}

// ------------------------------------------------------------------------------------------------
struct ScoreOptions : MetricsOptions {
  std::string results, reference;
  std::string features = "inception", world_network;
  bool recompute = false;
  int64_t resamples = 0;  // 0: 1000 in the world feature space, 200 for the Inception FID
  uint64_t interval_seed = 0;
};

// --features world: the toy world's feature network instead of the FID Inception (harness/analysis/world_scoring.h).
int run_score_world(const ScoreOptions& o) {
  if (o.world_network.empty())
    throw std::runtime_error("--features world needs --world-network <world-features.safetensors>");
  configure_threads(o.threads);
  QualitySpec q;
  q.features = "world";
  q.network = o.world_network;
  q.reference = o.reference;
  if (o.resamples != 0 && (o.resamples < 100 || o.resamples > 100000))
    throw std::runtime_error(fmt::format("--resamples {}: between 100 and 100000", o.resamples));
  q.resamples = o.resamples == 0 ? 1000 : o.resamples;
  q.interval_seed = o.interval_seed;
  WorldScoringOptions so;
  so.recompute = o.recompute;
  so.batch_size = o.batch_size;
  std::cerr << fmt::format("varbench score: {} in the world feature space of {} against {}\n", o.results, q.network, q.reference);
  const auto outcome = score_runs_world(o.results, q, so);
  std::cout << "| run | images | FD (world) [95% CI] | class accuracy | precision | recall | KID | vs baseline (FD difference) |\n"
               "|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : read_run_records(o.results)) {
    if (r.world_quality.empty()) continue;
    // A value with its interval: "0.8125 [0.7281, 0.8757]".
    auto v = [&](const std::string& key, int digits) {
      const auto it = r.world_quality.find(key);
      if (it == r.world_quality.end()) return std::string("-");
      const auto lo = r.world_quality.find(key + "_lower"), hi = r.world_quality.find(key + "_upper");
      if (lo == r.world_quality.end() || hi == r.world_quality.end()) return fmt::format("{:.{}f}", it->second, digits);
      return fmt::format("{:.{}f} [{:.{}f}, {:.{}f}]", it->second, digits, lo->second, digits, hi->second, digits);
    };
    std::string versus = "-";
    if (!r.world_baseline_run.empty()) {
      const auto& d = r.world_vs_baseline;
      auto at = [&](const char* key) { const auto it = d.find(key); return it == d.end() ? std::nan("") : it->second; };
      versus = fmt::format("{} ({} {:+.4f} [{:+.4f}, {:+.4f}])", r.world_verdict, r.world_baseline_run, at("fd_difference"),
                           at("fd_difference_lower"), at("fd_difference_upper"));
    }
    std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", r.spec.id, r.num_images, v("fd", 4), v("class_accuracy", 4),
                             v("precision", 4), v("recall", 4), v("kid", 5), versus);
  }
  std::cerr << fmt::format("varbench score: {} runs scored, {} up to date, {} failed\n", outcome.scored, outcome.up_to_date,
                           outcome.failed);
  return outcome.failed == 0 ? 0 : 1;
}

int run_score(const ScoreOptions& o) {
  if (o.features == "world") return run_score_world(o);
  if (o.resamples != 0 && (o.resamples < 100 || o.resamples > 100000))
    throw std::runtime_error(fmt::format("--resamples {}: between 100 and 100000", o.resamples));
  metrics::BootstrapSettings bootstrap;
  bootstrap.resamples = o.resamples == 0 ? 200 : o.resamples;
  bootstrap.seed = o.interval_seed;
  const auto s = setup(o);
  LazyInception net(o.inception, s.device);
  std::cerr << fmt::format("varbench score: {} against {} (profile {}, {} threads)\n", o.results, o.reference,
                           metrics::profile_name(s.profile), s.threads);
  const auto ref = load_set(o.reference, o, s, net, /*need_features=*/true);
  InceptionScoringOptions so;
  so.results = o.results;
  so.reference = o.reference;
  so.inception = o.inception;
  so.profile = s.profile;
  so.batch_size = o.batch_size;
  so.recompute = o.recompute;
  so.kid_subsets = o.kid_subsets;
  so.kid_subset_size = o.kid_subset_size;
  so.bootstrap = bootstrap;
  const auto rows = score_runs_inception(so, ref, [&](const std::string& label) -> metrics::FidInception& { return net.get(label); });

  std::cout << fmt::format("reference {} ({} statistics), profile {}\n", o.reference, ref.statistics_origin,
                           metrics::profile_name(s.profile));
  std::cout << "| run | images | FID [95% CI] | sFID | IS (ADM) | IS (torch-fidelity) | precision | recall | KID |\n"
               "|---|---|---|---|---|---|---|---|---|\n";
  int failures = 0;
  for (const auto& r : rows) {
    if (!r.error.empty()) {
      ++failures;
      std::cout << fmt::format("| {} | - | failed: {} |\n", r.run, r.error);
      continue;
    }
    const auto is_tf = r.is_tf ? fmt::format("{:.3f} +- {:.3f}", *r.is_tf, *r.is_tf_std) : std::string("-");
    const auto kid = r.kid ? fmt::format("{:.5f} +- {:.5f}", *r.kid, *r.kid_std) : std::string("-");
    const auto fid = std::isfinite(r.fid_interval.lower)
                         ? fmt::format("{} [{:.4f}, {:.4f}]", fmt_value(r.fid), r.fid_interval.lower, r.fid_interval.upper)
                         : fmt_value(r.fid);
    std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.run, r.images, fid,
                             fmt_value(r.sfid), fmt_value(r.is_adm, "{:.3f}"), is_tf, fmt_value(r.precision),
                             fmt_value(r.recall), kid);
  }
  if (rows.empty()) std::cerr << "varbench score: no completed run with images\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace

void register_fid_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<FidOptions>();
  auto* cmd = app.add_subcommand("fid",
                                 "FID (and sFID, IS, precision/recall when images are given) of SAMPLE against REFERENCE, "
                                 "as the ADM evaluator prints them");
  cmd->add_option("reference", o->reference, "Reference: .npz (arr_0 images and/or mu/sigma), PNG folder or RESULTS.h5[:RUN]")
      ->required();
  cmd->add_option("sample", o->sample, "Sample set: the same kinds of input")->required();
  add_common_options(cmd, *o);
  cmd->add_flag("--ignore-stored-stats", o->ignore_stored_stats, "Compute statistics from the images even when mu/sigma are stored");
  cmd->add_flag("--kid", o->kid, "Also compute KID (torch-fidelity's subsets)");
  cmd->add_flag("--save-stats", o->save_stats,
                "As pytorch-fid: write the statistics of the first path into the second (= features --stats-only)");
  cmd->add_option("--dims", o->dims, "As pytorch-fid; only 2048 (pool3) is implemented")
      ->check(CLI::IsMember({2048}))
      ->capture_default_str();
  cmd->add_option("--num-workers", o->num_workers,
                  "Accepted for pytorch-fid's command line; images are decoded on one thread ahead of the network");
  cmd->add_option("--kid-subsets", o->kid_subsets, "KID subsets")->capture_default_str();
  cmd->add_option("--kid-subset-size", o->kid_subset_size, "Images per KID subset")->capture_default_str();
  cmd->callback([o, &action] { action = [o] { return run_fid(*o); }; });
}

void register_features_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<FeaturesOptions>();
  auto* cmd = app.add_subcommand("features", "Write FID statistics (mu, sigma, mu_s, sigma_s) and per-image features of an image set");
  cmd->add_option("input", o->input, "Images: .npz (arr_0), PNG folder or RESULTS.h5[:RUN]")->required();
  cmd->add_option("output", o->output, "Output .npz (readable by the ADM evaluator and pytorch-fid as statistics)")->required();
  add_common_options(cmd, *o);
  cmd->add_flag("--stats-only", o->statistics_only, "Write only the statistics, not the per-image pool3 features and logits");
  cmd->add_flag("--keep-stored-stats", o->keep_stored_stats,
                "Input .npz with mu/sigma/mu_s/sigma_s (an ADM reference batch): write those statistics instead of "
                "computed ones, so that the output scores like the input does in the ADM evaluator, without "
                "re-extracting its images each time");
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  cmd->callback([o, &action] { action = [o] { return run_features(*o); }; });
}

void register_score_command(CLI::App& app, CommandAction& action) {
  auto o = std::make_shared<ScoreOptions>();
  auto* cmd = app.add_subcommand("score", "Add FID, sFID, IS, precision/recall and KID to every completed run of a result file");
  cmd->add_option("results", o->results, "varbench result file (.h5); metrics go to /runs/<run>/metrics")->required();
  cmd->add_option("--ref", o->reference,
                  "Reference set: .npz (e.g. VIRTUAL_imagenet256_labeled.npz), PNG folder or RESULTS.h5:RUN. Its images are "
                  "read on every call; `varbench features REF.npz REF_features.npz --keep-stored-stats` once, then "
                  "--ref REF_features.npz, gives the same numbers without that")
      ->required();
  add_common_options(cmd, *o);
  cmd->add_flag("--ignore-stored-stats", o->ignore_stored_stats, "Compute the reference statistics from its images even when stored");
  cmd->add_flag("--recompute", o->recompute, "Extract features again even when the run has a feature cache");
  cmd->add_option("--features", o->features,
                  "Feature network: inception (FID, sFID, IS, precision/recall, KID into /runs/<run>/metrics) or world "
                  "(the toy world's network: FD, class accuracy, precision/recall, KID into /runs/<run>/metrics_world; "
                  "--ref is then a world reference .npz)")
      ->check(CLI::IsMember({"inception", "world"}))
      ->capture_default_str();
  cmd->add_option("--resamples", o->resamples,
                  "Bootstrap resamples behind the intervals (and permutations of the paired test); default 1000 with "
                  "--features world, 200 for the Inception FID (each ~0.5 s at 2048 dimensions on 2 cores)");
  cmd->add_option("--interval-seed", o->interval_seed, "Seed of the bootstrap draws")->capture_default_str();
  cmd->add_option("--world-network", o->world_network, "The toy world's feature network (models/toy-world/world-features.safetensors)");
  cmd->add_option("--kid-subsets", o->kid_subsets, "KID subsets")->capture_default_str();
  cmd->add_option("--kid-subset-size", o->kid_subset_size, "Images per KID subset (KID is skipped for smaller sets)")
      ->capture_default_str();
  cmd->callback([o, &action] { action = [o] { return run_score(*o); }; });
}

}  // namespace varbench
