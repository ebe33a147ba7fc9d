#pragma once
// The float64 linear algebra behind the Frechet distance, on the LAPACK/BLAS that libtorch itself links.
//
// An FID with a cached reference factor L costs the congruence L^T S L and the eigenvalues of the result.
// The congruence goes to LAPACK's dsygst, which uses the symmetry of S (about half the flops of two
// triangular products). For the eigenvalues, LAPACK's one-stage tridiagonal reduction (dsytrd, behind
// torch::linalg_eigvalsh) spends half its flops in memory-bound matrix-vector products; the two-stage
// route (blocked dsytrd_sy2sb to a band matrix, then dsbev) avoids that but its band stage is sequential.
// Measured on the 2-core development VM, d = 2048, 2 threads, idle (tests/benchmarks/bench_metrics):
// eigenvalues 357 ms one-stage vs 366-427 ms two-stage; with 4 other processes on the 2 cores the helper
// that wrote the band route saw the two-stage route ahead. kAuto takes dsygst + the one-stage solver,
// the better on an idle machine. The LAPACK routines are not part of libtorch's API: they are looked up at
// run time in the process's LAPACK (the one libtorch links); where libtorch exports none (a PyPI wheel
// links MKL statically) the system's liblapack.so.3 is opened, and without one the libtorch routines are
// used. Every result is float64 on CPU.
#include <torch/torch.h>

#include <string>

namespace varbench::metrics::linalg {

enum class Backend {
  kAuto,     // dsygst (else dtrmm, else torch::mm) for the congruence, torch::linalg_eigvalsh (dsyevd)
  kBand,     // as kAuto, but the two-stage dsytrd_sy2sb + dsbev for eigenvalues (throws when unavailable)
  kLibtorch  // torch::mm and torch::linalg_eigvalsh only
};
void set_backend(Backend backend);  // for benchmarks and tests; the default is kAuto
bool band_route_available();
std::string backend_name();  // what the next call will use

// Eigenvalues, ascending, of a symmetric float64 [D, D] matrix (only its lower triangle is read).
torch::Tensor symmetric_eigenvalues(const torch::Tensor& a);

// L^T S L for a lower-triangular L and a symmetric S, float64 [D, D].
torch::Tensor lower_congruence(const torch::Tensor& lower, const torch::Tensor& s);

// Threads of the BLAS pool (OpenBLAS keeps its own, separate from libtorch's intra-op threads); no-op
// when the BLAS has no such call.
void set_blas_threads(int threads);

}  // namespace varbench::metrics::linalg
