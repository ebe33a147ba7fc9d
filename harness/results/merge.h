#pragma once
// Merging the result files of a sharded sweep (varbench run --shard I/N) into one: checks that every
// run's images are there exactly once and match the experiment's plan (the class of every index),
// then merges samples in global image order, feature statistics by addition, and timing samples by
// concatenation. Refuses, naming the missing or duplicated image indices, when a shard is absent twice.
#include <string>
#include <vector>

namespace varbench {

struct MergeSummary {
  int64_t runs = 0, images = 0;
};

MergeSummary merge_results(const std::string& out, const std::vector<std::string>& shards, bool overwrite);

}  // namespace varbench
