#pragma once
// Shared helpers of the test suite: fixture paths, tensor comparison with a stated tolerance, running
// the varbench binary.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace varbench::testing {

// Threads of the parity fixtures (tests/reference/make_fixtures.py): oneDNN convolutions round
// differently with the thread count, so both sides pin it.
inline constexpr int kParityThreads = 2;

inline std::string fixture(const std::string& name) { return std::string(VARBENCH_FIXTURE_DIR) + "/" + name; }
inline std::string source_path(const std::string& rel) { return std::string(VARBENCH_SOURCE_DIR) + "/" + rel; }

// A fixture file written by the PyTorch reference scripts, opened once. Their numbers are only comparable
// with the libtorch they were made with (kernels and the multinomial stream differ between versions), so
// a file whose "torch" metadata names another version than this build's libtorch is refused, naming both.
const SafetensorsFile& fixture_file(const std::string& name);
// "1.13.0a0", "2.14.1+cu130" -> "1.13.0", "2.14.1": the release both sides of a lane agree on.
std::string release_of(const std::string& torch_version);
// Throws unless `fixture_torch` (a fixture's "torch" metadata) is the release of `libtorch`.
void check_fixture_torch_version(const std::string& path, const std::string& fixture_torch, const std::string& libtorch);

// The parity fixtures written by tests/reference/make_fixtures.py (ctest runs it first), and the metric
// fixtures of tests/reference/make_inception_fixtures.py.
inline const SafetensorsFile& fixtures() { return fixture_file("fixtures.safetensors"); }
inline const SafetensorsFile& inception_fixtures() { return fixture_file("inception/fixtures.safetensors"); }

// max |a-b| / max(|b|_inf, tiny) <= tol, with the worst element reported on failure.
inline ::testing::AssertionResult AllCloseRelative(const torch::Tensor& actual, const torch::Tensor& expected, double tol) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " != " << expected.sizes();
  auto a = actual.to(torch::kFloat64), b = expected.to(torch::kFloat64);
  const double scale = std::max(b.abs().max().item<double>(), 1e-30);
  auto diff = (a - b).abs();
  const double worst = diff.max().item<double>();
  if (worst / scale <= tol) return ::testing::AssertionSuccess();
  const int64_t at = diff.view(-1).argmax().item<int64_t>();
  return ::testing::AssertionFailure() << "max abs diff " << worst << " (relative " << worst / scale << " > " << tol
                                       << ") at flat index " << at << ": " << a.view(-1)[at].item<double>() << " vs "
                                       << b.view(-1)[at].item<double>();
}

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout and stderr together
};
CommandResult run_command(const std::string& command);
inline CommandResult run_varbench(const std::string& args) { return run_command(std::string(VARBENCH_BINARY) + " " + args); }
// The message of the exception f throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);

// |actual - expected| <= tol * |expected|, with both values in the failure message.
::testing::AssertionResult RelativelyNear(double actual, double expected, double tol);

// An experiment file of small random models, the one the CLI tests write: `settings` are [experiment]
// lines ("name = \"t\"\nimages = 2\n"; warmup = 0 and repetitions = 1 unless they say otherwise),
// `models` name -> a random_init config ("tiny-d2") or a .safetensors checkpoint, the VQVAE vqvae-ch32,
// then the [[engines]] entries (single_engine, collaborative_engine, speculative_engine, or any TOML).
std::string experiment_toml(const std::string& settings, const std::vector<std::pair<std::string, std::string>>& models,
                            const std::string& engines);
std::string single_engine(const std::string& name, const std::string& model);
std::string collaborative_engine(const std::string& name, const std::string& drafter, const std::string& refiner, int64_t draft_steps);
std::string speculative_engine(const std::string& name, const std::string& draft, const std::string& target);

std::string temp_dir(const std::string& name);  // a fresh empty directory under the build tree, unique per test
// Removes a passed test's temp_dir directories when it ends (VARBENCH_KEEP_TEST_FILES=1 keeps them).
void install_scratch_cleanup();

}  // namespace varbench::testing
