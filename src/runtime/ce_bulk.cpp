// Copy-engine collectives, the bulk allreduce (CeConfig::bulk): a direct allreduce in the push
// form moved a round at a time. Rank j owns a contiguous region of the buffer (CeBulkPart); per
// round of up to `slots` chunks each rank pushes every peer's part in one copy into the peer's
// staging, reduces its own part in one kernel, then pushes the result in one copy straight into
// every peer's output. A round's pushes wait for the previous round's all-gather copies (phases).
// Phased, the whole call runs on the caller's stream in that order (CeConfig::bulk_on_caller): no
// event, no other stream, the reduction at its priority (CeConfig::reduce_least_priority) by its
// launch attribute.
// Flags, slots and sequence numbers are those of ce_launch.cpp (a round writes each lane's last
// chunk), so bulk, chunked and staging calls may follow each other in any order; the schedule is
// in the CPU simulation of tests/cpu/test_ce_plan.cpp (the kBulk* operations).
#include <algorithm>
#include <utility>
#include <vector>

#include "ce_comm.h"
#include "ce_debug.h"
#include "ce_reduce.h"
#include "checks.h"

namespace corun {

Status CeComm::LaunchBulk(const char* in, char* out, uint64_t count, DType t, cudaStream_t s) {
  const int eb = static_cast<int>(DTypeSize(t));
  const int R = nranks_, r = rank_, L = cfg_.lanes, S = cfg_.slots;
  const uint64_t piece = slot_bytes_ / eb;  // elements of one slot
  const int n = CeBulkChunks(count, R, piece, eb);
  const CeSeq qr0 = rs_seq_ + 1, qa0 = ag_seq_ + 1;
  rs_seq_ += static_cast<CeSeq>(n);
  ag_seq_ += static_cast<CeSeq>(n);
  CE_DLOG("bulk call: count %llu, %d chunks, rs seq %llu, ag seq %llu", static_cast<unsigned long long>(count), n,
          static_cast<unsigned long long>(qr0), static_cast<unsigned long long>(qa0));
  auto QR = [&](int i) { return qr0 + static_cast<CeSeq>(i); };
  auto QA = [&](int i) { return qa0 + static_cast<CeSeq>(i); };
  // Each lane's flag gets the lane's last chunk of the range (lanes without one: nothing).
  auto lane_writes = [&](uint32_t* (CeComm::*flag)(uint32_t*, int, int) const, uint32_t* base, int src, CeSeq q_first,
                         CeSeq q_last, std::vector<CeFlagOp>* w) {
    const std::vector<CeSeq> last = CeLastPerLane(q_first, q_last, L);
    for (int lane = 0; lane < L; ++lane)
      if (last[lane]) w->push_back({(this->*flag)(base, src, lane), last[lane]});
  };

  // On the caller's stream every step follows the previous one already; unphased rounds need a
  // stream each way (a round's pushes run beside the previous round's all-gather copies).
  const bool one = cfg_.bulk_on_caller && cfg_.phases;
  if (!one) CE_T(kCeEvent, CUDACHECK(cudaEventRecord(ev_start_, s)));
  std::vector<cudaStream_t> used;
  auto use = [&](cudaStream_t st) -> Status {
    if (st != s && std::find(used.begin(), used.end(), st) == used.end()) {
      used.push_back(st);
      CE_T(kCeEvent, CUDACHECK(cudaStreamWaitEvent(st, ev_start_, 0)));
    }
    return Status::Ok();
  };
  // One stream each way, peers in step order (r + 1, r + 2, ...): every rank sends to a different
  // peer at each step, so no GPU takes two pushes at once while another takes none (copies on a
  // stream per peer reach the engine in any order).
  const int first = (r + 1) % R;
  cudaStream_t rs_st = one ? s : RsStream(0, first), ag_st = one ? s : AgStream(0, first);
  cudaStream_t red_st = one ? s : reduce_, end_st = one ? s : unpack_;
  const int priority = one ? reduce_priority_ : kCeStreamPriority;  // reduce_ has it already
  cudaEvent_t gate = nullptr;  // the previous round's all-gather copies
  const int per_round = cfg_.bulk_round > 0 ? std::min(cfg_.bulk_round, S) : S;
  for (const auto& [a, e] : CeRounds(n, per_round, true)) {
    // The round's slots, alike in every row: one run, or two where the ring wraps.
    const std::vector<std::pair<CeSeq, int>> runs = CeSlotRuns(QR(a), e - a, S);
    // Reduce-scatter: every peer's part of the round into its staging row of this rank.
    CORUN_CHECK(use(rs_st));
    if (gate && cfg_.phases) CE_T(kCeEvent, CUDACHECK(cudaStreamWaitEvent(rs_st, gate, 0)));
    for (int step = 1; step < R; ++step) {
      const int p = (r + step) % R;
      cudaStream_t st = rs_st;
      const CeSeq fw = CeFreeWaitValue(QR(e - 1), S);  // every slot of the round was reduced
      if (fw) CORUN_CHECK(Wait(st, {{RsFree(flags_, p), fw}}));
      // Into the peer's staging row of this rank: one copy per run of adjacent slots.
      const CeRange part = CeBulkPart(count, R, p, piece, a, e, eb);
      uint64_t done = 0;
      for (const auto& [q0, chunks] : runs) {
        const uint64_t bytes = std::min(part.count * eb - done, chunks * slot_bytes_);
        if (bytes)
          CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(Slot(peers_[p].rs_staging, q0, CePeerIndex(r, p)),
                                                  in + part.first * eb + done, bytes, cudaMemcpyDeviceToDevice, st)));
        done += bytes;
      }
      std::vector<CeFlagOp> w;
      lane_writes(&CeComm::RsReady, peers_[p].flags, r, QR(a), QR(e - 1), &w);
      CORUN_CHECK(WriteMany(st, RsBox(0, first), w));
    }
    // This rank's part: own + every peer's, once every peer's part is in.
    CORUN_CHECK(use(red_st));
    std::vector<CeFlagOp> waits;
    for (int p = 0; p < R; ++p)
      if (p != r) lane_writes(&CeComm::RsReady, flags_, p, QR(a), QR(e - 1), &waits);
    CORUN_CHECK(Wait(red_st, waits));
    const CeRange own = CeBulkPart(count, R, r, piece, a, e, eb);
    CeReduceBatch rb;
    rb.npeers = R - 1;
    uint64_t off = 0;  // elements of `own` covered so far
    for (const auto& [q0, chunks] : runs) {
      if (off == own.count) break;
      const uint64_t elems = std::min(own.count - off, static_cast<uint64_t>(chunks) * piece);
      CeReduceItem& it = rb.item[rb.items++];
      it.out = out + (own.first + off) * eb;
      it.out2 = nullptr;
      it.own = in + (own.first + off) * eb;
      for (int p = 0; p < R; ++p)
        if (p != r) it.peer[CePeerIndex(p, r)] = Slot(rs_staging_, q0, CePeerIndex(p, r));
      it.count = elems;
      off += elems;
    }
    CE_T(kCeLaunch, CORUN_CHECK(CeReduceLaunch(rb, t, sms_, red_st, priority)));
    std::vector<CeFlagOp> frees;
    for (int p = 0; p < R; ++p)
      if (p != r) frees.push_back({RsFree(peers_[p].flags, r), QR(e - 1)});
    CORUN_CHECK(WriteMany(red_st, ReduceBox(), frees));
    // All-gather: the reduced part straight into every peer's output (its call has begun: its
    // pushes of this round were waited for above).
    CORUN_CHECK(use(ag_st));
    if (!one) {
      CE_T(kCeEvent, CUDACHECK(cudaEventRecord(ev_batch_, reduce_)));
      CE_T(kCeEvent, CUDACHECK(cudaStreamWaitEvent(ag_st, ev_batch_, 0)));
    }
    for (int step = 1; step < R; ++step) {
      const int p = (r + step) % R;
      cudaStream_t st = ag_st;
      if (own.count)
        CE_T(kCeCopy, CUDACHECK(cudaMemcpyAsync(peer_out_[p] + own.first * eb, out + own.first * eb, own.count * eb,
                                                cudaMemcpyDeviceToDevice, st)));
      std::vector<CeFlagOp> w;
      lane_writes(&CeComm::AgReady, peers_[p].flags, r, QA(a), QA(e - 1), &w);
      CORUN_CHECK(WriteMany(st, AgBox(0, first), w));
    }
    if (!one) {
      gate = ev_phase_[0];
      CE_T(kCeEvent, CUDACHECK(cudaEventRecord(gate, ag_st)));
    }
  }
  // The call ends once every peer's part of every chunk is in this rank's output; the frees keep
  // the all-gather sequence of later staging calls (their pushes wait for them).
  CORUN_CHECK(use(end_st));
  std::vector<CeFlagOp> waits, frees;
  for (int j = 0; j < R; ++j)
    if (j != r) {
      lane_writes(&CeComm::AgReady, flags_, j, QA(0), QA(n - 1), &waits);
      lane_writes(&CeComm::AgFree, peers_[j].flags, r, QA(0), QA(n - 1), &frees);
    }
  CORUN_CHECK(Wait(end_st, waits));
  CORUN_CHECK(WriteMany(end_st, UnpackBox(), frees));
  if (one) ++caller_stream_calls_;
  return Join(s, used, true);  // nothing to join on the caller's stream
}

}  // namespace corun
