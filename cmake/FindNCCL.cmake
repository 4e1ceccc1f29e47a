# Finds NCCL. Search order: NCCL_HOME (CMake or environment variable), the CUDA toolkit's
# folders, then the pip wheel nvidia-nccl next to python3 (which ships only libnccl.so.2), then /usr.
# Defines NCCL::nccl, NCCL_INCLUDE_DIR, NCCL_LIBRARY, NCCL_VERSION.
set(_nccl_roots)
if(NCCL_HOME)
  list(APPEND _nccl_roots "${NCCL_HOME}")
endif()
if(DEFINED ENV{NCCL_HOME})
  list(APPEND _nccl_roots "$ENV{NCCL_HOME}")
endif()
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _nccl_roots "${CUDAToolkit_LIBRARY_ROOT}")
endif()
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(_d IN LISTS CUDAToolkit_INCLUDE_DIRS)
    get_filename_component(_p "${_d}" DIRECTORY)
    list(APPEND _nccl_roots "${_p}")
  endforeach()
endif()
list(APPEND _nccl_roots /usr/local/cuda)
find_program(_nccl_python NAMES python3 python)
if(_nccl_python)
  execute_process(
    COMMAND "${_nccl_python}" -c "import nvidia.nccl as m; print(list(m.__path__)[0])"
    OUTPUT_VARIABLE _nccl_wheel OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _nccl_rc)
  if(_nccl_rc EQUAL 0 AND _nccl_wheel)
    list(APPEND _nccl_roots "${_nccl_wheel}")
  endif()
endif()
# Last, the system prefix (a distribution's libnccl-dev).
list(APPEND _nccl_roots /usr)
list(REMOVE_DUPLICATES _nccl_roots)

# One root at a time, in order, so that NCCL_HOME wins over what the toolkit carries.
foreach(_root IN LISTS _nccl_roots)
  if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
    unset(NCCL_INCLUDE_DIR CACHE)
    unset(NCCL_LIBRARY CACHE)
    find_path(NCCL_INCLUDE_DIR nccl.h PATHS "${_root}" PATH_SUFFIXES include NO_DEFAULT_PATH)
    find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 PATHS "${_root}"
                 PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu targets/x86_64-linux/lib NO_DEFAULT_PATH)
  endif()
endforeach()

if(NCCL_INCLUDE_DIR AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h")
  file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_v REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE ".*NCCL_MAJOR ([0-9]+).*" "\\1" _maj "${_nccl_v}")
  string(REGEX REPLACE ".*NCCL_MINOR ([0-9]+).*" "\\1" _min "${_nccl_v}")
  string(REGEX REPLACE ".*NCCL_PATCH ([0-9]+).*" "\\1" _pat "${_nccl_v}")
  set(NCCL_VERSION "${_maj}.${_min}.${_pat}")
endif()

include(FindPackageHandleStandardArgs)
string(REPLACE ";" "\n    " _nccl_searched "${_nccl_roots}")
find_package_handle_standard_args(NCCL
  REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR
  VERSION_VAR NCCL_VERSION
  REASON_FAILURE_MESSAGE "NCCL (nccl.h and libnccl.so or libnccl.so.2) was not found. Searched, in order:\n    ${_nccl_searched}\nSet NCCL_HOME to the folder that holds include/nccl.h and lib/.")

if(NCCL_FOUND AND NOT TARGET NCCL::nccl)
  add_library(NCCL::nccl UNKNOWN IMPORTED)
  set_target_properties(NCCL::nccl PROPERTIES
    IMPORTED_LOCATION "${NCCL_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
endif()
