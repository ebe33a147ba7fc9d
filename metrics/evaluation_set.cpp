#include "metrics/evaluation_set.h"

#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "formats/hdf5.h"
#include "formats/image_files.h"

namespace varbench::metrics {

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

void fill_from(EvaluationSet& set, const ExtractedFeatures& f, const std::string& origin) {
  if (!set.pool3) {
    set.pool3 = f.pool3_stats.gaussian(f.source + " (pool3)");
    set.statistics_origin = origin;
  }
  if (!set.spatial) set.spatial = f.spatial_stats.gaussian(f.source + " (spatial)");
  if (!set.pool3_features.defined() && f.pool3.defined()) {
    set.pool3_features = f.pool3;
    set.logits = f.logits;
  }
  set.num_images = f.count();
}

std::string profile_of(const io::NpzReader& npz) {
  const auto a = npz.read("profile");
  return std::string(a.bytes.begin(), a.bytes.end());
}
}  // namespace

void write_features_npz(const std::string& path, const ExtractedFeatures& f, bool statistics_only,
                        const StoredStatistics* stored) {
  const auto pool3 = stored ? stored->pool3 : f.pool3_stats.gaussian(f.source + " (pool3)");
  const auto spatial = stored ? stored->spatial : f.spatial_stats.gaussian(f.source + " (spatial)");
  std::vector<std::pair<std::string, io::NpyArray>> arrays{
      {"mu", tensor_to_npy(pool3.mu)},       {"sigma", tensor_to_npy(pool3.sigma)},
      {"mu_s", tensor_to_npy(spatial.mu)},   {"sigma_s", tensor_to_npy(spatial.sigma)}};
  if (!statistics_only) {
    if (!f.pool3.defined()) throw std::runtime_error(path + ": per-image features were not kept");
    arrays.emplace_back("pool3", tensor_to_npy(f.pool3));
    arrays.emplace_back("logits", tensor_to_npy(f.logits));
  }
  // The sample count bounds the rank of the covariances (frechet.h); ADM/pytorch-fid files lack it.
  if (!stored) arrays.emplace_back("n", tensor_to_npy(torch::tensor(f.count(), torch::kLong)));
  io::NpyArray profile;
  profile.dtype = "|u1";
  const auto name = profile_name(f.profile);
  profile.shape = {static_cast<int64_t>(name.size())};
  profile.bytes.assign(name.begin(), name.end());
  arrays.emplace_back("profile", profile);
  io::write_npz(path, arrays);
}

bool is_hdf5_spec(const std::string& spec, std::string* file, std::string* run) {
  for (const std::string ext : {".h5", ".hdf5"}) {
    if (ends_with(spec, ext)) {
      *file = spec;
      run->clear();
      return true;
    }
    const auto at = spec.rfind(ext + ":");
    if (at != std::string::npos) {
      *file = spec.substr(0, at + ext.size());
      *run = spec.substr(at + ext.size() + 1);
      return true;
    }
  }
  if (std::filesystem::is_regular_file(spec) && h5::is_readable_hdf5(spec)) {
    *file = spec;
    run->clear();
    return true;
  }
  return false;
}

std::string resolve_run(const std::string& file, const std::string& run) {
  h5::File f(file, h5::File::Mode::kReadOnly);
  const auto root = f.root();
  if (!root.has("runs")) throw std::runtime_error(file + ": no /runs group (not a varbench result file)");
  const auto runs = root.group("runs");
  if (!run.empty()) {
    if (!runs.has(run)) throw std::runtime_error(fmt::format("{}: no run '{}' (runs: {})", file, run, fmt::join(runs.children(), ", ")));
    return "runs/" + run;
  }
  std::vector<std::string> with_images;
  for (const auto& name : runs.children())
    if (runs.group(name).has("images")) with_images.push_back(name);
  if (with_images.size() != 1)
    throw std::runtime_error(fmt::format("{}: {} runs have images ({}); name one as {}:RUN", file, with_images.size(),
                                         fmt::join(with_images, ", "), file));
  return "runs/" + with_images[0];
}

