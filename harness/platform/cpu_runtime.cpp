#include "harness/platform/cpu_runtime.h"

#include <unistd.h>

#include <cstdlib>

namespace varbench {

void use_passive_openmp_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Only reached if the exec failed (no /proc): go on with the default policy, which openmp_wait_policy()
  // still reports, since libgomp did not see the variable.
  unsetenv("OMP_WAIT_POLICY");
}

std::string openmp_wait_policy() {
  const char* p = std::getenv("OMP_WAIT_POLICY");
  return p ? p : "default";
}

}  // namespace varbench
