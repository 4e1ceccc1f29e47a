// Copy-engine (CE) collectives, host-only part: the chunk plan, the slot/lane/sequence rules of
// the flag protocol, and the decision whether the CE path may serve a call (else NCCL does).
//
// Protocol (one communicator, R ranks, S staging slots, L copy lanes). Every chunk of every call
// gets the next sequence number q (1, 2, ...; all ranks issue the same calls, so they agree).
// Sequence numbers are 64-bit on the host (CeSeq: they never wrap); a flag word holds the low 32
// bits (CeFlagValue) and every wait compares cyclically, so the words may wrap (below).
//  - Reduce-scatter step: rank r pushes slice p of chunk q into rank p's staging slot
//    Slot(q) (row PeerIndex(p, r)) on copy lane Lane(q), then writes q to p's flag
//    rs_ready[r][Lane(q)]. Each flag word has one writer stream per kind of call (the (lane, peer)
//    stream here), and calls are ordered through the caller's stream, so a word only grows and
//    "wait >= q" on it is exact even though lanes finish out of order.
//  - Rank p waits rs_ready[*][lane] >= q (stream wait, no SM), reduces a batch of chunks in one
//    kernel, then writes the last reduced q to every source's rs_free[p]: the slot may be reused.
//    A source waits rs_free[p] >= FreeWaitValue(q) before it overwrites Slot(q) with chunk q.
//  - All-gather step, two forms (CeConfig::ag_pull):
//    push: rank p pushes its part of chunk q into every peer's all-gather staging on lane
//      Lane(q) and writes q to the peer's ag_ready[p][Lane(q)]; the peer copies it from its
//      staging into its output and writes q to p's ag_free[peer][Lane(q)].
//    pull: rank p's part of chunk q is written into p's own all-gather staging (by the
//      reduction for an allreduce, by a local copy for an all-gather), p writes q to every
//      peer's ag_ready[p][lane]; each peer copies it straight into its output (one copy, no
//      unpack) on its lane Lane(q) and writes q to p's ag_free[peer][Lane(q)].
//    Either way, "ag_free[peer][Lane(q - slots)] >= q - slots" on the writer's side means the
//    staging slot chunk q needs is no longer read; one writer stream per word, so each only grows.
//    The caller's stream waits for every stream of the call, except an allreduce's reduce-scatter
//    streams: every push of the call was reduced by its peer before the all-gather copy of that
//    chunk (which the caller's stream does wait for) could start.
// Flags live in each rank's device memory, written by peers with stream writes into the mapped
// memory (CeConfig::signal_copy: or 4-byte copies, as NCCL's CE path does); Abort() overwrites
// them with ReleaseValue, which satisfies every pending wait.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace corun {

enum class CeOp { kAllReduce, kReduceScatter, kAllGather };
const char* CeOpName(CeOp op);

// A chunk's sequence number on the host: 64-bit, so slots and lanes (q modulo their count) and
// "this slot was never used" follow from it alone, for any slot or lane count.
using CeSeq = uint64_t;
// What a flag word holds for chunk q: the low 32 bits. Stream waits compare cyclically
// (CU_STREAM_WAIT_VALUE_GEQ: (int32_t)(word - value) >= 0), exact while the values compared are
// less than 2^31 apart: a wait is never more than a few calls' chunks ahead of its word.
inline uint32_t CeFlagValue(CeSeq q) { return static_cast<uint32_t>(q); }
// Cyclic "word >= value", as the stream wait evaluates it.
inline bool CeFlagReached(uint32_t word, uint32_t value) { return static_cast<int32_t>(word - value) >= 0; }

