#include "harness/experiment/sharding.h"

#include <stdexcept>

#include <fmt/format.h>

namespace varbench {

namespace {
int64_t parse_int(const std::string& text, const std::string& what) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) throw std::runtime_error(fmt::format("{} = '{}' is not an integer", what, text));
  return v;
}
}  // namespace

Shard detect_shard(const std::string& flag, const std::function<const char*(const char*)>& getenv) {
  Shard s;
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv(name);
    return v ? std::string(v) : std::string();
  };
  if (!flag.empty()) {
    const auto slash = flag.find('/');
    if (slash == std::string::npos) throw std::runtime_error(fmt::format("--shard '{}': expected I/N, e.g. 0/4", flag));
    s.index = parse_int(flag.substr(0, slash), "--shard index");
    s.count = parse_int(flag.substr(slash + 1), "--shard count");
    s.source = "--shard";
  } else if (!env("SLURM_ARRAY_TASK_ID").empty() && !env("SLURM_ARRAY_TASK_COUNT").empty()) {
    const int64_t min = env("SLURM_ARRAY_TASK_MIN").empty() ? 0 : parse_int(env("SLURM_ARRAY_TASK_MIN"), "SLURM_ARRAY_TASK_MIN");
    s.index = parse_int(env("SLURM_ARRAY_TASK_ID"), "SLURM_ARRAY_TASK_ID") - min;
    s.count = parse_int(env("SLURM_ARRAY_TASK_COUNT"), "SLURM_ARRAY_TASK_COUNT");
    s.source = "slurm-array";
  } else if (!env("SLURM_PROCID").empty() && !env("SLURM_NTASKS").empty()) {
    s.index = parse_int(env("SLURM_PROCID"), "SLURM_PROCID");
    s.count = parse_int(env("SLURM_NTASKS"), "SLURM_NTASKS");
    s.source = "srun";
  } else if (!env("RANK").empty() && !env("WORLD_SIZE").empty()) {
    s.index = parse_int(env("RANK"), "RANK");
    s.count = parse_int(env("WORLD_SIZE"), "WORLD_SIZE");
    s.source = "torchrun";
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    throw std::runtime_error(fmt::format("shard {}/{} (from {}): need 0 <= index < count", s.index, s.count, s.source));
  return s;
}

}  // namespace varbench
