// Copy-engine collectives, the call path: chunks pushed by copy engines, flags written and
// waited on by stream memory operations, batched reductions, the all-gather and unpack.
#include "ce_comm.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <chrono>
#include <thread>

#include "ce_debug.h"
#include "ce_reduce.h"
#include "checks.h"
#include "driver.h"

namespace corun {

char* CeComm::Slot(char* staging, uint32_t q, int row) const {
  return staging + (static_cast<size_t>(CeSlot(q, cfg_.slots)) * (nranks_ - 1) + row) * slot_bytes_;
}

Status CeComm::Wait(cudaStream_t st, const std::vector<std::pair<uint32_t*, uint32_t>>& waits) {
  if (waits.empty()) return Status::Ok();
  const DriverTable& d = Driver();
  if (waits.size() == 1) {
    CUCHECK(d.cuStreamWaitValue32(reinterpret_cast<CUstream>(st), Dev(waits[0].first), waits[0].second,
                                  CU_STREAM_WAIT_VALUE_GEQ));
    return Status::Ok();
  }
  std::vector<CUstreamBatchMemOpParams> ops;
  for (size_t i = 0; i < waits.size(); ++i) {
    CUstreamBatchMemOpParams p;
    std::memset(&p, 0, sizeof(p));
    p.waitValue.operation = CU_STREAM_MEM_OP_WAIT_VALUE_32;
    p.waitValue.address = Dev(waits[i].first);
    p.waitValue.value = waits[i].second;
    p.waitValue.flags = CU_STREAM_WAIT_VALUE_GEQ;
    ops.push_back(p);
    if (ops.size() == 256 || i + 1 == waits.size()) {
      CUCHECK(d.cuStreamBatchMemOp(reinterpret_cast<CUstream>(st), static_cast<unsigned>(ops.size()), ops.data(), 0));
      ops.clear();
    }
  }
  return Status::Ok();
}

Status CeComm::Write(cudaStream_t st, int outbox, uint32_t* addr, uint32_t v) {
  if (!signal_copy_) {
    // Straight into the peer's mapped flag: no copy-engine work. The write's default memory
    // barrier orders it after the stream's earlier copies, as the copy below would be.
    CUCHECK(Driver().cuStreamWriteValue32(reinterpret_cast<CUstream>(st), Dev(addr), v, 0));
    return Status::Ok();
  }
  // As NCCL's copy-engine path: the value goes to a local word by a stream write, then a 4-byte
  // copy carries it to the peer's flag; the stream orders it after the data copies before it.
  uint32_t* box = outbox_ + outbox;
  CUCHECK(Driver().cuStreamWriteValue32(reinterpret_cast<CUstream>(st), Dev(box), v, 0));
  CUDACHECK(cudaMemcpyAsync(addr, box, sizeof(uint32_t), cudaMemcpyDeviceToDevice, st));
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

Status CeComm::Launch(Kind k, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s) {
  if (!usable_) CORUN_FAIL("CeComm: " + why_);
  CORUN_CHECK(Failed());
  if (count == 0) return Status::Ok();
  CUDACHECK(cudaSetDevice(device_));
  const int eb = static_cast<int>(DTypeSize(t));
  const int R = nranks_, r = rank_, L = cfg_.lanes, S = cfg_.slots;
  const char* in = static_cast<const char*>(send);
  char* out = static_cast<char*>(recv);
  const bool has_rs = k != Kind::kAllGather, has_ag = k != Kind::kReduceScatter;

  std::vector<CeRange> chunks;
  if (k == Kind::kAllReduce) {
    chunks = CeChunks(count, cfg_.chunk_bytes / eb, R, eb);
  } else {
    chunks = CeChunks(count, slot_bytes_ / eb, 1, eb);
  }
  const int n = static_cast<int>(chunks.size());
  // Each phase numbers its own chunks: a slot's free flag advances only in calls that use that
  // staging, so "free >= q - slots" must count the chunks of that phase alone (a reduce-scatter
  // followed by an all-gather would otherwise wait for frees that never come).
  const uint32_t qr0 = rs_seq_ + 1, qa0 = ag_seq_ + 1;
  if (has_rs) rs_seq_ += static_cast<uint32_t>(n);
  if (has_ag) ag_seq_ += static_cast<uint32_t>(n);
  CE_DLOG("call: kind %d, count %llu, %d chunks, rs seq %u, ag seq %u", static_cast<int>(k),
          static_cast<unsigned long long>(count), n, has_rs ? qr0 : 0, has_ag ? qa0 : 0);
  auto QR = [&](int i) { return qr0 + static_cast<uint32_t>(i); };
  auto QA = [&](int i) { return qa0 + static_cast<uint32_t>(i); };

  // Geometry per collective: what goes to peer p in the reduce-scatter step, what this rank
  // reduces, what it sends in the all-gather step and where a peer j's part lands here.
  struct Part {
    const char* src;
    char* dst;
    uint64_t bytes;
  };
  auto rs_part = [&](const CeRange& c, int p) -> Part {
    if (k == Kind::kAllReduce) {
      const CeRange sl = CeSlice(c.count, R, p, eb);
      return {in + (c.first + sl.first) * eb, nullptr, sl.count * eb};
    }
    return {in + (static_cast<uint64_t>(p) * count + c.first) * eb, nullptr, c.count * eb};
  };
  auto own_part = [&](const CeRange& c) -> Part {  // reduction: own input -> output
    if (k == Kind::kAllReduce) {
      const CeRange sl = CeSlice(c.count, R, r, eb);
      return {in + (c.first + sl.first) * eb, out + (c.first + sl.first) * eb, sl.count * eb};
    }
    return {in + (static_cast<uint64_t>(r) * count + c.first) * eb, out + c.first * eb, c.count * eb};
  };
  auto ag_src = [&](const CeRange& c) -> Part {
    if (k == Kind::kAllReduce) {
      const Part own = own_part(c);
      return {own.dst, nullptr, own.bytes};
    }
    return {in + c.first * eb, nullptr, c.count * eb};
  };
  auto unpack_dst = [&](const CeRange& c, int j) -> Part {
    if (k == Kind::kAllReduce) {
      const CeRange sl = CeSlice(c.count, R, j, eb);
      return {nullptr, out + (c.first + sl.first) * eb, sl.count * eb};
    }
    return {nullptr, out + (static_cast<uint64_t>(j) * count + c.first) * eb, c.count * eb};
  };

  CUDACHECK(cudaEventRecord(ev_start_, s));
  std::vector<cudaStream_t> used;
  for (auto st : rs_lanes_) used.push_back(st);
  for (auto st : ag_lanes_) used.push_back(st);
  used.push_back(reduce_);
  used.push_back(unpack_);
  for (auto st : used) CUDACHECK(cudaStreamWaitEvent(st, ev_start_, 0));

  const bool pull = cfg_.ag_pull;
  // Before chunk q's all-gather buffer is written (push: in the peers' staging; pull: in this
  // rank's staging, which the peers read), every reader of chunk q - S has released the slot.
  auto ag_free_waits = [&](uint32_t q, std::vector<std::pair<uint32_t*, uint32_t>>* w) {
    const uint32_t fw = CeFreeWaitValue(q, S);
    if (!fw) return;
    for (int p = 0; p < R; ++p)
      if (p != r) w->push_back({AgFree(flags_, p, CeLane(fw, L)), fw});
  };
  // Push form, chunk i: this rank's part into every peer's all-gather staging.
  auto ag_push = [&](int i) -> Status {
    const uint32_t q = QA(i);
    const int lane = CeLane(q, L);
    cudaStream_t st = ag_lanes_[lane];
    std::vector<std::pair<uint32_t*, uint32_t>> w;
    ag_free_waits(q, &w);
    CORUN_CHECK(Wait(st, w));
    const Part src = ag_src(chunks[i]);
    for (int step = 1; step < R; ++step) {
      const int p = (r + step) % R;
      if (src.bytes)
        CUDACHECK(cudaMemcpyAsync(Slot(peers_[p].ag_staging, q, CePeerIndex(r, p)), src.src, src.bytes,
                                  cudaMemcpyDeviceToDevice, st));
      CORUN_CHECK(Write(st, L + lane, AgReady(peers_[p].flags, r, lane), q));
    }
    return Status::Ok();
  };
  // Pull form, all-gather: this rank's part of chunk i into its own staging (row 0), then every
  // peer is told (on the reduce-scatter lanes, which an all-gather does not otherwise use).
  auto ag_fill = [&](int i) -> Status {
    const uint32_t q = QA(i);
    const int lane = CeLane(q, L);
    cudaStream_t st = rs_lanes_[lane];
    std::vector<std::pair<uint32_t*, uint32_t>> w;
    ag_free_waits(q, &w);
    CORUN_CHECK(Wait(st, w));
    const Part src = ag_src(chunks[i]);
    if (src.bytes) CUDACHECK(cudaMemcpyAsync(Slot(ag_staging_, q, 0), src.src, src.bytes, cudaMemcpyDeviceToDevice, st));
    for (int p = 0; p < R; ++p)
      if (p != r) CORUN_CHECK(Write(st, lane, AgReady(peers_[p].flags, r, lane), q));
    return Status::Ok();
  };

  if (has_rs) {
    for (int i = 0; i < n; ++i) {
      const uint32_t q = QR(i);
      const int lane = CeLane(q, L);
      cudaStream_t st = rs_lanes_[lane];
      const uint32_t fw = CeFreeWaitValue(q, S);
      for (int step = 1; step < R; ++step) {
        const int p = (r + step) % R;
        const Part part = rs_part(chunks[i], p);
        if (fw) CORUN_CHECK(Wait(st, {{RsFree(flags_, p), fw}}));
        if (part.bytes)
          CUDACHECK(cudaMemcpyAsync(Slot(peers_[p].rs_staging, q, CePeerIndex(r, p)), part.src, part.bytes,
                                    cudaMemcpyDeviceToDevice, st));
        CORUN_CHECK(Write(st, lane, RsReady(peers_[p].flags, r, lane), q));
      }
    }
    for (const auto& b : CeBatches(n, std::min(cfg_.batch, kCeMaxBatch), S)) {
      const std::vector<uint32_t> last = CeLastPerLane(QR(b.first), QR(b.second - 1), L);
      std::vector<std::pair<uint32_t*, uint32_t>> waits;
      for (int p = 0; p < R; ++p)
        for (int lane = 0; lane < L && p != r; ++lane)
          if (last[lane]) waits.push_back({RsReady(flags_, p, lane), last[lane]});
      const bool fill = pull && has_ag;  // the reduction also writes the staging the peers pull from
      if (fill)
        for (int i = b.first; i < b.second; ++i) ag_free_waits(QA(i), &waits);
      CORUN_CHECK(Wait(reduce_, waits));
      CeReduceBatch rb;
      rb.npeers = R - 1;
      for (int i = b.first; i < b.second; ++i) {
        const Part own = own_part(chunks[i]);
        if (!own.bytes) continue;
        CeReduceItem& it = rb.item[rb.items++];
        it.out = own.dst;
        it.out2 = fill ? Slot(ag_staging_, QA(i), 0) : nullptr;
        it.own = own.src;
        for (int p = 0; p < R; ++p)
          if (p != r) it.peer[CePeerIndex(p, r)] = Slot(rs_staging_, QR(i), CePeerIndex(p, r));
        it.count = own.bytes / eb;
      }
      CORUN_CHECK(CeReduceLaunch(rb, t, sms_, reduce_));
      for (int p = 0; p < R; ++p)
        if (p != r) CORUN_CHECK(Write(reduce_, 2 * L, RsFree(peers_[p].flags, r), QR(b.second - 1)));
      if (fill) {
        const std::vector<uint32_t> last_ag = CeLastPerLane(QA(b.first), QA(b.second - 1), L);
        for (int lane = 0; lane < L; ++lane)
          for (int p = 0; p < R && last_ag[lane]; ++p)
            if (p != r) CORUN_CHECK(Write(reduce_, 2 * L, AgReady(peers_[p].flags, r, lane), last_ag[lane]));
      } else if (has_ag) {
        CUDACHECK(cudaEventRecord(ev_batch_, reduce_));
        for (auto st : ag_lanes_) CUDACHECK(cudaStreamWaitEvent(st, ev_batch_, 0));
        for (int i = b.first; i < b.second; ++i) CORUN_CHECK(ag_push(i));
      }
    }
  } else {
    // All-gather: this rank's own block is a local copy; the rest are pushes or fills.
    CUDACHECK(cudaMemcpyAsync(out + static_cast<uint64_t>(r) * count * eb, in, count * eb, cudaMemcpyDeviceToDevice,
                              pull ? unpack_ : rs_lanes_[0]));
    for (int i = 0; i < n; ++i) CORUN_CHECK(pull ? ag_fill(i) : ag_push(i));
  }

  if (has_ag && pull) {
    // Each peer's part straight from its staging into the output, on the chunk's lane.
    for (int i = 0; i < n; ++i) {
      const uint32_t q = QA(i);
      const int lane = CeLane(q, L);
      cudaStream_t st = ag_lanes_[lane];
      for (int step = 1; step < R; ++step) {
        const int j = (r + step) % R;
        CORUN_CHECK(Wait(st, {{AgReady(flags_, j, lane), q}}));
        const Part dst = unpack_dst(chunks[i], j);
        if (dst.bytes)
          CUDACHECK(cudaMemcpyAsync(dst.dst, Slot(peers_[j].ag_staging, q, 0), dst.bytes, cudaMemcpyDeviceToDevice, st));
        CORUN_CHECK(Write(st, L + lane, AgFree(peers_[j].flags, r, lane), q));
      }
    }
  } else if (has_ag) {
    // Unpack, in chunk order, from this rank's staging.
    for (int i = 0; i < n; ++i) {
      const uint32_t q = QA(i);
      const int lane = CeLane(q, L);
      std::vector<std::pair<uint32_t*, uint32_t>> waits;
      for (int j = 0; j < R; ++j)
        if (j != r) waits.push_back({AgReady(flags_, j, lane), q});
      CORUN_CHECK(Wait(unpack_, waits));
      for (int j = 0; j < R; ++j) {
        if (j == r) continue;
        const Part dst = unpack_dst(chunks[i], j);
        if (dst.bytes)
          CUDACHECK(cudaMemcpyAsync(dst.dst, Slot(ag_staging_, q, CePeerIndex(j, r)), dst.bytes,
                                    cudaMemcpyDeviceToDevice, unpack_));
      }
      for (int j = 0; j < R; ++j)
        if (j != r) CORUN_CHECK(Write(unpack_, 2 * L + 1, AgFree(peers_[j].flags, r, lane), q));
    }
  }

  // Join: the caller's stream continues when every stream of this call is done (events, so the
  // order is visible to the runtime too).
  for (size_t i = 0; i < used.size(); ++i) {
    CUDACHECK(cudaEventRecord(ev_done_[i], used[i]));
    CUDACHECK(cudaStreamWaitEvent(s, ev_done_[i], 0));
  }
  CE_DLOG("call: submitted");
  return Status::Ok();
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
