// The copy-engine collectives' host-only rules: chunk and slice geometry (any count, odd ones
// included), the slot/lane/sequence protocol simulated to the end, and the fallback decisions.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <tuple>
#include <set>
#include <array>

#include "corun/ce_plan.h"

using namespace corun;

TEST(CePlan, ChunksCoverEveryElementOnce) {
  for (int eb : {2, 4}) {
    for (int R : {2, 3, 4, 8}) {
      for (uint64_t count : {1ull, 7ull, 1000003ull, (25ull << 20) / 2 + 1, 12345678ull}) {
        const uint64_t chunk_elems = (1ull << 20) / eb;
        const auto chunks = CeChunks(count, chunk_elems, R, eb);
        uint64_t next = 0;
        for (const CeRange& c : chunks) {
          ASSERT_EQ(c.first, next);
          ASSERT_GT(c.count, 0u);
          ASSERT_LE(c.count, chunk_elems);
          // Chunk starts are 16-byte aligned: vector loads stay aligned.
          ASSERT_EQ(c.first * eb % 16, 0u);
          uint64_t s_next = 0;
          for (int j = 0; j < R; ++j) {
            const CeRange sl = CeSlice(c.count, R, j, eb);
            ASSERT_EQ(sl.first, std::min(s_next, c.count)) << "R " << R << " count " << count << " slice " << j;
            if (sl.count) ASSERT_EQ(sl.first * eb % 16, 0u);
            ASSERT_LE(sl.count * eb, CeSlotBytes(CeConfig{chunk_elems * eb}, R)) << "slice larger than a slot";
            s_next = sl.first + sl.count;
          }
          ASSERT_EQ(s_next, c.count) << "slices do not cover the chunk";
          next += c.count;
        }
        ASSERT_EQ(next, count);
      }
    }
  }
}

TEST(CePlan, SmallCountsLeaveTailSlicesEmpty) {
  EXPECT_EQ(CeChunks(1, 1 << 20, 2, 2).size(), 1u);
  EXPECT_EQ(CeSlice(1, 2, 0, 2).count, 1u);
  EXPECT_EQ(CeSlice(1, 2, 1, 2).count, 0u);
  EXPECT_EQ(CeSlice(7, 4, 0, 4).count, 4u);  // 16-byte aligned share
  EXPECT_EQ(CeSlice(7, 4, 1, 4).count, 3u);
  EXPECT_EQ(CeSlice(7, 4, 2, 4).count, 0u);
}

// Bulk geometry: every element in exactly one rank's part of one round, parts contiguous per
// region, whatever the rounds.
TEST(CePlan, BulkPartsCoverEveryElementOnce) {
  for (int R : {2, 3, 4, 8})
    for (int eb : {2, 4})
      for (uint64_t count : {uint64_t{1}, uint64_t{7}, uint64_t{1000003}, uint64_t{3000017}})
        for (uint64_t piece : {uint64_t{64}, uint64_t{4096}, uint64_t{1} << 20}) {
          const int n = CeBulkChunks(count, R, piece, eb);
          ASSERT_GE(n, 1);
          std::vector<int> seen(count, 0);
          for (int a = 0; a < n; a += 3) {  // rounds of 3 chunks
            const int e = std::min(n, a + 3);
            for (int j = 0; j < R; ++j) {
              const CeRange p = CeBulkPart(count, R, j, piece, a, e, eb);
              ASSERT_LE(p.first + p.count, count);
              if (p.count) EXPECT_EQ(p.first % CeAlignElems(eb), 0u) << "region start unaligned";
              ASSERT_LE(p.count, 3 * piece);
              for (uint64_t x = p.first; x < p.first + p.count; ++x) ++seen[x];
            }
          }
          for (uint64_t x = 0; x < count; ++x)
            ASSERT_EQ(seen[x], 1) << "R " << R << " count " << count << " piece " << piece << " element " << x;
        }
}

// A bulk round's slots: one run of adjacent slots, or two where the ring wraps; every chunk in one
// run, each run's slots adjacent (slot of chunk q0 + i is slot(q0) + i).
TEST(CePlan, SlotRunsSplitOnlyWhereTheRingWraps) {
  for (int S : {2, 5, 16})
    for (CeSeq q : {CeSeq{1}, CeSeq{17}, CeSeq{39}, (CeSeq{1} << 32) - 3})
      for (int n = 1; n <= S; ++n) {
        const auto runs = CeSlotRuns(q, n, S);
        ASSERT_GE(runs.size(), 1u);
        ASSERT_LE(runs.size(), 2u);
        CeSeq next = q;
        for (const auto& [q0, k] : runs) {
          ASSERT_EQ(q0, next);
          ASSERT_GE(k, 1);
          ASSERT_LE(CeSlot(q0, S) + k, S) << "a run crosses the end of the ring";
          next += static_cast<CeSeq>(k);
        }
        ASSERT_EQ(next, q + static_cast<CeSeq>(n));
        EXPECT_EQ(runs.size() == 2, CeSlot(q, S) + n > S) << "S " << S << " q " << q << " n " << n;
        if (runs.size() == 2) EXPECT_EQ(CeSlot(runs[1].first, S), 0);
      }
  EXPECT_TRUE(CeSlotRuns(5, 0, 4).empty());
}

TEST(CePlan, ProtocolIndexes) {
  EXPECT_EQ(CeFreeWaitValue(1, 8), 0u);
  EXPECT_EQ(CeFreeWaitValue(8, 8), 0u);
  EXPECT_EQ(CeFreeWaitValue(9, 8), 1u);
  EXPECT_EQ(CePeerIndex(0, 1), 0);
  EXPECT_EQ(CePeerIndex(2, 1), 1);
  EXPECT_EQ(CePeerIndex(1, 0), 0);
  const auto last = CeLastPerLane(5, 9, 2);
  EXPECT_EQ(last[0], 8u);
  EXPECT_EQ(last[1], 9u);
  const auto one = CeLastPerLane(7, 7, 4);
  EXPECT_EQ(one[3], 7u);
  EXPECT_EQ(one[0], 0u);
  // Across the flag words' wrap (2^32 chunks): every lane keeps its last chunk, none reads as
  // unused, and slots and lanes continue the ring whatever their count.
  const CeSeq wrap = CeSeq{1} << 32;
  const auto across = CeLastPerLane(wrap - 2, wrap + 1, 3);
  EXPECT_EQ(across, (std::vector<CeSeq>{wrap - 1, wrap, wrap + 1}));
  EXPECT_EQ(CeLastPerLane(wrap - 1, wrap - 1, 2), (std::vector<CeSeq>{0, wrap - 1}));
  EXPECT_EQ(CeLastPerLane(wrap + 1, wrap, 2), (std::vector<CeSeq>{0, 0})) << "an empty range";
  for (int n : {3, 5, 6, 7})
    EXPECT_EQ(CeSlot(wrap, n), (CeSlot(wrap - 1, n) + 1) % n) << n << " slots";
  EXPECT_EQ(CeFreeWaitValue(wrap + 1, 8), wrap - 7);
  EXPECT_EQ(CeFlagValue(wrap + 5), 5u);
  EXPECT_TRUE(CeFlagReached(CeFlagValue(wrap + 1), CeFlagValue(wrap - 1)));
  EXPECT_FALSE(CeFlagReached(CeFlagValue(wrap - 1), CeFlagValue(wrap + 1)));
  // The release value satisfies a wrap-aware GEQ wait for anything issued near seq.
  for (CeSeq seq : {CeSeq{0}, CeSeq{100}, wrap - 16, wrap + 5}) {
    const uint32_t v = CeReleaseValue(seq);
    for (CeSeq w : {seq, seq + 1000, seq > 1000 ? seq - 1000 : 0}) EXPECT_TRUE(CeFlagReached(v, CeFlagValue(w)));
  }
  const auto b = CeBatches(10, 4, 8);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], std::make_pair(0, 4));
  EXPECT_EQ(b[2], std::make_pair(8, 10));
  EXPECT_EQ(CeBatches(10, 16, 8).front().second, 4) << "a batch never exceeds half the slots";
}

