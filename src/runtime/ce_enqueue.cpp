// Copy-engine collectives, the enqueue thread (CeConfig::enqueue_thread): a call's caller records
// an event on its stream, makes the stream wait for the call's number in a device word, hands
// the call to the communicator's thread and returns; the thread waits for the peers' agreement
// (direct copies) and puts the call on the GPU on a stream of its own, behind the event, then
// writes the number. The caller's stream is ordered exactly as if the call ran on it, but the
// caller's thread (in DDP, the one that launches the backward pass) never waits for its peers.
//
// Calls run in the callers' order on one stream, so sequence numbers and flags are as without the
// thread. A failure there aborts the communicator (the peers' waits end, the caller's stream too)
// and the next call and CheckError() report it.
#include <cstdio>
#include <deque>
#include <string>
#include <utility>

#include "ce_comm.h"
#include "ce_debug.h"
#include "checks.h"
#include "driver.h"

namespace corun {

namespace {
constexpr int kEnqueueEvents = 64;  // calls queued ahead of the thread at most (the caller waits beyond)
}  // namespace

Status CeComm::Launch(Kind k, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s) {
  if (!usable_) CORUN_FAIL("CeComm: " + why_);
  CORUN_CHECK(EnqueueError());  // the thread's own failure first: it is why the abort happened
  CORUN_CHECK(Failed());
  // Refused before anything is queued, alike on every rank (it depends on the call alone): a call
  // of 1,601 chunks stopped (kCeMaxCallChunks). The interposer routes such calls to NCCL first.
  const uint64_t whole = count * DTypeSize(t) * (k == Kind::kAllReduce ? 1 : static_cast<uint64_t>(nranks_));
  const std::string chunks = CeChunksDecision(whole, cfg_);
  if (!chunks.empty()) CORUN_FAIL("CeComm: " + chunks);
  if (!enq_stream_) return LaunchNow(k, send, recv, count, t, s);
  if (count == 0) return Status::Ok();
  cudaEvent_t ev = nullptr;
  {
    std::unique_lock<std::mutex> l(enq_mu_);
    enq_cv_.wait(l, [&] { return !enq_free_.empty() || !enq_error_.ok(); });
    if (!enq_error_.ok()) return enq_error_;
    ev = enq_free_.back();
    enq_free_.pop_back();
  }
  auto give_back = [&] {
    std::lock_guard<std::mutex> l(enq_mu_);
    enq_free_.push_back(ev);
  };
  CUDACHECK(cudaSetDevice(device_));
  if (cudaEventRecord(ev, s) != cudaSuccess) {
    give_back();
    CORUN_FAIL(std::string("cudaEventRecord: ") + cudaGetErrorString(cudaGetLastError()));
  }
  const uint32_t q = enq_seq_.load() + 1;
  const CUresult r = Driver().cuStreamWaitValue32(reinterpret_cast<CUstream>(s), Dev(done_), q, CU_STREAM_WAIT_VALUE_GEQ);
  if (r != CUDA_SUCCESS) {
    give_back();
    CORUN_FAIL("cuStreamWaitValue32 on the caller's stream failed (" + std::to_string(static_cast<int>(r)) + ")");
  }
  enq_seq_.store(q);
  {
    std::lock_guard<std::mutex> l(enq_mu_);
    jobs_.push_back(Job{k, send, recv, count, t, ev, q});
  }
  enq_cv_.notify_all();
  return Status::Ok();
}

void CeComm::EnqueueLoop() {
  cudaSetDevice(device_);
  for (;;) {
    Job j;
    {
      std::unique_lock<std::mutex> l(enq_mu_);
      enq_cv_.wait(l, [&] { return !jobs_.empty() || enq_stop_; });
      if (jobs_.empty()) return;  // stopping, nothing queued
      j = jobs_.front();
      jobs_.pop_front();
      enq_busy_ = true;
    }
    Status st = Status::Ok();
    if (cudaStreamWaitEvent(enq_stream_, j.start, 0) != cudaSuccess)
      st = Status::Error(std::string("cudaStreamWaitEvent: ") + cudaGetErrorString(cudaGetLastError()));
    if (st.ok()) st = LaunchNow(j.kind, j.send, j.recv, j.count, j.t, enq_stream_);
    // The caller's stream goes on once this is reached, whatever happened above (an abort also
    // releases it: Abort() writes done_ too).
    const CUresult r = Driver().cuStreamWriteValue32(reinterpret_cast<CUstream>(enq_stream_), Dev(done_), j.q, 0);
    if (st.ok() && r != CUDA_SUCCESS)
      st = Status::Error("cuStreamWriteValue32 of the call's end failed (" + std::to_string(static_cast<int>(r)) + ")");
    if (!st.ok()) {
      std::fprintf(stderr, "corun ce: rank %d: enqueue thread: %s\n", rank_, st.ToString(true).c_str());
      Abort();  // the peers and this rank's streams stop waiting: nothing more is queued right
    }
    {
      std::lock_guard<std::mutex> l(enq_mu_);
      enq_free_.push_back(j.start);
      if (!st.ok() && enq_error_.ok()) enq_error_ = st;
      enq_busy_ = false;
    }
    enq_cv_.notify_all();
  }
}

Status CeComm::StartEnqueue() {
  CUDACHECK(cudaStreamCreateWithFlags(&enq_stream_, cudaStreamNonBlocking));
  CUDACHECK(cudaMalloc(reinterpret_cast<void**>(&done_), sizeof(uint32_t)));
  // Zero before any stream waits on it (its own stream only: the program's may be busy).
  CUDACHECK(cudaMemsetAsync(done_, 0, sizeof(uint32_t), enq_stream_));
  CUDACHECK(cudaStreamSynchronize(enq_stream_));
  CUDACHECK(cudaHostAlloc(reinterpret_cast<void**>(&done_release_), sizeof(uint32_t), cudaHostAllocPortable));
  for (int i = 0; i < kEnqueueEvents; ++i) {
    cudaEvent_t e = nullptr;
    CUDACHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    enq_events_.push_back(e);
  }
  enq_free_ = enq_events_;
  enq_ = std::thread([this] { EnqueueLoop(); });
  return Status::Ok();
}

void CeComm::Drain() {
  std::unique_lock<std::mutex> l(enq_mu_);
  enq_cv_.wait(l, [&] { return (jobs_.empty() && !enq_busy_) || !enq_.joinable(); });
}

void CeComm::StopEnqueue() {
  if (enq_.joinable()) {
    {
      std::lock_guard<std::mutex> l(enq_mu_);
      enq_stop_ = true;
    }
    enq_cv_.notify_all();
    enq_.join();
  }
  if (enq_stream_) cudaStreamSynchronize(enq_stream_);
}

Status CeComm::EnqueueError() const {
  std::lock_guard<std::mutex> l(enq_mu_);
  return enq_error_;
}

void CeComm::FreeEnqueue() {
  if (enq_stream_) cudaStreamDestroy(enq_stream_);
  enq_stream_ = nullptr;
  for (cudaEvent_t e : enq_events_) cudaEventDestroy(e);
  enq_events_.clear();
  enq_free_.clear();
  if (done_) cudaFree(done_);
  done_ = nullptr;
  if (done_release_) cudaFreeHost(done_release_);
  done_release_ = nullptr;
}

}  // namespace corun
