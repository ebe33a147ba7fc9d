#include "metrics/extract.h"

#include <future>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench::metrics {

ExtractedFeatures extract_features(FidInception& net, ImageSource& images, const ExtractOptions& options,
                                   const ProgressFn& progress) {
  if (options.batch_size < 1) throw std::runtime_error(fmt::format("batch size {}: must be >= 1", options.batch_size));
  const auto device = net->fc->weight.device();
  const int64_t total = images.size();
  ExtractedFeatures out;
  out.source = images.name();
  out.profile = options.profile;
  out.pool3_stats = FeatureStats(kPool3Dims);
  out.spatial_stats = FeatureStats(kSpatialDims);
  if (options.keep_features) {
    out.pool3 = torch::empty({total, kPool3Dims}, torch::kFloat32);
    out.logits = torch::empty({total, kLogitDims}, torch::kFloat32);
  }
  c10::InferenceMode inference;
  int64_t done = 0;
  report(progress, 0, total);
  auto pending = std::async(std::launch::async, [&images, &options] { return images.next(options.batch_size); });
  for (;;) {
    auto groups = pending.get();
    if (groups.empty()) break;
    pending = std::async(std::launch::async, [&images, &options] { return images.next(options.batch_size); });
    std::vector<torch::Tensor> inputs;
    for (const auto& g : groups) inputs.push_back(preprocess(g.to(device), options.profile));
    const auto x = inputs.size() == 1 ? inputs[0] : torch::cat(inputs);  // B x 3 x 299 x 299
    const int64_t b = x.size(0);
    if (done + b > total) throw std::runtime_error(fmt::format("{}: more images than the {} announced", images.name(), total));
    const auto f = net->forward(x);
    const auto pool3 = f.pool3.to(torch::kCPU), logits = f.logits.to(torch::kCPU);
    out.pool3_stats.add(pool3, images.name());
    out.spatial_stats.add(f.spatial, images.name());
    if (options.keep_features) {
      out.pool3.slice(0, done, done + b).copy_(pool3);
      out.logits.slice(0, done, done + b).copy_(logits);
    }
    done += b;
    report(progress, done, total);
  }
  if (done != total) throw std::runtime_error(fmt::format("{}: {} images read, {} announced", images.name(), done, total));
  return out;
}

void write_feature_cache(const h5::Group& g, const ExtractedFeatures& f) {
  if (!f.pool3.defined() || !f.logits.defined())
    throw std::runtime_error(g.file() + ": the feature cache needs the per-image features (extract with keep_features)");
  auto replace = [&](const std::string& name) {
    if (g.has(name)) g.remove(name);
    return g.create_group(name);
  };
  const auto n = static_cast<uint64_t>(f.count());
  auto pool3 = replace("pool3");
  write_feature_stats(pool3, f.pool3_stats);
  const auto p = f.pool3.contiguous(), l = f.logits.contiguous();
  pool3.write<float>("features", {n, static_cast<uint64_t>(kPool3Dims)}, p.data_ptr<float>());
  write_feature_stats(replace("spatial"), f.spatial_stats);
  auto logits = replace("logits");
  logits.set_attr("n", f.count());
  logits.write<float>("features", {n, static_cast<uint64_t>(kLogitDims)}, l.data_ptr<float>());
}

ExtractedFeatures read_feature_cache(const h5::Group& g, Profile profile) {
  ExtractedFeatures f;
  f.source = g.file() + ":" + g.path();
  f.profile = profile;
  f.pool3_stats = read_feature_stats(g.group("pool3"));
  f.spatial_stats = read_feature_stats(g.group("spatial"));
  const int64_t n = f.pool3_stats.n;
  auto read_features = [&](const std::string& name, int64_t dims) {
    auto ds = g.group(name).dataset("features");
    const auto d = ds.dims();
    if (d.size() != 2 || static_cast<int64_t>(d[0]) != n || static_cast<int64_t>(d[1]) != dims)
      throw std::runtime_error(fmt::format("{}: {}/{}/features has shape [{}], expected [{}, {}]", g.file(), g.path(), name,
                                           fmt::join(d, ", "), n, dims));
    auto values = ds.read<float>();
    return torch::from_blob(values.data(), {n, dims}, torch::kFloat32).clone();
  };
  f.pool3 = read_features("pool3", kPool3Dims);
  f.logits = read_features("logits", kLogitDims);
  if (f.spatial_stats.n != n || f.pool3_stats.dims() != kPool3Dims || f.spatial_stats.dims() != kSpatialDims)
    throw std::runtime_error(fmt::format("{}: inconsistent feature cache (pool3 n={} d={}, spatial n={} d={})", f.source, n,
                                         f.pool3_stats.dims(), f.spatial_stats.n, f.spatial_stats.dims()));
  return f;
}

}  // namespace varbench::metrics
