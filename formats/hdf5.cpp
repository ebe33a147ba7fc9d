#include "formats/hdf5.h"

#include <algorithm>
#include <stdexcept>

namespace varbench::h5 {

namespace {
// HDF5 prints its own error stack to stderr by default; varbench reports errors itself.
struct SilenceHdf5 {
  SilenceHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
} silence_hdf5;

[[noreturn]] void fail(const std::string& file, const std::string& what) { throw std::runtime_error(file + ": " + what); }
std::string join(const std::string& group, const std::string& name) {
  return group == "/" ? "/" + name : group + "/" + name;
}
}  // namespace

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = -1;
}

template <> hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<uint64_t>() { return H5T_NATIVE_UINT64; }
template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }

// ------------------------------------------------------------------------------------------------
File::File(const std::string& path, Mode mode) : path_(path) {
  hid_t id = -1;
  switch (mode) {
    case Mode::kReadOnly: id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); break;
    case Mode::kReadWrite: id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT); break;
    case Mode::kCreate: id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); break;
    case Mode::kOpenOrCreate:
      id = H5Fis_hdf5(path.c_str()) > 0 ? H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                                         : H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
      break;
  }
  if (id < 0) fail(path, mode == Mode::kCreate ? "cannot create HDF5 file" : "cannot open as an HDF5 file");
  h_ = Handle(id);
}

File::~File() {
  if (h_.valid()) H5Fflush(h_.id(), H5F_SCOPE_GLOBAL);
}

Group File::root() const {
  hid_t id = H5Gopen2(h_.id(), "/", H5P_DEFAULT);
  if (id < 0) fail(path_, "cannot open the root group");
  return Group(Handle(id), path_, "/");
}

void File::flush() const {
  if (H5Fflush(h_.id(), H5F_SCOPE_GLOBAL) < 0) fail(path_, "flush failed");
}

bool is_readable_hdf5(const std::string& path) {
  if (H5Fis_hdf5(path.c_str()) <= 0) return false;
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) return false;
  H5Fclose(id);
  return true;
}

// ------------------------------------------------------------------------------------------------
Group Group::clone() const {
  hid_t id = H5Gopen2(h_.id(), ".", H5P_DEFAULT);
  if (id < 0) fail(file_, "cannot reopen group " + path_);
  return Group(Handle(id), file_, path_);
}

