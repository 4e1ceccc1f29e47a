// Verification: poison both outputs, run one more together-step, check the sampled GEMM outputs
// against the host fp64 reference and every collective element exactly; wrong counts summed
// across ranks.
#include <sstream>

#include "../runtime/checks.h"
#include "../runtime/data.h"
#include "corun/gemm_check.h"
#include "rank.h"

namespace corun {

Status Rank::Verify(const Workload& w, const PolicyCtx& c, const Policy& p, int64_t* wrong, std::string* what) {
  // Poison both outputs so that a step which writes nothing cannot pass.
  void* const recv = c.recv ? c.recv : recv_;  // a backend on buffers of its own (ncclzero)
  CUDACHECK(cudaMemsetAsync(c_, 0xFF, static_cast<size_t>(w.g[0] * w.g[1]) * 2, comp_));
  CUDACHECK(cudaMemsetAsync(recv, 0xFF, cshape_.recv_elems * DTypeSize(dtype_), comp_));
  CUDACHECK(cudaStreamSynchronize(comp_));
  CORUN_CHECK(Barrier());
  float t, ce, me;
  CORUN_CHECK(TimeTogether(w, c, p, &t, &ce, &me));
  std::vector<float> got;
  CORUN_CHECK(GatherSamples(c_, sample_idx_, &got, comp_));
  double worst = 0;
  const int64_t gemm_bad = CountGemmMismatchesRef(sample_ref_, got, &worst);
  CUDACHECK(cudaMemsetAsync(d_wrong_, 0, sizeof(unsigned long long), comp_));
  CORUN_CHECK(VerifyCollective(recv, dtype_, cshape_.verify, cshape_.count, rank_, sh_.nranks, kSeedColl, d_wrong_, comp_));
  unsigned long long coll_bad = 0;
  CUDACHECK(cudaMemcpyAsync(&coll_bad, d_wrong_, sizeof(coll_bad), cudaMemcpyDeviceToHost, comp_));
  CUDACHECK(cudaStreamSynchronize(comp_));
  int64_t counts[2] = {gemm_bad, static_cast<int64_t>(coll_bad)};
  CUDACHECK(cudaMemcpyAsync(d_counts_, counts, sizeof(counts), cudaMemcpyHostToDevice, comm_lo_));
  CORUN_CHECK(base_.SumInt64(d_counts_, 2, comm_lo_));
  CUDACHECK(cudaMemcpyAsync(counts, d_counts_, sizeof(counts), cudaMemcpyDeviceToHost, comm_lo_));
  CUDACHECK(cudaStreamSynchronize(comm_lo_));
  *wrong = counts[0] + counts[1];
  if (*wrong) {
    std::ostringstream os;
    os << counts[0] << " GEMM samples wrong (of " << sample_idx_.size() * sh_.nranks << ", tolerance 2^-8 rel, worst "
       << worst << " on rank " << rank_ << "), " << counts[1] << " collective elements wrong";
    *what = os.str();
  }
  return Status::Ok();
}

}  // namespace corun
