#include "metrics/linalg.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench::metrics::linalg {

namespace {
// Fortran calling convention (gfortran): every argument by pointer, then one hidden length per
// character argument.
using Sy2sbFn = void (*)(const char* uplo, const int* n, const int* kd, double* a, const int* lda, double* ab,
                         const int* ldab, double* tau, double* work, const int* lwork, int* info, size_t uplo_len);
using SbevFn = void (*)(const char* jobz, const char* uplo, const int* n, const int* kd, double* ab, const int* ldab,
                        double* w, double* z, const int* ldz, double* work, int* info, size_t jobz_len, size_t uplo_len);
using TrmmFn = void (*)(const char* side, const char* uplo, const char* transa, const char* diag, const int* m,
                        const int* n, const double* alpha, const double* a, const int* lda, double* b, const int* ldb,
                        size_t, size_t, size_t, size_t);
using SygstFn = void (*)(const int* itype, const char* uplo, const int* n, double* a, const int* lda, const double* b,
                         const int* ldb, int* info, size_t uplo_len);
using SetThreadsFn = void (*)(int);

struct Routines {
  Sy2sbFn sy2sb = nullptr;
  SbevFn sbev = nullptr;
  TrmmFn trmm = nullptr;
  SygstFn sygst = nullptr;
  SetThreadsFn set_threads = nullptr;
  bool band() const { return sy2sb && sbev && trmm; }
};

// Debian's libtorch links the system's BLAS/LAPACK dynamically, so their symbols are in the process
// already. A PyPI wheel links MKL statically and exports none of it: then the system's LAPACK (Debian's
// liblapack.so.3 alternative, or OpenBLAS's own) is opened, privately.
void* lapack_symbol(const char* name) {
  if (void* p = dlsym(RTLD_DEFAULT, name)) return p;
  static void* const library = []() -> void* {
    for (const char* path : {"liblapack.so.3", "/usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3"})
      if (void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) return h;
    return nullptr;
  }();
  return library ? dlsym(library, name) : nullptr;
}

const Routines& routines() {
  static const Routines r = [] {
    Routines r;
    r.sy2sb = reinterpret_cast<Sy2sbFn>(lapack_symbol("dsytrd_sy2sb_"));
    r.sbev = reinterpret_cast<SbevFn>(lapack_symbol("dsbev_"));
    r.trmm = reinterpret_cast<TrmmFn>(lapack_symbol("dtrmm_"));
    r.sygst = reinterpret_cast<SygstFn>(lapack_symbol("dsygst_"));
    r.set_threads = reinterpret_cast<SetThreadsFn>(lapack_symbol("openblas_set_num_threads"));
    return r;
  }();
  return r;
}

std::atomic<Backend> g_backend{Backend::kAuto};

bool band_eigenvalues() {
  if (g_backend.load() != Backend::kBand) return false;
  if (!routines().band())
    throw std::runtime_error("linalg: the band route needs dsytrd_sy2sb_, dsbev_ and dtrmm_, which this process's LAPACK lacks");
  return true;
}

bool lapack_congruence() { return g_backend.load() != Backend::kLibtorch && (routines().sygst || routines().trmm); }

// Band width of the first stage: 32 was fastest here for d = 2048 (16: 0.58 s, 32: 0.46 s, 64: 0.52 s for
// the two stages together on 2 loaded threads); the band solver's cost grows with it.
constexpr int kBandWidth = 32;

void check_square_f64(const torch::Tensor& a, const char* what) {
  TORCH_CHECK(a.dim() == 2 && a.size(0) == a.size(1) && a.scalar_type() == torch::kFloat64 && a.device().is_cpu(), what,
              ": expected a square float64 CPU matrix, got ", a.scalar_type(), " ", a.sizes());
}
}  // namespace

void set_backend(Backend backend) { g_backend = backend; }
bool band_route_available() { return routines().band(); }
std::string backend_name() {
  const std::string congruence = !lapack_congruence() ? "mm" : routines().sygst ? "dsygst" : "dtrmm";
  return band_eigenvalues() ? congruence + ", LAPACK two-stage eigenvalues (dsytrd_sy2sb + dsbev)"
                            : congruence + ", linalg_eigvalsh (dsyevd)";
}

void set_blas_threads(int threads) {
  if (routines().set_threads && threads > 0) routines().set_threads(threads);
}

