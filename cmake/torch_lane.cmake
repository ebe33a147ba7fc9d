# Finds libtorch and checks that the lane it makes is coherent, stopping at configure time with a message
# that says what is wrong instead of failing later at link time or in a test. Two lanes are supported:
# Debian 12's libtorch 1.13 (CPU) and a PyTorch 2.x wheel or libtorch archive with CUDA
# (scripts/setup --torch pip). Sets:
#   VARBENCH_WITH_CUDA          ON when libtorch is a CUDA build (device_cuda.cpp is compiled)
#   VARBENCH_TORCH_CUDA_VERSION the CUDA version libtorch was built with ("13.0"), "" for CPU builds
#   VARBENCH_TORCH_LIBRARIES    what varbench links (TORCH_LIBRARIES: torch, and torch_cuda/c10_cuda on CUDA)
#   VARBENCH_TORCH_PYTHON_ROOT  the Python environment the libtorch came from ("" when it is not a wheel)
#   VARBENCH_PYTHON             the lane's Python (cache; -DVARBENCH_PYTHON=... overrides): the wheel's environment,
#                               else Debian's /usr/bin/python3. The fixture scripts run with it (tests/CMakeLists.txt
#                               checks that its torch is this libtorch's version) and `varbench report` defaults to it.

option(VARBENCH_REQUIRE_CUDA "Stop unless libtorch is a CUDA build and a CUDA toolkit of its CUDA major version is found" OFF)

# A CUDA libtorch's CMake config enables the CUDA language and defaults its standard to the C++ one;
# CMake 3.25 has no C++20 dialect flag for nvcc, so the probe it compiles would fail. varbench compiles
# no .cu files (its CUDA code is host C++ calling libtorch and the runtime API), so 17 is enough for nvcc.
if(NOT DEFINED CMAKE_CUDA_STANDARD)
  set(CMAKE_CUDA_STANDARD 17)
endif()

if(VARBENCH_REQUIRE_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "varbench: VARBENCH_REQUIRE_CUDA is ON but no CUDA compiler was found: install the CUDA "
                        "toolkit whose major version is the one libtorch was built with, put nvcc on PATH (or set "
                        "CUDACXX / -DCMAKE_CUDA_COMPILER=.../bin/nvcc). A CPU-only build is not made in this lane.")
  endif()
endif()

find_package(Torch REQUIRED)

# Attention follows upstream VAR, which calls scaled_dot_product_attention(..., scale=) wherever torch has it:
# libtorch 1.13 has no SDPA (the explicit formula, as upstream there); from 2.2 the C++ API takes
# std::optional scale. 2.0 and 2.1 have SDPA without that signature: neither formula would be upstream's.
if(Torch_VERSION VERSION_GREATER_EQUAL 2.0 AND Torch_VERSION VERSION_LESS 2.2)
  message(FATAL_ERROR "varbench: libtorch ${Torch_VERSION} is not supported: use Debian's 1.13 or torch >= 2.2")
endif()

# Where the libtorch lives: every library of it must come from there. (TorchConfig.cmake searches the
# system folders before its own, so with Debian's libtorch installed a wheel's config can pick up
# /usr/lib/.../libtorch.so; pass the torch root, not share/cmake, as CMAKE_PREFIX_PATH.)
get_filename_component(_torch_root "${TORCH_INSTALL_PREFIX}" REALPATH)
set(_torch_wrong_libraries "")
foreach(_lib IN ITEMS TORCH_LIBRARY C10_LIBRARY C10_CUDA_LIBRARY)
  if(${_lib})
    get_filename_component(_real "${${_lib}}" REALPATH)
    string(FIND "${_real}" "${_torch_root}/" _at)
    if(NOT _at EQUAL 0)
      list(APPEND _torch_wrong_libraries "${_lib}=${_real}")
    endif()
  endif()
endforeach()
if(_torch_wrong_libraries)
  message(FATAL_ERROR "varbench: libtorch's CMake config is in ${_torch_root} but found ${_torch_wrong_libraries}: two "
                      "libtorch installations are mixed. Pass the torch root as -DCMAKE_PREFIX_PATH=${_torch_root} "
                      "(or clear the CMake cache).")
endif()

# varbench links Debian's HDF5, fmt and GoogleTest, built with the C++11 ABI: an ABI-0 libtorch (old
# pre-cxx11 builds) cannot be linked with them; std::string symbols would not resolve.
if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
  message(FATAL_ERROR "varbench: the libtorch in ${_torch_root} uses the pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0), "
                      "which cannot be linked with the system's C++ libraries. Use a cxx11-ABI libtorch: PyPI's "
                      "wheels since torch 2.6, or the 'cxx11 ABI' libtorch archive.")
endif()

