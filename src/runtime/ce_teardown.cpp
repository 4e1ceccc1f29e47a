// Copy-engine collectives, the end: teardown (drain, meet the peers, free what they map), Abort,
// and the registry of live communicators a watchdog aborts (AbortAllCeComms).
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "ce_comm.h"
#include "checks.h"
#include "corun/node_barrier.h"

namespace corun {
namespace {

std::mutex g_mu;
std::set<CeComm*>& Live() {
  static std::set<CeComm*> s;
  return s;
}

}  // namespace

void CeComm::Register(CeComm* c) {
  std::lock_guard<std::mutex> l(g_mu);
  Live().insert(c);
}

void AbortAllCeComms() {
  std::lock_guard<std::mutex> l(g_mu);
  for (CeComm* c : Live()) c->Abort();
}

CeComm::~CeComm() {
  StopEnqueue();  // the queued calls first (the monitor still aborts them if a peer is gone)
  StopMonitor();
  {
    std::lock_guard<std::mutex> l(g_mu);
    Live().erase(this);
  }
  if (usable_ || !ipc_mapped_.empty()) cudaSetDevice(device_);
  // Every rank drains its own streams first, in every mode: the caller's stream does not cover an
  // allreduce's reduce-scatter copies once an abort has released the waits that order them
  // (ce_launch.cpp, the join). Peers in other processes write flags into this rank's memory until
  // their last call is done, so those ranks then meet before anyone frees what the others map
  // (bounded: a peer that never destroys its communicator costs 10 s, then teardown goes on; one
  // whose process is gone is not waited for).
  if (usable_) {
    for (cudaStream_t st : rs_lanes_) cudaStreamSynchronize(st);
    for (cudaStream_t st : ag_lanes_) cudaStreamSynchronize(st);
    if (reduce_) cudaStreamSynchronize(reduce_);
    if (unpack_) cudaStreamSynchronize(unpack_);
  }
  // The last call, on a caller's stream (it ends after every earlier call: OrderAfterLastCall).
  // After an abort its stream may hold other work that never ends (an NCCL kernel whose peer is
  // gone, aborted only after this teardown): waited for 5 s, then this rank's buffers are left
  // allocated rather than freed under a call that may still run.
  bool drained = true;
  if (usable_ && ev_call_end_) {
    if (!aborted_) {
      cudaEventSynchronize(ev_call_end_);
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      for (;;) {
        drained = cudaEventQuery(ev_call_end_) != cudaErrorNotReady;
        if (drained || std::chrono::steady_clock::now() - t0 > std::chrono::seconds(5)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (!drained)
        std::fprintf(stderr,
                     "corun ce: rank %d: teardown after an abort: the last call is still queued behind other work on "
                     "its stream after 5 s; its buffers are left allocated\n",
                     rank_);
    }
  }
  if (usable_ && !node_key_.empty()) {
    std::string why;
    const std::vector<int> gone = GoneRanks();
    if (!NodeBarrier(node_key_ + "_fin", nranks_ - static_cast<int>(gone.size()), 10, &why))
      std::fprintf(stderr, "corun ce: rank %d: teardown: %s; freeing anyway\n", rank_, why.c_str());
    // A gone rank's lock file is left behind by its end; every survivor has stopped probing now.
    for (int p : gone) shm_unlink(("/corun_" + alive_names_[p]).c_str());
  }
  FreeEnqueue();  // out of the registry and the monitor stopped: no Abort() can touch it now
  for (cudaStream_t st : rs_lanes_) cudaStreamDestroy(st);
  for (cudaStream_t st : ag_lanes_) cudaStreamDestroy(st);
  if (reduce_) cudaStreamDestroy(reduce_);
  if (unpack_) cudaStreamDestroy(unpack_);
  for (cudaEvent_t e : ev_done_) cudaEventDestroy(e);
  for (cudaEvent_t e : ev_phase_) cudaEventDestroy(e);
  if (ev_start_) cudaEventDestroy(ev_start_);
  if (ev_batch_) cudaEventDestroy(ev_batch_);
  if (ev_call_end_ && drained) cudaEventDestroy(ev_call_end_);
  // The peers' buffers first, then this rank's own (peers in other processes close theirs in
  // their own destructors; the caller has drained every CE call before).
  if (drained) {
    for (void* m : ipc_mapped_) cudaIpcCloseMemHandle(m);
    if (rs_staging_) cudaFree(rs_staging_);
    if (ag_staging_) cudaFree(ag_staging_);
    if (flags_) cudaFree(flags_);
    if (outbox_) cudaFree(outbox_);
  }
  if (abort_stream_) cudaStreamDestroy(abort_stream_);
  if (release_host_ && drained) cudaFreeHost(release_host_);
  if (dir_ && drained) DirectRelease();  // this rank's streams drained above
  dir_.reset();
  CeDirectUnmap(dir_mem_, dir_bytes_);
  alive_.Release();
}

Status CeComm::MarkCallEnd(cudaStream_t s) {
  CUDACHECK(cudaEventRecord(ev_call_end_, s));
  return Status::Ok();
}

Status CeComm::OrderAfterLastCall(cudaStream_t s) {
  // Before the first call the event was never recorded: it stands for no work, so this waits for nothing.
  CUDACHECK(cudaStreamWaitEvent(s, ev_call_end_, 0));
  return Status::Ok();
}

void CeComm::Abort() {
  if (aborted_.exchange(true) || !flags_ || !abort_stream_) return;
  // Every wait is on a local flag in device memory: overwrite them with a value that satisfies
  // all pending waits, on a stream of its own (no CE stream is needed for it to run).
  // Each word is waited for with values of its own step's sequence (the two steps' counts can
  // drift apart by more than the release's margin in a long run).
  const uint32_t rs = CeReleaseValue(rs_seq_.load()), ag = CeReleaseValue(ag_seq_.load());
  for (size_t i = 0; i < FlagWords(); ++i) release_host_[i] = ag;
  uint32_t* const words = release_host_;  // laid out as a flag block
  for (int src = 0; src < nranks_; ++src) {
    for (int lane = 0; lane < cfg_.lanes; ++lane) *RsReady(words, src, lane) = rs;
    *RsFree(words, src) = rs;
  }
  cudaSetDevice(device_);
  const int lost = lost_rank_.load();
  auto release = [&] {
    cudaMemcpyAsync(flags_, release_host_, FlagWords() * sizeof(uint32_t), cudaMemcpyHostToDevice, abort_stream_);
    // The callers' streams waiting for calls the enqueue thread has not finished queuing.
    if (done_ && done_release_) {
      *done_release_ = CeReleaseValue(enq_seq_.load());
      cudaMemcpyAsync(done_, done_release_, sizeof(uint32_t), cudaMemcpyHostToDevice, abort_stream_);
    }
    // The peers' waits on this rank are released too: their flags are mapped here (peer access in
    // one process, IPC across processes: the same copy); a rank known gone is left alone.
    for (const Peer& p : peers_)
      if (p.rank != rank_ && p.rank != lost && p.flags)
        cudaMemcpyAsync(p.flags, release_host_, FlagWords() * sizeof(uint32_t), cudaMemcpyHostToDevice, abort_stream_);
    cudaStreamSynchronize(abort_stream_);
  };
  release();
  // A live peer's streams, released by the same abort, may still write older sequence numbers
  // into these flags after the copy above: rewrite them until this rank's streams drain (bounded).
  std::vector<cudaStream_t> mine(rs_lanes_.begin(), rs_lanes_.end());
  mine.insert(mine.end(), ag_lanes_.begin(), ag_lanes_.end());
  if (reduce_) mine.push_back(reduce_);
  if (unpack_) mine.push_back(unpack_);
  if (enq_stream_) mine.push_back(enq_stream_);
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    bool busy = false;
    for (cudaStream_t st : mine) busy |= cudaStreamQuery(st) == cudaErrorNotReady;
    if (ev_call_end_) busy |= cudaEventQuery(ev_call_end_) == cudaErrorNotReady;
    if (!busy || std::chrono::steady_clock::now() - t0 > std::chrono::seconds(5)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    release();
  }
  (void)cudaGetLastError();
}

}  // namespace corun
