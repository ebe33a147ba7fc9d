#pragma once
// What produced a result: build (git revision, type), libraries, device and threads. Written into every
// result file and printed in every report.
#include <string>

#include <torch/torch.h>

#include "formats/hdf5.h"

namespace varbench {

struct Provenance {
  std::string varbench_version, git_revision, build_type, compiler;
  std::string libtorch_version;
  std::string cuda_version, cudnn_version;  // what libtorch was built with ("" on CPU builds / without cuDNN)
  std::string blas;                         // libtorch's BLAS_INFO and the BLAS library loaded in this process
  std::string mkl, onednn_version;          // "yes"/"no"; oneDNN (MKL-DNN) version, "" when absent
  std::string attention_backend;            // what compat::attention runs on this device and dtype
  std::string device, device_name, hostname, timestamp_utc, command_line;
  int64_t threads = 0;
  std::string openmp_wait_policy;  // OMP_WAIT_POLICY as the process runs (harness/platform/cpu_runtime.h)
  double test_slowdown = 0;        // VARBENCH_TEST_SLOWDOWN (0: unset), see test_slowdown_fraction()
};

// VARBENCH_TEST_SLOWDOWN=0.1 makes every timed batch of `varbench run` 10% slower (the timing observer
// sleeps for that share of the batch's transformer time before taking it): a known slowdown for checking
// the regression gate (`varbench compare --ab`), never for measurements. 0 when unset; a value that is
// not a number in [0, 10] is an error naming the variable.
double test_slowdown_fraction();

// `compute_dtype`: the dtype the run's attention runs in (PrecisionPolicy::compute_dtype()).
Provenance collect_provenance(torch::Device device, torch::ScalarType compute_dtype = torch::kFloat32);
void write_provenance(const h5::Group& group, const Provenance& p);
std::string utc_timestamp();
// `varbench --version`: the build, its libtorch (with the CUDA and cuDNN it was built with) and the
// attention it runs on the CPU; scripts/ci-gpu reads the "libtorch X.Y" of its second line.
std::string version_text();
// How a run was measured, from its provenance attributes: the device's model (GPU or CPU), threads, OpenMP
// wait policy and a test slowdown, "NVIDIA H100 80GB HBM3 | 8 threads | PASSIVE". Runs (or shards) that
// differ here have timings that do not compare; what they generated does (the run identity leaves these
// out). The host name is recorded too, but two nodes of one kind measure alike.
std::string measurement_of(const h5::Group& run);
std::string measurement_of(const Provenance& p);

// The invoking command line, recorded by main() for provenance.
void set_command_line(int argc, char** argv);
const std::string& command_line();

// Threads for libtorch's intra-op pool and for OpenBLAS's own pool (which otherwise uses every core even
// with --threads 1): 0 = every core (libtorch 1.13 defaults to half). Returns the effective count.
int configure_threads(int requested);

}  // namespace varbench
