#include "tests/test_support.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>
#include <torch/version.h>
#include <unistd.h>

namespace varbench::testing {

std::string release_of(const std::string& torch_version) {
  std::smatch m;
  if (std::regex_search(torch_version, m, std::regex(R"(^(\d+)\.(\d+)\.(\d+))"))) return m[0];
  return torch_version;
}

void check_fixture_torch_version(const std::string& path, const std::string& fixture_torch, const std::string& libtorch) {
  if (fixture_torch.empty())
    throw std::runtime_error(fmt::format("{}: no 'torch' metadata: remake it with the fixture scripts of this lane", path));
  if (release_of(fixture_torch) != release_of(libtorch))
    throw std::runtime_error(fmt::format(
        "{}: made by Python torch {}, but this build uses libtorch {}: fixtures are only comparable within one torch "
        "version; rerun ctest (it regenerates them with the interpreter CMake chose) or reconfigure with "
        "-DVARBENCH_PYTHON=<a python whose torch is {}>",
        path, fixture_torch, libtorch, release_of(libtorch)));
}

const SafetensorsFile& fixture_file(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<SafetensorsFile>> opened;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = opened[name];
  if (!slot) {
    auto file = std::make_unique<SafetensorsFile>(fixture(name));
    const auto it = file->metadata().find("torch");
    check_fixture_torch_version(file->path(), it == file->metadata().end() ? "" : it->second, TORCH_VERSION);
    slot = std::move(file);
  }
  return *slot;
}

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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

::testing::AssertionResult RelativelyNear(double actual, double expected, double tol) {
  const double rel = std::abs(actual - expected) / std::max(std::abs(expected), 1e-300);
  if (rel <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << actual << " vs " << expected << ": relative " << rel << " > " << tol;
}

namespace {
// The directories temp_dir made for the running test (removed when it passes).
std::vector<std::string>& created_temp_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}
}  // namespace

std::string experiment_toml(const std::string& settings, const std::vector<std::pair<std::string, std::string>>& models,
                            const std::string& engines) {
  std::string text = "[experiment]\n" + settings;
  if (settings.find("warmup =") == std::string::npos) text += "warmup = 0\n";
  if (settings.find("repetitions =") == std::string::npos) text += "repetitions = 1\n";
  for (const auto& [name, source] : models) {
    const bool checkpoint = source.size() > 12 && source.substr(source.size() - 12) == ".safetensors";
    text += fmt::format("[models.{}]\n{} = \"{}\"\n", name, checkpoint ? "checkpoint" : "random_init", source);
  }
  return text + "[vqvae]\nrandom_init = \"vqvae-ch32\"\n" + engines;
}

std::string single_engine(const std::string& name, const std::string& model) {
  return fmt::format("[[engines]]\nname = \"{}\"\ntype = \"single\"\nmodel = \"{}\"\n", name, model);
}

std::string collaborative_engine(const std::string& name, const std::string& drafter, const std::string& refiner, int64_t draft_steps) {
  return fmt::format("[[engines]]\nname = \"{}\"\ntype = \"collaborative\"\ndrafter = \"{}\"\nrefiner = \"{}\"\ndraft_steps = {}\n",
                     name, drafter, refiner, draft_steps);
}

std::string speculative_engine(const std::string& name, const std::string& draft, const std::string& target) {
  return fmt::format("[[engines]]\nname = \"{}\"\ntype = \"speculative\"\ndraft = \"{}\"\ntarget = \"{}\"\n", name, draft, target);
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
  if (info) created_temp_dirs().push_back(dir.string());
  return dir.string();
}

namespace {
// A passing test's scratch files are removed (a full run otherwise leaves ~1.5 GB in the build tree);
// a failing test's stay for inspection, and the failure message names their paths.
class RemoveScratchOfPassedTests : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& info) override {
    auto& dirs = created_temp_dirs();
    if (info.result()->Passed() && !std::getenv("VARBENCH_KEEP_TEST_FILES")) {
      std::error_code ignored;
      for (const auto& dir : dirs) std::filesystem::remove_all(dir, ignored);
    }
    dirs.clear();
  }
};
}  // namespace

void install_scratch_cleanup() {
  ::testing::UnitTest::GetInstance()->listeners().Append(new RemoveScratchOfPassedTests);
}

}  // namespace varbench::testing
