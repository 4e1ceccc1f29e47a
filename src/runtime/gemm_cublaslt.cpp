#include "gemm_cublaslt.h"

#include "checks.h"

namespace corun {

CublasLtGemm::~CublasLtGemm() {
  for (auto& [t, p] : plans_)
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  if (la_) cublasLtMatrixLayoutDestroy(la_);
  if (lb_) cublasLtMatrixLayoutDestroy(lb_);
  if (lc_) cublasLtMatrixLayoutDestroy(lc_);
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

Status CublasLtGemm::Init(int64_t m, int64_t n, int64_t k) {
  m_ = m;
  n_ = n;
  k_ = k;
  CUBLASCHECK(cublasLtCreate(&handle_));
  CUDACHECK(cudaMalloc(&workspace_, workspace_bytes_));
  // Column-major view: C^T[N,M] = op(B)[N,K] * A^T[K,M]; B is stored [N][K] row-major = K x N
  // column-major (transposed in the op), A is stored [M][K] row-major = K x M column-major.
  CUBLASCHECK(cublasLtMatrixLayoutCreate(&la_, CUDA_R_16BF, k, n, k));  // "A" operand = B buffer
  CUBLASCHECK(cublasLtMatrixLayoutCreate(&lb_, CUDA_R_16BF, k, m, k));  // "B" operand = A buffer
  CUBLASCHECK(cublasLtMatrixLayoutCreate(&lc_, CUDA_R_16BF, n, m, n));
  return Status::Ok();
}

Status CublasLtGemm::PlanFor(int sm_target, Plan** out) {
  auto it = plans_.find(sm_target);
  if (it != plans_.end()) {
    *out = &it->second;
    return Status::Ok();
  }
  Plan p;
  CUBLASCHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  CUBLASCHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  CUBLASCHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (sm_target > 0) {
    const int32_t t = sm_target;
    CUBLASCHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, &t, sizeof(t)));
  }
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLASCHECK(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                       sizeof(workspace_bytes_));
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, la_, lb_, lc_, lc_, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatmulDescDestroy(p.desc);
    CORUN_FAIL("cuBLASLt found no algorithm for " + std::to_string(m_) + "x" + std::to_string(n_) + "x" +
               std::to_string(k_) + " (status " + std::to_string(st) + ")");
  }
  p.algo = res.algo;
  *out = &(plans_[sm_target] = p);
  return Status::Ok();
}

Status CublasLtGemm::Run(const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c, int sm_target,
                         cudaStream_t stream) {
  Plan* p = nullptr;
  CORUN_CHECK(PlanFor(sm_target, &p));
  const float alpha = 1.0f, beta = 0.0f;
  CUBLASCHECK(cublasLtMatmul(handle_, p->desc, &alpha, b, la_, a, lb_, &beta, c, lc_, c, lc_, &p->algo,
                             workspace_, workspace_bytes_, stream));
  return Status::Ok();
}

}  // namespace corun
