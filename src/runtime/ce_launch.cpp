// Copy-engine collectives, the call path: one collective cut into chunks, pushed to the peers'
// staging by copy engines, reduced in batches, gathered back by pulls (or pushes and an unpack),
// in phases where configured; every step ordered by flag waits and writes (ce_comm.cpp).
// The schedule issued here is modelled by the CPU simulations in tests/cpu/test_ce_plan.cpp
// (SimulatedCallsFinishAndReuseSlotsSafely): a change to its waits, writes or streams belongs there too.
// Direct allreduces in the push form leave for ce_bulk.cpp (CeConfig::bulk), simulated there too.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "ce_comm.h"
#include "ce_debug.h"
#include "ce_reduce.h"
#include "checks.h"

namespace corun {

Status CeComm::LaunchNow(Kind k, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s) {
  CORUN_CHECK(Failed());
  if (count == 0) return Status::Ok();
  CeTimer whole(kCeCall, rank_);
  CUDACHECK(cudaSetDevice(device_));
  const int eb = static_cast<int>(DTypeSize(t));
  const int R = nranks_, r = rank_, L = cfg_.lanes, S = cfg_.slots;
  const char* in = static_cast<const char*>(send);
  char* out = static_cast<char*>(recv);
  const bool has_rs = k != Kind::kAllGather, has_ag = k != Kind::kReduceScatter;
  // Allreduce: the all-gather copies read the peers' outputs (pull form) or write them (push
  // form) where every rank agrees for this call (ce_direct.cpp); peer_out_ then holds them.
  const bool agreed = k == Kind::kAllReduce && dir_;
  const bool direct = agreed && AgreeDirect(out, count * eb);
  CE_T(kCeEvent, CORUN_CHECK(OrderAfterLastCall(s)));
  if (direct && !cfg_.ag_pull && cfg_.bulk) {
    CORUN_CHECK(LaunchBulk(in, out, count, t, s));
    ++direct_calls_;
    CE_T(kCeEvent, CORUN_CHECK(MarkCallEnd(s)));  // for the next call's order, teardown and Abort()
    return Status::Ok();
  }

  std::vector<CeRange> chunks;
  if (k == Kind::kAllReduce) {
    chunks = CeChunks(count, cfg_.chunk_bytes / eb, R, eb);
  } else {
    chunks = CeChunks(count, slot_bytes_ / eb, 1, eb);
  }
  const int n = static_cast<int>(chunks.size());
  // Each step (reduce-scatter, all-gather) numbers its own chunks: a slot's free flag advances
  // only in calls that use that staging, so "free >= q - slots" must count the chunks of that step
  // alone (a reduce-scatter followed by an all-gather would otherwise wait for frees that never come).
  const CeSeq qr0 = rs_seq_ + 1, qa0 = ag_seq_ + 1;
  if (has_rs) rs_seq_ += static_cast<CeSeq>(n);
  if (has_ag) ag_seq_ += static_cast<CeSeq>(n);
  CE_DLOG("call: kind %d, count %llu, %d chunks, rs seq %llu, ag seq %llu", static_cast<int>(k),
          static_cast<unsigned long long>(count), n, static_cast<unsigned long long>(has_rs ? qr0 : 0),
          static_cast<unsigned long long>(has_ag ? qa0 : 0));
  auto QR = [&](int i) { return qr0 + static_cast<CeSeq>(i); };
  auto QA = [&](int i) { return qa0 + static_cast<CeSeq>(i); };

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

  // Only the streams a call uses wait for the caller's stream (directly, or through a phase's
  // gate) and are joined at the end (an allreduce's reduce-scatter streams not even then, below):
  // a one-chunk call touches one lane's streams, a pull-form call never the unpack stream (each
  // wait and each join cost runtime calls on the caller's thread).
  CE_T(kCeEvent, CUDACHECK(cudaEventRecord(ev_start_, s)));
  std::vector<cudaStream_t> used;
  // `after_start`: the stream is about to wait for an event of a stream that already waited for
  // the caller's (a phase's gate), which orders it after the caller's stream too.
  auto use = [&](cudaStream_t st, bool after_start = false) -> cudaStream_t {
    if (std::find(used.begin(), used.end(), st) == used.end()) {
      used.push_back(st);
      if (!after_start) {
        CeTimer timed(kCeEvent);
        if (cudaStreamWaitEvent(st, ev_start_, 0) != cudaSuccess) return nullptr;
      }
    }
    return st;
  };
#define CE_USE_AFTER(st, after_start)                                                    \
  do {                                                                                  \
    if (!use(st, after_start)) CORUN_FAIL(std::string("cudaStreamWaitEvent: ") + cudaGetErrorString(cudaGetLastError())); \
  } while (0)
#define CE_USE(st) CE_USE_AFTER(st, false)

  const bool pull = cfg_.ag_pull;
  // Phases (CeConfig::phases): a push of this rank's reduce-scatter and a pull of the peer's
  // all-gather load the same link direction and share it; in the push form this rank's
  // reduce-scatter and all-gather pushes share its outgoing links. Rounds of `slots` chunks,
  // whose all-gather copies start only once the round's reduce-scatter pushes are done (and the
  // next round's pushes once its all-gather copies are), keep every rank in the same phase.
  // Streams of a phase wait for the other phase's streams at their first use.
  const bool phased = cfg_.phases && has_rs && has_ag;
  std::vector<cudaStream_t> phase_cur, gated;
  std::vector<cudaEvent_t> gate;
  auto next_phase = [&]() -> Status {
    gate.clear();
    gated.clear();
    for (size_t k = 0; k < phase_cur.size(); ++k) {
      CE_T(kCeEvent, CUDACHECK(cudaEventRecord(ev_phase_[k], phase_cur[k])));
      gate.push_back(ev_phase_[k]);
    }
    phase_cur.clear();
    return Status::Ok();
  };
  auto enter = [&](cudaStream_t st) -> Status {
    CE_USE_AFTER(st, phased && !gate.empty());  // the gate's events come after the caller's stream
    if (!phased) return Status::Ok();
    if (std::find(phase_cur.begin(), phase_cur.end(), st) == phase_cur.end()) phase_cur.push_back(st);
    if (!gate.empty() && std::find(gated.begin(), gated.end(), st) == gated.end()) {
      for (cudaEvent_t e : gate) CE_T(kCeEvent, CUDACHECK(cudaStreamWaitEvent(st, e, 0)));
      gated.push_back(st);
    }
    return Status::Ok();
  };
  // Before chunk q's all-gather buffer is written (push: in the peers' staging; pull: in this
  // rank's staging, which the peers read), every reader of chunk q - S has released the slot.
  // `only`: the one reader that matters (push form: each peer's staging is its own), -1: all.
  auto ag_free_waits = [&](CeSeq q, std::vector<CeFlagOp>* w, int only = -1) {
    const CeSeq fw = CeFreeWaitValue(q, S);
    if (!fw) return;
    for (int p = 0; p < R; ++p)
      if (p != r && (only < 0 || p == only)) w->push_back({AgFree(flags_, p, CeLane(fw, L)), fw});
  };
  // Push form, chunk i: this rank's part into every peer's all-gather staging, each peer on its
  // own stream. `after`: an event the streams wait for first (the batch's reduction), or null.
  auto ag_push = [&](int i, cudaEvent_t after) -> Status {
    const CeSeq q = QA(i);
    const int lane = CeLane(q, L);
    const Part src = ag_src(chunks[i]);
    for (int step = 1; step < R; ++step) {
      const int p = (r + step) % R;
      cudaStream_t st = AgStream(lane, p);
      CORUN_CHECK(enter(st));
      if (after) CE_T(kCeEvent, CUDACHECK(cudaStreamWaitEvent(st, after, 0)));
      std::vector<CeFlagOp> w;
      // Direct: the peer's output is free once the peer is in this call, which the reduction
      // this push follows waited for (the peer's reduce-scatter push of this chunk).
      if (!direct) ag_free_waits(q, &w, p);
      CORUN_CHECK(Wait(st, w));
      // Direct: into the peer's output where its part lands (the same offset as in this rank's).
      char* dst = direct ? peer_out_[p] + (src.src - out) : Slot(peers_[p].ag_staging, q, CePeerIndex(r, p));
      if (src.bytes) CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(dst, src.src, src.bytes, cudaMemcpyDeviceToDevice, st)));
      CORUN_CHECK(Write(st, AgBox(lane, p), AgReady(peers_[p].flags, r, lane), q));
    }
    return Status::Ok();
  };
  // Pull form, all-gather: this rank's part of chunk i into its own staging (row 0), then every
  // peer is told (on the reduce-scatter lanes, which an all-gather does not otherwise use).
  auto ag_fill = [&](int i) -> Status {
    const CeSeq q = QA(i);
    const int lane = CeLane(q, L);
    const int first = (r + 1) % R;
    cudaStream_t st = RsStream(lane, first);
    CE_USE(st);
    std::vector<CeFlagOp> w;
    ag_free_waits(q, &w);
    CORUN_CHECK(Wait(st, w));
    const Part src = ag_src(chunks[i]);
    if (src.bytes) CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(Slot(ag_staging_, q, 0), src.src, src.bytes, cudaMemcpyDeviceToDevice, st)));
    std::vector<CeFlagOp> tell;
    for (int p = 0; p < R; ++p)
      if (p != r) tell.push_back({AgReady(peers_[p].flags, r, lane), q});
    CORUN_CHECK(WriteMany(st, RsBox(lane, first), tell));
    return Status::Ok();
  };

  // One step with every peer, each peer's part: wait for its flag (address null: no wait), copy,
  // then write q to its flag. Each peer on its own (lane, peer) stream, or (batch_copies) every
  // copy in one batch on the first peer's stream, after all the waits.
  struct PeerStep {
    int peer;
    CeFlagOp wait;
    Copy copy;
    uint32_t* flag;
  };
  auto exchange = [&](bool ag, int lane, CeSeq q, const std::vector<PeerStep>& steps) -> Status {
    auto stream = [&](int p) { return ag ? AgStream(lane, p) : RsStream(lane, p); };
    auto box = [&](int p) { return ag ? AgBox(lane, p) : RsBox(lane, p); };
    if (cfg_.batch_copies) {
      const int first = steps.front().peer;
      cudaStream_t st = stream(first);
      CORUN_CHECK(enter(st));
      std::vector<CeFlagOp> w, writes;
      std::vector<Copy> copies;
      for (const PeerStep& x : steps) {
        if (x.wait.first) w.push_back(x.wait);
        if (x.copy.bytes) copies.push_back(x.copy);
        writes.push_back({x.flag, q});
      }
      CORUN_CHECK(Wait(st, w));
      CORUN_CHECK(CopyBatch(st, copies));
      CORUN_CHECK(WriteMany(st, box(first), writes));
      return Status::Ok();
    }
    for (const PeerStep& x : steps) {
      cudaStream_t st = stream(x.peer);
      CORUN_CHECK(enter(st));
      if (x.wait.first) CORUN_CHECK(Wait(st, {x.wait}));
      if (x.copy.bytes) CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(x.copy.dst, x.copy.src, x.copy.bytes, cudaMemcpyDeviceToDevice, st)));
      CORUN_CHECK(Write(st, box(x.peer), x.flag, q));
    }
    return Status::Ok();
  };
  // Reduce-scatter step of chunk i: its slices pushed into the peers' staging, once each slot
  // is free again.
  auto rs_push = [&](int i) -> Status {
    const CeSeq q = QR(i);
    const int lane = CeLane(q, L);
    const CeSeq fw = CeFreeWaitValue(q, S);
    std::vector<PeerStep> steps;
    for (int step = 1; step < R; ++step) {
      const int p = (r + step) % R;
      const Part part = rs_part(chunks[i], p);
      steps.push_back({p, {fw ? RsFree(flags_, p) : nullptr, fw},
                       {Slot(peers_[p].rs_staging, q, CePeerIndex(r, p)), part.src, part.bytes},
                       RsReady(peers_[p].flags, r, lane)});
    }
    return exchange(false, lane, q, steps);
  };
  // One reduction kernel for chunks [b.first, b.second).
  auto reduce_batch = [&](std::pair<int, int> b) -> Status {
    const std::vector<CeSeq> last = CeLastPerLane(QR(b.first), QR(b.second - 1), L);
    std::vector<CeFlagOp> waits;
    for (int p = 0; p < R; ++p)
      for (int lane = 0; lane < L && p != r; ++lane)
        if (last[lane]) waits.push_back({RsReady(flags_, p, lane), last[lane]});
    // Pull form: the reduction tells the peers its result is there to pull, and unless the peers
    // pull straight from this rank's output (direct), writes it into the staging too.
    const bool fill = pull && has_ag;
    const bool to_staging = fill && !direct;
    if (to_staging)
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
      it.out2 = to_staging ? Slot(ag_staging_, QA(i), 0) : nullptr;
      it.own = own.src;
      for (int p = 0; p < R; ++p)
        if (p != r) it.peer[CePeerIndex(p, r)] = Slot(rs_staging_, QR(i), CePeerIndex(p, r));
      it.count = own.bytes / eb;
    }
    CE_T(kCeLaunch, CORUN_CHECK(CeReduceLaunch(rb, t, sms_, reduce_)));
    std::vector<CeFlagOp> writes;
    for (int p = 0; p < R; ++p)
      if (p != r) writes.push_back({RsFree(peers_[p].flags, r), QR(b.second - 1)});
    if (fill) {
      const std::vector<CeSeq> last_ag = CeLastPerLane(QA(b.first), QA(b.second - 1), L);
      for (int lane = 0; lane < L; ++lane)
        for (int p = 0; p < R && last_ag[lane]; ++p)
          if (p != r) writes.push_back({AgReady(peers_[p].flags, r, lane), last_ag[lane]});
    }
    CORUN_CHECK(WriteMany(reduce_, ReduceBox(), writes));
    if (!fill && has_ag) {
      CE_T(kCeEvent, CUDACHECK(cudaEventRecord(ev_batch_, reduce_)));
      for (int i = b.first; i < b.second; ++i) CORUN_CHECK(ag_push(i, ev_batch_));
    }
    return Status::Ok();
  };
  // All-gather step of chunk i, pull form: each peer's part straight from its staging into the
  // output once the peer says it is there.
  auto ag_pull = [&](int i) -> Status {
    const CeSeq q = QA(i);
    const int lane = CeLane(q, L);
    std::vector<PeerStep> steps;
    for (int step = 1; step < R; ++step) {
      const int j = (r + step) % R;
      const Part dst = unpack_dst(chunks[i], j);
      const char* src = direct ? peer_out_[j] + (dst.dst - out) : Slot(peers_[j].ag_staging, q, 0);
      steps.push_back({j, {AgReady(flags_, j, lane), q}, {dst.dst, src, dst.bytes}, AgFree(peers_[j].flags, r, lane)});
    }
    return exchange(true, lane, q, steps);
  };

  if (has_rs) {
    for (const auto& [a, e] : CeRounds(n, S, phased)) {
      if (phased && a > 0) CORUN_CHECK(next_phase());
      for (int i = a; i < e; ++i) CORUN_CHECK(rs_push(i));
      // Push form: the all-gather pushes are issued with each batch's reduction, so their phase
      // begins here; pull form: after the reductions, with the pulls.
      if (phased && !pull) CORUN_CHECK(next_phase());
      for (auto b : CeBatches(e - a, std::min(cfg_.batch, kCeMaxBatch), S))
        CORUN_CHECK(reduce_batch({a + b.first, a + b.second}));
      if (phased && pull) {
        CORUN_CHECK(next_phase());
        for (int i = a; i < e; ++i) CORUN_CHECK(ag_pull(i));
      }
    }
  } else {
    // All-gather: this rank's own block is a local copy; the rest are pushes or fills.
    cudaStream_t own = pull ? unpack_ : rs_lanes_[0];
    CE_USE(own);
    CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(out + static_cast<uint64_t>(r) * count * eb, in, count * eb, cudaMemcpyDeviceToDevice, own)));
    for (int i = 0; i < n; ++i) CORUN_CHECK(pull ? ag_fill(i) : ag_push(i, nullptr));
  }

  if (has_ag && pull) {
    if (!phased)  // phased: pulled round by round above
      for (int i = 0; i < n; ++i) CORUN_CHECK(ag_pull(i));
    if (direct) {
      // The peers read this rank's output: the call ends once every peer has pulled every chunk
      // (the frees they write after each pull), so the caller cannot overwrite it sooner.
      const std::vector<CeSeq> last = CeLastPerLane(QA(0), QA(n - 1), L);
      std::vector<CeFlagOp> waits;
      for (int p = 0; p < R; ++p)
        for (int lane = 0; lane < L && p != r; ++lane)
          if (last[lane]) waits.push_back({AgFree(flags_, p, lane), last[lane]});
      CE_USE(unpack_);
      CORUN_CHECK(Wait(unpack_, waits));
    }
  } else if (has_ag) {
    // Unpack, in chunk order, from this rank's staging.
    for (int i = 0; i < n; ++i) {
      const CeSeq q = QA(i);
      const int lane = CeLane(q, L);
      std::vector<CeFlagOp> waits;
      for (int j = 0; j < R; ++j)
        if (j != r) waits.push_back({AgReady(flags_, j, lane), q});
      CE_USE(unpack_);
      CORUN_CHECK(Wait(unpack_, waits));
      for (int j = 0; j < R; ++j) {
        if (j == r) continue;
        const Part dst = unpack_dst(chunks[i], j);
        if (dst.bytes && !direct)  // direct: the peer pushed it into the output itself
          CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(dst.dst, Slot(ag_staging_, q, CePeerIndex(j, r)), dst.bytes,
                                    cudaMemcpyDeviceToDevice, unpack_)));
      }
      std::vector<CeFlagOp> frees;
      for (int j = 0; j < R; ++j)
        if (j != r) frees.push_back({AgFree(peers_[j].flags, r, lane), q});
      CORUN_CHECK(WriteMany(unpack_, UnpackBox(), frees));
    }
  }

  CORUN_CHECK(Join(s, used, has_rs && has_ag));
  CE_T(kCeEvent, CORUN_CHECK(MarkCallEnd(s)));
  if (agreed) ++(direct ? direct_calls_ : staged_calls_);  // counted once the whole call is queued
#undef CE_USE
#undef CE_USE_AFTER
  CE_DLOG("call: submitted");
  return Status::Ok();
}

}  // namespace corun
