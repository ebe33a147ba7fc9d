#include "metrics/statistics.h"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace varbench::metrics {

namespace {
std::string shape_str(c10::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s.begin(), s.end(), ", ")); }

// A [D] or [D, D] float64 tensor from a dataset of the cache.
torch::Tensor read_f64(const h5::Group& g, const std::string& name, const std::vector<int64_t>& shape) {
  auto ds = g.dataset(name);
  const auto dims = ds.dims();
  if (dims.size() != shape.size() || !std::equal(dims.begin(), dims.end(), shape.begin(), [](uint64_t a, int64_t b) {
        return static_cast<int64_t>(a) == b;
      }))
    throw std::runtime_error(fmt::format("{}: {}/{} has shape [{}], expected {}", g.file(), g.path(), name,
                                         fmt::join(dims, ", "), shape_str(shape)));
  auto values = ds.read<double>();
  return torch::from_blob(values.data(), shape, torch::kFloat64).clone();
}
}  // namespace

void GaussianStats::validate() const {
  if (!mu.defined() || !sigma.defined()) throw std::runtime_error(source + ": statistics are missing");
  if (mu.dim() != 1 || sigma.dim() != 2 || sigma.size(0) != mu.size(0) || sigma.size(1) != mu.size(0))
    throw std::runtime_error(fmt::format("{}: mean {} and covariance {} do not fit together", source, shape_str(mu.sizes()),
                                         shape_str(sigma.sizes())));
  if (!torch::isfinite(mu).all().item<bool>())
    throw std::runtime_error(fmt::format("{}: the mean has non-finite values (first at index {})", source,
                                         (~torch::isfinite(mu)).nonzero()[0][0].item<int64_t>()));
  if (!torch::isfinite(sigma).all().item<bool>()) {
    const auto at = (~torch::isfinite(sigma)).nonzero()[0];
    throw std::runtime_error(fmt::format("{}: the covariance has non-finite values (first at [{}, {}])", source,
                                         at[0].item<int64_t>(), at[1].item<int64_t>()));
  }
}

FeatureStats::FeatureStats(int64_t dims)
    : sum(torch::zeros({dims}, torch::kFloat64)), sum_outer(torch::zeros({dims, dims}, torch::kFloat64)) {}

torch::Tensor finite_f64_rows(const torch::Tensor& x, const std::string& source, const char* what, int64_t first_image) {
  if (x.dim() != 2)
    throw std::runtime_error(fmt::format("{}: {} must be [N, D], got [{}]", source, what, fmt::join(x.sizes(), ", ")));
  auto f64 = x.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto finite_rows = torch::isfinite(f64).all(1);
  if (!finite_rows.all().item<bool>())
    throw std::runtime_error(fmt::format("{}: non-finite {} (NaN or Inf) for image {}", source, what,
                                         first_image + (~finite_rows).nonzero()[0][0].item<int64_t>()));
  return f64;
}

void FeatureStats::add(const torch::Tensor& features, const std::string& where) {
  TORCH_CHECK(features.dim() == 2, "FeatureStats::add: expected [B, D], got ", features.sizes());
  if (!sum.defined()) *this = FeatureStats(features.size(1));
  if (features.size(1) != dims())
    throw std::runtime_error(fmt::format("{}: features of dimension {} added to statistics of dimension {}", where,
                                         features.size(1), dims()));
  const auto x = finite_f64_rows(features, where, "features", n);
  sum.add_(x.sum(0));
  sum_outer.addmm_(x.t(), x);
  n += x.size(0);
}

FeatureStats& FeatureStats::merge(const FeatureStats& other) {
  if (!other.sum.defined()) return *this;
  if (!sum.defined()) {
    *this = FeatureStats(other.dims());
  } else if (other.dims() != dims()) {
    throw std::runtime_error(fmt::format("cannot merge statistics of dimension {} and {}", dims(), other.dims()));
  }
  n += other.n;
  sum.add_(other.sum);
  sum_outer.add_(other.sum_outer);
  return *this;
}

