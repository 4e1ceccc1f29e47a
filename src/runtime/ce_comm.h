// Copy-engine (CE) collectives for the GPUs of one NVLink node: data moved by copy engines
// (cudaMemcpyAsync between peer-mapped buffers), signals by stream memory operations on flags with
// sequence numbers, reductions by one short kernel per batch of chunks (top priority unless
// CeConfig::reduce_least_priority). No SM is held while waiting. The protocol and the fallback
// rules are in corun/ce_plan.h.
//
// Allreduce all-gather copies go straight between the ranks' outputs where the ranks agree on it
// per call (CeConfig::direct, ce_direct.cpp; in the push form in bulk rounds, ce_bulk.cpp).
//
// Use: created collectively beside an NCCL communicator (one ncclAllGather and one ncclAllReduce
// at creation); if usable() is false, why() says "unsupported: <reason>" and the caller keeps
// using NCCL. Calls take the same arguments as ncclAllReduce / ncclReduceScatter / ncclAllGather
// (sum only) and are stream-ordered on the caller's stream like them; calls on different streams
// run in the order they were issued, as NCCL's do.
//
// Ranks: all threads of one process (peer access, the peers' raw pointers) or one rank per
// process (torchrun, mpirun): each rank exports its staging and flag block (separate cudaMalloc
// allocations, offset 0) as cudaIpcMemHandle_t in the creation all-gather and opens the peers'
// (cudaIpcMemLazyEnablePeerAccess); a refused open makes every rank fall back. Where a peer's GPU
// is visible in this process, peer access and NVLink are checked as for threads; where it is not
// (CUDA_VISIBLE_DEVICES differs per rank), the open succeeding is the only check, so a PCIe-only
// pair is not detected (it works, slower). The cross-process path, node barrier included, passed
// tests/gpu/ce_procs_check.cpp (label `ce`) with 2 and 4 processes, and PyTorch's collectives with
// 2 and 4 ranks under the interposer (results/2026-11-27_H200_4gpu_ce_defaults). Four ranks as
// threads of one process hung with the pull form and take the push form with copied flags (Init).
//
// No hang: every wait is on a local flag in device memory. Abort() (or AbortAllCeComms(), for a
// watchdog, before it aborts NCCL) copies a value that satisfies every pending wait into the
// flags on a stream of its own, so the streams drain; the result is then garbage and every later
// call and CheckError() report the abort. It also writes the peers' flags (peer-mapped in one
// process, IPC-mapped across processes: the same copy), so the peers' waits on this rank end too,
// as far as the peer's memory is still mapped.
//
// A rank whose process ends (crash, kill, _exit) mid-call never writes the flags its peers wait
// on, and nothing on the GPU says so: its memory stays mapped in the survivors. Ranks in other
// processes therefore each hold a POSIX record lock on a shared-memory file of their own
// (CeRankLock, named from the node barrier's key) for as long as the communicator lives; the
// kernel drops it when the process ends, however it ends, and never passes it to a fork. A
// monitor thread per communicator probes the peers' locks every 200 ms (CheckError() probes too,
// synchronously); a free lock means the rank is gone: one stderr line names it, Abort() releases
// the waits (the lost rank's flags are left alone), and CheckError() and every later call report
// "rank P (pid X) exited". The NCCL communicator beside it is the caller's: its kernels wait for
// the lost rank forever, so the caller ncclCommAbort()s it on that error (or a watchdog does).
// Abort() rewrites the release values until this rank's streams drain (at most 5 s): a live
// peer's streams, released by the same abort, may still write older sequence numbers over them.
//
// Ordering rule (as for NCCL): every rank issues the same CE calls in the same order, and a CE
// call's stream waits only ever depend on the peers' CE work of that call and of earlier ones. A
// rank's host thread must not block on its GPU (a synchronisation, cudaFree, or a first launch of
// any kernel, which CUDA's lazy loading may turn into a context synchronisation) while its peers'
// host threads wait for it before issuing their side of a call already issued here: the GPU waits
// for the peer, the peer for this thread. CeComm loads its own kernels at Init for that reason;
// it cannot load other libraries' kernels, so callers launch those once before they hold streams
// (e.g. a gate) or wait on a host barrier with CE calls in flight.
//
// Streams: each rank uses 2 * lanes * (nranks - 1) copy streams (one per lane and peer, at most
// kCeMaxCopyStreams) and 3 more (4 with the enqueue thread); a phased bulk allreduce waits on the
// caller's stream itself (CeConfig::bulk_on_caller). Set CUDA_DEVICE_MAX_CONNECTIONS to 32 so
// that a stream wait never blocks an unrelated stream sharing its hardware queue (the abort's
// copy above all).
//
// Calls queued by the communicator's thread (CeConfig::enqueue_thread, ce_enqueue.cpp): the
// caller's stream waits for a call's number in a device word the thread writes once the call is
// queued on the thread's stream behind an event of the caller's; errors there abort the
// communicator and reach the caller at its next call or CheckError().
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "corun/ce_direct.h"
#include "corun/ce_plan.h"
#include "corun/collective.h"
#include "corun/status.h"

