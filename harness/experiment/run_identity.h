#pragma once
// A run's identity: every setting that defines what it generates. It is stored with each run (attribute
// `identity_json`), and a stored run is only reused (resume) or merged (shards) when its identity equals
// the requested one, so that a result file never holds a run other than the one asked for under its name.
// What only decides how fast it runs (CPU or GPU model, threads, OpenMP wait policy, host name, a test
// slowdown) is not in it: those are recorded per run (and per shard by merge) as provenance, so a sweep
// resumes, and shards merge, across nodes of a cluster; speed tables mark timings that span hardware.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engines/model/loading.h"
#include "harness/experiment/experiment.h"

namespace varbench {

using RunIdentity = std::map<std::string, std::string>;  // setting -> value, compared as text

struct IdentityContext {
  int64_t shard_index = 0, shard_count = 1;
  bool random_override = false;
  std::string device_override;
};

// The identity of `run` of `x`: engine and parameters (defaults filled in, planned against `catalog`),
// sampling, seed, rng, images and classes, batch size, device as requested, dtype, warm-up, repetitions,
// store_images, shard, the content of the models it uses and of the VQVAE (checkpoint_identity), the
// varbench version, git revision (with "-dirty"), build type and libtorch version.
RunIdentity run_identity(const Experiment& x, const RunSpec& run, const IdentityContext& context, const ModelCatalog& catalog);

// "mix64 H (N bytes)" for a checkpoint (its content: not its path or time), "random:<config>:seed=<s>" for
// random weights.
// A checkpoint's content hash is computed once per (path, size, mtime): kept for the process and in
// ${XDG_CACHE_HOME:-~/.cache}/varbench/checkpoint-hashes.tsv. An absent file is described as absent (the
// run fails later, naming it).
std::string checkpoint_identity(const ModelSource& source);
// The same for any file (a feature network, a reference): "mix64 H (N bytes)", or "<path> (absent)".
std::string file_identity(const std::string& path);

// A fast 64-bit content hash (multiply-rotate over 8-byte words; not cryptographic: it tells an edited or
// replaced checkpoint from the recorded one).
uint64_t content_hash(const std::string& path);

std::string identity_json(const RunIdentity& identity);
RunIdentity parse_identity_json(const std::string& json);  // throws on malformed text

// "seed 3 -> 4", "images 8 -> 6", "param.draft_steps (absent) -> 6", in key order; keys in `ignore` skipped.
std::vector<std::string> identity_differences(const RunIdentity& stored, const RunIdentity& requested,
                                              const std::set<std::string>& ignore = {});

}  // namespace varbench
