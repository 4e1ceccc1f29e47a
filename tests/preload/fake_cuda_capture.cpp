// A stand-in libcuda.so.1 that knows one thing: stream 0x1234 is being captured into a graph.
// Everything else is missing, as on a machine without a GPU driver (the CUDA runtime finds no
// usable driver and the copy-engine path cannot start).
#include <cuda.h>

extern "C" CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus* st) {
  *st = reinterpret_cast<uintptr_t>(s) == 0x1234 ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
  return CUDA_SUCCESS;
}
