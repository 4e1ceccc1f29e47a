// --smid-probe: one more together-step per row, untimed, after the timed repetitions. The own
// GEMM stamps each block's SM and start/end (%globaltimer); a one-thread marker before and after
// the collective on its stream stamps the communication window. Each rank analyzes its own GPU
// (core/smid.cpp); the row (rank 0's) carries rank 0's verdict in its note and the numbers in JSON.
#include "../runtime/checks.h"
#include "corun/smid.h"
#include "rank.h"

namespace corun {

Status Rank::SmidProbe(const Workload& w, const Policy& p, const PolicyCtx& c, RunRecord* rec) {
  if (!w.own) {  // said in the note; the JSON has no smid key for the row
    rec->note += (rec->note.empty() ? "" : "; ") + std::string("smid: not probed (cuBLAS kernels cannot be stamped)");
    return Status::Ok();
  }
  const int64_t per = TiledGemm::Blocks(w.g[0], w.g[1]);
  const size_t nb = static_cast<size_t>(per) * o_.gemms_per_step;
  if (nb + 2 > stamps_cap_) {
    if (d_stamps_) CUDACHECK(cudaFree(d_stamps_));
    d_stamps_ = nullptr;
    stamps_cap_ = 0;
    CUDACHECK(cudaMalloc(&d_stamps_, (nb + 2) * sizeof(BlockStamp)));
    stamps_cap_ = nb + 2;
  }
  CUDACHECK(cudaMemsetAsync(d_stamps_, 0, (nb + 2) * sizeof(BlockStamp), c.cs));
  CUDACHECK(cudaStreamSynchronize(c.cs));
  // The step of TimeTogether, with the markers around the collective.
  const cudaStream_t ms = p.sequential ? c.cs : c.ms;
  CORUN_CHECK(Barrier());
  CUDACHECK(cudaEventRecord(e0_, c.cs));
  if (!p.sequential) CUDACHECK(cudaStreamWaitEvent(c.ms, e0_, 0));
  CORUN_CHECK(Compute(w, c, c.cs, d_stamps_));
  CUDACHECK(cudaEventRecord(ec_, c.cs));
  CORUN_CHECK(LaunchTimeMark(d_stamps_ + nb, ms));
  CORUN_CHECK(Communicate(w, c, ms));
  CORUN_CHECK(LaunchTimeMark(d_stamps_ + nb + 1, ms));
  CUDACHECK(cudaEventRecord(em_, ms));
  CUDACHECK(cudaEventSynchronize(ec_));
  CUDACHECK(cudaEventSynchronize(em_));
  std::vector<BlockStamp> st(nb + 2);
  CUDACHECK(cudaMemcpy(st.data(), d_stamps_, st.size() * sizeof(BlockStamp), cudaMemcpyDeviceToHost));
  const BlockStamp before = st[nb], after = st[nb + 1];
  st.resize(nb);
  SmidInputs in;
  in.num_sms = info_.sms;
  in.natural = c.blocks;
  in.comm_ctas = c.comm_ctas;
  rec->smid = AnalyzeSmid(st, before, after, in);
  rec->note += (rec->note.empty() ? "" : "; ") + std::string("smid ") + rec->smid.verdict;
  return Status::Ok();
}

}  // namespace corun