namespace corun {

// Liveness of one rank of a node, for the ranks of other processes (see above): Hold() creates
// the shared-memory file `name` and locks it; the lock lives until Release() or the process ends.
class CeRankLock {
 public:
  CeRankLock() = default;
  ~CeRankLock() { Release(); }
  CeRankLock(const CeRankLock&) = delete;
  CeRankLock& operator=(const CeRankLock&) = delete;
  bool Hold(const std::string& name, std::string* why);
  void Release();  // removes the file, then unlocks

 private:
  int fd_ = -1;
  std::string name_;
};
// kGone: the file exists, nobody holds its lock and its holder did not release it (it ended).
// kUnknown: no such file (never held, or released at teardown), a released one, or no lock
// support. Never call it for a lock this process holds (a process's own lock does not conflict
// with itself, and the probe's close would drop it).
enum class CeRankState { kAlive, kGone, kUnknown };
CeRankState CeProbeRank(const std::string& name);
// The same on a descriptor of the lock file opened earlier (a probe racing with a Release).
CeRankState CeProbeRankFd(int fd);
constexpr char kCeReleased = 'R';  // the lock file's byte once its holder released it

class CeComm {
 public:
  CeComm() = default;
  ~CeComm();
  CeComm(const CeComm&) = delete;
  CeComm& operator=(const CeComm&) = delete;

  // Collective over the ranks of `nccl`, on the device current for it. An error Status means a
  // CUDA/NCCL failure; an unusable CE path is not an error (usable() false, why() says why).
  Status Init(ncclComm_t nccl, const CeConfig& cfg, cudaStream_t s);
  bool usable() const { return usable_; }
  const std::string& why() const { return why_; }
  int rank() const { return rank_; }
  // Flags reach peers by 4-byte copies (else by stream writes into their mapped flags).
  bool signal_copy() const { return signal_copy_; }
  // The all-gather step by pulls (else pushes + unpack), as Init settled it.
  bool ag_pull() const { return cfg_.ag_pull; }
  int nranks() const { return nranks_; }

  // Same meaning as the NCCL calls with ncclSum. recv may equal send (in place) for AllReduce.
  Status AllReduce(const void* send, void* recv, uint64_t count, DType t, cudaStream_t s);
  Status ReduceScatter(const void* send, void* recv, uint64_t recvcount, DType t, cudaStream_t s);
  Status AllGather(const void* send, void* recv, uint64_t sendcount, DType t, cudaStream_t s);
  // Collective::kAllToAll is not served (error); the harness asks Serves() first.
  Status Run(Collective c, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s);
  bool Serves(Collective c) const { return usable_ && c != Collective::kAllToAll; }

