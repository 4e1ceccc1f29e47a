// Copy-engine collectives, the primitives of a call: staging slots, flag waits and writes (stream
// memory operations), batched copies, the error state, the public entry points, and the flag
// dump. The call path itself (chunks, rounds, reductions, all-gather) is in ce_launch.cpp.
#include "ce_comm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ce_debug.h"
#include "checks.h"
#include "driver.h"

namespace corun {

bool CeProfiling() {
  static const bool on = [] {
    const char* v = std::getenv("CORUN_CE_PROFILE");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}
uint64_t CeTimer::Now() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}
namespace {
std::atomic<uint64_t> g_prof_ns[kCeHostOps], g_prof_n[kCeHostOps], g_prof_max[kCeHostOps];
std::atomic<uint64_t> g_prof_calls{0};
}  // namespace
void CeProfileAdd(CeHostOp op, uint64_t ns) {
  g_prof_ns[op].fetch_add(ns, std::memory_order_relaxed);
  g_prof_n[op].fetch_add(1, std::memory_order_relaxed);
  CeAtomicMax(g_prof_max[op], ns);
}
void CeProfileCallDone(int rank) {
  const uint64_t calls = g_prof_calls.fetch_add(1) + 1;
  if (calls % 500) return;
  CeHostTimes t;
  for (int i = 0; i < kCeHostOps; ++i) {
    t.ns[i] = g_prof_ns[i].load();
    t.n[i] = g_prof_n[i].load();
    t.max_ns[i] = g_prof_max[i].load();
  }
  std::fprintf(stderr, "%s\n", CeProfileLine(rank, calls, t).c_str());
}

namespace {
// Stream memory operations in as few cuStreamBatchMemOp calls as it takes (each takes fewer than 256).
Status MemOps(cudaStream_t st, const std::vector<CUstreamBatchMemOpParams>& ops) {
  constexpr size_t kMaxBatchMemOps = 255;
  for (size_t i = 0; i < ops.size(); i += kMaxBatchMemOps) {
    const unsigned n = static_cast<unsigned>(std::min(kMaxBatchMemOps, ops.size() - i));
    CE_T(kCeMemOp, CUCHECK(Driver().cuStreamBatchMemOp(reinterpret_cast<CUstream>(st), n,
                                        const_cast<CUstreamBatchMemOpParams*>(ops.data() + i), 0)));
  }
  return Status::Ok();
}
}  // namespace

// Rows (sources) outermost: the slots of consecutive chunks from one source are adjacent, so a
// bulk round lands with one copy (two where the ring wraps).
char* CeComm::Slot(char* staging, CeSeq q, int row) const {
  return staging + (static_cast<size_t>(row) * cfg_.slots + CeSlot(q, cfg_.slots)) * slot_bytes_;
}

Status CeComm::Wait(cudaStream_t st, const std::vector<CeFlagOp>& waits) {
  if (waits.empty()) return Status::Ok();
  if (waits.size() == 1) {
    CE_T(kCeMemOp, CUCHECK(Driver().cuStreamWaitValue32(reinterpret_cast<CUstream>(st), Dev(waits[0].first),
                                                        CeFlagValue(waits[0].second), CU_STREAM_WAIT_VALUE_GEQ)));
    return Status::Ok();
  }
  std::vector<CUstreamBatchMemOpParams> ops(waits.size());
  for (size_t i = 0; i < waits.size(); ++i) {
    std::memset(&ops[i], 0, sizeof(ops[i]));
    ops[i].waitValue.operation = CU_STREAM_MEM_OP_WAIT_VALUE_32;
    ops[i].waitValue.address = Dev(waits[i].first);
    ops[i].waitValue.value = CeFlagValue(waits[i].second);
    ops[i].waitValue.flags = CU_STREAM_WAIT_VALUE_GEQ;
  }
  return MemOps(st, ops);
}

Status CeComm::Write(cudaStream_t st, int outbox, uint32_t* addr, CeSeq q) {
  const uint32_t v = CeFlagValue(q);
  if (!signal_copy_) {
    // Straight into the peer's mapped flag: no copy-engine work. The write's default memory
    // barrier orders it after the stream's earlier copies, as the copy below would be.
    CE_T(kCeMemOp, CUCHECK(Driver().cuStreamWriteValue32(reinterpret_cast<CUstream>(st), Dev(addr), v, 0)));
    return Status::Ok();
  }
  // As NCCL's copy-engine path: the value goes to a local word by a stream write, then a 4-byte
  // copy carries it to the peer's flag; the stream orders it after the data copies before it.
  uint32_t* box = outbox_ + outbox;
  CE_T(kCeMemOp, CUCHECK(Driver().cuStreamWriteValue32(reinterpret_cast<CUstream>(st), Dev(box), v, 0)));
  CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(addr, box, sizeof(uint32_t), cudaMemcpyDeviceToDevice, st)));
  return Status::Ok();
}

Status CeComm::WriteMany(cudaStream_t st, int outbox, const std::vector<CeFlagOp>& writes) {
  if (signal_copy_ || writes.size() < 2) {
    for (const auto& w : writes) CORUN_CHECK(Write(st, outbox, w.first, w.second));
    return Status::Ok();
  }
  // One call for all: each write keeps its default memory barrier, as cuStreamWriteValue32's.
  std::vector<CUstreamBatchMemOpParams> ops(writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    std::memset(&ops[i], 0, sizeof(ops[i]));
    ops[i].writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_32;
    ops[i].writeValue.address = Dev(writes[i].first);
    ops[i].writeValue.value = CeFlagValue(writes[i].second);
  }
  return MemOps(st, ops);
}

