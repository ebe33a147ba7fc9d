#pragma once
// An experiment checked whole before its first run: every model resolves to an architecture (named config,
// or a checkpoint file that exists and whose header reads), every engine's parameters and model references
// hold against those architectures, and the device/dtype pairs are possible. A static error found an hour
// into a sweep costs an hour; here it costs nothing. Failures that only the work can show (out of memory
// at a batch size, a GPU that is not there) stay per-run failures.
#include <string>
#include <vector>

#include "harness/experiment/experiment.h"

namespace varbench {

struct CheckOptions {
  bool random_override = false;  // --random-init: checkpoints are not read, every model needs a config
  std::string device_override;   // --device
};

// "<path>: no such checkpoint file (--random-init ...)" when the model's checkpoint (the one it would be
// loaded from, given --random-init) is absent; "" otherwise.
std::string absent_checkpoint(const ModelSpec& spec, bool random_override);

// What is known of the experiment's models before any weight is loaded: each one's architecture (named
// config or checkpoint header) or why it has none; `vqvae_error` (when given) receives the VQVAE's reason,
// "" when its architecture resolved.
ModelCatalog experiment_catalog(const Experiment& experiment, bool random_override, std::string* vqvae_error = nullptr);

// The problems, one line each, naming file:line and the key or model; empty when there are none.
std::vector<std::string> experiment_problems(const Experiment& experiment, const CheckOptions& options);
// Throws one error listing every problem, when there is any.
void check_experiment(const Experiment& experiment, const CheckOptions& options);

}  // namespace varbench