// Simulates R ranks running the protocol with lanes finishing in arbitrary order: a slot is never
// overwritten before its owner consumed it, and every wait is eventually satisfied (no deadlock).
// Chunk numbers from `base` (CeConfig::first_seq): 0, and just below 2^32, where the flag words
// (the low 32 bits) wrap in the middle of the run.
TEST(CePlan, SimulatedProtocolReusesSlotsSafely) {
 for (const CeSeq base : {CeSeq{0}, (CeSeq{1} << 32) - 9}) {
  const int R = 3, S = 4, L = 2, B = 2, N = 23;
  std::map<std::pair<int, int>, CeSeq> slot_holder;  // (dst, slot*R + src) -> q written, 0 = free
  const uint32_t start = CeFlagValue(base);
  std::vector<std::vector<uint32_t>> ready(R, std::vector<uint32_t>(R * L, start));  // at dst: [src][lane]
  std::vector<std::vector<uint32_t>> freed(R, std::vector<uint32_t>(R, start));      // at src: [dst]
  std::vector<int> next_push(R * L, 0);  // per (rank, lane): index into that lane's chunk list
  std::vector<int> next_batch(R, 0);
  const auto batches = CeBatches(N, B, S);
  std::vector<std::vector<CeSeq>> lane_q(L);
  for (CeSeq q = base + 1; q <= base + N; ++q) lane_q[CeLane(q, L)].push_back(q);
  uint32_t seed = 12345;
  int progress_idle = 0;
  while (progress_idle < 1000) {
    seed = seed * 1103515245u + 12345u;
    const int rank = (seed >> 8) % R, lane = (seed >> 16) % L;
    bool moved = false;
    if ((seed >> 4) % 2 == 0) {  // a lane push (all peers)
      int& k = next_push[rank * L + lane];
      if (k < static_cast<int>(lane_q[lane].size())) {
        const CeSeq q = lane_q[lane][k];
        const CeSeq fw = CeFreeWaitValue(q, S);
        bool can = true;
        for (int p = 0; p < R; ++p)
          if (p != rank && fw && !CeFlagReached(freed[rank][p], CeFlagValue(fw))) can = false;
        if (can) {
          for (int p = 0; p < R; ++p) {
            if (p == rank) continue;
            CeSeq& h = slot_holder[{p, CeSlot(q, S) * R + rank}];
            ASSERT_EQ(h, 0u) << "slot overwritten before it was consumed: q " << q;
            h = q;
            ready[p][rank * L + lane] = CeFlagValue(q);
          }
          ++k;
          moved = true;
        }
      }
    } else if (next_batch[rank] < static_cast<int>(batches.size())) {  // the reduce of the next batch
      const auto b = batches[next_batch[rank]];
      const auto last = CeLastPerLane(base + b.first + 1, base + b.second, L);
      bool can = true;
      for (int p = 0; p < R; ++p)
        for (int l = 0; l < L; ++l)
          if (p != rank && last[l] && !CeFlagReached(ready[rank][p * L + l], CeFlagValue(last[l]))) can = false;
      if (can) {
        for (int i = b.first; i < b.second; ++i) {
          const CeSeq q = base + i + 1;
          for (int p = 0; p < R; ++p) {
            if (p == rank) continue;
            CeSeq& h = slot_holder[{rank, CeSlot(q, S) * R + p}];
            ASSERT_EQ(h, q) << "reduced a slot that does not hold chunk " << q;
            h = 0;
          }
        }
        for (int p = 0; p < R; ++p)
          if (p != rank) freed[p][rank] = CeFlagValue(base + b.second);
        ++next_batch[rank];
        moved = true;
      }
    }
    progress_idle = moved ? 0 : progress_idle + 1;
  }
  for (int r = 0; r < R; ++r)
    EXPECT_EQ(next_batch[r], static_cast<int>(batches.size())) << "base " << base << ": rank " << r << " stuck";
  for (int i = 0; i < R * L; ++i) EXPECT_EQ(next_push[i], static_cast<int>(lane_q[i % L].size())) << "base " << base;
 }
}

