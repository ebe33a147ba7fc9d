#pragma once
// Which shard of a sweep this process runs: --shard I/N, or detected from Slurm arrays
// (SLURM_ARRAY_TASK_ID/COUNT/MIN), srun (SLURM_PROCID/NTASKS) or torchrun (RANK/WORLD_SIZE).
#include <cstdint>
#include <functional>
#include <string>

namespace varbench {

struct Shard {
  int64_t index = 0, count = 1;
  std::string source = "none";  // "--shard", "slurm-array", "srun", "torchrun" or "none"
  bool sharded() const { return count > 1; }
};

// `flag` is the --shard value ("" when absent); `getenv` is injectable for tests.
Shard detect_shard(const std::string& flag,
                   const std::function<const char*(const char*)>& getenv = [](const char* name) { return std::getenv(name); });

}  // namespace varbench