Status CeComm::CopyBatch(cudaStream_t st, const std::vector<Copy>& copies) {
  if (copies.size() == 1) {
    CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(copies[0].dst, copies[0].src, copies[0].bytes, cudaMemcpyDeviceToDevice, st)));
    return Status::Ok();
  }
  if (copies.empty()) return Status::Ok();
  std::vector<void*> dst;
  std::vector<const void*> src;
  std::vector<size_t> bytes;
  for (const Copy& c : copies) {
    dst.push_back(c.dst);
    src.push_back(c.src);
    bytes.push_back(c.bytes);
  }
  // Source order: the stream's (its flag waits come first); copies may go to any engine.
  cudaMemcpyAttributes attr = {};
  attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  attr.flags = cudaMemcpyFlagPreferOverlapWithCompute;
  size_t attr_idx = 0;
  CE_T(kCeCopy, CUDACHECK(cudaMemcpyBatchAsync(dst.data(), src.data(), bytes.data(), copies.size(), &attr, &attr_idx, 1, st)));
  return Status::Ok();
}

Status CeComm::Join(cudaStream_t s, const std::vector<cudaStream_t>& used, bool allreduce) {
  for (size_t i = 0; i < used.size(); ++i) {
    if (allreduce && std::find(rs_lanes_.begin(), rs_lanes_.end(), used[i]) != rs_lanes_.end()) continue;
    CE_T(kCeEvent, CUDACHECK(cudaEventRecord(ev_done_[i], used[i])));
    CE_T(kCeEvent, CUDACHECK(cudaStreamWaitEvent(s, ev_done_[i], 0)));
  }
  return Status::Ok();
}

Status CeComm::Failed() const {
  const int lost = lost_rank_.load();
  if (lost >= 0)
    CORUN_FAIL("CeComm: aborted: rank " + std::to_string(lost) + " (pid " + std::to_string(peer_pids_[lost]) +
               ") exited; results are invalid");
  if (aborted_) CORUN_FAIL("CeComm: aborted (a peer stopped or a watchdog fired); results are invalid");
  return Status::Ok();
}

Status CeComm::CheckError() const {
  // A probe costs a few system calls per peer: here, not on every call (the monitor covers those).
  if (!aborted_ && !alive_names_.empty()) const_cast<CeComm*>(this)->PollPeers();
  CORUN_CHECK(EnqueueError());
  return Failed();
}

Status CeComm::AllReduce(const void* send, void* recv, uint64_t count, DType t, cudaStream_t s) {
  CORUN_CHECK(Launch(Kind::kAllReduce, send, recv, count, t, s));
  return Status::Ok();
}
Status CeComm::ReduceScatter(const void* send, void* recv, uint64_t recvcount, DType t, cudaStream_t s) {
  CORUN_CHECK(Launch(Kind::kReduceScatter, send, recv, recvcount, t, s));
  return Status::Ok();
}
Status CeComm::AllGather(const void* send, void* recv, uint64_t sendcount, DType t, cudaStream_t s) {
  CORUN_CHECK(Launch(Kind::kAllGather, send, recv, sendcount, t, s));
  return Status::Ok();
}

Status CeComm::Run(Collective c, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s) {
  switch (c) {
    case Collective::kAllReduce: return AllReduce(send, recv, count, t, s);
    case Collective::kReduceScatter: return ReduceScatter(send, recv, count, t, s);
    case Collective::kAllGather: return AllGather(send, recv, count, t, s);
    default: break;
  }
  CORUN_FAIL(std::string("CeComm: ") + CollectiveName(c) + " is not served by the copy-engine path");
}

std::string CeComm::DumpFlags() const {
  if (!flags_) return "no flags";
  std::vector<uint32_t> h(FlagWords(), 0);
  cudaSetDevice(device_);
  cudaStream_t st = nullptr;
  if (cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) != cudaSuccess) return "no stream";
  cudaMemcpyAsync(h.data(), flags_, h.size() * sizeof(uint32_t), cudaMemcpyDeviceToHost, st);
  // Bounded: the copy itself may be stuck behind a blocked hardware queue.
  bool done = false;
  for (int i = 0; i < 200 && !done; ++i) {
    done = cudaStreamQuery(st) == cudaSuccess;
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string out = "rank " + std::to_string(rank_) + " rs seq " + std::to_string(rs_seq_.load()) + " ag seq " + std::to_string(ag_seq_.load()) + (done ? "" : " (copy stuck)");
  auto row = [&](const char* name, int base, int n) {
    out += std::string(" ") + name + "[";
    for (int i = 0; i < n; ++i) out += (i ? "," : "") + std::to_string(h[base + i]);
    out += "]";
  };
  const int L = cfg_.lanes, R = nranks_;
  row("rs_ready", 0, R * L);
  row("ag_ready", R * L, R * L);
  row("rs_free", 2 * R * L, R);
  row("ag_free", 2 * R * L + R, R * L);
  if (done) cudaStreamDestroy(st);
  return out;
}

}  // namespace corun
