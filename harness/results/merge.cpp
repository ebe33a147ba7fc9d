#include "harness/results/merge.h"

#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness/experiment/experiment.h"
#include "harness/experiment/image_plan.h"
#include "harness/platform/provenance.h"
#include "formats/file_lock.h"
#include "formats/hdf5.h"
#include "harness/results/result_file.h"
#include "harness/experiment/run_identity.h"
#include "harness/results/sample_writer.h"
#include "harness/results/schema.h"

namespace varbench {

namespace {

// "3, 7-9, 12" (at most 20 ranges, then "...").
std::string ranges(const std::vector<int64_t>& sorted) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    parts.push_back(j == i ? std::to_string(sorted[i]) : fmt::format("{}-{}", sorted[i], sorted[j]));
    i = j + 1;
    if (parts.size() == 20 && i < sorted.size()) {
      parts.push_back("...");
      break;
    }
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

struct ShardRun {
  std::string file;
  std::vector<int64_t> image_index;  // global index of every row
};

// Copies a per-image dataset [rows, ...] of every shard into `out` at the rows of its global indices.
template <typename T>
void merge_rows(const std::vector<std::unique_ptr<h5::File>>& files, const std::vector<ShardRun>& shards, const std::string& group,
                const std::string& name, const h5::Group& out, int64_t total, const std::vector<uint64_t>& chunk, int gzip) {
  std::vector<uint64_t> dims;
  for (size_t k = 0; k < files.size(); ++k) {
    auto d = files[k]->root().group(group).dataset(name).dims();
    d[0] = static_cast<uint64_t>(total);
    if (!dims.empty() && d != dims)
      throw std::runtime_error(fmt::format("{}: {}/{} has another shape than in the other shards", shards[k].file, group, name));
    dims = d;
  }
  auto c = chunk;
  if (!c.empty()) c[0] = std::min<uint64_t>(c[0], dims[0]);
  auto ds = out.create_dataset<T>(name, dims, c, gzip);
  for (size_t k = 0; k < files.size(); ++k) {
    auto src = files[k]->root().group(group).dataset(name);
    const auto& idx = shards[k].image_index;
    // Shards hold whole batches, so rows come in runs of consecutive global indices: copy run by run.
    for (size_t i = 0; i < idx.size();) {
      size_t j = i + 1;
      while (j < idx.size() && idx[j] == idx[j - 1] + 1) ++j;
      const auto rows = src.read_rows<T>(i, j - i);
      ds.write_rows(static_cast<uint64_t>(idx[i]), j - i, rows.data());
      i = j;
    }
  }
}

void copy_attrs(const h5::Group& from, const h5::Group& to) {
  for (const auto& attr : from.attr_names()) {
    // Attributes are strings, integers, floats or lists of them (see docs/hdf5-schema.md).
    try {
      to.set_attr(attr, from.attr_string(attr));
      continue;
    } catch (const std::exception&) {
    }
    try {
      to.set_attr(attr, from.attr_int(attr));
      continue;
    } catch (const std::exception&) {
    }
    try {
      to.set_attr(attr, from.attr_double(attr));
      continue;
    } catch (const std::exception&) {
    }
    to.set_attr(attr, from.attr_doubles(attr));
  }
}

}  // namespace

MergeSummary merge_results(const std::string& out, const std::vector<std::string>& shard_paths, bool overwrite) {
  if (shard_paths.empty()) throw std::runtime_error("merge: no shard files given");
  if (std::filesystem::exists(out) && !overwrite) throw std::runtime_error(fmt::format("{}: exists; pass --overwrite to replace it", out));
  std::vector<std::unique_ptr<h5::File>> files;
  for (const auto& p : shard_paths) files.push_back(std::make_unique<h5::File>(p, h5::File::Mode::kReadOnly));

  // One experiment, and its plan of images.
  for (size_t k = 0; k < files.size(); ++k)
    if (!files[k]->root().has_attr(schema::kExperimentToml))
      throw std::runtime_error(fmt::format("{}: has no experiment_toml attribute (not a varbench result file?)", shard_paths[k]));
  const auto toml = files[0]->root().attr_string(schema::kExperimentToml);
  for (size_t k = 1; k < files.size(); ++k)
    if (files[k]->root().attr_string(schema::kExperimentToml) != toml)
      throw std::runtime_error(fmt::format("{}: comes from another experiment file than {}", shard_paths[k], shard_paths[0]));
  const auto experiment = parse_experiment(toml, files[0]->root().attr_string(schema::kExperimentFile));
  const auto plan = plan_images(experiment.classes, experiment.images_per_class);
  const int64_t total = plan.size();
  std::set<std::string> asked;
  for (const auto& run : experiment.runs) asked.insert(run.id);

  // Runs by id, in every shard; runs of an earlier version of the experiment (kept by a sweep without
  // --fresh) are not merged.
  std::map<std::string, std::vector<std::string>> groups;  // run id -> group name per shard
  for (size_t k = 0; k < files.size(); ++k) {
    auto root = files[k]->root();
    if (!root.has(schema::kRuns)) throw std::runtime_error(fmt::format("{}: no runs", shard_paths[k]));
    for (const auto& name : root.group(schema::kRuns).children()) {
      auto g = root.group("runs/" + name);
      const auto id = g.has_attr(schema::kRunId) ? g.attr_string(schema::kRunId) : name;
      if (!asked.count(id)) continue;
      if (g.attr_string(schema::kStatus) != schema::kCompleted)
        throw std::runtime_error(fmt::format("{}: run '{}' is {} ({}); rerun that shard first", shard_paths[k], id,
                                             g.attr_string(schema::kStatus), g.has_attr(schema::kError) ? g.attr_string(schema::kError) : ""));
      groups[id].push_back(name);
    }
  }

  // Each run was made with the same settings in every shard (its identity, less the shard), named otherwise.
  for (const auto& [id, names] : groups) {
    RunIdentity first;
    size_t first_file = 0;
    for (size_t k = 0, n = 0; k < files.size(); ++k) {
      const auto path = "runs/" + run_group_name(id);
      if (!files[k]->root().has(path)) continue;
      const auto g = files[k]->root().group(path);
      if (!g.has_attr(schema::kIdentityJson))
        throw std::runtime_error(fmt::format("{}: run '{}' was made by a varbench that recorded no run identity; rerun that shard",
                                             shard_paths[k], id));
      const auto identity = parse_identity_json(g.attr_string(schema::kIdentityJson));
      if (n++ == 0) {
        first = identity;
        first_file = k;
        continue;
      }
      const auto differences = identity_differences(first, identity, {"shard"});
      if (!differences.empty())
        throw std::runtime_error(fmt::format("run '{}' was made with other settings in {} than in {}: {}", id, shard_paths[k],
                                             shard_paths[first_file], fmt::join(differences, ", ")));
    }
  }

  FileLock lock(out);
  h5::File merged(out, h5::File::Mode::kCreate);
  auto root = merged.root();
  copy_attrs(files[0]->root(), root);
  root.set_attr("merged_from", fmt::format("{}", fmt::join(shard_paths, " ")));

  MergeSummary summary;
  for (const auto& [id, names] : groups) {
    if (names.size() != files.size())
      throw std::runtime_error(fmt::format("run '{}' is in {} of the {} shard files", id, names.size(), files.size()));
    // Completeness: every planned image exactly once, with the planned class.
    std::vector<ShardRun> shards;
    std::vector<int> seen(static_cast<size_t>(total), 0);
    std::map<int64_t, std::vector<std::string>> where;
    for (size_t k = 0; k < files.size(); ++k) {
      auto g = files[k]->root().group("runs/" + names[k]);
      ShardRun s{shard_paths[k], g.dataset(schema::kImageIndex).read<int64_t>()};
      const auto labels = g.dataset(schema::kLabels).read<int64_t>();
      for (size_t i = 0; i < s.image_index.size(); ++i) {
        const int64_t idx = s.image_index[i];
        if (idx < 0 || idx >= total)
          throw std::runtime_error(fmt::format("{}: run '{}' has image index {} outside the plan's 0..{}", s.file, id, idx, total - 1));
        if (labels[i] != plan.labels[idx])
          throw std::runtime_error(fmt::format("{}: run '{}' image {} has class {}, the plan says {}", s.file, id, idx, labels[i], plan.labels[idx]));
        seen[idx]++;
        where[idx].push_back(s.file);
      }
      shards.push_back(std::move(s));
    }
    std::vector<int64_t> missing, duplicated;
    for (int64_t i = 0; i < total; ++i) {
      if (seen[i] == 0) missing.push_back(i);
      if (seen[i] > 1) duplicated.push_back(i);
    }
    if (!missing.empty())
      throw std::runtime_error(fmt::format("run '{}': {} of {} images missing, indices {} (a shard file is missing?)", id, missing.size(), total, ranges(missing)));
    if (!duplicated.empty())
      throw std::runtime_error(fmt::format("run '{}': images {} appear in more than one shard ({} and {})", id, ranges(duplicated),
                                           where[duplicated[0]][0], where[duplicated[0]][1]));

    for (size_t k = 1; k < names.size(); ++k)
      if (names[k] != names[0]) throw std::runtime_error(fmt::format("run '{}' has group names {} and {}", id, names[0], names[k]));
    const std::string run = "runs/" + names[0];
    auto first = files[0]->root().group(run);
    auto g = root.create_group(run);
    copy_attrs(first, g);
    g.set_attr(schema::kNumImages, total);
    g.set_attr("merged_shards", static_cast<int64_t>(files.size()));
    // The merged run is no shard: its identity says what it is, so that resuming it as an unsharded run
    // (whose timings would come from one process) is refused rather than taken as done.
    auto identity = parse_identity_json(first.attr_string(schema::kIdentityJson));
    identity["shard"] = fmt::format("merged from {} shards", files.size());
    g.set_attr(schema::kIdentityJson, identity_json(identity));
    // How each shard was measured (its node's hardware and settings): timings of shards measured apart
    // are pooled, so the run says when they span hardware, and speed tables mark it.
    nlohmann::json measured = nlohmann::json::array();
    std::set<std::string> hardware;
    for (size_t k = 0; k < files.size(); ++k) {
      const auto shard_run = files[k]->root().group("runs/" + names[k]);
      const auto measurement = measurement_of(shard_run);
      measured.push_back({{"file", shard_paths[k]},
                          {"hostname", shard_run.has_attr("hostname") ? shard_run.attr_string("hostname") : "?"},
                          {schema::kMeasurement, measurement}});
      hardware.insert(measurement);
    }
    g.set_attr(schema::kShardMeasurementJson, measured.dump());
    g.set_attr(schema::kMixedHardware, static_cast<int64_t>(hardware.size() > 1));

    // Samples, in global image order.
    const auto rows = static_cast<uint64_t>(std::min<int64_t>(total, 1024));
    for (const char* name : {schema::kLabels, schema::kIndexInClass, schema::kImageIndex, schema::kSeeds})
      merge_rows<int64_t>(files, shards, run, name, g, total, {rows}, 0);
    auto tokens = g.create_group(schema::kTokens);
    tokens.set_attr("sides", first.group(schema::kTokens).attr_ints("sides"));
    for (const auto& t : first.group(schema::kTokens).children()) {
      const auto d = first.dataset(std::string(schema::kTokens) + "/" + t).dims();
      merge_rows<int32_t>(files, shards, run + "/" + schema::kTokens, t, tokens, total,
                          {std::min<uint64_t>(256, static_cast<uint64_t>(total)), d[1]}, 4);
    }
    if (first.has(schema::kImages)) {
      const auto d = first.dataset(schema::kImages).dims();
      merge_rows<uint8_t>(files, shards, run, schema::kImages, g, total, {1, d[1], d[2], d[3]}, 4);
    }

    // Timing samples: every shard's batches (each shard timed its own batches), integer columns kept
    // integer; phase rows name their batch by row, so they move by the batches of the shards before.
    if (first.has(schema::kTiming)) {
      auto timing = g.create_group(schema::kTiming);
      copy_attrs(first.group(schema::kTiming), timing);
      for (const auto& name : first.group(schema::kTiming).children()) {
        std::vector<double> all;
        std::vector<int64_t> all_int;
        uint64_t cols = 0;
        int64_t batches_before = 0;
        const bool integer = first.group(schema::kTiming).dataset(name).type_class() == H5T_INTEGER;
        for (auto& f : files) {
          auto t = f->root().group(run + "/timing");
          auto ds = t.dataset(name);
          const auto d = ds.dims();
          cols = d.size() == 2 ? d[1] : 0;
          if (integer) {
            auto v = ds.read<int64_t>();
            if (name == schema::kPhaseBatch)
              for (auto& b : v) b += batches_before;
            all_int.insert(all_int.end(), v.begin(), v.end());
          } else {
            const auto v = ds.read<double>();
            all.insert(all.end(), v.begin(), v.end());
          }
          batches_before += static_cast<int64_t>(t.dataset(schema::kBatchMs).rows());
        }
        if (integer) timing.write<int64_t>(name, all_int);
        else if (cols) timing.write<double>(name, {all.size() / cols, cols}, all.data());
        else timing.write<double>(name, all);
      }
    }
    // Memory: each shard ran on its own device; the merged run needed the largest of them, whose phases
    // and split it keeps.
    if (first.has(schema::kMemory)) {
      auto memory = g.create_group(schema::kMemory);
      size_t largest = 0;
      for (size_t i = 0; i < files.size(); ++i)
        if (files[i]->root().group(run + "/memory").attr_int(schema::kPeakBytes) >
            files[largest]->root().group(run + "/memory").attr_int(schema::kPeakBytes))
          largest = i;
      const auto from = files[largest]->root().group(run + "/memory");
      copy_attrs(from, memory);
      for (const auto& name : from.children()) memory.write<int64_t>(name, from.dataset(name).read<int64_t>());
    }
    // Engine series and counters add up.
    if (first.has(schema::kEngineStats)) {
      auto stats = g.create_group(schema::kEngineStats);
      for (const auto& name : first.group(schema::kEngineStats).children()) {
        std::vector<double> sum;
        for (auto& f : files) {
          const auto v = f->root().group(run + "/engine_stats").dataset(name).read<double>();
          sum.resize(v.size(), 0.0);
          for (size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
        }
        stats.write<double>(name, sum);
      }
      for (const auto& attr : first.group(schema::kEngineStats).attr_names()) {
        double sum = 0;
        for (auto& f : files) sum += f->root().group(run + "/engine_stats").attr_double(attr);
        stats.set_attr(attr, sum);
      }
    }
    // Feature statistics (varbench score): n, sum and sum_outer add; per-image features merge by index.
    if (first.has(schema::kFeatureStats)) {
      for (const auto& profile : first.group(schema::kFeatureStats).children()) {
        const std::string base = run + "/feature_stats/" + profile;
        bool everywhere = true;
        for (auto& f : files) everywhere = everywhere && f->root().has(base);
        if (!everywhere) continue;  // scored in some shards only: score the merged file instead
        for (const auto& feature : first.group("feature_stats/" + profile).children()) {
          const std::string path = base + "/" + feature;
          auto out_group = root.create_group(path);
          int64_t n = 0;
          for (auto& f : files) n += f->root().group(path).attr_int("n");
          out_group.set_attr("n", n);
          for (const auto& name : first.group("feature_stats/" + profile + "/" + feature).children()) {
            auto ds = first.dataset("feature_stats/" + profile + "/" + feature + "/" + name);
            if (name == "features") {
              const auto d = ds.dims();
              merge_rows<float>(files, shards, path, name, out_group, total, {std::min<uint64_t>(1024, static_cast<uint64_t>(total)), d[1]}, 0);
              continue;
            }
            auto sum = ds.read<double>();
            for (size_t k = 1; k < files.size(); ++k) {
              const auto v = files[k]->root().group(path).dataset(name).read<double>();
              for (size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
            }
            out_group.write<double>(name, ds.dims(), sum.data());
          }
        }
      }
    }
    summary.images = total;
    ++summary.runs;
  }
  merged.flush();
  return summary;
}

}  // namespace varbench