struct CeConfig {
  // Defaults from the configuration sweep on 2x H200 (results/2026-11-27_H200_4gpu_ce_signal):
  // 32 MiB chunks, pulls, stream-write signals gave 207/294/300 GB/s at 25/224/896 MiB reduced two
  // at a time and 207/270/305 one at a time (within the spread of each other); 16 MiB chunks by
  // fours 181/271/266, 8 MiB chunks 165/229/231. Alone, 8 slots gained nothing over 4:
  // 205/302/307 against 205/298/305 (results/2026-11-27_H200_4gpu_ce_defaults); beside GEMMs
  // more did (below).
  uint64_t chunk_bytes = 32ull << 20;  // per call, the data is moved in chunks of this many bytes
  // Staging slots per peer (chunks in flight). Beside a long persistent GEMM every reduction
  // waits for the GEMM to end; the pushes go on only while free slots remain, so the staging
  // sets how much of a call moves under the GEMM: cuBLASLt 8192^3 + 896 MiB (28 chunks) on 2x
  // H100 ran 4.595 ms with 4 slots (no phases), 3.674 with 16, 3.169 with 32 (phases; sequential 4.105;
  // results/2026-11-27_H100_4gpu_ce_phases). Staging per GPU: 2 x slots x (ranks - 1) slices of
  // chunk / ranks, with 16 slots 512 MiB on 2 ranks and 768 MiB on 4 (CeStagingBytes, twice).
  int slots = 16;
  int lanes = 2;                       // copy streams (lanes) for pushes; as many again for the all-gather
  int batch = 2;                       // chunks reduced by one kernel
  uint64_t min_bytes = 0;              // calls smaller than this go to NCCL
  // All-gather step by pulls from the owner's staging (else pushes + an unpack copy, which costs
  // the copy engine a local copy of every chunk).
  bool ag_pull = true;
  // While true, Init replaces ag_pull by CePullByRanks: pulls only on 2 ranks without direct
  // copies in bulk, pushes otherwise (on 4x H200 every GPU sending 224 MiB to each peer moved 384
  // GB/s per GPU by pushes and 130-195 by pulls; on 2 GPUs both 374-382; tests/gpu/p2p_probe,
  // results/2026-11-27_H200_4gpu_ce_probe; on 2x H200 the DDP example ran 28.73 / 28.87 ms/step by
  // pulls and 30.77 / 31.08 by pushes, results/2026-11-27_H200_2gpu_ce_reduce/run2, although alone
  // with ranks as threads the pushes were steadier). With direct copies in bulk the push form on 2
  // ranks moved 317-328 GB/s alone against the pulls' 210-213 and NCCL's 299-328, and the DDP
  // example 28.36-28.52 ms/step against the pulls' 28.14 / 28.30 (results/2026-11-27_H200_ce_direct,
  // run3, run5), so with direct copies in bulk the push form is the default on 2 ranks too. To
  // choose the form, set ag_pull and clear this (CORUN_CE_PULL and the bench's --pull/--push do both).
  bool pull_by_ranks = true;
  // How a flag reaches a peer: false = a stream write straight into the peer's mapped flag (no
  // copy-engine work); true = a stream write to a local word plus a 4-byte copy of it (NCCL's CE
  // path). A GPU's copies to a peer run one at a time on one copy engine (traced: 8 MiB pushes
  // on four streams never overlapped), so each 4-byte copy costs that engine ~2-4 us plus ~3 us
  // of gap between copies: several per chunk were a third of a call's time.
  bool signal_copy = false;
  // How a chunk's copies to (or from) the peers are issued: false = one stream per peer
  // (CeLanesFor), true = one cudaMemcpyBatchAsync per chunk on one stream, as NCCL's CE path does.
  // Either way a GPU's peer copies ran one at a time (traced with streams, 4x H100,
  // results/2026-11-27_H100_4gpu_ce_copies); on 4 ranks, 896 MiB alone, with phases and 16
  // slots: streams 6.46 ms, batch 6.79 (results/2026-11-27_H100_4gpu_ce_phases/run2).
  bool batch_copies = false;
  // Allreduce in rounds of `slots` chunks whose all-gather copies (pulls, or the push form's
  // pushes) start after the round's reduce-scatter pushes, so every rank is in the same phase
  // (ce_launch.cpp explains why; in the push form it changed nothing measurable on 4 ranks:
  // results/2026-11-27_H200_4gpu_ce_push_phases/run2). 2x
  // H100, 896 MiB alone with 16 slots: 3.046 ms phased (results/2026-11-27_H100_4gpu_ce_phases/
  // run2), 4.223 and 4.253 unphased in two other runs (.../run1, results/2026-11-27_H100_4gpu_
  // ce_copies); the DDP example 32.88 ms/step phased against 33.40 unphased (run2, stock 34.03).
  // With 32 slots an 896 MiB call is one round: phased 3.009, unphased 3.000 in run2, but 4.238
  // unphased in another run (..._ce_copies).
  bool phases = true;
  // SMs a reduction kernel is sized for (two blocks per SM); 0 = every SM. Alone, 32 SMs move as
  // much as all 132 of an H200 (2 x 16 MiB bf16 in 39.6 us against 39.7; 16 SMs 53.1), a quarter
  // of the SM time; in the DDP example it lost (32 SMs 30.25 / 29.98 ms/step, 16 SMs 31.28,
  // against 28.47 / 28.40; results/2026-11-27_H200_ce_host_profile/run5): the persistent GEMM
  // after a reduction waits for the reduction's end whatever share of the SMs it took. Blocks
  // that claimed tiles from a counter instead of fixed shares (so that those starting on the SMs
  // a 128-CTA GEMM leaves free do more) ran level in DDP and 5% slower alone
  // (results/2026-11-27_H200_ce_stock_baseline/run2), and were taken out.
  int reduce_sms = 0;
  // Launch priority of the reductions: the device's greatest (false), so that a reduction takes
  // the SMs as soon as the running kernel leaves them and the call's all-gather copies start early;
  // or its least (true; a program's default streams have it too), so that the program's queued
  // kernels go first and the reduction fills what they leave, its call's later copies waiting.
  // The DDP example on 2x H100 ran level: 31.62 / 31.64 ms/step against 31.52 / 31.80 (stock
  // 34.01 / 34.26; results/2026-11-27_ce_stream_order/run3).
  bool reduce_least_priority = false;
  // Allreduce all-gather copies straight from (pull form) or into (push form) the peers' outputs,
  // agreed per call (corun/ce_direct.h): the reduction writes its result once instead of twice
  // (pull form), the receiver unpacks nothing (push form). A call whose ranks do not all reach
  // the agreement within direct_wait_us, or whose outputs cannot be shared, takes the staging.
  bool direct = true;
  uint64_t direct_wait_us = 2000;
  // Direct allreduces in the push form in bulk: each round of up to `slots` chunks moves as one
  // copy per peer each way (pieces of a contiguous region per rank, CeBulkPart), reduced by one
  // kernel. A copy engine moves pieces whose destination changes every copy at 212-224 GB/s where
  // whole copies to each peer reach 384 (4x H200, results/2026-11-27_H200_4gpu_ce_probe); the
  // chunked 4-rank allreduce moved 171-189 GB/s busbw (results/2026-11-27_H200_ce_direct/run1).
  bool bulk = true;
  // Chunks per bulk round (0: slots, the most the staging holds). Smaller rounds let the next
  // round's pushes run while a reduction waits for a running kernel to end; with phases off they
  // do not wait for the previous round's all-gather copies either.
  int bulk_round = 0;
  // A phased bulk allreduce runs on the caller's stream: its copies, flag waits and writes and the
  // reduction (at its priority, reduce_least_priority, set per launch) in issue order, with no
  // event and no other stream, each of which costs the GPU a hop between streams and the host
  // runtime calls (unphased rounds keep a stream each way, so that a round's pushes pass the
  // previous copies). Calls still wait for the previous call's end event (calls in issue order).
  // 4x H200, ranks as threads, busbw at 108 / 224 / 896 MiB: 269 / 307-308 / 336 against 249-263 /
  // 299-302 / 324-329 with a stream each way; the DDP example on 4 GPUs 36.58 against 38.88 ms/step
  // (results/2026-11-27_H200_ce_caller/run2).
  bool bulk_on_caller = true;
  // Calls are put on the GPU by a thread of the communicator: the caller's thread records an
  // event, makes its stream wait for the call's end (a stream wait on a device word) and returns;
  // the thread waits for the peers' agreement (direct copies) and queues the call on a stream of
  // its own. In DDP the caller's thread is the one that launches the backward pass: with 4 ranks
  // it spent 284-422 us per call in the agreement, and a CUPTI trace showed the GPU idle 0.5-1.8
  // ms at a time waiting for it. The thread took that wait off the program's thread (9-18 us per
  // call on each rank against 341-396) but not off the GPU: the DDP example ran 37.75 / 36.85
  // ms/step against 36.17 on 4 GPUs and 27.96 against 28.08 on 2 (results/2026-11-27_H200_ce_caller,
  // run3, run4). Off by default; it helps a program whose own thread is what the GPU waits for.
  bool enqueue_thread = false;
  // The sequence number the communicator's chunks count from: chunk first_seq + 1 comes first and
  // every flag word starts at CeFlagValue(first_seq). Tests set it just below 2^32 so that a few
  // calls cross the flag words' wrap, which at DDP rates comes after days of training; 0 otherwise.
  uint64_t first_seq = 0;
};
// The all-gather form pull_by_ranks picks: pulls on 2 ranks unless direct copies in bulk are on
// (they need the push form, the faster one there), pushes on more (pulls there moved 130-195 GB/s
// per GPU against the pushes' 381-384; results/2026-11-27_H200_4gpu_ce_probe).
bool CePullByRanks(const CeConfig& cfg, int nranks);
// Slots for a staging that holds an allreduce of `bytes` whole (at least cfg.slots, at most 64).
int CeSlotsToHold(const CeConfig& cfg, uint64_t bytes);
// min_bytes in the interposer (CORUN_CE_MIN_BYTES overrides it): below it NCCL's latency wins.
constexpr uint64_t kCeInterposeMinBytes = 1ull << 20;
// Most chunks one call may take in the interposer (more go to NCCL). With 64 KiB chunks and 3 lanes
// on 2 GPUs as threads of one process (2 slots through the staging; 16 in bulk rounds of 3), an
// allreduce of 161 chunks (10 MiB) passed and one of 1,601 (100 MiB) stopped, both ways, with chunk
// numbers from 0 (results/2026-11-27_ce_seq_wrap/run4; the cause is not established). At the
// default 32 MiB chunks the bound is a call of about 5 GiB.
constexpr uint64_t kCeMaxCallChunks = 160;
// At least as many chunks as any form of a call of `bytes` (the whole buffer, as CeCallFacts counts
// it) takes: the chunk is rounded down by at most 16 bytes per rank (CeChunks), so this divides by
// chunk_bytes less 1 KiB.
uint64_t CeCallChunksBound(uint64_t bytes, const CeConfig& cfg);
// The one chunk rule of the interposer's route, the bench's rows and CeComm's calls: "" or
// "unsupported: ... chunks ..." naming the bound and the remedy.
std::string CeChunksDecision(uint64_t bytes, const CeConfig& cfg);
// Largest communicator the interposer serves (CORUN_CE_MAX_RANKS overrides it, up to 8). The
// protocol passes its tests with 4 processes and serves PyTorch's collectives exactly on 4 ranks,
// but the DDP example under `corun -p ce` on 4 GPUs ran 28% slower than stock (48.03 vs 37.60
// ms/step on H100; results/2026-11-27_H100_4gpu_ce_final; 48.30 vs 34.43 on H200 with pushes and
// phases, results/2026-11-27_H200_4gpu_ce_push_phases): the 4-rank allreduce moves 167-240 GB/s
// busbw (threads or processes, 32-256 MiB chunks) against NCCL's 337-354, although the links carry
// 380-384 GB/s of whole pushes to every peer at once (results/2026-11-27_H200_4gpu_ce_probe). Bulk
// direct rounds (CeConfig::bulk) brought the 4-rank allreduce to 292-328 GB/s alone and the DDP
// example to 37.5-38.5 ms/step, still above stock's 34.2-34.3 (results/2026-11-27_H200_ce_direct),
// and with the bulk calls on the caller's stream to 36.2-36.6 against stock's 34.2-34.6
// (results/2026-11-27_H200_ce_caller), so a training job with more ranks keeps NCCL unless asked.
constexpr int kCeInterposeMaxRanks = 2;

