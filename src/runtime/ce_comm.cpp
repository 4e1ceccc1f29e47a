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

Status CeComm::CopyBatch(cudaStream_t st, const std::vector<Copy>& copies) {
  if (copies.size() == 1) {
    CUDACHECK(cudaMemcpyAsync(copies[0].dst, copies[0].src, copies[0].bytes, cudaMemcpyDeviceToDevice, st));
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
  CUDACHECK(cudaMemcpyBatchAsync(dst.data(), src.data(), bytes.data(), copies.size(), &attr, &attr_idx, 1, st));
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

  // Only the streams a call uses wait for the caller's stream and are joined at the end: a
  // one-chunk call touches one lane's streams, a pull-form call never the unpack stream (each
  // join costs two runtime calls on the caller's thread).
  CUDACHECK(cudaEventRecord(ev_start_, s));
  std::vector<cudaStream_t> used;
  auto use = [&](cudaStream_t st) -> cudaStream_t {
    if (std::find(used.begin(), used.end(), st) == used.end()) {
      used.push_back(st);
      if (cudaStreamWaitEvent(st, ev_start_, 0) != cudaSuccess) return nullptr;
    }
    return st;
  };
#define CE_USE(st)                                                                      \
  do {                                                                                  \
    if (!use(st)) CORUN_FAIL(std::string("cudaStreamWaitEvent: ") + cudaGetErrorString(cudaGetLastError())); \
  } while (0)

  const bool pull = cfg_.ag_pull;
  // Before chunk q's all-gather buffer is written (push: in the peers' staging; pull: in this
  // rank's staging, which the peers read), every reader of chunk q - S has released the slot.
  // `only`: the one reader that matters (push form: each peer's staging is its own), -1: all.
  auto ag_free_waits = [&](uint32_t q, std::vector<std::pair<uint32_t*, uint32_t>>* w, int only = -1) {
    const uint32_t fw = CeFreeWaitValue(q, S);
    if (!fw) return;
    for (int p = 0; p < R; ++p)
      if (p != r && (only < 0 || p == only)) w->push_back({AgFree(flags_, p, CeLane(fw, L)), fw});
  };
  // Push form, chunk i: this rank's part into every peer's all-gather staging, each peer on its
  // own stream. `after`: an event the streams wait for first (the batch's reduction), or null.
  auto ag_push = [&](int i, cudaEvent_t after) -> Status {
    const uint32_t q = QA(i);
    const int lane = CeLane(q, L);
    const Part src = ag_src(chunks[i]);
    for (int step = 1; step < R; ++step) {
      const int p = (r + step) % R;
      cudaStream_t st = AgStream(lane, p);
      CE_USE(st);
      if (after) CUDACHECK(cudaStreamWaitEvent(st, after, 0));
      std::vector<std::pair<uint32_t*, uint32_t>> w;
      ag_free_waits(q, &w, p);
      CORUN_CHECK(Wait(st, w));
      if (src.bytes)
        CUDACHECK(cudaMemcpyAsync(Slot(peers_[p].ag_staging, q, CePeerIndex(r, p)), src.src, src.bytes,
                                  cudaMemcpyDeviceToDevice, st));
      CORUN_CHECK(Write(st, AgBox(lane, p), AgReady(peers_[p].flags, r, lane), q));
    }
    return Status::Ok();
  };
  // Pull form, all-gather: this rank's part of chunk i into its own staging (row 0), then every
  // peer is told (on the reduce-scatter lanes, which an all-gather does not otherwise use).
  auto ag_fill = [&](int i) -> Status {
    const uint32_t q = QA(i);
    const int lane = CeLane(q, L);
    const int first = (r + 1) % R;
    cudaStream_t st = RsStream(lane, first);
    CE_USE(st);
    std::vector<std::pair<uint32_t*, uint32_t>> w;
    ag_free_waits(q, &w);
    CORUN_CHECK(Wait(st, w));
    const Part src = ag_src(chunks[i]);
    if (src.bytes) CUDACHECK(cudaMemcpyAsync(Slot(ag_staging_, q, 0), src.src, src.bytes, cudaMemcpyDeviceToDevice, st));
    for (int p = 0; p < R; ++p)
      if (p != r) CORUN_CHECK(Write(st, RsBox(lane, first), AgReady(peers_[p].flags, r, lane), q));
    return Status::Ok();
  };

  // Phases (CeConfig::phases): a GPU's copies run one at a time on one engine, pushes to a peer
  // and pulls from it alike; a push of this rank's reduce-scatter and a pull of the peer's
  // all-gather load the same link direction and share it. Rounds of `slots` chunks, whose
  // pulls start only once the round's pushes are done (and the next round's pushes once its
  // pulls are), keep every rank in the same phase: pushes (and pulls) of all ranks fill every
  // direction at once. Streams of a phase wait for the other phase's streams at their first use.
  std::vector<cudaStream_t> phase_cur, gated;
  std::vector<cudaEvent_t> gate;
  auto next_phase = [&]() -> Status {
    gate.clear();
    gated.clear();
    for (size_t k = 0; k < phase_cur.size(); ++k) {
      CUDACHECK(cudaEventRecord(ev_phase_[k], phase_cur[k]));
      gate.push_back(ev_phase_[k]);
    }
    phase_cur.clear();
    return Status::Ok();
  };
  auto enter = [&](cudaStream_t st) -> Status {
    CE_USE(st);
    if (std::find(phase_cur.begin(), phase_cur.end(), st) == phase_cur.end()) phase_cur.push_back(st);
    if (!gate.empty() && std::find(gated.begin(), gated.end(), st) == gated.end()) {
      for (cudaEvent_t e : gate) CUDACHECK(cudaStreamWaitEvent(st, e, 0));
      gated.push_back(st);
    }
    return Status::Ok();
  };
  // Reduce-scatter step of chunk i: its slices pushed into the peers' staging.
  auto rs_push = [&](int i) -> Status {
    const uint32_t q = QR(i);
    const int lane = CeLane(q, L);
    const uint32_t fw = CeFreeWaitValue(q, S);
    if (cfg_.batch_copies) {
      // Every peer's slice in one batch on one stream, then every peer's flag.
      const int first = (r + 1) % R;
      cudaStream_t st = RsStream(lane, first);
      CORUN_CHECK(enter(st));
      std::vector<std::pair<uint32_t*, uint32_t>> w;
      std::vector<Copy> copies;
      for (int step = 1; step < R; ++step) {
        const int p = (r + step) % R;
        if (fw) w.push_back({RsFree(flags_, p), fw});
        const Part part = rs_part(chunks[i], p);
        if (part.bytes)
          copies.push_back({Slot(peers_[p].rs_staging, q, CePeerIndex(r, p)), part.src, part.bytes});
      }
      CORUN_CHECK(Wait(st, w));
      CORUN_CHECK(CopyBatch(st, copies));
      for (int step = 1; step < R; ++step)
        CORUN_CHECK(Write(st, RsBox(lane, first), RsReady(peers_[(r + step) % R].flags, r, lane), q));
      return Status::Ok();
    }
    for (int step = 1; step < R; ++step) {
      const int p = (r + step) % R;
      cudaStream_t st = RsStream(lane, p);
      CORUN_CHECK(enter(st));
      const Part part = rs_part(chunks[i], p);
      if (fw) CORUN_CHECK(Wait(st, {{RsFree(flags_, p), fw}}));
      if (part.bytes)
        CUDACHECK(cudaMemcpyAsync(Slot(peers_[p].rs_staging, q, CePeerIndex(r, p)), part.src, part.bytes,
                                  cudaMemcpyDeviceToDevice, st));
      CORUN_CHECK(Write(st, RsBox(lane, p), RsReady(peers_[p].flags, r, lane), q));
    }
    return Status::Ok();
  };
  // One reduction kernel for chunks [b.first, b.second).
  auto reduce_batch = [&](std::pair<int, int> b) -> Status {
    const std::vector<uint32_t> last = CeLastPerLane(QR(b.first), QR(b.second - 1), L);
    std::vector<std::pair<uint32_t*, uint32_t>> waits;
    for (int p = 0; p < R; ++p)
      for (int lane = 0; lane < L && p != r; ++lane)
        if (last[lane]) waits.push_back({RsReady(flags_, p, lane), last[lane]});
    const bool fill = pull && has_ag;  // the reduction also writes the staging the peers pull from
    if (fill)
      for (int i = b.first; i < b.second; ++i) ag_free_waits(QA(i), &waits);
    CE_USE(reduce_);
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
      if (p != r) CORUN_CHECK(Write(reduce_, ReduceBox(), RsFree(peers_[p].flags, r), QR(b.second - 1)));
    if (fill) {
      const std::vector<uint32_t> last_ag = CeLastPerLane(QA(b.first), QA(b.second - 1), L);
      for (int lane = 0; lane < L; ++lane)
        for (int p = 0; p < R && last_ag[lane]; ++p)
          if (p != r) CORUN_CHECK(Write(reduce_, ReduceBox(), AgReady(peers_[p].flags, r, lane), last_ag[lane]));
    } else if (has_ag) {
      CUDACHECK(cudaEventRecord(ev_batch_, reduce_));
      for (int i = b.first; i < b.second; ++i) CORUN_CHECK(ag_push(i, ev_batch_));
    }
    return Status::Ok();
  };
  // All-gather step of chunk i, pull form: each peer's part straight from its staging into the
  // output, on the chunk's lane.
  auto ag_pull = [&](int i) -> Status {
    const uint32_t q = QA(i);
    const int lane = CeLane(q, L);
    if (cfg_.batch_copies) {
      const int first = (r + 1) % R;
      cudaStream_t st = AgStream(lane, first);
      CORUN_CHECK(enter(st));
      std::vector<std::pair<uint32_t*, uint32_t>> w;
      std::vector<Copy> copies;
      for (int step = 1; step < R; ++step) {
        const int j = (r + step) % R;
        w.push_back({AgReady(flags_, j, lane), q});
        const Part dst = unpack_dst(chunks[i], j);
        if (dst.bytes) copies.push_back({dst.dst, Slot(peers_[j].ag_staging, q, 0), dst.bytes});
      }
      CORUN_CHECK(Wait(st, w));
      CORUN_CHECK(CopyBatch(st, copies));
      for (int step = 1; step < R; ++step)
        CORUN_CHECK(Write(st, AgBox(lane, first), AgFree(peers_[(r + step) % R].flags, r, lane), q));
      return Status::Ok();
    }
    for (int step = 1; step < R; ++step) {
      const int j = (r + step) % R;
      cudaStream_t st = AgStream(lane, j);
      CORUN_CHECK(enter(st));
      CORUN_CHECK(Wait(st, {{AgReady(flags_, j, lane), q}}));
      const Part dst = unpack_dst(chunks[i], j);
      if (dst.bytes)
        CUDACHECK(cudaMemcpyAsync(dst.dst, Slot(peers_[j].ag_staging, q, 0), dst.bytes, cudaMemcpyDeviceToDevice, st));
      CORUN_CHECK(Write(st, AgBox(lane, j), AgFree(peers_[j].flags, r, lane), q));
    }
    return Status::Ok();
  };

  const bool phased = cfg_.phases && has_rs && has_ag && pull;
  if (has_rs) {
    for (const auto& [a, e] : CeRounds(n, S, phased)) {
      if (phased && a > 0) CORUN_CHECK(next_phase());
      for (int i = a; i < e; ++i) CORUN_CHECK(rs_push(i));
      for (auto b : CeBatches(e - a, std::min(cfg_.batch, kCeMaxBatch), S))
        CORUN_CHECK(reduce_batch({a + b.first, a + b.second}));
      if (phased) {
        CORUN_CHECK(next_phase());
        for (int i = a; i < e; ++i) CORUN_CHECK(ag_pull(i));
      }
    }
  } else {
    // All-gather: this rank's own block is a local copy; the rest are pushes or fills.
    cudaStream_t own = pull ? unpack_ : rs_lanes_[0];
    CE_USE(own);
    CUDACHECK(cudaMemcpyAsync(out + static_cast<uint64_t>(r) * count * eb, in, count * eb, cudaMemcpyDeviceToDevice, own));
    for (int i = 0; i < n; ++i) CORUN_CHECK(pull ? ag_fill(i) : ag_push(i, nullptr));
  }

  if (has_ag && pull) {
    if (!phased)  // phased: pulled round by round above
      for (int i = 0; i < n; ++i) CORUN_CHECK(ag_pull(i));
  } else if (has_ag) {
    // Unpack, in chunk order, from this rank's staging.
    for (int i = 0; i < n; ++i) {
      const uint32_t q = QA(i);
      const int lane = CeLane(q, L);
      std::vector<std::pair<uint32_t*, uint32_t>> waits;
      for (int j = 0; j < R; ++j)
        if (j != r) waits.push_back({AgReady(flags_, j, lane), q});
      CE_USE(unpack_);
      CORUN_CHECK(Wait(unpack_, waits));
      for (int j = 0; j < R; ++j) {
        if (j == r) continue;
        const Part dst = unpack_dst(chunks[i], j);
        if (dst.bytes)
          CUDACHECK(cudaMemcpyAsync(dst.dst, Slot(ag_staging_, q, CePeerIndex(j, r)), dst.bytes,
                                    cudaMemcpyDeviceToDevice, unpack_));
      }
      for (int j = 0; j < R; ++j)
        if (j != r) CORUN_CHECK(Write(unpack_, UnpackBox(), AgFree(peers_[j].flags, r, lane), q));
    }
  }

  // Join: the caller's stream continues when every stream of this call is done (events, so the
  // order is visible to the runtime too).
  for (size_t i = 0; i < used.size(); ++i) {
    CUDACHECK(cudaEventRecord(ev_done_[i], used[i]));
    CUDACHECK(cudaStreamWaitEvent(s, ev_done_[i], 0));
  }
#undef CE_USE
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