// The all-gather step in its pull form (CeConfig::ag_pull): each rank fills its own staging slot
// per chunk (a batch at a time, as the reduction does) and announces it per lane; every peer
// pulls on the chunk's lane, lanes in arbitrary order, and frees per (reader, lane). A slot is
// never refilled while a reader still needs it, and every wait is eventually satisfied.
TEST(CePlan, SimulatedPullAllGatherReusesSlotsSafely) {
 for (const CeSeq base : {CeSeq{0}, (CeSeq{1} << 32) - 17}) {  // CeConfig::first_seq; the second crosses the wrap
  for (const auto& [R, S, L, B] : std::vector<std::array<int, 4>>{{2, 2, 1, 1}, {2, 8, 2, 4}, {3, 4, 3, 2}, {4, 6, 4, 3}}) {
    const int N = 41;
    // Per rank, per slot: the chunk it holds and the peers that have not pulled it yet.
    std::vector<std::vector<std::pair<CeSeq, std::set<int>>>> slot(R, std::vector<std::pair<CeSeq, std::set<int>>>(S));
    const uint32_t start = CeFlagValue(base);
    std::vector<std::vector<uint32_t>> ready(R, std::vector<uint32_t>(R * L, start));  // at reader: [src][lane]
    std::vector<std::vector<uint32_t>> freed(R, std::vector<uint32_t>(R * L, start));  // at owner: [reader][lane]
    const auto batches = CeBatches(N, B, S);
    std::vector<int> next_batch(R, 0);
    std::vector<std::vector<CeSeq>> lane_q(L);
    for (CeSeq q = base + 1; q <= base + N; ++q) lane_q[CeLane(q, L)].push_back(q);
    std::vector<std::pair<int, int>> pull_pos(R * L, {0, 1});  // per (rank, lane): chunk index, peer step
    uint32_t seed = 777u + R * 31u + S;
    int idle = 0;
    while (idle < 2000) {
      seed = seed * 1103515245u + 12345u;
      const int rank = (seed >> 8) % R, lane = (seed >> 16) % L;
      bool moved = false;
      if ((seed >> 4) % 2 == 0 && next_batch[rank] < static_cast<int>(batches.size())) {  // fill a batch
        const auto b = batches[next_batch[rank]];
        bool can = true;
        for (int i = b.first; i < b.second; ++i) {
          const CeSeq fw = CeFreeWaitValue(base + i + 1, S);
          for (int p = 0; p < R && fw; ++p)
            if (p != rank && !CeFlagReached(freed[rank][p * L + CeLane(fw, L)], CeFlagValue(fw))) can = false;
        }
        if (can) {
          for (int i = b.first; i < b.second; ++i) {
            auto& sl = slot[rank][CeSlot(base + i + 1, S)];
            ASSERT_TRUE(sl.second.empty()) << "R " << R << ": slot refilled with chunk " << base + i + 1
                                           << " while chunk " << sl.first << " is still read";
            sl.first = base + i + 1;
            for (int p = 0; p < R; ++p)
              if (p != rank) sl.second.insert(p);
          }
          const auto last = CeLastPerLane(base + b.first + 1, base + b.second, L);
          for (int p = 0; p < R; ++p)
            for (int l = 0; l < L; ++l)
              if (p != rank && last[l]) ready[p][rank * L + l] = CeFlagValue(last[l]);
          ++next_batch[rank];
          moved = true;
        }
      } else {  // the next pull of one lane
        auto& [k, step] = pull_pos[rank * L + lane];
        if (k < static_cast<int>(lane_q[lane].size())) {
          const CeSeq q = lane_q[lane][k];
          const int j = (rank + step) % R;
          if (CeFlagReached(ready[rank][j * L + lane], CeFlagValue(q))) {
            auto& sl = slot[j][CeSlot(q, S)];
            ASSERT_EQ(sl.first, q) << "R " << R << ": pulled a slot that does not hold chunk " << q;
            ASSERT_EQ(sl.second.erase(rank), 1u);
            freed[j][rank * L + lane] = CeFlagValue(q);
            if (++step == R) {
              step = 1;
              ++k;
            }
            moved = true;
          }
        }
      }
      idle = moved ? 0 : idle + 1;
    }
    for (int r = 0; r < R; ++r)
      EXPECT_EQ(next_batch[r], static_cast<int>(batches.size())) << "base " << base << " R " << R << " rank " << r;
    for (int i = 0; i < R * L; ++i)
      EXPECT_EQ(pull_pos[i].first, static_cast<int>(lane_q[i % L].size()))
          << "base " << base << " R " << R << " rank " << i / L << " lane " << i % L;
  }
 }
}

