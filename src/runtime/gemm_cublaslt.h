// cuBLASLt bf16 GEMM with the same layout as the tiled GEMM (C = A * B^T, K-contiguous inputs),
// and the SM-count target knob (CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET) that Transformer Engine
// uses to leave SMs to communication.
#pragma once
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <map>

#include "corun/status.h"

namespace corun {

class CublasLtGemm {
 public:
  CublasLtGemm() = default;
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  Status Init(int64_t m, int64_t n, int64_t k);
  // sm_target 0 = library default. The heuristic is run once per target and cached.
  Status Run(const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c, int sm_target,
             cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Status PlanFor(int sm_target, Plan** plan);
  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatrixLayout_t la_ = nullptr, lb_ = nullptr, lc_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 32ull << 20;
  int64_t m_ = 0, n_ = 0, k_ = 0;
  std::map<int, Plan> plans_;
};

}  // namespace corun