// A contiguous range of elements.
struct CeRange {
  uint64_t first = 0, count = 0;
};

// Elements per slice alignment: slices start on 16-byte boundaries (vector loads), whatever the
// element size; an odd total only makes the last slice of the last chunk short (or empty).
uint64_t CeAlignElems(int elem_bytes);

// The chunks of a `count`-element range with at most `chunk_elems` elements each (the last one
// shorter); chunk_elems is rounded down to a multiple of nranks * CeAlignElems.
std::vector<CeRange> CeChunks(uint64_t count, uint64_t chunk_elems, int nranks, int elem_bytes);

// Slice j of a chunk of `count` elements split over nranks: aligned, the last slices take the
// remainder (possibly empty). Offsets are relative to the chunk's first element.
CeRange CeSlice(uint64_t count, int nranks, int j, int elem_bytes);

// Largest slice of any chunk: the staging slot size in elements.
uint64_t CeSliceCapacity(uint64_t chunk_elems, int nranks, int elem_bytes);

// Bulk geometry (CeConfig::bulk): rank j owns one contiguous region of the buffer (CeSlice of the
// whole count), cut into pieces of `piece` elements; chunk i is piece i of every region, so a
// round of consecutive chunks is one contiguous range per region (one copy per peer).
// Chunks of a `count`-element allreduce: pieces of the largest region (region 0).
int CeBulkChunks(uint64_t count, int nranks, uint64_t piece, int elem_bytes);
// Rank j's part of chunks [a, e): absolute elements (empty where its region ends sooner).
CeRange CeBulkPart(uint64_t count, int nranks, int j, uint64_t piece, int a, int e, int elem_bytes);