// The schedule CeComm::Launch issues, run on the CPU: per rank, reduce-scatter pushes on a stream
// per (lane, peer), batched reductions on one stream, then either pulls on a stream per (lane,
// peer) or (push form) pushes into the peers' staging after each batch's reduction and an unpack
// per chunk on one stream; allreduces in rounds (CeRounds) whose all-gather copies wait for the
// round's pushes and whose next pushes wait for those copies when phased; consecutive calls on one
// rank run one after another (the join; an allreduce's join leaves out its reduce-scatter pushes,
// as Launch's does: checked, whenever a call's join is complete, that they all ran). Allreduces
// first, then calls of every kind: reduce-scatter and all-gather calls advance only their own
// step's sequence number, so the two steps of a later
// allreduce chunk sit on different lanes and slots (QR != QA in Launch); all-gather calls fill
// their own staging and are pulled, or push into the peers' staging. Streams advance in a random
// order; every wait is on the flags the protocol names. Checks: no staging slot is overwritten
// while unread, every copy reads the chunk it expects, and every call finishes.
TEST(CePlan, SimulatedCallsFinishAndReuseSlotsSafely) {
  enum CallKind { kAR, kRS, kAG };
  struct Op {
    enum Kind { kPush, kReduce, kPull, kAgPush, kUnpack, kFill, kDirectEnd, kBulkPush, kBulkReduce, kBulkAg, kBulkEnd } kind;
    int call, round, peer;
    CeSeq q;                        // reduce-scatter ops: the chunk's qr; all-gather ops: its qa
    std::pair<CeSeq, CeSeq> batch;  // reduce: qr range [first, second]
    CeSeq qa_first;                 // reduce of an allreduce: the qa of batch.first
    CeSeq qr;                       // all-gather copy of an allreduce: the chunk's qr (its reduction first), else 0
    std::vector<CeSeq> last;        // direct end: the call's last qa per lane
  };
  const std::vector<std::pair<CallKind, int>> calls = {{kAR, 13}, {kAR, 1}, {kAR, 7}, {kRS, 5}, {kAG, 4},
                                                       {kAR, 1},  {kAG, 3}, {kRS, 2}, {kAR, 7}, {kAG, 1},
                                                       {kRS, 1},  {kAR, 1}, {kAR, 1}, {kAG, 1}, {kAR, 2}};
  // Direct copies (CeConfig::direct): two of every three allreduces, as the per-call agreement
  // may mix them, read the owner's output (pull form) or write the peer's (push form; in bulk,
  // ce_bulk.cpp, a round per copy: rounds of `slots` chunks, or of 2, CeConfig::bulk_round).
  // Chunk numbers from `base` (CeConfig::first_seq): 0, and just below 2^32, so that the flag
  // words (the low 32 bits of a chunk's number; every assignment to them below truncates) wrap
  // in the middle of the calls.
  for (const CeSeq base : {CeSeq{0}, (CeSeq{1} << 32) - 29})
  for (const bool push_form : {false, true})
   for (const bool with_direct : {false, true})
    for (const int bulk_round : {-1, 0, 2})
    for (const bool phased : {true, false})
     for (const bool on_caller : {false, true})  // phased bulk calls on one stream (CeConfig::bulk_on_caller)
      for (const auto& shape : std::vector<std::array<int, 4>>{
               {2, 2, 1, 1}, {2, 4, 2, 2}, {3, 3, 2, 1}, {3, 4, 2, 2}, {4, 2, 2, 1}, {4, 5, 3, 2}, {4, 6, 3, 3}}) {
        const int R = shape[0], S = shape[1], L = shape[2], B = shape[3];
        if (bulk_round >= 0 && !(push_form && with_direct)) continue;
        if (on_caller && !(bulk_round >= 0 && phased)) continue;
        const std::string what = std::string(push_form ? "push" : "pull") + (with_direct ? " direct" : "") +
                                 (bulk_round >= 0 ? " bulk round " + std::to_string(bulk_round) : "") +
                                 (phased ? " phased" : " unphased") + (on_caller ? " on the caller's stream" : "") +
                                 " R " + std::to_string(R) + " S " + std::to_string(S) + " L " + std::to_string(L) +
                                 " B " + std::to_string(B) + " base " + std::to_string(base);
        const uint32_t start = CeFlagValue(base);  // every flag word's first value (CeComm::Init)
        auto grid3 = [&] { return std::vector<std::vector<std::vector<uint32_t>>>(R, std::vector<std::vector<uint32_t>>(R, std::vector<uint32_t>(L, start))); };
        auto rs_ready = grid3(), ag_ready = grid3(), ag_free = grid3();
        std::vector<std::vector<uint32_t>> rs_free(R, std::vector<uint32_t>(R, start));
        std::vector<std::vector<std::vector<std::pair<CeSeq, bool>>>> rs(
            R, std::vector<std::vector<std::pair<CeSeq, bool>>>(S, std::vector<std::pair<CeSeq, bool>>(R, {0, true})));
        auto agp = rs;  // push form: agp[reader][slot][owner] = (chunk, unpacked)
        std::vector<std::vector<std::pair<CeSeq, std::set<int>>>> ag(R, std::vector<std::pair<CeSeq, std::set<int>>>(S));
        std::vector<std::set<CeSeq>> reduced(R);
        const int nstreams = 2 * L * R + 2, unpack = 2 * L * R + 1;
        std::vector<std::vector<std::vector<Op>>> prog(R, std::vector<std::vector<Op>>(nstreams));
        std::map<std::tuple<int, int, int, int>, int> total, done;
        std::map<std::pair<int, int>, int> call_total, call_done, join_total, join_done, push_total, push_done;
        std::vector<bool> call_phased(calls.size()), direct(calls.size());
        std::vector<bool> bulk_phased(calls.size());
        for (size_t c = 0; c < calls.size(); ++c) direct[c] = with_direct && calls[c].first == kAR && c % 3 != 1;
        auto bulk = [&](int c) { return bulk_round >= 0 && push_form && direct[c]; };
        std::map<std::pair<int, int>, int> direct_in;  // push form: (rank, call) -> chunks written into its output
        const int ag_kind = push_form ? Op::kAgPush : Op::kPull;
        for (int r = 0; r < R; ++r) {
          CeSeq q0r = base, q0a = base;
          for (int c = 0; c < static_cast<int>(calls.size()); ++c) {
            const CallKind kind = calls[c].first;  // no structured binding: lambdas below (clang)
            const int n = calls[c].second;
            const bool has_rs = kind != kAG, has_ag = kind != kRS;
            const bool ph = phased && has_rs && has_ag;
            call_phased[c] = ph;
            bulk_phased[c] = phased;
            auto add = [&](int stream, Op op) {
              prog[r][stream].push_back(op);
              ++total[std::make_tuple(r, c, op.round, static_cast<int>(op.kind))];
              ++call_total[std::make_pair(r, c)];
              const bool rs_push = op.kind == Op::kPush || op.kind == Op::kBulkPush;
              if (!(kind == kAR && rs_push)) ++join_total[std::make_pair(r, c)];
              if (rs_push) ++push_total[std::make_pair(r, c)];
            };
            auto ag_stream = [&](CeSeq qa, int p) { return L * R + 1 + CeLane(qa, L) * R + p; };
            int last_round = 0;
            if (bulk(c)) {  // one stream each way (lane 0, the first peer's), peers in step order
              // On the caller's stream: every op of the call on one stream, in issue order.
              const int rs_s = on_caller ? unpack : (r + 1) % R, red_s = on_caller ? unpack : L * R;
              const int ag_s = on_caller ? unpack : L * R + 1 + (r + 1) % R;
              const int per = bulk_round > 0 ? std::min(bulk_round, S) : S;
              const auto rounds = CeRounds(n, per, true);
              for (int k = 0; k < static_cast<int>(rounds.size()); ++k) {
                const auto [a, e] = rounds[k];
                const std::pair<CeSeq, CeSeq> qr{q0r + a + 1, q0r + e};
                for (int step = 1; step < R; ++step)
                  add(rs_s, Op{Op::kBulkPush, c, k, (r + step) % R, 0, qr, 0, 0, {}});
                add(red_s, Op{Op::kBulkReduce, c, k, -1, 0, qr, q0a + a + 1, 0, {}});
                for (int step = 1; step < R; ++step)
                  add(ag_s, Op{Op::kBulkAg, c, k, (r + step) % R, 0, qr, q0a + a + 1, 0, {}});
              }
              add(unpack, Op{Op::kBulkEnd, c, static_cast<int>(rounds.size()) - 1, -1, 0, {0, 0}, 0, 0,
                             CeLastPerLane(q0a + 1, q0a + n, L)});
              q0r += n;
              q0a += n;
              continue;
            }
            if (has_rs) {
              const auto rounds = CeRounds(n, S, ph);
              last_round = static_cast<int>(rounds.size()) - 1;
              for (int k = 0; k < static_cast<int>(rounds.size()); ++k) {
                const auto [a, e] = rounds[k];
                for (int i = a; i < e; ++i)
                  for (int step = 1; step < R; ++step)
                    add(CeLane(q0r + i + 1, L) * R + (r + step) % R,
                        Op{Op::kPush, c, k, (r + step) % R, q0r + i + 1, {0, 0}, 0, 0});
                for (const auto& b : CeBatches(e - a, B, S)) {
                  add(L * R, Op{Op::kReduce, c, k, -1, 0, {q0r + a + b.first + 1, q0r + a + b.second},
                                has_ag ? q0a + a + b.first + 1 : 0, 0, {}});
                  for (int i = a + b.first; i < a + b.second && push_form && has_ag; ++i)
                    for (int step = 1; step < R; ++step)
                      add(ag_stream(q0a + i + 1, (r + step) % R),
                          Op{Op::kAgPush, c, k, (r + step) % R, q0a + i + 1, {0, 0}, 0, q0r + i + 1, {}});
                }
                for (int i = a; i < e && !push_form && has_ag; ++i)
                  for (int step = 1; step < R; ++step)
                    add(ag_stream(q0a + i + 1, (r + step) % R),
                        Op{Op::kPull, c, k, (r + step) % R, q0a + i + 1, {0, 0}, 0, q0r + i + 1, {}});
              }
              if (!push_form && direct[c])
                add(unpack, Op{Op::kDirectEnd, c, last_round, -1, 0, {0, 0}, 0, 0, CeLastPerLane(q0a + 1, q0a + n, L)});
            } else if (!push_form) {  // all-gather, pull form: fill this rank's staging, then pull the peers'
              for (int i = 0; i < n; ++i)
                add(CeLane(q0a + i + 1, L) * R + (r + 1) % R, Op{Op::kFill, c, 0, -1, q0a + i + 1, {0, 0}, 0, 0, {}});
              for (int i = 0; i < n; ++i)
                for (int step = 1; step < R; ++step)
                  add(ag_stream(q0a + i + 1, (r + step) % R), Op{Op::kPull, c, 0, (r + step) % R, q0a + i + 1, {0, 0}, 0, 0, {}});
            } else {  // all-gather, push form: push into every peer's staging
              for (int i = 0; i < n; ++i)
                for (int step = 1; step < R; ++step)
                  add(ag_stream(q0a + i + 1, (r + step) % R), Op{Op::kAgPush, c, 0, (r + step) % R, q0a + i + 1, {0, 0}, 0, 0, {}});
            }
            for (int i = 0; i < n && push_form && has_ag; ++i)
              add(unpack, Op{Op::kUnpack, c, last_round, -1, q0a + i + 1, {0, 0}, 0, 0, {}});
            if (has_rs) q0r += n;
            if (has_ag) q0a += n;
          }
        }
        std::vector<std::vector<size_t>> head(R, std::vector<size_t>(nstreams, 0));
        auto ge = [](CeSeq v, CeSeq w) { return CeFlagReached(CeFlagValue(v), CeFlagValue(w)); };  // as a stream wait
        auto all_done = [&](int r, int c, int k, int kind) {
          const auto key = std::make_tuple(r, c, k, kind);
          return done[key] == total[key];
        };
        auto frees_from_all = [&](int r, CeSeq qa) {  // every reader of slot(qa - S) has released it
          const CeSeq fw = CeFreeWaitValue(qa, S);
          for (int p = 0; p < R && fw; ++p)
            if (p != r && !ge(ag_free[r][p][CeLane(fw, L)], fw)) return false;
          return true;
        };
        auto ready = [&](int r, const Op& op) {
          // A call starts once the previous one has ended (its join on the caller's stream). The
          // runtime keeps that order whatever streams the calls are on (CeComm::OrderAfterLastCall);
          // without this line the simulation fails at once (a pull finds another call's chunk).
          const auto prev = std::make_pair(r, op.call - 1);
          if (op.call > 0 && join_done[prev] != join_total[prev]) return false;
          const bool ph = call_phased[op.call];
          if (ph && op.kind == ag_kind && !all_done(r, op.call, op.round, Op::kPush)) return false;
          if (ph && op.kind == Op::kPush && op.round > 0 && !all_done(r, op.call, op.round - 1, ag_kind)) return false;
          if (bulk_phased[op.call] && op.kind == Op::kBulkPush && op.round > 0 &&
              !all_done(r, op.call, op.round - 1, Op::kBulkAg))
            return false;
          switch (op.kind) {
            case Op::kPush: {
              const CeSeq fw = CeFreeWaitValue(op.q, S);
              return !fw || ge(rs_free[r][op.peer], fw);
            }
            case Op::kReduce: {
              const auto last = CeLastPerLane(op.batch.first, op.batch.second, L);
              for (int p = 0; p < R; ++p)
                for (int l = 0; l < L && p != r; ++l)
                  if (last[l] && !ge(rs_ready[r][p][l], last[l])) return false;
              if (!push_form && op.qa_first && !direct[op.call])
                for (CeSeq qr = op.batch.first; qr <= op.batch.second; ++qr)
                  if (!frees_from_all(r, op.qa_first + (qr - op.batch.first))) return false;
              return true;
            }
            case Op::kPull:
              return ge(ag_ready[r][op.peer][CeLane(op.q, L)], op.q);
            case Op::kAgPush: {
              if (op.qr && !reduced[r].count(op.qr)) return false;
              const CeSeq fw = CeFreeWaitValue(op.q, S);
              return direct[op.call] || !fw || ge(ag_free[r][op.peer][CeLane(fw, L)], fw);
            }
            case Op::kBulkPush: {  // the round's slots were all reduced by the peer
              const CeSeq fw = CeFreeWaitValue(op.batch.second, S);
              return !fw || ge(rs_free[r][op.peer], fw);
            }
            case Op::kBulkReduce: {
              const auto last = CeLastPerLane(op.batch.first, op.batch.second, L);
              for (int p = 0; p < R; ++p)
                for (int l = 0; l < L && p != r; ++l)
                  if (last[l] && !ge(rs_ready[r][p][l], last[l])) return false;
              return true;
            }
            case Op::kBulkAg:  // after the round's reduction (an event)
              for (CeSeq q = op.batch.first; q <= op.batch.second; ++q)
                if (!reduced[r].count(q)) return false;
              return true;
            case Op::kBulkEnd:
            case Op::kDirectEnd:  // every peer pulled every chunk of the call from this rank's output
              for (int p = 0; p < R; ++p)
                for (int l = 0; l < L && p != r; ++l)
                  if (op.last[l] && !ge((op.kind == Op::kBulkEnd ? ag_ready : ag_free)[r][p][l], op.last[l])) return false;
              return true;
            case Op::kUnpack:
              for (int j = 0; j < R; ++j)
                if (j != r && !ge(ag_ready[r][j][CeLane(op.q, L)], op.q)) return false;
              return true;
            case Op::kFill:
              return frees_from_all(r, op.q);
          }
          return false;
        };
        auto fill = [&](int r, CeSeq qa) {
          auto& out = ag[r][CeSlot(qa, S)];
          ASSERT_TRUE(out.second.empty()) << what << ": chunk " << qa << " filled over unread chunk " << out.first;
          out.first = qa;
          for (int p = 0; p < R; ++p)
            if (p != r) out.second.insert(p);
        };
        auto run = [&](int r, const Op& op) {
          switch (op.kind) {
            case Op::kPush: {
              auto& cell = rs[op.peer][CeSlot(op.q, S)][r];
              ASSERT_TRUE(cell.second) << what << ": chunk " << op.q << " overwrote unreduced chunk " << cell.first;
              cell = {op.q, false};
              rs_ready[op.peer][r][CeLane(op.q, L)] = op.q;
              break;
            }
            case Op::kReduce: {
              for (CeSeq qr = op.batch.first; qr <= op.batch.second; ++qr) {
                for (int p = 0; p < R; ++p) {
                  if (p == r) continue;
                  auto& cell = rs[r][CeSlot(qr, S)][p];
                  ASSERT_EQ(cell.first, qr) << what << ": reduced a slot that does not hold chunk " << qr;
                  ASSERT_FALSE(cell.second);
                  cell.second = true;
                }
                reduced[r].insert(qr);
                if (!push_form && op.qa_first && !direct[op.call]) fill(r, op.qa_first + (qr - op.batch.first));
                if (HasFatalFailure()) return;
              }
              for (int p = 0; p < R; ++p)
                if (p != r) rs_free[p][r] = op.batch.second;
              if (!push_form && op.qa_first) {
                const CeSeq qa_last = op.qa_first + (op.batch.second - op.batch.first);
                const auto last = CeLastPerLane(op.qa_first, qa_last, L);
                for (int p = 0; p < R; ++p)
                  for (int l = 0; l < L && p != r; ++l)
                    if (last[l]) ag_ready[p][r][l] = last[l];
              }
              break;
            }
            case Op::kPull: {
              if (direct[op.call]) {
                // From the owner's output: its reduction of the chunk is done, and its call has not
                // ended (the caller could overwrite the output then).
                ASSERT_TRUE(reduced[op.peer].count(op.qr)) << what << ": pulled chunk " << op.qr << " before its reduction";
                const auto owner = std::make_pair(op.peer, op.call);
                ASSERT_LT(join_done[owner], join_total[owner]) << what << ": pulled from rank " << op.peer
                                                               << "'s output after its call " << op.call << " ended";
                ag_free[op.peer][r][CeLane(op.q, L)] = op.q;
                break;
              }
              auto& out = ag[op.peer][CeSlot(op.q, S)];
              ASSERT_EQ(out.first, op.q) << what << ": pulled a slot that does not hold chunk " << op.q;
              ASSERT_EQ(out.second.erase(r), 1u);
              ag_free[op.peer][r][CeLane(op.q, L)] = op.q;
              break;
            }
            case Op::kAgPush: {
              if (direct[op.call]) {
                // Into the peer's output: the peer is in this call (its previous one ended, and a
                // step of this one ran there).
                const auto prev = std::make_pair(op.peer, op.call - 1);
                ASSERT_TRUE((op.call == 0 || join_done[prev] == join_total[prev]) &&
                            call_done[std::make_pair(op.peer, op.call)] > 0)
                    << what << ": pushed into rank " << op.peer << "'s output before its call " << op.call << " began";
                ++direct_in[std::make_pair(op.peer, op.call)];
                ag_ready[op.peer][r][CeLane(op.q, L)] = op.q;
                break;
              }
              auto& cell = agp[op.peer][CeSlot(op.q, S)][r];
              ASSERT_TRUE(cell.second) << what << ": chunk " << op.q << " pushed over chunk " << cell.first << ", not yet unpacked";
              cell = {op.q, false};
              ag_ready[op.peer][r][CeLane(op.q, L)] = op.q;
              break;
            }
            case Op::kUnpack:
              for (int j = 0; j < R; ++j) {
                if (j == r) continue;
                if (direct[op.call]) {  // nothing to unpack: the slot is released in sequence all the same
                  ag_free[j][r][CeLane(op.q, L)] = op.q;
                  continue;
                }
                auto& cell = agp[r][CeSlot(op.q, S)][j];
                ASSERT_EQ(cell.first, op.q) << what << ": unpacked a slot that does not hold chunk " << op.q;
                ASSERT_FALSE(cell.second);
                cell.second = true;
                ag_free[j][r][CeLane(op.q, L)] = op.q;
              }
              break;
            case Op::kFill:
              fill(r, op.q);
              if (HasFatalFailure()) return;
              for (int p = 0; p < R; ++p)
                if (p != r) ag_ready[p][r][CeLane(op.q, L)] = op.q;
              break;
            case Op::kDirectEnd:
              break;
            case Op::kBulkPush: {
              for (CeSeq q = op.batch.first; q <= op.batch.second; ++q) {
                auto& cell = rs[op.peer][CeSlot(q, S)][r];
                ASSERT_TRUE(cell.second) << what << ": bulk chunk " << q << " overwrote unreduced chunk " << cell.first;
                cell = {q, false};
              }
              const auto last = CeLastPerLane(op.batch.first, op.batch.second, L);
              for (int l = 0; l < L; ++l)
                if (last[l]) {
                  ASSERT_TRUE(ge(last[l], rs_ready[op.peer][r][l])) << what << ": a ready flag went back";
                  rs_ready[op.peer][r][l] = last[l];
                }
              break;
            }
            case Op::kBulkReduce:
              for (CeSeq q = op.batch.first; q <= op.batch.second; ++q) {
                for (int p = 0; p < R; ++p) {
                  if (p == r) continue;
                  auto& cell = rs[r][CeSlot(q, S)][p];
                  ASSERT_EQ(cell.first, q) << what << ": bulk reduction of a slot that does not hold chunk " << q;
                  ASSERT_FALSE(cell.second);
                  cell.second = true;
                }
                reduced[r].insert(q);
              }
              for (int p = 0; p < R; ++p)
                if (p != r) rs_free[p][r] = op.batch.second;
              break;
            case Op::kBulkAg: {
              const auto prev = std::make_pair(op.peer, op.call - 1);
              ASSERT_TRUE((op.call == 0 || join_done[prev] == join_total[prev]) &&
                          call_done[std::make_pair(op.peer, op.call)] > 0)
                  << what << ": bulk push into rank " << op.peer << "'s output before its call " << op.call << " began";
              direct_in[std::make_pair(op.peer, op.call)] += op.batch.second - op.batch.first + 1;
              const auto last = CeLastPerLane(op.qa_first, op.qa_first + (op.batch.second - op.batch.first), L);
              for (int l = 0; l < L; ++l)
                if (last[l]) ag_ready[op.peer][r][l] = last[l];
              break;
            }
            case Op::kBulkEnd:
              for (int j = 0; j < R; ++j)
                for (int l = 0; l < L && j != r; ++l)
                  if (op.last[l]) ag_free[j][r][l] = op.last[l];
              break;
          }
          ++done[std::make_tuple(r, op.call, op.round, static_cast<int>(op.kind))];
          ++call_done[std::make_pair(r, op.call)];
          const auto rc = std::make_pair(r, op.call);
          const bool rs_push = op.kind == Op::kPush || op.kind == Op::kBulkPush;
          if (rs_push) ++push_done[rc];
          if (!(calls[op.call].first == kAR && rs_push)) ++join_done[rc];
          // The join leaves the pushes out because they are done by then: the caller's stream
          // going on must never leave a push of the call unfinished (it reads the caller's input).
          if (join_done[rc] == join_total[rc]) {
            ASSERT_EQ(push_done[rc], push_total[rc]) << what << ": rank " << r << " call " << op.call
                                                     << ": joined with a reduce-scatter push unfinished";
            if (push_form && direct[op.call])  // every peer's part of every chunk is in the output
              ASSERT_EQ(direct_in[rc], calls[op.call].second * (R - 1))
                  << what << ": rank " << r << " call " << op.call << " ended before the peers' pushes";
          }
        };
        uint32_t seed = 777u + R * 7u + S * 131u + (phased ? 1u : 0u) + (push_form ? 17u : 0u) + (with_direct ? 5u : 0u) +
                        static_cast<uint32_t>(bulk_round + 1) * 3u;
        int idle = 0;
        while (idle < 20000) {
          seed = seed * 1103515245u + 12345u;
          const int r = (seed >> 8) % R, st = (seed >> 16) % nstreams;
          bool moved = false;
          if (head[r][st] < prog[r][st].size()) {
            const Op& op = prog[r][st][head[r][st]];
            if (ready(r, op)) {
              run(r, op);
              if (HasFatalFailure()) return;
              ++head[r][st];
              moved = true;
            }
          }
          idle = moved ? 0 : idle + 1;
        }
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < static_cast<int>(calls.size()); ++c)
            EXPECT_EQ(call_done[std::make_pair(r, c)], call_total[std::make_pair(r, c)])
                << what << ": rank " << r << " call " << c << " stuck";
      }
}