  // Releases every wait of this rank and of its peers (their flags are mapped here); thread-safe.
  void Abort();
  // Also probes the peers' liveness (ranks in other processes): a lost peer aborts here.
  Status CheckError() const;
  // The rank found gone (-1: none).
  int lost_rank() const { return lost_rank_.load(); }
  // Returns once every call queued for the enqueue thread is on the GPU (CeConfig::enqueue_thread;
  // at once without it). Counters such as direct_calls() include those calls then.
  void Drain();
  // The flag block as text (debugging a stuck call; bounded wait, never blocks for long).
  std::string DumpFlags() const;
  // Chunks numbered so far by the reduce-scatter and the all-gather phases (from CeConfig::first_seq).
  CeSeq rs_seq() const { return rs_seq_.load(); }
  CeSeq ag_seq() const { return ag_seq_.load(); }
  // Allreduce calls queued with their all-gather copies straight between the outputs
  // (CeConfig::direct), and those queued through the staging although direct copies were on
  // (CORUN_CE_DEBUG=1 says why). Counted once a call's every copy and wait is queued.
  uint64_t direct_calls() const { return direct_calls_.load(); }
  uint64_t staged_calls() const { return staged_calls_.load(); }
  // Of the direct calls, those moved in bulk wholly on the caller's stream (CeConfig::bulk_on_caller).
  uint64_t caller_stream_calls() const { return caller_stream_calls_.load(); }
  bool direct_on() const { return dir_ != nullptr; }
  // Calls are queued by the communicator's thread (CeConfig::enqueue_thread, as Init set it up).
  bool queued() const { return enq_stream_ != nullptr; }

 private:
  struct Peer {
    int rank = 0;
    uint64_t process = 0;        // its process token (keys the outputs mapped from it)
    char* rs_staging = nullptr;  // its staging (reduce-scatter rows), mapped here
    char* ag_staging = nullptr;  // its staging (all-gather rows)
    uint32_t* flags = nullptr;   // its flag block (device memory, peer- or IPC-mapped)
  };
  // Flag block layout (uint32 words) of one rank.
  uint32_t* RsReady(uint32_t* f, int src, int lane) const { return f + src * cfg_.lanes + lane; }
  uint32_t* AgReady(uint32_t* f, int src, int lane) const { return f + (nranks_ + src) * cfg_.lanes + lane; }
  uint32_t* RsFree(uint32_t* f, int src) const { return f + 2 * nranks_ * cfg_.lanes + src; }
  // Per lane: the readers of the all-gather staging copy on several streams (out of chunk order).
  uint32_t* AgFree(uint32_t* f, int src, int lane) const {
    return f + 2 * nranks_ * cfg_.lanes + nranks_ + src * cfg_.lanes + lane;
  }
  // After the peers are mapped (Init): how flags travel, the call streams, events, priorities.
  Status SetUpSignalsAndStreams(cudaStream_t s);
  size_t FlagWords() const { return 3 * static_cast<size_t>(nranks_) * cfg_.lanes + nranks_; }
  char* Slot(char* staging, CeSeq q, int src_row) const;