EvaluationSet load_evaluation_set(const std::string& spec, const EvaluationSetOptions& options,
                                  const std::function<FidInception&()>& load_net, const ProgressFn& progress) {
  namespace fs = std::filesystem;
  EvaluationSet set;
  set.name = spec;
  const auto profile = options.extract.profile;
  auto extract = [&](ImageSource& images) { return extract_features(load_net(), images, options.extract, progress); };

  std::string file, run;
  if (is_hdf5_spec(spec, &file, &run)) {
    if (!fs::exists(file)) throw std::runtime_error(file + ": no such file");
    const auto group_path = resolve_run(file, run);
    {
      h5::File f(file, h5::File::Mode::kReadOnly);
      const auto g = f.root().group(group_path);
      const auto cache = "feature_stats/" + profile_name(profile);
      if (g.has(cache + "/pool3/features") && g.has(cache + "/logits/features") && g.has(cache + "/spatial/sum")) {
        fill_from(set, read_feature_cache(g.group(cache), profile), "cached");
        return set;
      }
    }
    auto images = open_hdf5_images(file, group_path + "/" + options.images_dataset);
    fill_from(set, extract(*images), "computed");
    return set;
  }
  if (fs::is_directory(spec)) {
    auto images = open_png_folder(spec);
    fill_from(set, extract(*images), "computed");
    return set;
  }
  if (!fs::exists(spec)) throw std::runtime_error(spec + ": no such file or directory");
  if (!ends_with(spec, ".npz"))
    throw std::runtime_error(spec + ": not an .npz, a varbench result file (.h5) or a directory of PNG files");

  io::NpzReader npz(spec);
  const bool has_images = npz.has("arr_0");
  const bool has_stats = npz.has("mu") && npz.has("sigma");
  const bool has_features = npz.has("pool3") && npz.has("logits");
  if (!has_images && !has_stats)
    throw std::runtime_error(fmt::format("{}: neither images ('arr_0') nor statistics ('mu', 'sigma') in the .npz (it has: {})",
                                         spec, fmt::join(npz.names(), ", ")));
  if (npz.has("profile") && profile_of(npz) != profile_name(profile))
    throw std::runtime_error(fmt::format("{}: features of profile '{}', but profile '{}' was asked for", spec, profile_of(npz),
                                         profile_name(profile)));
  if (options.ignore_stored_statistics && !has_images)
    throw std::runtime_error(spec + ": statistics cannot be recomputed without images ('arr_0')");
  if (has_stats && !options.ignore_stored_statistics) {
    set.pool3 = read_npz_gaussian(npz, "mu", "sigma");
    if (npz.has("mu_s") && npz.has("sigma_s")) set.spatial = read_npz_gaussian(npz, "mu_s", "sigma_s");
    if (npz.has("n")) {
      const auto n = npy_to_tensor(npz.read("n"), spec + ":n");
      if (n.numel() != 1 || n.scalar_type() != torch::kLong || n.item<int64_t>() < 2)
        throw std::runtime_error(fmt::format("{}:n must be one int64 >= 2", spec));
      set.pool3->n = n.item<int64_t>();
      if (set.spatial) set.spatial->n = set.pool3->n;
    }
    set.statistics_origin = "stored";
  }
  if (has_features && !options.ignore_stored_statistics) {
    set.pool3_features = npy_to_tensor(npz.read("pool3"), spec + ":pool3");
    set.logits = npy_to_tensor(npz.read("logits"), spec + ":logits");
    if (set.pool3_features.dim() != 2 || set.pool3_features.size(1) != kPool3Dims || set.logits.dim() != 2 ||
        set.logits.size(1) != kLogitDims || set.logits.size(0) != set.pool3_features.size(0))
      throw std::runtime_error(fmt::format("{}: pool3 [{}] and logits [{}] are not [N, {}] and [N, {}]", spec,
                                           fmt::join(set.pool3_features.sizes(), ", "), fmt::join(set.logits.sizes(), ", "),
                                           kPool3Dims, kLogitDims));
    set.num_images = set.pool3_features.size(0);
  }
  const bool need_images = !set.pool3 || !set.spatial || (options.need_features && !set.pool3_features.defined());
  if (need_images && has_images) {
    auto images = open_npz_images(spec, "arr_0");
    fill_from(set, extract(*images), "computed");
  }
  return set;
}

}  // namespace varbench::metrics