# CUDA: a libtorch built with CUDA defines torch_cuda; the CUDA version it was built with is in the
# wheel's version.py or the archive's build-version.
set(VARBENCH_TORCH_CUDA_VERSION "")
if(TARGET torch_cuda)
  set(VARBENCH_WITH_CUDA ON)
  if(EXISTS "${_torch_root}/version.py")
    file(STRINGS "${_torch_root}/version.py" _line REGEX "^cuda[^=]*= *'[0-9.]+'")
    string(REGEX MATCH "'([0-9.]+)'" _ "${_line}")
    set(VARBENCH_TORCH_CUDA_VERSION "${CMAKE_MATCH_1}")
  elseif(EXISTS "${_torch_root}/build-version")
    file(READ "${_torch_root}/build-version" _line)
    if(_line MATCHES "\\+cu([0-9]+)([0-9])")
      set(VARBENCH_TORCH_CUDA_VERSION "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
    endif()
  endif()
  # torch's own CUDA config found the toolkit (CUDAToolkit_VERSION); its major must equal libtorch's, or
  # the headers varbench compiles against disagree with the runtime libtorch_cuda was built for.
  if(VARBENCH_TORCH_CUDA_VERSION AND CUDAToolkit_VERSION)
    string(REGEX MATCH "^[0-9]+" _torch_major "${VARBENCH_TORCH_CUDA_VERSION}")
    if(NOT CUDAToolkit_VERSION_MAJOR STREQUAL _torch_major)
      message(FATAL_ERROR "varbench: libtorch in ${_torch_root} was built with CUDA ${VARBENCH_TORCH_CUDA_VERSION} but "
                          "the CUDA toolkit found is ${CUDAToolkit_VERSION} (${CUDAToolkit_BIN_DIR}): install a CUDA "
                          "${_torch_major}.x toolkit or a torch built for CUDA ${CUDAToolkit_VERSION_MAJOR}.")
    elseif(NOT VARBENCH_TORCH_CUDA_VERSION VERSION_EQUAL "${CUDAToolkit_VERSION_MAJOR}.${CUDAToolkit_VERSION_MINOR}")
      message(WARNING "varbench: libtorch was built with CUDA ${VARBENCH_TORCH_CUDA_VERSION}, the toolkit is "
                      "${CUDAToolkit_VERSION} (same major version: compatible)")
    endif()
  endif()
else()
  set(VARBENCH_WITH_CUDA OFF)
  if(VARBENCH_REQUIRE_CUDA)
    message(FATAL_ERROR "varbench: VARBENCH_REQUIRE_CUDA is ON but the libtorch in ${_torch_root} (${Torch_VERSION}) "
                        "is a CPU-only build (no torch_cuda). Install a CUDA build of torch (PyPI's default wheel).")
  endif()
endif()
set(VARBENCH_TORCH_LIBRARIES ${TORCH_LIBRARIES})

# A wheel lives in <env>/lib/pythonX.Y/site-packages/torch: that environment's interpreter has the same
# torch, which the fixture scripts must use.
set(VARBENCH_TORCH_PYTHON_ROOT "")
if(_torch_root MATCHES "^(.*)/lib/python[0-9.]+/site-packages/torch$")
  set(VARBENCH_TORCH_PYTHON_ROOT "${CMAKE_MATCH_1}")
endif()
# A wheel's libtorch_cuda loads the CUDA libraries of the NVIDIA wheels beside it (site-packages/nvidia/*/lib,
# through its own RUNPATH). A CUDA toolkit on the machine has older copies of some (NCCL, cuDNN), and
# libtorch's CMake config puts the toolkit's lib folder into the executables' RPATH: the linker and the
# loader would take those and miss symbols. The wheels' folders go first, for the linker and at run time.
if(VARBENCH_WITH_CUDA)
  get_filename_component(_site_packages "${_torch_root}" DIRECTORY)
  file(GLOB _nvidia_wheel_libs LIST_DIRECTORIES true "${_site_packages}/nvidia/*/lib")
  foreach(_dir IN LISTS _nvidia_wheel_libs)
    add_link_options("LINKER:-rpath-link,${_dir}" "LINKER:-rpath,${_dir}")
  endforeach()
endif()

if(VARBENCH_TORCH_PYTHON_ROOT AND EXISTS "${VARBENCH_TORCH_PYTHON_ROOT}/bin/python")
  set(_lane_python "${VARBENCH_TORCH_PYTHON_ROOT}/bin/python")
else()
  set(_lane_python /usr/bin/python3)
endif()
set(VARBENCH_PYTHON "${_lane_python}" CACHE FILEPATH
    "Python of the fixture scripts and figures; its torch must be the libtorch's version")

if(VARBENCH_WITH_CUDA)
  message(STATUS "varbench: libtorch ${Torch_VERSION} from ${_torch_root}, CUDA build (CUDA ${VARBENCH_TORCH_CUDA_VERSION}, "
                 "toolkit ${CUDAToolkit_VERSION}): device_cuda.cpp, linking torch_cuda and c10_cuda")
else()
  message(STATUS "varbench: libtorch ${Torch_VERSION} from ${_torch_root}, CPU-only build: device_cpu.cpp")
endif()
