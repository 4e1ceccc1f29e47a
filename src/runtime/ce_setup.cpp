// Copy-engine collectives, set-up: the descriptor exchange, peer mapping (peer access in one
// process, IPC handles across processes), the agreement. How flags travel and the call streams:
// ce_streams.cpp; liveness of peers in other processes: ce_alive.cpp; teardown and abort:
// ce_teardown.cpp.
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

#include "ce_debug.h"
#include "corun/node_barrier.h"
#include "ce_reduce.h"
#include "checks.h"
#include "driver.h"

// NCCLCHECK through CeNcclApi() (checks.h's names the linked ncclGetErrorString).
#define CE_NCCLCHECK(cmd)                                                                          \
  do {                                                                                             \
    ncclResult_t _n = (cmd);                                                                       \
    if (_n != ncclSuccess && _n != ncclInProgress)                                                 \
      return ::corun::Status::Error(std::string(#cmd) + ": " + CeNcclApi().GetErrorString(_n))    \
          .At(__FILE__, __LINE__);                                                                 \
  } while (0)

namespace corun {
namespace {

// What one rank tells the others at creation (fixed size, exchanged as bytes). The pointers serve
// ranks of this process, the IPC handles ranks of other processes.
struct Desc {
  int32_t pid = 0, device = 0, local_ok = 0, ipc_exported = 0;
  uint64_t process = 0;  // ProcessToken(): equal pids of two hosts or pid namespaces do not match
  uint64_t rs_staging = 0, ag_staging = 0, flags = 0;
  char pci[32] = {};
  cudaIpcMemHandle_t rs_h = {}, ag_h = {}, flags_h = {};
  // The protocol's shape: every rank must use the same (CORUN_CE_* alike on every rank).
  // min_bytes too: ranks that route a call differently (CE here, NCCL there) would hang.
  uint64_t chunk_bytes = 0, min_bytes = 0, first_seq = 0;
  int32_t slots = 0, lanes = 0, batch = 0, ag_pull = 0, bulk = 0, bulk_round = 0, phases = 0;
};

// What a rank writes into the direct copies' table to show the peers they share it.
uint64_t DirToken(uint64_t process, int rank) { return process ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank + 1)); }

// Identifies this process among the ranks of a communicator (random, drawn once).
uint64_t ProcessToken() {
  static const uint64_t t = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32 | rd()) ^ static_cast<uint64_t>(getpid());
  }();
  return t;
}

// Host barrier of the ranks of one communicator living in this process (threads), keyed by a
// value every rank knows. Peer access is enabled between two of these: enabling it while a peer
// already runs the next NCCL kernel (which waits for this rank) can block both.
void ProcessBarrier(uint64_t key, int n) {
  static std::mutex mu;
  static std::condition_variable cv;
  static std::map<uint64_t, std::pair<int, int>> state;  // key -> (arrived, generation)
  std::unique_lock<std::mutex> l(mu);
  auto& st = state[key];
  const int gen = st.second;
  if (++st.first == n) {
    st.first = 0;
    ++st.second;
    cv.notify_all();
  } else {
    cv.wait(l, [&] { return state[key].second != gen; });
  }
}

}  // namespace

