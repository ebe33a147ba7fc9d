#pragma once
// What produced a result: build (git revision, type), libraries, device and threads. Written into every
// result file and printed in every report.
#include <string>

#include <torch/torch.h>

#include "harness/io/hdf5.h"

namespace varbench {

struct Provenance {
  std::string varbench_version, git_revision, build_type, compiler;
  std::string libtorch_version, cuda_version;
  std::string device, device_name, hostname, timestamp_utc, command_line;
  int64_t threads = 0;
};

Provenance collect_provenance(torch::Device device);
void write_provenance(const h5::Group& group, const Provenance& p);
std::string utc_timestamp();
// The invoking command line, recorded by main() for provenance.
void set_command_line(int argc, char** argv);
const std::string& command_line();

// Threads for libtorch's intra-op pool: 0 = every core (libtorch 1.13 defaults to half). Returns the
// effective count.
int configure_threads(int requested);

}  // namespace varbench