bool Group::has(const std::string& name) const {
  // Check each path component so that a missing intermediate group is "absent", not an error.
  std::string partial;
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    partial = name.substr(0, slash);
    if (H5Lexists(h_.id(), partial.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

Group Group::group(const std::string& name) const {
  hid_t id = has(name) ? H5Gopen2(h_.id(), name.c_str(), H5P_DEFAULT) : -1;
  if (id < 0) fail(file_, "no group " + join(path_, name));
  return Group(Handle(id), file_, join(path_, name));
}

Group Group::create_group(const std::string& name) const {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  hid_t id = H5Gcreate2(h_.id(), name.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) fail(file_, "cannot create group " + join(path_, name));
  return Group(Handle(id), file_, join(path_, name));
}

Group Group::require_group(const std::string& name) const { return has(name) ? group(name) : create_group(name); }

std::vector<std::string> Group::children() const {
  std::vector<std::string> out;
  H5Literate(
      h_.id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &out);
  return out;
}

void Group::remove(const std::string& name) const {
  if (H5Ldelete(h_.id(), name.c_str(), H5P_DEFAULT) < 0) fail(file_, "cannot remove " + join(path_, name));
}

// ------------------------------------------------------------------------------------------------
bool Group::has_attr(const std::string& name) const { return H5Aexists(h_.id(), name.c_str()) > 0; }

std::vector<std::string> Group::attr_names() const {
  std::vector<std::string> out;
  H5Aiterate2(
      h_.id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &out);
  return out;
}

namespace {
void write_attr(hid_t obj, const std::string& file, const std::string& path, const std::string& name, hid_t type,
                const std::vector<hsize_t>& dims, const void* data) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle attr(H5Acreate2(obj, name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.id(), type, data) < 0) fail(file, "cannot write attribute " + name + " of " + path);
}
Handle open_attr(hid_t obj, const std::string& file, const std::string& path, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) fail(file, "no attribute '" + name + "' on " + path);
  return Handle(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
}
hssize_t attr_points(const Handle& attr) {
  Handle space(H5Aget_space(attr.id()));
  return H5Sget_simple_extent_npoints(space.id());
}
}  // namespace

void Group::set_attr(const std::string& name, const std::string& value) const {
  // Variable-length UTF-8, which h5py reads back as str.
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.id(), H5T_VARIABLE);
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  const char* data = value.c_str();
  write_attr(h_.id(), file_, path_, name, type.id(), {}, &data);
}
void Group::set_attr(const std::string& name, int64_t value) const {
  write_attr(h_.id(), file_, path_, name, H5T_NATIVE_INT64, {}, &value);
}
void Group::set_attr(const std::string& name, double value) const {
  write_attr(h_.id(), file_, path_, name, H5T_NATIVE_DOUBLE, {}, &value);
}
void Group::set_attr(const std::string& name, const std::vector<int64_t>& value) const {
  write_attr(h_.id(), file_, path_, name, H5T_NATIVE_INT64, {value.size()}, value.data());
}
void Group::set_attr(const std::string& name, const std::vector<double>& value) const {
  write_attr(h_.id(), file_, path_, name, H5T_NATIVE_DOUBLE, {value.size()}, value.data());
}

std::string Group::attr_string(const std::string& name) const {
  auto attr = open_attr(h_.id(), file_, path_, name);
  Handle type(H5Aget_type(attr.id()));
  if (H5Tget_class(type.id()) != H5T_STRING) fail(file_, "attribute '" + name + "' of " + path_ + " is not a string");
  if (H5Tis_variable_str(type.id()) > 0) {  // written by h5py
    char* s = nullptr;
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.id(), H5T_VARIABLE);
    H5Tset_cset(mem.id(), H5Tget_cset(type.id()));
    if (H5Aread(attr.id(), mem.id(), &s) < 0) fail(file_, "cannot read attribute " + name);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  std::string out(H5Tget_size(type.id()), '\0');
  if (H5Aread(attr.id(), type.id(), out.data()) < 0) fail(file_, "cannot read attribute " + name);
  out.erase(out.find_last_not_of('\0') + 1);
  return out;
}
int64_t Group::attr_int(const std::string& name) const {
  auto attr = open_attr(h_.id(), file_, path_, name);
  int64_t v = 0;
  if (attr_points(attr) != 1 || H5Aread(attr.id(), H5T_NATIVE_INT64, &v) < 0)
    fail(file_, "attribute '" + name + "' of " + path_ + " is not an integer");
  return v;
}
double Group::attr_double(const std::string& name) const {
  auto attr = open_attr(h_.id(), file_, path_, name);
  double v = 0;
  if (attr_points(attr) != 1 || H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &v) < 0)
    fail(file_, "attribute '" + name + "' of " + path_ + " is not a number");
  return v;
}
std::vector<int64_t> Group::attr_ints(const std::string& name) const {
  auto attr = open_attr(h_.id(), file_, path_, name);
  std::vector<int64_t> v(static_cast<size_t>(attr_points(attr)));
  if (!v.empty() && H5Aread(attr.id(), H5T_NATIVE_INT64, v.data()) < 0) fail(file_, "cannot read attribute " + name);
  return v;
}
std::vector<double> Group::attr_doubles(const std::string& name) const {
  auto attr = open_attr(h_.id(), file_, path_, name);
  std::vector<double> v(static_cast<size_t>(attr_points(attr)));
  if (!v.empty() && H5Aread(attr.id(), H5T_NATIVE_DOUBLE, v.data()) < 0) fail(file_, "cannot read attribute " + name);
  return v;
}

