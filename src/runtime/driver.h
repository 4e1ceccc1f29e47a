// Driver-API entry points corun needs beyond the runtime (green contexts, graph-node and function
// introspection), fetched once through cudaGetDriverEntryPointByVersion so nothing links libcuda.
// One X-macro list: the table and its loader cannot disagree.
#pragma once
#include <cuda.h>

#include "corun/status.h"

namespace corun {

// X(field, symbol, CUDA version the ABI of the entry point is taken from). The field's type is
// the prototype cuda.h declares, so the table cannot drift from the header.
#define CORUN_DRIVER_ENTRY_POINTS(X)                                   \
  X(cuDeviceGet, "cuDeviceGet", 2000)                                  \
  X(cuCtxGetCurrent, "cuCtxGetCurrent", 4000)                          \
  X(cuFuncGetAttribute, "cuFuncGetAttribute", 2020)                    \
  X(cuFuncGetName, "cuFuncGetName", 12030)                             \
  X(cuGraphKernelNodeGetParams, "cuGraphKernelNodeGetParams", 12000)   \
  X(cuDeviceGetDevResource, "cuDeviceGetDevResource", 12040)           \
  X(cuDevSmResourceSplitByCount, "cuDevSmResourceSplitByCount", 12040) \
  X(cuDevResourceGenerateDesc, "cuDevResourceGenerateDesc", 12040)     \
  X(cuGreenCtxCreate, "cuGreenCtxCreate", 12040)                       \
  X(cuGreenCtxDestroy, "cuGreenCtxDestroy", 12040)                     \
  X(cuGreenCtxStreamCreate, "cuGreenCtxStreamCreate", 12050)           \
  X(cuCtxFromGreenCtx, "cuCtxFromGreenCtx", 12040)                     \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", 2000)                \
  X(cuStreamWriteValue32, "cuStreamWriteValue32", 12000)               \
  X(cuStreamWaitValue32, "cuStreamWaitValue32", 12000)                 \
  X(cuStreamBatchMemOp, "cuStreamBatchMemOp", 12000)                   \
  X(cuPointerGetAttributes, "cuPointerGetAttributes", 7000)

struct DriverTable {
#define CORUN_DRIVER_FIELD(name, symbol, ver) decltype(&::name) name = nullptr;
  CORUN_DRIVER_ENTRY_POINTS(CORUN_DRIVER_FIELD)
#undef CORUN_DRIVER_FIELD
};

// Loaded once; a missing entry point stays null (callers say which feature it disables).
const DriverTable& Driver();

}  // namespace corun
