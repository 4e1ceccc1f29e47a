# Finds CUPTI (cupti.h and libcupti). Search order: CUPTI_HOME (CMake or environment variable),
# the CUDA toolkit (extras/CUPTI, then its own include/lib folders), then the pip wheel
# nvidia-cuda-cupti next to python3 (nvidia/cu13 or nvidia/cuda_cupti; only libcupti.so.NN).
# Defines CUPTI::cupti, CUPTI_INCLUDE_DIR, CUPTI_LIBRARY. Not REQUIRED by the build: without it,
# libcorun_trace.so is not built.
set(_cupti_roots)
if(CUPTI_HOME)
  list(APPEND _cupti_roots "${CUPTI_HOME}")
endif()
if(DEFINED ENV{CUPTI_HOME})
  list(APPEND _cupti_roots "$ENV{CUPTI_HOME}")
endif()
set(_tk)
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _tk "${CUDAToolkit_LIBRARY_ROOT}")
endif()
foreach(_d IN LISTS CUDAToolkit_INCLUDE_DIRS)
  get_filename_component(_p "${_d}" DIRECTORY)
  list(APPEND _tk "${_p}")
endforeach()
list(APPEND _tk /usr/local/cuda)
foreach(_t IN LISTS _tk)
  list(APPEND _cupti_roots "${_t}/extras/CUPTI" "${_t}")
endforeach()
find_program(_cupti_python NAMES python3 python)
if(_cupti_python)
  foreach(_mod nvidia.cu13 nvidia.cuda_cupti)
    execute_process(
      COMMAND "${_cupti_python}" -c "import ${_mod} as m; print(list(m.__path__)[0])"
      OUTPUT_VARIABLE _w OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
    if(_rc EQUAL 0 AND _w)
      list(APPEND _cupti_roots "${_w}")
    endif()
  endforeach()
endif()
list(REMOVE_DUPLICATES _cupti_roots)

# One root at a time, so that CUPTI_HOME wins over the toolkit; header and library from one root.
foreach(_root IN LISTS _cupti_roots)
  if(NOT CUPTI_INCLUDE_DIR OR NOT CUPTI_LIBRARY)
    unset(CUPTI_INCLUDE_DIR CACHE)
    unset(CUPTI_LIBRARY CACHE)
    find_path(CUPTI_INCLUDE_DIR cupti.h PATHS "${_root}" PATH_SUFFIXES include NO_DEFAULT_PATH)
    find_library(CUPTI_LIBRARY NAMES cupti libcupti.so.13 libcupti.so.12 PATHS "${_root}"
                 PATH_SUFFIXES lib64 lib targets/x86_64-linux/lib NO_DEFAULT_PATH)
  endif()
endforeach()

include(FindPackageHandleStandardArgs)
string(REPLACE ";" "\n    " _cupti_searched "${_cupti_roots}")
find_package_handle_standard_args(CUPTI
  REQUIRED_VARS CUPTI_LIBRARY CUPTI_INCLUDE_DIR
  REASON_FAILURE_MESSAGE "CUPTI (cupti.h and libcupti) was not found. Searched, in order:\n    ${_cupti_searched}\nSet CUPTI_HOME to the folder that holds include/cupti.h and lib64/.")

if(CUPTI_FOUND AND NOT TARGET CUPTI::cupti)
  add_library(CUPTI::cupti UNKNOWN IMPORTED)
  set_target_properties(CUPTI::cupti PROPERTIES
    IMPORTED_LOCATION "${CUPTI_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUPTI_INCLUDE_DIR}")
endif()