// The slots of chunks [q, q + n) (n <= slots) as runs of adjacent slots: (first chunk, chunks)
// each, one run or two where the ring wraps (the second starting at slot 0).
std::vector<std::pair<CeSeq, int>> CeSlotRuns(CeSeq q, int n, int slots);

// Protocol indexes (q >= 1).
inline int CeSlot(CeSeq q, int slots) { return static_cast<int>(q % static_cast<CeSeq>(slots)); }
inline int CeLane(CeSeq q, int lanes) { return static_cast<int>(q % static_cast<CeSeq>(lanes)); }
// Row of source `src` in the staging of rank `dst` (its own row does not exist).
inline int CePeerIndex(int src, int dst) { return src < dst ? src : src - 1; }
// Before writing chunk q into a slot, its previous user (chunk q - slots) must be consumed;
// 0 = no wait needed (the slot was never used). With CeConfig::first_seq the first chunks wait
// for chunks that never ran, whose values the flag words already hold.
inline CeSeq CeFreeWaitValue(CeSeq q, int slots) {
  return q > static_cast<CeSeq>(slots) ? q - static_cast<CeSeq>(slots) : 0;
}
// Flag value that satisfies every wait (cyclic GEQ) issued up to sequence `seq` and beyond.
inline uint32_t CeReleaseValue(CeSeq seq) { return CeFlagValue(seq) + (1u << 30); }
// Last sequence number of each lane among chunks [q_first, q_last] (0 = lane unused).
std::vector<CeSeq> CeLastPerLane(CeSeq q_first, CeSeq q_last, int lanes);