GaussianStats FeatureStats::gaussian(const std::string& source) const {
  if (n < 2)
    throw std::runtime_error(fmt::format("{}: {} image{}; a covariance needs at least 2", source, n, n == 1 ? "" : "s"));
  GaussianStats g;
  g.n = n;
  g.source = source;
  g.mu = sum / static_cast<double>(n);
  auto sigma = (sum_outer - static_cast<double>(n) * torch::outer(g.mu, g.mu)) / static_cast<double>(n - 1);
  // BLAS computes the (i, j) and (j, i) entries of X^T X in different orders; the eigen-solvers read one
  // triangle, so make both the same.
  g.sigma = (sigma + sigma.t()).mul_(0.5);
  return g;
}

void write_feature_stats(const h5::Group& group, const FeatureStats& stats) {
  const auto d = static_cast<uint64_t>(stats.dims());
  for (const char* name : {"sum", "sum_outer"})
    if (group.has(name)) group.remove(name);
  group.set_attr("n", stats.n);
  const auto sum = stats.sum.contiguous(), outer = stats.sum_outer.contiguous();
  group.write<double>("sum", {d}, sum.data_ptr<double>());
  group.write<double>("sum_outer", {d, d}, outer.data_ptr<double>());
}

FeatureStats read_feature_stats(const h5::Group& group) {
  FeatureStats s;
  s.n = group.attr_int("n");
  const auto dims = group.dataset("sum").dims();
  if (dims.size() != 1) throw std::runtime_error(group.file() + ": " + group.path() + "/sum is not a vector");
  const auto d = static_cast<int64_t>(dims[0]);
  s.sum = read_f64(group, "sum", {d});
  s.sum_outer = read_f64(group, "sum_outer", {d, d});
  return s;
}

torch::Tensor npy_to_tensor(const io::NpyArray& a, const std::string& where) {
  torch::ScalarType type;
  if (a.dtype == "|u1" || a.dtype == "<u1") type = torch::kUInt8;
  else if (a.dtype == "<i8") type = torch::kInt64;
  else if (a.dtype == "<f4") type = torch::kFloat32;
  else if (a.dtype == "<f8") type = torch::kFloat64;
  else throw std::runtime_error(fmt::format("{}: unsupported dtype '{}'", where, a.dtype));
  auto t = torch::empty(a.shape, type);
  if (static_cast<size_t>(t.nbytes()) != a.bytes.size())
    throw std::runtime_error(fmt::format("{}: {} bytes for shape {} of '{}'", where, a.bytes.size(), shape_str(a.shape), a.dtype));
  std::memcpy(t.data_ptr(), a.bytes.data(), a.bytes.size());
  return t;
}

io::NpyArray tensor_to_npy(const torch::Tensor& tensor) {
  const auto t = tensor.to(torch::kCPU).contiguous();
  io::NpyArray a;
  switch (t.scalar_type()) {
    case torch::kUInt8: a.dtype = "|u1"; break;
    case torch::kInt64: a.dtype = "<i8"; break;
    case torch::kFloat32: a.dtype = "<f4"; break;
    case torch::kFloat64: a.dtype = "<f8"; break;
    default: throw std::runtime_error(fmt::format("tensor_to_npy: unsupported dtype {}", c10::toString(t.scalar_type())));
  }
  a.shape = t.sizes().vec();
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  a.bytes.assign(p, p + t.nbytes());
  return a;
}

GaussianStats read_npz_gaussian(const io::NpzReader& npz, const std::string& mu_key, const std::string& sigma_key) {
  GaussianStats g;
  g.source = npz.path() + ":" + mu_key + "/" + sigma_key;
  for (const auto& key : {mu_key, sigma_key})
    if (!npz.has(key)) throw std::runtime_error(fmt::format("{}: no array '{}' in the .npz", npz.path(), key));
  auto load = [&](const std::string& key) {
    auto t = npy_to_tensor(npz.read(key), npz.path() + ":" + key);
    if (!t.is_floating_point())
      throw std::runtime_error(fmt::format("{}:{}: dtype {} is not floating point", npz.path(), key, c10::toString(t.scalar_type())));
    return t.to(torch::kFloat64);
  };
  g.mu = load(mu_key);
  g.sigma = load(sigma_key);
  g.validate();
  return g;
}

}  // namespace varbench::metrics