TEST(CePlan, ProfileLineGivesTimesPerCallAndPerRuntimeCall) {
  CeHostTimes t;
  t.ns[kCeCopy] = 8000;  // 4 copies in 2 calls, 8 us in all
  t.n[kCeCopy] = 4;
  t.max_ns[kCeCopy] = 3500;
  t.ns[kCeCall] = 30000;
  t.n[kCeCall] = 2;
  t.max_ns[kCeCall] = 16000;
  EXPECT_EQ(CeProfileLine(1, 2, t),
            "corun ce: rank 1: host time per call over 2 calls: copies 4.0 us (2.0 each, 2.0 runtime calls, max 4);"
            " memops 0.0 us (0.0 each, 0.0 runtime calls, max 0); launches 0.0 us (0.0 each, 0.0 runtime calls, max 0);"
            " events 0.0 us (0.0 each, 0.0 runtime calls, max 0); whole call 15.0 us (15.0 each, 1.0 runtime calls, max 16)");
}

TEST(CePlan, RoundsSplitPhasedCallsBySlots) {
  EXPECT_EQ(CeRounds(28, 16, true), (std::vector<std::pair<int, int>>{{0, 16}, {16, 28}}));
  EXPECT_EQ(CeRounds(28, 16, false), (std::vector<std::pair<int, int>>{{0, 28}}));
  EXPECT_EQ(CeRounds(1, 16, true), (std::vector<std::pair<int, int>>{{0, 1}}));
  EXPECT_TRUE(CeRounds(0, 16, true).empty());
}