// Batches: consecutive chunk indexes [begin, end) reduced by one kernel. Never more than half the
// slots, so the pushes of the next batch proceed while one is being reduced.
std::vector<std::pair<int, int>> CeBatches(int nchunks, int batch, int slots);

// Rounds of an allreduce: consecutive chunk indexes [begin, end). Phased (CeConfig::phases), rounds
// of `slots` chunks: a round's all-gather copies wait for its pushes, the next round's pushes for
// those copies; else one round of every chunk.
std::vector<std::pair<int, int>> CeRounds(int nchunks, int slots, bool phased);

// What one rank knows about itself and its peers, for the fallback decision.
// A peer in another process whose GPU is not visible here (CUDA_VISIBLE_DEVICES differs per
// rank) cannot be queried: can_access_peer and nvlink stay true and the IPC open decides (a
// PCIe-only pair then passes, slower, undetected).
struct CePeerCaps {
  int rank = -1;                // named in the reason (-1: its index in CeCaps::peers)
  bool same_process = true;
  bool can_access_peer = true;  // cudaDeviceCanAccessPeer both ways
  bool nvlink = true;           // linked by NVLink (not PCIe)
  bool ipc_ok = true;           // IPC handles opened (other process)
  std::string ipc_error;        // why they were not (the CUDA error), if known
};
struct CeCaps {
  int nranks = 0;
  bool stream_mem_ops = true;   // CAN_USE_STREAM_MEM_OPS
  bool mapped_host = true;      // pinned host memory mapped into the device (kept for other users)
  uint64_t free_bytes = 0;      // device memory free at creation
  uint64_t staging_bytes = 0;   // what the staging needs
  std::vector<CePeerCaps> peers;  // one per other rank
};
// Empty string = usable; else "unsupported: <reason>". Peers are reached either all in this
// process (threads: peer access, raw pointers) or all in other processes (one rank per process:
// IPC handles); a mix of both is refused.
std::string CeCommDecision(const CeCaps& caps);
// Per call: dtype by name ("bf16", "fp32"), op by name ("sum"), size; empty = the CE path serves it.
std::string CeCallDecision(const std::string& dtype, const std::string& op, uint64_t bytes, const CeConfig& cfg);
// Checks a configuration; empty = fine, else names the bad field.
std::string CeConfigError(const CeConfig& cfg);
// Overrides from the environment (read through `get`, e.g. std::getenv): CORUN_CE_CHUNK and
// CORUN_CE_MIN_BYTES (sizes: 16M, 4096, ...), CORUN_CE_SLOTS, CORUN_CE_LANES, CORUN_CE_BATCH
// (integers), CORUN_CE_PULL (0 or 1), CORUN_CE_SIGNAL (write or copy), CORUN_CE_COPY (streams or
// batch), CORUN_CE_PHASES (0 or 1), CORUN_CE_REDUCE_SMS (an integer, 0 = all), CORUN_CE_DIRECT
// (0 or 1), CORUN_CE_DIRECT_WAIT_US (an integer), CORUN_CE_BULK (0 or 1), CORUN_CE_BULK_ROUND
// (chunks, 0 = slots), CORUN_CE_BULK_CALLER and CORUN_CE_THREAD (0 or 1), CORUN_CE_REDUCE_PRIORITY
// (top or least). Empty = fine;
// else one line naming the variable and value.
std::string CeConfigFromEnv(const char* (*get)(const char*), CeConfig* cfg);
// CORUN_CE_PROFILE: host time of the calls by kind of runtime/driver call they make (copies,
// stream memory operations, kernel launches, event records and waits, then the whole call), and
// the summary line printed every 500 calls: per kind, time per collective call, time per runtime
// call, runtime calls per collective call and the longest one.
enum CeHostOp { kCeCopy, kCeMemOp, kCeLaunch, kCeEvent, kCeCall, kCeHostOps };
struct CeHostTimes {
  uint64_t ns[kCeHostOps] = {}, n[kCeHostOps] = {}, max_ns[kCeHostOps] = {};
};
std::string CeProfileLine(int rank, uint64_t calls, const CeHostTimes& t);

