// The rank's resource lifecycle: streams, events, the base communicator and buffers sized for
// the largest workload, created once and released at the end; progress lines; the agreement.
#include <algorithm>
#include <cstdio>

#include "../runtime/checks.h"
#include "../runtime/watchdog.h"
#include "rank.h"

namespace corun {

Status Rank::Setup() {
  CUDACHECK(cudaSetDevice(device_));
  CORUN_CHECK(QueryDevice(device_, &info_));
  ParseDType(o_.dtype, &dtype_);
  CUDACHECK(cudaStreamCreateWithPriority(&comp_, cudaStreamNonBlocking, info_.priority_lowest));
  CUDACHECK(cudaStreamCreateWithPriority(&comm_lo_, cudaStreamNonBlocking, info_.priority_lowest));
  CUDACHECK(cudaStreamCreateWithPriority(&comm_hi_, cudaStreamNonBlocking, info_.priority_highest));
  CUDACHECK(cudaEventCreate(&e0_));
  CUDACHECK(cudaEventCreate(&ec_));
  CUDACHECK(cudaEventCreate(&em_));
  CORUN_CHECK(base_.Init(sh_.id, sh_.nranks, rank_, CommConfig{}));
  // From here on a failure on one rank is agreed: the others would wait in the first collective.
  return Agreed("buffers", [&] { return Allocate(); });
}

// Buffers sized for the largest workload, and the clock sampler.
Status Rank::Allocate() {
  uint64_t a_elems = 0, b_elems = 0, c_elems = 0, send_b = 0;
  for (const Workload& w : Workloads(o_)) {
    a_elems = std::max<uint64_t>(a_elems, w.g[0] * w.g[2]);
    b_elems = std::max<uint64_t>(b_elems, w.g[1] * w.g[2]);
    c_elems = std::max<uint64_t>(c_elems, w.g[0] * w.g[1]);
    const CollectiveShape s = ShapeOf(w.coll, w.bytes, dtype_, sh_.nranks);
    send_b = std::max<uint64_t>(send_b, s.send_elems * DTypeSize(dtype_));
    recv_bytes_ = std::max<uint64_t>(recv_bytes_, s.recv_elems * DTypeSize(dtype_));
  }
  CUDACHECK(cudaMalloc(&a_, a_elems * 2));
  CUDACHECK(cudaMalloc(&b_, b_elems * 2));
  CUDACHECK(cudaMalloc(&c_, c_elems * 2));
  CUDACHECK(cudaMalloc(&send_, std::max<uint64_t>(send_b, 16)));
  CUDACHECK(cudaMalloc(&recv_, std::max<uint64_t>(recv_bytes_, 16)));
  CUDACHECK(cudaMalloc(&d_times_, sizeof(float) * 5 * std::max({o_.reps, TuneOptions{}.max_reps, 1})));
  CUDACHECK(cudaMalloc(&d_counts_, sizeof(int64_t) * 2));
  CUDACHECK(cudaMalloc(&d_wrong_, sizeof(unsigned long long)));
  sampler_ = std::make_unique<ClockSampler>(std::vector<void*>{Nvml::Get().DeviceByPci(info_.pci)});
  return Status::Ok();
}

void Rank::Release() {
  cudaSetDevice(device_);
  cudaDeviceSynchronize();
  ce_.reset();  // before the base communicator and the buffers its peers may still map
  zero_.reset();
  lts_.clear();
  greens_.clear();
  cta_comms_.clear();
  for (void* p : {static_cast<void*>(a_), static_cast<void*>(b_), static_cast<void*>(c_), send_, recv_,
                  static_cast<void*>(d_times_), static_cast<void*>(d_counts_), static_cast<void*>(d_wrong_), static_cast<void*>(d_stamps_)})
    if (p) cudaFree(p);
  a_ = b_ = c_ = nullptr;
  send_ = recv_ = nullptr;
  d_times_ = nullptr;
  d_counts_ = nullptr;
  d_wrong_ = nullptr;
  d_stamps_ = nullptr;
  stamps_cap_ = 0;
}

void Rank::Progress(const std::string& what) {
  Watchdog::Get().Phase(what);
  if (rank_ != 0) return;
  std::lock_guard<std::mutex> l(sh_.mu);
  ++sh_.done_runs;
  std::fprintf(stderr, "corun: [%d/%d] %s\n", sh_.done_runs, sh_.total_runs, what.c_str());
}

Status Rank::Agreed(const std::string& step, const std::function<Status()>& fn) {
  return AgreedStep(step, rank_, sh_.inject, [&](int flag, int* worst) { return Barrier(flag, worst); }, fn);
}

Status Rank::Run() {
  CORUN_CHECK(Setup());
  const auto ws = Workloads(o_);
  for (size_t i = 0; i < ws.size(); ++i) CORUN_CHECK(RunWorkload(i, ws[i]));
  CUDACHECK(cudaDeviceSynchronize());
  return Status::Ok();
}

}  // namespace corun
