#include "tests/test_support.h"

#include <array>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

namespace varbench::testing {

CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string temp_dir(const std::string& name) {
  // Unique per test and process: ctest -j runs tests of one suite in parallel processes.
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string unique = name + "." + std::to_string(getpid());
  if (info) unique += std::string(".") + info->test_suite_name() + "." + info->name();
  for (auto& c : unique)
    if (c == '/') c = '_';
  const auto dir = std::filesystem::path(VARBENCH_FIXTURE_DIR).parent_path() / "tmp" / unique;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace varbench::testing