TEST(CePlan, CommDecisionFallsBackWhereItMust) {
  CeCaps ok;
  ok.nranks = 2;
  ok.free_bytes = 10ull << 30;
  ok.staging_bytes = 256ull << 20;
  ok.peers.resize(1);
  EXPECT_EQ(CeCommDecision(ok), "");
  auto with = [&](auto f) {
    CeCaps c = ok;
    f(c);
    return CeCommDecision(c);
  };
  EXPECT_NE(with([](CeCaps& c) { c.peers[0].nvlink = false; }).find("not linked by NVLink"), std::string::npos);
  EXPECT_NE(with([](CeCaps& c) { c.peers[0].can_access_peer = false; }).find("no peer access"), std::string::npos);
  // Another process: usable once its IPC handles opened; a refusal names the peer and the error.
  EXPECT_EQ(with([](CeCaps& c) { c.peers[0].same_process = false; }), "");
  EXPECT_EQ(with([](CeCaps& c) {
              c.peers[0].same_process = false;
              c.peers[0].rank = 1;
              c.peers[0].ipc_ok = false;
              c.peers[0].ipc_error = "invalid device context";
            }),
            "unsupported: IPC handle of peer 1 refused: invalid device context");
  EXPECT_EQ(with([](CeCaps& c) { c.peers[0].same_process = false; c.peers[0].ipc_ok = false; }),
            "unsupported: IPC handle of peer 0 refused");
  // IPC handles are not used within one process: ipc_ok does not matter there.
  EXPECT_EQ(with([](CeCaps& c) { c.peers[0].ipc_ok = false; }), "");
  // Peer access and NVLink are checked before IPC (where the peer's GPU is visible here).
  EXPECT_NE(with([](CeCaps& c) { c.peers[0].same_process = false; c.peers[0].nvlink = false; c.peers[0].ipc_ok = false; })
                .find("not linked by NVLink"),
            std::string::npos);
  // Four ranks: all in other processes is fine; a mix of threads and processes is refused.
  CeCaps four = ok;
  four.nranks = 4;
  four.peers.assign(3, CePeerCaps{});
  for (auto& p : four.peers) p.same_process = false;
  EXPECT_EQ(CeCommDecision(four), "");
  four.peers[1].same_process = true;
  EXPECT_NE(CeCommDecision(four).find("both in this process and in others"), std::string::npos);
  four.peers[1].same_process = false;
  four.peers[2].rank = 3;
  four.peers[2].ipc_ok = false;
  EXPECT_EQ(CeCommDecision(four), "unsupported: IPC handle of peer 3 refused");
  EXPECT_NE(with([](CeCaps& c) { c.stream_mem_ops = false; }).find("stream memory operations"), std::string::npos);
  EXPECT_NE(with([](CeCaps& c) { c.free_bytes = 200ull << 20; }).find("too little device memory"), std::string::npos);
  EXPECT_NE(with([](CeCaps& c) { c.nranks = 1; c.peers.clear(); }).find("single rank"), std::string::npos);
  for (const std::string& s : {with([](CeCaps& c) { c.peers[0].nvlink = false; })})
    EXPECT_EQ(s.rfind("unsupported: ", 0), 0u);
}

