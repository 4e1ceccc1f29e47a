// Green-context SM split: the compute side gets a green context over (SMs - N) SMs and a stream
// in it. NCCL keeps the primary context (it creates its own streams and memory there), so the N
// SMs are left to communication by keeping compute off them, not by confining NCCL.
#pragma once
#include <cuda_runtime.h>

#include "corun/status.h"

namespace corun {

class GreenSplit {
 public:
  GreenSplit() = default;
  ~GreenSplit();
  GreenSplit(const GreenSplit&) = delete;
  GreenSplit& operator=(const GreenSplit&) = delete;
  // comm_sms: SMs to keep free of compute. The driver rounds the compute group to its
  // granularity (8 SMs on sm_90); compute_sms() says what was granted.
  Status Create(int device, int comm_sms);
  cudaStream_t compute_stream() const { return stream_; }
  int compute_sms() const { return compute_sms_; }
  int total_sms() const { return total_sms_; }

 private:
  void* green_ = nullptr;  // CUgreenCtx
  cudaStream_t stream_ = nullptr;
  int compute_sms_ = 0, total_sms_ = 0;
};

}  // namespace corun