  enum class Kind { kAllReduce, kReduceScatter, kAllGather };
  // A call: queued for the enqueue thread (CeConfig::enqueue_thread; ce_enqueue.cpp) or put on
  // the GPU here (LaunchNow, ce_launch.cpp).
  Status Launch(Kind k, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s);
  Status LaunchNow(Kind k, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s);
  // A direct allreduce in the push form, in bulk (CeConfig::bulk; ce_bulk.cpp).
  Status LaunchBulk(const char* in, char* out, uint64_t count, DType t, cudaStream_t s);
  // A flag word and the chunk it is waited for or written with: the word holds CeFlagValue(q).
  using CeFlagOp = std::pair<uint32_t*, CeSeq>;
  Status Wait(cudaStream_t st, const std::vector<CeFlagOp>& waits);
  // The caller's stream continues when every stream a call used is done (events, so the runtime
  // sees the order too). An allreduce's reduce-scatter streams are left out: each push it made
  // was reduced by its peer before the peer released the all-gather copy of that chunk (pull: its
  // ready flag; push form: its push into this rank's staging or output), so the all-gather
  // streams, which the caller's stream waits for, end after them.
  Status Join(cudaStream_t s, const std::vector<cudaStream_t>& used, bool allreduce);
  Status Write(cudaStream_t st, int outbox, uint32_t* addr, CeSeq q);
  // Several flag writes on one stream, in one driver call where flags are stream writes.
  Status WriteMany(cudaStream_t st, int outbox, const std::vector<CeFlagOp>& writes);
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  // Several device-to-device copies in one cudaMemcpyBatchAsync (CeConfig::batch_copies).
  Status CopyBatch(cudaStream_t st, const std::vector<Copy>& copies);
  // Copy streams: one per (lane, peer) and step (ce_plan.h, CeLanesFor); peer p is `Step(p)`
  // places after this rank. Each signalling stream has its own outbox word (signal_copy).
  int Fan() const { return nranks_ - 1; }
  int Step(int p) const { return (p - rank_ + nranks_) % nranks_; }
  int CopyIndex(int lane, int p) const { return lane * Fan() + Step(p) - 1; }
  cudaStream_t RsStream(int lane, int p) const { return rs_lanes_[CopyIndex(lane, p)]; }
  cudaStream_t AgStream(int lane, int p) const { return ag_lanes_[CopyIndex(lane, p)]; }
  int RsBox(int lane, int p) const { return CopyIndex(lane, p); }
  int AgBox(int lane, int p) const { return cfg_.lanes * Fan() + CopyIndex(lane, p); }
  int ReduceBox() const { return 2 * cfg_.lanes * Fan(); }
  int UnpackBox() const { return 2 * cfg_.lanes * Fan() + 1; }
  size_t OutboxWords() const { return 2 * static_cast<size_t>(cfg_.lanes) * Fan() + 2; }

  // Direct all-gather copies (ce_direct.cpp): the agreement table, and per call each peer's output
  // as mapped here (null: staging).
  bool AgreeDirect(void* recv, uint64_t bytes);
  // Communicators with direct copies in this process; the last one closes the peers' outputs.
  static void DirectRetain();
  static void DirectRelease();
  // The enqueue thread (ce_enqueue.cpp): calls in the callers' order, each with the event its
  // caller's stream recorded (from a pool) and its number, which the thread writes into done_ on
  // its stream once the call is queued behind it; the caller's stream waits done_ >= number.
  struct Job {
    Kind kind;
    const void* send;
    void* recv;
    uint64_t count;
    DType t;
    cudaEvent_t start;
    uint32_t q;
  };
  Status StartEnqueue();
  void StopEnqueue();  // runs the queued calls, ends the thread, drains its stream
  void FreeEnqueue();  // then, once no Abort() can run, its stream, events and words
  Status EnqueueError() const;
  void EnqueueLoop();
  std::thread enq_;
  mutable std::mutex enq_mu_;
  std::condition_variable enq_cv_;
  std::deque<Job> jobs_;
  bool enq_stop_ = false, enq_busy_ = false;
  std::vector<cudaEvent_t> enq_free_;  // the pool's events not in a queued job
  std::vector<cudaEvent_t> enq_events_;
  cudaStream_t enq_stream_ = nullptr;
  uint32_t* done_ = nullptr;           // device word: the last call queued on enq_stream_
  uint32_t* done_release_ = nullptr;   // pinned: Abort()'s value for it
  std::atomic<uint32_t> enq_seq_{0};   // calls handed to the thread
  Status enq_error_ = Status::Ok();    // the thread's first failure (under enq_mu_)

  std::unique_ptr<CeDirectTable> dir_;
  void* dir_mem_ = nullptr;
  size_t dir_bytes_ = 0;
  uint32_t dir_seq_ = 0;
  bool dir_threads_ = false;              // every peer in this process: raw pointers, no export
  std::map<uint64_t, int> dir_exports_;   // this rank's allocation (buffer id) -> export index (-1: refused)
  std::vector<char*> peer_out_;
  std::atomic<uint64_t> direct_calls_{0}, staged_calls_{0}, caller_stream_calls_{0};