Status CeComm::Init(ncclComm_t nccl, const CeConfig& cfg, cudaStream_t s) {
  const std::string bad = CeConfigError(cfg);
  if (!bad.empty()) CORUN_FAIL("CeComm: bad configuration: " + bad);
  cfg_ = cfg;
  rs_seq_ = ag_seq_ = cfg_.first_seq;
  const CeNccl& nccl_api = CeNcclApi();
  if (!nccl_api.CommUserRank || !nccl_api.CommCount || !nccl_api.CommCuDevice || !nccl_api.AllGather ||
      !nccl_api.AllReduce || !nccl_api.GetErrorString)
    CORUN_FAIL("CeComm: the NCCL functions it needs were not found");
  CE_NCCLCHECK(nccl_api.CommUserRank(nccl, &rank_));
  CE_NCCLCHECK(nccl_api.CommCount(nccl, &nranks_));
  CE_NCCLCHECK(nccl_api.CommCuDevice(nccl, &device_));
  CUDACHECK(cudaSetDevice(device_));
  CUDACHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device_));
  if (cfg_.reduce_sms > 0) sms_ = std::min(sms_, cfg_.reduce_sms);
  if (nranks_ >= 2) cfg_.lanes = CeLanesFor(cfg_, nranks_);  // the flag layout depends on it
  // Pulls only where direct copies in bulk are off: with them the push form is the faster on 2
  // ranks as well (CeConfig::pull_by_ranks).
  if (cfg_.pull_by_ranks) cfg_.ag_pull = CePullByRanks(cfg_, nranks_);
  slot_bytes_ = CeSlotBytes(cfg_, nranks_);

  CeCaps caps;
  caps.nranks = nranks_;
  const DriverTable& d = Driver();
  // The v2 memory operations are always there since CUDA 12 (the *_V1 attributes describe the
  // deprecated v1 API and read 0 there): the entry points decide.
  caps.stream_mem_ops = d.cuStreamWriteValue32 && d.cuStreamWaitValue32 && d.cuStreamBatchMemOp;
  int maph = 0;
  CUDACHECK(cudaDeviceGetAttribute(&maph, cudaDevAttrCanMapHostMemory, device_));
  caps.mapped_host = maph != 0;
  size_t free_b = 0, total_b = 0;
  CUDACHECK(cudaMemGetInfo(&free_b, &total_b));
  caps.free_bytes = free_b;
  caps.staging_bytes = 2 * CeStagingBytes(cfg_, nranks_);

  // Local resources, only where the path is plausible (a refused allocation is a fallback).
  bool local_ok = nranks_ >= 2 && nranks_ <= kCeMaxRanks && caps.stream_mem_ops && caps.mapped_host &&
                  caps.free_bytes >= caps.staging_bytes + (caps.staging_bytes >> 2);
  if (local_ok) {
    const size_t half = caps.staging_bytes / 2;
    if (cudaMalloc(&rs_staging_, half) != cudaSuccess || cudaMalloc(&ag_staging_, half) != cudaSuccess ||
        cudaMalloc(reinterpret_cast<void**>(&flags_), FlagWords() * sizeof(uint32_t)) != cudaSuccess ||
        cudaMalloc(reinterpret_cast<void**>(&outbox_), OutboxWords() * sizeof(uint32_t)) != cudaSuccess) {
      (void)cudaGetLastError();
      local_ok = false;
    } else {
      // Every word starts at the value of "chunk first_seq done" (0 unless a test starts near the wrap).
      const std::vector<uint32_t> start(FlagWords(), CeFlagValue(cfg_.first_seq));
      CUDACHECK(cudaMemcpy(flags_, start.data(), FlagWords() * sizeof(uint32_t), cudaMemcpyHostToDevice));
      CUDACHECK(cudaMemset(outbox_, 0, OutboxWords() * sizeof(uint32_t)));
    }
  }
  Desc mine;
  mine.pid = static_cast<int32_t>(getpid());
  mine.device = device_;
  mine.local_ok = local_ok;
  mine.rs_staging = reinterpret_cast<uint64_t>(rs_staging_);
  mine.ag_staging = reinterpret_cast<uint64_t>(ag_staging_);
  mine.flags = reinterpret_cast<uint64_t>(flags_);
  mine.process = ProcessToken();
  mine.chunk_bytes = cfg_.chunk_bytes;
  mine.first_seq = cfg_.first_seq;
  mine.min_bytes = cfg_.min_bytes;
  mine.slots = cfg_.slots;
  mine.lanes = cfg_.lanes;
  mine.batch = cfg_.batch;
  mine.ag_pull = cfg_.ag_pull ? 1 : 0;
  mine.bulk = cfg_.bulk ? 1 : 0;
  mine.bulk_round = cfg_.bulk_round;
  mine.phases = cfg_.phases ? 1 : 0;
  CUDACHECK(cudaDeviceGetPCIBusId(mine.pci, sizeof(mine.pci), device_));
  // IPC handles for peers in other processes (each buffer is its own allocation: offset 0). A
  // refusal here only matters to those peers: they report it.
  if (local_ok) {
    mine.ipc_exported = cudaIpcGetMemHandle(&mine.rs_h, rs_staging_) == cudaSuccess &&
                        cudaIpcGetMemHandle(&mine.ag_h, ag_staging_) == cudaSuccess &&
                        cudaIpcGetMemHandle(&mine.flags_h, flags_) == cudaSuccess;
    if (!mine.ipc_exported) (void)cudaGetLastError();
  }

  CE_DLOG("init: local_ok %d, staging %llu B, flags %zu words", local_ok ? 1 : 0,
          static_cast<unsigned long long>(caps.staging_bytes), FlagWords());
  // One all-gather of the descriptors through a small device buffer.
  std::vector<Desc> all(nranks_);
  Desc* dbuf = nullptr;
  int* dok = nullptr;
  CUDACHECK(cudaMalloc(&dbuf, nranks_ * sizeof(Desc)));
  CUDACHECK(cudaMalloc(&dok, sizeof(int)));
  CUDACHECK(cudaMemcpyAsync(dbuf + rank_, &mine, sizeof(Desc), cudaMemcpyHostToDevice, s));
  CE_NCCLCHECK(nccl_api.AllGather(dbuf + rank_, dbuf, sizeof(Desc), ncclUint8, nccl, s));
  CUDACHECK(cudaMemcpyAsync(all.data(), dbuf, nranks_ * sizeof(Desc), cudaMemcpyDeviceToHost, s));
  CUDACHECK(cudaStreamSynchronize(s));

  CE_DLOG("init: descriptors exchanged");
  // Peers of other processes: their buffers as opened here (kept in ipc_mapped_ for closing).
  std::vector<Peer> mapped(nranks_);
  for (int p = 0; p < nranks_; ++p) {
    if (p == rank_) continue;
    CePeerCaps pc;
    pc.rank = p;
    pc.same_process = all[p].process == mine.process;
    // The peer's device as numbered in this process (-1: not visible here).
    int dev = all[p].device;
    if (!pc.same_process && cudaDeviceGetByPCIBusId(&dev, all[p].pci) != cudaSuccess) {
      (void)cudaGetLastError();
      dev = -1;
    }
    if (dev >= 0) {
      // Between collective points a failure is a "no" (every rank must reach the agreement), never
      // an early return that would leave the peers waiting in it.
      int can = 0, atomics = 0;
      if (cudaDeviceCanAccessPeer(&can, device_, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        can = 0;
      }
      pc.can_access_peer = can != 0;
      // NVLink pairs have native peer atomics, PCIe peer paths do not.
      if (can && cudaDeviceGetP2PAttribute(&atomics, cudaDevP2PAttrNativeAtomicSupported, device_, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        atomics = 0;
      }
      pc.nvlink = atomics != 0;
    }
    // Not visible: nothing to query; the IPC open below is the check (see ce_comm.h).
    if (!pc.same_process && pc.can_access_peer && pc.nvlink && local_ok && all[p].local_ok) {
      if (!all[p].ipc_exported) {
        pc.ipc_ok = false;
        pc.ipc_error = "the peer could not export its buffers";
      }
      const cudaIpcMemHandle_t* hs[3] = {&all[p].rs_h, &all[p].ag_h, &all[p].flags_h};
      void* ptr[3] = {nullptr, nullptr, nullptr};
      for (int b = 0; b < 3 && pc.ipc_ok; ++b) {
        const cudaError_t e = cudaIpcOpenMemHandle(&ptr[b], *hs[b], cudaIpcMemLazyEnablePeerAccess);
        if (e != cudaSuccess) {
          (void)cudaGetLastError();
          pc.ipc_ok = false;
          pc.ipc_error = cudaGetErrorString(e);
        } else {
          ipc_mapped_.push_back(ptr[b]);
        }
      }
      mapped[p].rs_staging = static_cast<char*>(ptr[0]);
      mapped[p].ag_staging = static_cast<char*>(ptr[1]);
      mapped[p].flags = static_cast<uint32_t*>(ptr[2]);
      CE_DLOG("init: IPC buffers of rank %d: %s", p, pc.ipc_ok ? "opened" : pc.ipc_error.c_str());
    }
    caps.peers.push_back(pc);
  }
  std::string why = CeCommDecision(caps);
  if (why.empty() && !local_ok) why = "unsupported: staging or flag allocation refused";
  for (int p = 0; p < nranks_ && why.empty(); ++p)
    if (!all[p].local_ok) why = "unsupported: rank " + std::to_string(p) + " cannot allocate its staging";
  for (int p = 0; p < nranks_ && why.empty(); ++p)
    if (all[p].chunk_bytes != mine.chunk_bytes || all[p].min_bytes != mine.min_bytes || all[p].slots != mine.slots ||
        all[p].lanes != mine.lanes ||
        all[p].batch != mine.batch || all[p].ag_pull != mine.ag_pull || all[p].bulk != mine.bulk ||
        all[p].bulk_round != mine.bulk_round || all[p].phases != mine.phases || all[p].first_seq != mine.first_seq)
      why = "unsupported: rank " + std::to_string(p) +
            "'s copy-engine configuration differs from this rank's (set CORUN_CE_* alike on every rank)";
  // Peer access, where every rank lives in this process and could allocate (the same condition on
  // every rank, so all of them reach both barriers): no NCCL kernel of this communicator is in
  // flight between the barriers.
  bool all_here = true;
  for (int p = 0; p < nranks_; ++p) all_here &= all[p].process == mine.process && all[p].local_ok;
  if (all_here && nranks_ >= 2 && nranks_ <= kCeMaxRanks) {
    const uint64_t key = all[0].flags;
    CE_DLOG("init: barrier before peer access");
    ProcessBarrier(key, nranks_);
    for (int p = 0; p < nranks_ && why.empty(); ++p) {
      if (p == rank_) continue;
      int can = 0;
      if (cudaDeviceCanAccessPeer(&can, device_, all[p].device) != cudaSuccess) {  // no return between barriers
        (void)cudaGetLastError();
        can = 0;
      }
      if (!can) continue;
      const cudaError_t e = cudaDeviceEnablePeerAccess(all[p].device, 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) {
        (void)cudaGetLastError();
      } else if (e != cudaSuccess) {
        (void)cudaGetLastError();
        why = std::string("unsupported: peer access to rank ") + std::to_string(p) + " refused: " + cudaGetErrorString(e);
      }
    }
    CE_DLOG("init: peer access done (%s), barrier after", why.empty() ? "ok" : why.c_str());
    ProcessBarrier(key, nranks_);
  }

  // The reduction kernels are loaded now (CUDA loads modules lazily, at first launch): loading
  // them at the first call, behind stream waits on a peer whose own first launch is stuck the
  // same way, deadlocks both ranks.
  if (why.empty()) {
    const Status ls = CeReduceLoad(s);
    if (!ls.ok()) why = "unsupported: reduction kernels did not load: " + ls.message();
  }

  // Names every rank of this communicator derives alike (node barrier, liveness locks, the direct
  // copies' table) from the exchanged descriptors.
  std::string key_src;
  for (const Desc& d : all)
    key_src += std::to_string(d.process) + ":" + std::to_string(d.pid) + ":" + std::to_string(d.flags) + ";";
  const size_t comm_hash = std::hash<std::string>{}(key_src);

  // Ranks in other processes: nobody launches the agreement's NCCL kernel before every rank has
  // opened its peers' buffers. Opening one enables peer access to the exporting GPU, which (as
  // between threads above) can wait for that GPU, and its NCCL kernel waits for the opener.
  // The condition reads only the exchanged descriptors: every rank takes this branch or none.
  bool any_remote = false;
  for (int p = 0; p < nranks_; ++p) any_remote |= all[p].process != all[0].process;
  if (any_remote) {
    char key[40];
    std::snprintf(key, sizeof(key), "ce_%zx_%d", comm_hash, nranks_);
    node_key_ = key;
    // Liveness locks, taken before the barrier: after it, every live rank's file exists.
    alive_names_.assign(nranks_, std::string());
    peer_pids_.assign(nranks_, 0);
    for (int p = 0; p < nranks_; ++p) {
      peer_pids_[p] = all[p].pid;
      if (all[p].process != mine.process) alive_names_[p] = node_key_ + "_r" + std::to_string(p);
    }
    std::string lwhy;
    if (!alive_.Hold(node_key_ + "_r" + std::to_string(rank_), &lwhy))
      std::fprintf(stderr, "corun ce: rank %d: %s; the peers cannot tell if this rank exits\n", rank_, lwhy.c_str());
    std::string bwhy;
    if (!NodeBarrier(key, nranks_, 120, &bwhy))
      std::fprintf(stderr, "corun ce: rank %d: %s; going on without it\n", rank_, bwhy.c_str());
  }

  // The direct copies' agreement table (ce_direct.cpp), mapped by every rank before the agreement
  // below, unlinked after it. Threads of one process map the segment once each, as processes do.
  std::string dir_name;
  if (why.empty() && cfg_.direct) {
    char name[64];
    std::snprintf(name, sizeof(name), "/corun_cedir_%zx_%d", comm_hash, nranks_);
    dir_name = name;
    dir_bytes_ = CeDirectTable::Bytes(nranks_);
    std::string dwhy;
    dir_mem_ = CeDirectMap(dir_name, dir_bytes_, &dwhy);
    if (!dir_mem_) CE_DLOG("init: no direct copies: %s", dwhy.c_str());
    if (dir_mem_) CeDirectTable(dir_mem_, nranks_, rank_).SetToken(DirToken(all[rank_].process, rank_));
  }
  // The name goes once every rank has mapped it (after the agreement below), or on any return.
  struct Unlink {
    std::string name;
    ~Unlink() {
      if (!name.empty()) CeDirectUnlink(name);
    }
  } unlink{dir_name};
  // Every rank takes the CE path or none does; direct copies are on where every rank has the table
  // (2: usable with the table, 1: usable, 0: not).
  // The smallest of every rank's value, in place.
  auto agree_min = [&](int* v) -> Status {
    CUDACHECK(cudaMemcpyAsync(dok, v, sizeof(int), cudaMemcpyHostToDevice, s));
    CE_NCCLCHECK(nccl_api.AllReduce(dok, dok, 1, ncclInt32, ncclMin, nccl, s));
    CUDACHECK(cudaMemcpyAsync(v, dok, sizeof(int), cudaMemcpyDeviceToHost, s));
    CUDACHECK(cudaStreamSynchronize(s));
    return Status::Ok();
  };
  int ok = why.empty() ? (dir_mem_ ? 2 : 1) : 0;
  CORUN_CHECK(agree_min(&ok));
  CE_DLOG("init: agreement %d", ok);
  if (ok == 2) {
    // Every rank wrote its token before the agreement: the peers' must be there too, else the
    // ranks mapped different segments (a /dev/shm of their own each) and every call would stage.
    int shared = 1;
    const CeDirectTable t(dir_mem_, nranks_, rank_);
    for (int p = 0; p < nranks_; ++p) shared &= t.Token(p) == DirToken(all[p].process, p) ? 1 : 0;
    CORUN_CHECK(agree_min(&shared));
    if (!shared) {
      CE_DLOG("init: no direct copies: the ranks do not share the table %s", dir_name.c_str());
      ok = 1;
    }
  }
  CUDACHECK(cudaFree(dbuf));
  CUDACHECK(cudaFree(dok));
  if (ok == 2) {
    dir_ = std::make_unique<CeDirectTable>(dir_mem_, nranks_, rank_);
    DirectRetain();
  } else if (dir_mem_) {
    CeDirectUnmap(dir_mem_, dir_bytes_);
    dir_mem_ = nullptr;
  }
  // The form follows what the ranks got, alike on every rank (the agreement above): without
  // direct copies, 2 ranks pull (the staged pushes were the slower there).
  if (cfg_.pull_by_ranks && ok != 2) {
    CeConfig got = cfg_;
    got.direct = false;
    cfg_.ag_pull = CePullByRanks(got, nranks_);
  }
  if (!ok) {
    for (void* m : ipc_mapped_) cudaIpcCloseMemHandle(m);
    ipc_mapped_.clear();
    alive_.Release();
    alive_names_.clear();
    why_ = why.empty() ? "unsupported: another rank cannot use the copy-engine path" : why;
    usable_ = false;
    return Status::Ok();
  }

  peers_.assign(nranks_, Peer{});
  for (int p = 0; p < nranks_; ++p) {
    if (p != rank_) dir_threads_ = all[p].process == mine.process;  // alike for every peer (a mix is refused)
    if (all[p].process == mine.process) {
      peers_[p].rs_staging = reinterpret_cast<char*>(all[p].rs_staging);
      peers_[p].ag_staging = reinterpret_cast<char*>(all[p].ag_staging);
      peers_[p].flags = reinterpret_cast<uint32_t*>(all[p].flags);
    } else {
      peers_[p] = mapped[p];
    }
    peers_[p].rank = p;
    peers_[p].process = all[p].process;
  }
  CORUN_CHECK(SetUpSignalsAndStreams(s));
  if (cfg_.enqueue_thread) CORUN_CHECK(StartEnqueue());
  usable_ = true;
  why_.clear();
  CE_DLOG("init: usable, %d lanes x %d peers, %d slots of %llu B, %s, signals by %s, direct copies %s%s", cfg_.lanes,
          Fan(), cfg_.slots, static_cast<unsigned long long>(slot_bytes_), cfg_.ag_pull ? "pull" : "push",
          signal_copy_ ? "copies" : "writes", dir_ ? "on" : "off", enq_stream_ ? ", calls queued by a thread" : "");
  StartMonitor();
  Register(this);
  return Status::Ok();
}

}  // namespace corun