torch::Tensor symmetric_eigenvalues(const torch::Tensor& input) {
  check_square_f64(input, "symmetric_eigenvalues");
  const int n = static_cast<int>(input.size(0));
  if (!band_eigenvalues() || n <= kBandWidth + 1) return torch::linalg_eigvalsh(input);
  const auto& r = routines();
  // Row-major storage of a symmetric matrix is its column-major storage too; "L" reads one triangle.
  auto a = input.clone(at::MemoryFormat::Contiguous);
  const int kd = kBandWidth, ldab = kd + 1;
  auto band = torch::zeros({n, ldab}, torch::kFloat64);  // column-major (kd+1) x n
  auto tau = torch::zeros({n}, torch::kFloat64);
  int info = 0, lwork = -1;
  double query = 0;
  r.sy2sb("L", &n, &kd, a.data_ptr<double>(), &n, band.data_ptr<double>(), &ldab, tau.data_ptr<double>(), &query,
          &lwork, &info, 1);
  if (info != 0) throw std::runtime_error(fmt::format("dsytrd_sy2sb workspace query failed (info {})", info));
  lwork = static_cast<int>(query);
  auto work = torch::empty({std::max(lwork, 1)}, torch::kFloat64);
  r.sy2sb("L", &n, &kd, a.data_ptr<double>(), &n, band.data_ptr<double>(), &ldab, tau.data_ptr<double>(),
          work.data_ptr<double>(), &lwork, &info, 1);
  if (info != 0) throw std::runtime_error(fmt::format("dsytrd_sy2sb failed (info {})", info));
  auto w = torch::empty({n}, torch::kFloat64);
  auto sbev_work = torch::empty({3 * n}, torch::kFloat64);
  double z = 0;
  const int ldz = 1;
  r.sbev("N", "L", &n, &kd, band.data_ptr<double>(), &ldab, w.data_ptr<double>(), &z, &ldz, sbev_work.data_ptr<double>(),
         &info, 1, 1);
  if (info != 0) throw std::runtime_error(fmt::format("dsbev did not converge (info {})", info));
  return w;
}

torch::Tensor lower_congruence(const torch::Tensor& lower, const torch::Tensor& s) {
  check_square_f64(lower, "lower_congruence");
  check_square_f64(s, "lower_congruence");
  if (!lapack_congruence()) return torch::mm(torch::mm(lower.t(), s), lower);
  // Column-major view of the row-major buffers: L appears as U = L^T (upper), S as S. M = U S U^T.
  const int n = static_cast<int>(lower.size(0));
  const double one = 1.0;
  const auto u = lower.contiguous();
  auto m = s.clone(at::MemoryFormat::Contiguous);
  if (routines().sygst) {
    // dsygst (itype 2) forms U A U^T for B = U^T U using the symmetry of A: about half the flops of the
    // two triangular products. It writes the upper triangle (column-major), i.e. the row-major lower one;
    // mirror it so the result is the full symmetric matrix.
    const int itype = 2;
    int info = 0;
    routines().sygst(&itype, "U", &n, m.data_ptr<double>(), &n, u.data_ptr<double>(), &n, &info, 1);
    if (info != 0) throw std::runtime_error(fmt::format("dsygst failed (info {})", info));
    double* a = m.data_ptr<double>();
    constexpr int kTile = 64;  // mirror tile by tile to keep both sides in cache
    for (int i0 = 0; i0 < n; i0 += kTile)
      for (int j0 = 0; j0 <= i0; j0 += kTile)
        for (int i = i0; i < std::min(i0 + kTile, n); ++i)
          for (int j = j0; j < std::min({j0 + kTile, i, n}); ++j) a[static_cast<size_t>(j) * n + i] = a[static_cast<size_t>(i) * n + j];
    return m;
  }
  routines().trmm("R", "U", "T", "N", &n, &n, &one, u.data_ptr<double>(), &n, m.data_ptr<double>(), &n, 1, 1, 1, 1);  // S U^T
  routines().trmm("L", "U", "N", "N", &n, &n, &one, u.data_ptr<double>(), &n, m.data_ptr<double>(), &n, 1, 1, 1, 1);  // U S U^T
  return m;  // symmetric: row-major reading is the same matrix
}

}  // namespace varbench::metrics::linalg