// ------------------------------------------------------------------------------------------------
Dataset Group::create_dataset_typed(const std::string& name, hid_t type, const std::vector<uint64_t>& dims,
                                    const std::vector<uint64_t>& chunk, int gzip_level, bool extendible) const {
  std::vector<hsize_t> d(dims.begin(), dims.end()), maxd(d);
  if (extendible && !maxd.empty()) maxd[0] = H5S_UNLIMITED;
  Handle space(d.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(d.size()), d.data(), maxd.data()));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  // An empty dataset (a shard with no batch, a run without timed batches) cannot be chunked: chunk
  // dimensions must be >= 1 and within fixed dimensions. It is stored contiguous, which holds nothing.
  const bool empty = std::find(d.begin(), d.end(), hsize_t{0}) != d.end() && !extendible;
  if (!chunk.empty() && !empty) {
    std::vector<hsize_t> c(chunk.begin(), chunk.end());
    H5Pset_chunk(dcpl.id(), static_cast<int>(c.size()), c.data());
    if (gzip_level > 0) {
      H5Pset_shuffle(dcpl.id());
      H5Pset_deflate(dcpl.id(), static_cast<unsigned>(gzip_level));
    }
  } else if (extendible && chunk.empty()) {
    fail(file_, "extendible dataset " + join(path_, name) + " needs a chunk shape");
  }
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  hid_t id = H5Dcreate2(h_.id(), name.c_str(), type, space.id(), lcpl.id(), dcpl.id(), H5P_DEFAULT);
  if (id < 0) fail(file_, "cannot create dataset " + join(path_, name));
  return Dataset(Handle(id), file_, join(path_, name));
}

Dataset Group::dataset(const std::string& name) const {
  hid_t id = has(name) ? H5Dopen2(h_.id(), name.c_str(), H5P_DEFAULT) : -1;
  if (id < 0) fail(file_, "no dataset " + join(path_, name));
  return Dataset(Handle(id), file_, join(path_, name));
}

std::vector<uint64_t> Dataset::dims() const {
  Handle space(H5Dget_space(h_.id()));
  const int n = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> d(static_cast<size_t>(std::max(n, 0)));
  if (n > 0) H5Sget_simple_extent_dims(space.id(), d.data(), nullptr);
  return {d.begin(), d.end()};
}

H5T_class_t Dataset::type_class() const {
  Handle t(H5Dget_type(h_.id()));
  return H5Tget_class(t.id());
}
size_t Dataset::type_size() const {
  Handle t(H5Dget_type(h_.id()));
  return H5Tget_size(t.id());
}
bool Dataset::is_signed() const {
  Handle t(H5Dget_type(h_.id()));
  return H5Tget_sign(t.id()) == H5T_SGN_2;
}

namespace {
Handle row_selection(hid_t dset, const std::vector<uint64_t>& dims, uint64_t row, uint64_t count, Handle& memspace) {
  Handle filespace(H5Dget_space(dset));
  if (dims.empty()) {
    memspace = Handle(H5Screate(H5S_SCALAR));
    return filespace;
  }
  std::vector<hsize_t> start(dims.size(), 0), extent(dims.begin(), dims.end());
  start[0] = row;
  extent[0] = count;
  H5Sselect_hyperslab(filespace.id(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr);
  memspace = Handle(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr));
  return filespace;
}
}  // namespace

void Dataset::write_rows_typed(uint64_t row, uint64_t count, hid_t type, const void* data) const {
  const auto d = dims();
  if (!d.empty() && row + count > d[0])
    fail(file_, "write of rows [" + std::to_string(row) + ", " + std::to_string(row + count) + ") past the end of " + path_);
  Handle memspace;
  Handle filespace = row_selection(h_.id(), d, row, count, memspace);
  if (H5Dwrite(h_.id(), type, memspace.id(), filespace.id(), H5P_DEFAULT, data) < 0) fail(file_, "cannot write " + path_);
}

void Dataset::read_rows_typed(uint64_t row, uint64_t count, hid_t type, void* data) const {
  const auto d = dims();
  if (!d.empty() && row + count > d[0])
    fail(file_, "read of rows [" + std::to_string(row) + ", " + std::to_string(row + count) + ") past the end of " + path_);
  Handle memspace;
  Handle filespace = row_selection(h_.id(), d, row, count, memspace);
  if (H5Dread(h_.id(), type, memspace.id(), filespace.id(), H5P_DEFAULT, data) < 0) fail(file_, "cannot read " + path_);
}

}  // namespace varbench::h5
