#pragma once
// The float64 linear algebra behind the Frechet distance, on the LAPACK/BLAS that libtorch itself links.
//
// The eigenvalues of a dense symmetric matrix dominate the cost of an FID. LAPACK's one-stage
// tridiagonal reduction (dsytrd, behind torch::linalg_eigvalsh) spends half its flops in matrix-vector
// products that are bound by memory bandwidth; reducing to a band matrix first with blocked BLAS3
// (dsytrd_sy2sb) and then solving the band problem (dsbev) needs the same eigenvalues at about half the
// time here (d = 2048, 2 threads). Those routines are not part of libtorch's API, so they are looked up
// at run time in the process's LAPACK (the one libtorch was linked against); when a libtorch build has
// none (e.g. MKL linked statically), the libtorch routines are used. Every result is float64 on CPU.
#include <torch/torch.h>

#include <string>

namespace varbench::metrics::linalg {

enum class Backend {
  kAuto,     // the band route when the process's LAPACK provides it, else libtorch
  kBand,     // dsytrd_sy2sb + dsbev; dtrmm for triangular products (throws when unavailable)
  kLibtorch  // torch::linalg_eigvalsh (dsyevd) and torch::mm
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