// Copy streams per communicator: one per (lane, peer) for the reduce-scatter step and as many for
// the all-gather step, so that a wait on one peer never holds the copies for another. (The copies
// still run one at a time: a GPU's peer copies share one engine, traced with 4 processes in
// results/2026-11-27_H100_4gpu_ce_copies.) CeLanesFor keeps 2 * lanes * (nranks - 1) within
// kCeMaxCopyStreams, so that with its reduce, unpack and abort streams, the caller's and NCCL's,
// one communicator stays inside 32 hardware queues (CUDA_DEVICE_MAX_CONNECTIONS=32): 2 lanes up
// to 4 ranks (12 streams), 1 lane for 8 (14). Several CE communicators in one process add up;
// past 32 queues streams share them (a wait can then hold an unrelated stream until it is met).
constexpr int kCeMaxCopyStreams = 24;
int CeLanesFor(const CeConfig& cfg, int nranks);
// Bytes of one staging slot (one slice of a chunk, any element size), 256-byte aligned.
uint64_t CeSlotBytes(const CeConfig& cfg, int nranks);
// Staging bytes one rank allocates: slots x (nranks - 1) slices, for the reduce-scatter rows.
uint64_t CeStagingBytes(const CeConfig& cfg, int nranks);

}  // namespace corun
