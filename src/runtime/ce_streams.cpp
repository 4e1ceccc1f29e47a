// Copy-engine collectives, the last set-up stage: how flags travel to the peers (stream writes or
// 4-byte copies, and the form more than 2 ranks as threads take) and the streams, events and
// priorities every call uses. Called by Init (ce_setup.cpp) once the peers are mapped.
#include <cstdint>

#include "ce_comm.h"
#include "ce_debug.h"
#include "checks.h"
#include "driver.h"

namespace corun {

Status CeComm::SetUpSignalsAndStreams(cudaStream_t s) {
  // Signals by stream writes into the peers' mapped flags, unless configured otherwise or the
  // driver refuses such a write (checked here, once, with the value the word already holds: only
  // this rank writes it); the 4-byte copies then carry them. Only a refusal at enqueue time is
  // caught: a fault while the write runs would be a sticky context error and end Init with it
  // (the writes ran on H200 with peers as threads and as processes).
  signal_copy_ = cfg_.signal_copy;
  // More than 2 ranks as threads of one process: the pull form hung with either kind of signal
  // (4x H200, ce_bench --gpus 4, no result in 45 s; results/2026-11-27_H200_4gpu_ce_threads4),
  // where the push form with copied flags passed, as did the pull form with one process per rank.
  // The cause is not known; these ranks take the configuration that was seen to work.
  bool threads = true;
  for (const Peer& p : peers_) threads &= p.process == peers_[rank_].process;
  if (threads && nranks_ > 2 && (cfg_.ag_pull || !cfg_.signal_copy)) {
    CE_DLOG("init: %d ranks in one process: push form, flags by copies", nranks_);
    cfg_.ag_pull = false;
    signal_copy_ = true;
  }
  for (int p = 0; p < nranks_ && !signal_copy_; ++p) {
    if (p == rank_) continue;
    // The word's own start value: anything else would read as chunks done (or never done) there.
    const CUresult e = Driver().cuStreamWriteValue32(reinterpret_cast<CUstream>(s),
                                                     Dev(RsReady(peers_[p].flags, rank_, 0)), CeFlagValue(cfg_.first_seq), 0);
    if (e != CUDA_SUCCESS) {
      CE_DLOG("init: stream write into rank %d's flags refused (%d): flags by copies", p, static_cast<int>(e));
      signal_copy_ = true;
    }
  }
  CUDACHECK(cudaStreamSynchronize(s));
  int lo = 0, hi = 0;
  CUDACHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
  reduce_priority_ = cfg_.reduce_least_priority ? lo : hi;
  CUDACHECK(cudaStreamCreateWithPriority(&reduce_, cudaStreamNonBlocking, reduce_priority_));
  CUDACHECK(cudaStreamCreateWithFlags(&unpack_, cudaStreamNonBlocking));
  CUDACHECK(cudaStreamCreateWithPriority(&abort_stream_, cudaStreamNonBlocking, hi));
  CUDACHECK(cudaHostAlloc(reinterpret_cast<void**>(&release_host_), FlagWords() * sizeof(uint32_t), cudaHostAllocPortable));
  rs_lanes_.resize(static_cast<size_t>(cfg_.lanes) * Fan());
  ag_lanes_.resize(static_cast<size_t>(cfg_.lanes) * Fan());
  for (auto& st : rs_lanes_) CUDACHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (auto& st : ag_lanes_) CUDACHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  CUDACHECK(cudaEventCreateWithFlags(&ev_start_, cudaEventDisableTiming));
  CUDACHECK(cudaEventCreateWithFlags(&ev_batch_, cudaEventDisableTiming));
  CUDACHECK(cudaEventCreateWithFlags(&ev_call_end_, cudaEventDisableTiming));
  ev_done_.resize(rs_lanes_.size() + ag_lanes_.size() + 2);
  for (auto& e : ev_done_) CUDACHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  ev_phase_.resize(rs_lanes_.size() + ag_lanes_.size());
  for (auto& e : ev_phase_) CUDACHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return Status::Ok();
}

}  // namespace corun