TEST(CePlan, CallDecisionAndConfig) {
  CeConfig cfg;
  cfg.min_bytes = 1 << 20;
  EXPECT_EQ(CeCallDecision("bf16", "sum", 2 << 20, cfg), "");
  EXPECT_EQ(CeCallDecision("fp32", "sum", 1 << 20, cfg), "");
  EXPECT_NE(CeCallDecision("fp16", "sum", 2 << 20, cfg).find("dtype fp16"), std::string::npos);
  EXPECT_NE(CeCallDecision("bf16", "max", 2 << 20, cfg).find("reduction max"), std::string::npos);
  EXPECT_NE(CeCallDecision("bf16", "sum", 1000, cfg).find("below threshold"), std::string::npos);
  EXPECT_EQ(CeConfigError(CeConfig{}), "");
  CeConfig bad;
  bad.slots = 1;
  EXPECT_NE(CeConfigError(bad).find("slots"), std::string::npos);
  bad = CeConfig{};
  bad.lanes = 0;
  EXPECT_NE(CeConfigError(bad).find("lanes"), std::string::npos);
  // Staging: slots x peers x slot, each slot holds a slice of a chunk.
  EXPECT_EQ(CeStagingBytes(CeConfig{}, 2), 16ull * 1 * (16ull << 20));
  EXPECT_EQ(CeStagingBytes(CeConfig{}, 4), 16ull * 3 * (8ull << 20));
  // A staging that holds a whole call: 896 MiB in 32 MiB chunks = 28 slots; never fewer than
  // configured, never more than 64.
  EXPECT_EQ(CeSlotsToHold(CeConfig{}, 896ull << 20), 28);
  EXPECT_EQ(CeSlotsToHold(CeConfig{}, 25ull << 20), CeConfig{}.slots);
  EXPECT_EQ(CeSlotsToHold(CeConfig{}, 8ull << 30), 64);
  EXPECT_EQ(CeStagingBytes(CeConfig{}, 1), 0u);
}

TEST(CePlan, CopyStreamsPerPeerStayWithinTheQueueBudget) {
  // One stream per (lane, peer) for each step: 2 lanes while 2 * lanes * peers <= 24, then fewer.
  CeConfig cfg;
  EXPECT_EQ(CeLanesFor(cfg, 2), 2);
  EXPECT_EQ(CeLanesFor(cfg, 4), 2);
  EXPECT_EQ(CeLanesFor(cfg, 5), 2);
  EXPECT_EQ(CeLanesFor(cfg, 8), 1);
  cfg.lanes = 8;
  EXPECT_EQ(CeLanesFor(cfg, 2), 8);
  EXPECT_EQ(CeLanesFor(cfg, 3), 6);
  EXPECT_EQ(CeLanesFor(cfg, 4), 4);
  cfg.lanes = 1;
  EXPECT_EQ(CeLanesFor(cfg, 8), 1);
  for (int lanes = 1; lanes <= 8; ++lanes)
    for (int n = 2; n <= 8; ++n) {
      cfg.lanes = lanes;
      const int l = CeLanesFor(cfg, n);
      EXPECT_GE(l, 1);
      EXPECT_LE(l, lanes);
      if (l > 1) EXPECT_LE(2 * l * (n - 1), kCeMaxCopyStreams) << lanes << " lanes, " << n << " ranks";
    }
}

