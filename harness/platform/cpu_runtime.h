#pragma once
// Process-wide CPU runtime settings every varbench program starts with.
#include <string>

namespace varbench {

// libtorch's intra-op pool is OpenMP (libgomp), and Debian's libtorch calls OpenBLAS, which runs its own
// pthreads. Under OpenMP's default wait policy an idle OpenMP thread spins for a while after each
// parallel region, so it competes for the cores with the OpenBLAS threads of the GEMM that follows, and
// the spinning OpenBLAS threads with the next elementwise op: on 2 cores a d16-width block step at 72 rows
// took 4x its matrix products (measured, see tests/benchmarks/bench_breakdown.cpp). With waits passive,
// idle threads sleep at once. libgomp reads OMP_WAIT_POLICY only when it is loaded, before main(), so when
// the variable is unset this sets it to PASSIVE and re-executes the program (same pid, arguments and
// descriptors). A policy the user set is kept. Call first thing in main().
void use_passive_openmp_waits(char** argv);

// The wait policy this process runs with ("PASSIVE", "ACTIVE", or "default" when unset), for provenance.
std::string openmp_wait_policy();

}  // namespace varbench
