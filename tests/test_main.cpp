// The test binary's main: the same process set-up as the varbench executable.
#include <gtest/gtest.h>

#include "harness/platform/cpu_runtime.h"
#include "harness/platform/memory_probe.h"
#include "tests/test_support.h"

int main(int argc, char** argv) {
  varbench::use_passive_openmp_waits(argv);
  varbench::keep_freed_memory_for_reuse();
  varbench::install_cpu_memory_tracking();
  ::testing::InitGoogleTest(&argc, argv);
  varbench::testing::install_scratch_cleanup();
  return RUN_ALL_TESTS();
}