namespace {
std::map<std::string, std::string> g_env;
const char* FakeEnv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}
}  // namespace

// The form pull_by_ranks picks: direct copies in bulk need (and are faster in) the push form.
TEST(CePlan, PullByRanksTakesPushesWithBulkDirectCopies) {
  CeConfig cfg;
  EXPECT_FALSE(CePullByRanks(cfg, 2));  // the defaults: direct copies in bulk
  EXPECT_FALSE(CePullByRanks(cfg, 4));
  cfg.bulk = false;
  EXPECT_TRUE(CePullByRanks(cfg, 2));
  EXPECT_FALSE(CePullByRanks(cfg, 3));
  cfg.bulk = true;
  cfg.direct = false;
  EXPECT_TRUE(CePullByRanks(cfg, 2));
  EXPECT_FALSE(CePullByRanks(cfg, 8));
}

TEST(CePlan, ConfigFromEnvironment) {
  CeConfig cfg;
  g_env = {};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_EQ(cfg.chunk_bytes, CeConfig{}.chunk_bytes);
  EXPECT_TRUE(cfg.pull_by_ranks);  // the form follows the rank count unless CORUN_CE_PULL is set
  g_env = {{"CORUN_CE_THREAD", "1"}, {"CORUN_CE_BULK_CALLER", "0"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_TRUE(cfg.enqueue_thread);
  EXPECT_FALSE(cfg.bulk_on_caller);
  g_env = {{"CORUN_CE_THREAD", "2"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_THREAD '2' (an integer in [0, 1])");
  cfg = CeConfig{};
  g_env = {{"CORUN_CE_CHUNK", "4M"}, {"CORUN_CE_LANES", "4"}, {"CORUN_CE_PULL", "0"}, {"CORUN_CE_MIN_BYTES", "1M"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_EQ(cfg.chunk_bytes, 4u << 20);
  EXPECT_EQ(cfg.lanes, 4);
  EXPECT_FALSE(cfg.ag_pull);
  EXPECT_FALSE(cfg.pull_by_ranks);
  EXPECT_EQ(cfg.min_bytes, 1u << 20);
  const CeConfig before = cfg;
  g_env = {{"CORUN_CE_LANES", "9"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_LANES '9' (an integer in [1, 8])");
  g_env = {{"CORUN_CE_PULL", "yes"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_PULL 'yes' (an integer in [0, 1])");
  g_env = {{"CORUN_CE_CHUNK", "12Q"}};
  EXPECT_NE(CeConfigFromEnv(FakeEnv, &cfg).find("bad CORUN_CE_CHUNK '12Q'"), std::string::npos);
  g_env = {{"CORUN_CE_CHUNK", "1K"}};
  EXPECT_NE(CeConfigFromEnv(FakeEnv, &cfg).find("chunk_bytes must be at least 4096"), std::string::npos);
  EXPECT_EQ(cfg.lanes, before.lanes);  // a refused environment changes nothing
  EXPECT_EQ(cfg.chunk_bytes, before.chunk_bytes);
  // How flags reach peers.
  EXPECT_FALSE(CeConfig{}.signal_copy);
  g_env = {{"CORUN_CE_SIGNAL", "copy"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_TRUE(cfg.signal_copy);
  g_env = {{"CORUN_CE_SIGNAL", "write"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_FALSE(cfg.signal_copy);
  g_env = {{"CORUN_CE_SIGNAL", "dma"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_SIGNAL 'dma' (write or copy)");
  EXPECT_FALSE(cfg.signal_copy);
  // How copies are issued, and the phases.
  EXPECT_FALSE(CeConfig{}.batch_copies);
  EXPECT_TRUE(CeConfig{}.phases);
  g_env = {{"CORUN_CE_COPY", "batch"}, {"CORUN_CE_PHASES", "0"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_TRUE(cfg.batch_copies);
  EXPECT_FALSE(cfg.phases);
  g_env = {{"CORUN_CE_COPY", "streams"}, {"CORUN_CE_PHASES", "1"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_FALSE(cfg.batch_copies);
  EXPECT_TRUE(cfg.phases);
  g_env = {{"CORUN_CE_COPY", "dma"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_COPY 'dma' (streams or batch)");
  g_env = {{"CORUN_CE_PHASES", "2"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_PHASES '2' (an integer in [0, 1])");
  EXPECT_TRUE(cfg.phases);
  // The reductions' SMs.
  EXPECT_EQ(CeConfig{}.reduce_sms, 0);
  g_env = {{"CORUN_CE_REDUCE_SMS", "16"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_EQ(cfg.reduce_sms, 16);
  g_env = {{"CORUN_CE_REDUCE_SMS", "-1"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_REDUCE_SMS '-1' (an integer in [0, 1024])");
  g_env = {{"CORUN_CE_REDUCE_SMS", "1025"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_REDUCE_SMS '1025' (an integer in [0, 1024])");
  EXPECT_EQ(cfg.reduce_sms, 16);
  g_env = {{"CORUN_CE_REDUCE_SMS", "0"}};  // back to every SM
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_EQ(cfg.reduce_sms, 0);
  // The reductions' priority.
  EXPECT_FALSE(CeConfig{}.reduce_least_priority);
  g_env = {{"CORUN_CE_REDUCE_PRIORITY", "least"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_TRUE(cfg.reduce_least_priority);
  g_env = {{"CORUN_CE_REDUCE_PRIORITY", "low"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_REDUCE_PRIORITY 'low' (top or least)");
  EXPECT_TRUE(cfg.reduce_least_priority);
  g_env = {{"CORUN_CE_REDUCE_PRIORITY", "top"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_FALSE(cfg.reduce_least_priority);
  CeConfig wide;
  wide.reduce_sms = 2000;  // set in code, past the range
  EXPECT_EQ(CeConfigError(wide), "reduce_sms must be in [0, 1024]");
  // Direct all-gather copies: on by default, off by CORUN_CE_DIRECT=0; the agreement's wait.
  EXPECT_TRUE(CeConfig{}.direct);
  EXPECT_TRUE(CeConfig{}.bulk);
  EXPECT_EQ(CeConfig{}.direct_wait_us, 2000u);
  g_env = {{"CORUN_CE_DIRECT", "0"}, {"CORUN_CE_DIRECT_WAIT_US", "500"}, {"CORUN_CE_BULK", "0"}};
  cfg = CeConfig{};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "");
  EXPECT_FALSE(cfg.direct);
  EXPECT_FALSE(cfg.bulk);
  EXPECT_EQ(cfg.direct_wait_us, 500u);
  g_env = {{"CORUN_CE_DIRECT", "yes"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_DIRECT 'yes' (an integer in [0, 1])");
  EXPECT_FALSE(cfg.direct);
  g_env = {{"CORUN_CE_DIRECT_WAIT_US", "-5"}};
  EXPECT_EQ(CeConfigFromEnv(FakeEnv, &cfg), "bad CORUN_CE_DIRECT_WAIT_US '-5' (an integer in [0, 10000000])");
  CeConfig slow;
  slow.direct_wait_us = 20000000;
  EXPECT_EQ(CeConfigError(slow), "direct_wait_us must be in [0, 10000000]");
}