  CeConfig cfg_;
  bool usable_ = false;
  std::string why_ = "unsupported: not initialised";
  int rank_ = 0, nranks_ = 0, device_ = 0;
  uint64_t slot_bytes_ = 0;
  char* rs_staging_ = nullptr;  // slots x (nranks - 1) rows of slot_bytes_
  char* ag_staging_ = nullptr;
  uint32_t* flags_ = nullptr;   // device memory; peers write it (stream writes or 4-byte copies)
  uint32_t* outbox_ = nullptr;  // device words the signals are copied from
  bool signal_copy_ = false;    // flags by 4-byte copies (CeConfig::signal_copy, or a refused stream write)
  uint32_t* release_host_ = nullptr;  // pinned, the abort's release values
  cudaStream_t abort_stream_ = nullptr;
  std::vector<Peer> peers_;     // indexed by rank; peers_[rank_] unused
  std::vector<void*> ipc_mapped_;  // peers' buffers opened by cudaIpcOpenMemHandle (closed first)
  cudaStream_t reduce_ = nullptr, unpack_ = nullptr;
  std::vector<cudaStream_t> rs_lanes_, ag_lanes_;  // lanes x (nranks - 1) each (CopyIndex)
  cudaEvent_t ev_start_ = nullptr, ev_batch_ = nullptr;
  // Calls run on the GPU in issue order whatever their streams, as NCCL's do: a later call's
  // flags (higher sequence numbers) would satisfy an earlier call's waits before its data came.
  // Every call ends by recording ev_call_end_ on its caller's stream, and every call on a caller's
  // stream waits for it first (a no-op on the same stream; the handle alone cannot tell, since a
  // destroyed stream's handle may come back). So the last recorded end covers every call: teardown
  // and Abort() wait for it as for this rank's own streams. Created in Init, never on a call's
  // path: with end events created at a call (by the enqueue thread, for the queued calls), the
  // process test's queued configuration hung on 2 and 4 ranks (results/2026-11-27_ce_stream_order).
  Status OrderAfterLastCall(cudaStream_t s);
  Status MarkCallEnd(cudaStream_t s);
  cudaEvent_t ev_call_end_ = nullptr;
  std::vector<cudaEvent_t> ev_done_;
  std::vector<cudaEvent_t> ev_phase_;  // one per copy stream: the ends of a phase (CeConfig::phases)
  int reduce_priority_ = 0;  // the reductions' (CeConfig::reduce_least_priority): the device's greatest or least
  int sms_ = 0;  // SMs the reductions are sized for: the device's, or CeConfig::reduce_sms if fewer
  // Written by the rank's thread, read by Abort() on a watchdog's thread.
  std::atomic<CeSeq> rs_seq_{0}, ag_seq_{0};
  std::atomic<bool> aborted_{false};
  std::string node_key_;  // ranks in other processes: the node barrier's key (empty: all in this one)
  // Liveness of the ranks in other processes (names empty for ranks of this process).
  bool PollPeers();  // true when a peer is gone (then aborted)
  void StartMonitor();  // the thread that polls the peers' locks (ranks in other processes only)
  static void Register(CeComm* c);  // into the set AbortAllCeComms() aborts
  Status Failed() const;  // CheckError() without the probe
  void StopMonitor();
  std::vector<int> GoneRanks() const;
  CeRankLock alive_;
  std::vector<std::string> alive_names_;
  std::vector<int> peer_pids_;
  std::atomic<int> lost_rank_{-1};
  std::mutex mon_mu_;
  std::condition_variable mon_cv_;
  bool mon_stop_ = false;
  std::thread monitor_;
};

// Every live CeComm, for a watchdog that must release waits before aborting NCCL.
void AbortAllCeComms();

// The NCCL functions CeComm calls (at creation only). One definition per binary: ce_nccl.cpp
// (the linked NCCL: bench, tests) or the interposer's nccl.cpp (the program's own libnccl, found
// by dlsym past the interposer's hooks, which must not see corun's own calls).
struct CeNccl {
  ncclResult_t (*CommUserRank)(const ncclComm_t, int*) = nullptr;
  ncclResult_t (*CommCount)(const ncclComm_t, int*) = nullptr;
  ncclResult_t (*CommCuDevice)(const ncclComm_t, int*) = nullptr;
  ncclResult_t (*AllGather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                            cudaStream_t) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
};
const CeNccl& CeNcclApi();

}  // namespace corun
