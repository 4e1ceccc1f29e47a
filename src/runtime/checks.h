// Error checks for CUDA runtime, driver, cuBLASLt and NCCL calls: each turns a failure into a
// corun::Status carrying the call, its error string and a file:line breadcrumb.
#pragma once
#include <cublasLt.h>
#include <cuda.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "corun/status.h"

#define CUDACHECK(cmd)                                                                         \
  do {                                                                                         \
    cudaError_t _e = (cmd);                                                                    \
    if (_e != cudaSuccess)                                                                     \
      return ::corun::Status::Error(std::string(#cmd) + ": " + cudaGetErrorString(_e))       \
          .At(__FILE__, __LINE__);                                                             \
  } while (0)

#define CUCHECK(cmd)                                                                           \
  do {                                                                                         \
    CUresult _r = (cmd);                                                                       \
    if (_r != CUDA_SUCCESS)                                                                    \
      return ::corun::Status::Error(std::string(#cmd) + ": CUresult " + std::to_string(_r))  \
          .At(__FILE__, __LINE__);                                                             \
  } while (0)

#define NCCLCHECK(cmd)                                                                         \
  do {                                                                                         \
    ncclResult_t _n = (cmd);                                                                   \
    if (_n != ncclSuccess && _n != ncclInProgress)                                             \
      return ::corun::Status::Error(std::string(#cmd) + ": " + ncclGetErrorString(_n))       \
          .At(__FILE__, __LINE__);                                                             \
  } while (0)

#define CUBLASCHECK(cmd)                                                                       \
  do {                                                                                         \
    cublasStatus_t _b = (cmd);                                                                 \
    if (_b != CUBLAS_STATUS_SUCCESS)                                                           \
      return ::corun::Status::Error(std::string(#cmd) + ": cublasStatus " + std::to_string(_b)) \
          .At(__FILE__, __LINE__);                                                             \
  } while (0)
