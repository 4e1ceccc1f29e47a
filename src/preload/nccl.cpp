// The NCCL stage: under `ce`, the program's ncclAllReduce / ncclReduceScatter / ncclAllGather are
// served by the copy-engine runtime (runtime/ce_comm.h) where corun/ce_route.h allows, else NCCL.
//
// Communicators created through the hooks are tracked; their CeComm is created collectively at the
// first call the CE path would serve (not at creation: a creation inside a group would deadlock
// CeComm::Init's synchronous NCCL calls, and communicators that never carry a large collective
// then hold no staging). Every rank routes a call alike (ce_route.h), so every rank reaches that
// first call and the Init in it. Without `ce` every hook is a plain pass-through.
#include <cuda.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <fmt/format.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ce_comm.h"
#include "corun/ce_route.h"
#include "preload.h"

#define CORUN_EXPORT extern "C" __attribute__((visibility("default")))

namespace corun {

// CeComm's NCCL functions: the program's own libnccl, past our hooks (corun's own calls must not
// be routed).
const CeNccl& CeNcclApi() {
  static const CeNccl api = [] {
    CeNccl a;
    auto sym = [](auto* fn, const char* name) {
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(NextSym("libnccl.so", name));
    };
    sym(&a.CommUserRank, "ncclCommUserRank");
    sym(&a.CommCount, "ncclCommCount");
    sym(&a.CommCuDevice, "ncclCommCuDevice");
    a.AllGather = reinterpret_cast<decltype(a.AllGather)>(RealOf(kHookNcclAllGather));
    a.AllReduce = reinterpret_cast<decltype(a.AllReduce)>(RealOf(kHookNcclAllReduce));
    sym(&a.GetErrorString, "ncclGetErrorString");
    return a;
  }();
  return api;
}

namespace {

template <class Fn>
Fn Real(HookId id) {
  return reinterpret_cast<Fn>(RealOf(id));
}

struct CommEntry {
  std::mutex mu;  // Init and calls of this rank's communicator (never held across ranks)
  bool nonblocking = false;
  int nranks = 0;
  CeState state = CeState::kNotCreated;
  std::unique_ptr<CeComm> ce;
  // ce->direct_calls() already added to the summary: with the enqueue thread a call is counted
  // when the thread has queued it, so each call and the destroy add what is new since.
  uint64_t direct_seen = 0;
};

struct Comms {
  std::mutex mu;
  std::map<ncclComm_t, std::shared_ptr<CommEntry>> live;
};
Comms& G() {
  static Comms* c = new Comms;  // lives as long as the process: hooks can run during exit
  return *c;
}

thread_local int t_group_depth = 0;

// Blocking unless the config says 0, or leaves it undefined and NCCL_COMM_BLOCKING=0 (NCCL's own
// rule); a split without a config inherits its parent's.
bool Blocking(const ncclConfig_t* cfg, bool inherited) {
  if (cfg && cfg->blocking != NCCL_CONFIG_UNDEF_INT) return cfg->blocking != 0;
  if (const char* e = std::getenv("NCCL_COMM_BLOCKING"); e && *e) return std::atoi(e) != 0;
  return inherited;
}

void Track(ncclComm_t comm, bool blocking) {
  if (!comm) return;
  auto e = std::make_shared<CommEntry>();
  e->nonblocking = !blocking;
  if (blocking) {
    auto count = CeNcclApi().CommCount;
    if (!count || count(comm, &e->nranks) != ncclSuccess) e->nranks = 0;
  }
  std::lock_guard<std::mutex> l(G().mu);
  G().live[comm] = std::move(e);
}

std::shared_ptr<CommEntry> Find(ncclComm_t comm) {
  std::lock_guard<std::mutex> l(G().mu);
  auto it = G().live.find(comm);
  return it == G().live.end() ? nullptr : it->second;
}

std::shared_ptr<CommEntry> Untrack(ncclComm_t comm) {
  std::lock_guard<std::mutex> l(G().mu);
  auto it = G().live.find(comm);
  if (it == G().live.end()) return nullptr;
  auto e = std::move(it->second);
  G().live.erase(it);
  return e;
}

// NCCL's data types and reductions by value (stable across NCCL versions), in corun's names.
std::string TypeName(ncclDataType_t t, size_t* bytes) {
  static const struct {
    const char* name;
    size_t bytes;
  } k[] = {{"int8", 1}, {"uint8", 1}, {"int32", 4}, {"uint32", 4}, {"int64", 8}, {"uint64", 8},
           {"fp16", 2}, {"fp32", 4},  {"fp64", 8},  {"bf16", 2},   {"fp8e4m3", 1}, {"fp8e5m2", 1}};
  const int i = static_cast<int>(t);
  if (i >= 0 && i < static_cast<int>(sizeof(k) / sizeof(k[0]))) {
    *bytes = k[i].bytes;
    return k[i].name;
  }
  *bytes = 1;
  return "type" + std::to_string(i);
}
std::string OpName(ncclRedOp_t op) {
  static const char* k[] = {"sum", "prod", "max", "min", "avg"};
  const int i = static_cast<int>(op);
  return i >= 0 && i < 5 ? k[i] : "custom" + std::to_string(i);
}

bool Capturing(cudaStream_t st) {
  using Fn = CUresult (*)(CUstream, CUstreamCaptureStatus*);
  static Fn fn = reinterpret_cast<Fn>(NextSym("libcuda.so", "cuStreamIsCapturing"));
  if (!fn) return false;  // no driver: nothing is being captured (and the CE path cannot start)
  CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
  // An error (e.g. an illegal query during another thread's global capture) counts as capture.
  if (fn(reinterpret_cast<CUstream>(st), &cs) != CUDA_SUCCESS) return true;
  return cs != CU_STREAM_CAPTURE_STATUS_NONE;
}

// Creates the CeComm of `comm` (collective: every rank gets here at the same call). Under e->mu.
void CreateCe(ncclComm_t comm, CommEntry* e) {
  State& s = S();
  const CeConfig& cfg = s.cfg.ce;  // read once when the library loaded (CORUN_CE_*)
  auto ce = std::make_unique<CeComm>();
  int prev = -1;
  const bool had_dev = cudaGetDevice(&prev) == cudaSuccess;
  (void)cudaGetLastError();
  Status st = Status::Ok();
  int dev = 0;
  auto cudev = CeNcclApi().CommCuDevice;
  if (!cudev || cudev(comm, &dev) != ncclSuccess) {
    st = Status::Error("ncclCommCuDevice failed");
  } else if (cudaSetDevice(dev) != cudaSuccess) {
    st = Status::Error(std::string("cudaSetDevice: ") + cudaGetErrorString(cudaGetLastError()));
  }
  cudaStream_t init = nullptr;
  if (st.ok() && cudaStreamCreateWithFlags(&init, cudaStreamNonBlocking) != cudaSuccess)
    st = Status::Error(std::string("cudaStreamCreateWithFlags: ") + cudaGetErrorString(cudaGetLastError()));
  if (st.ok()) {
    st = ce->Init(comm, cfg, init);
    if (st.ok() && cudaStreamSynchronize(init) != cudaSuccess)
      st = Status::Error(std::string("cudaStreamSynchronize: ") + cudaGetErrorString(cudaGetLastError()));
  }
  if (init) cudaStreamDestroy(init);
  if (had_dev) cudaSetDevice(prev);
  if (!st.ok()) {
    const std::string why = "init failed: " + st.message();
    fmt::print(stderr, "corun: copy-engine path not available, NCCL serves this communicator: {}\n", why);
    e->state = CeState::kUnusable;
    CeRecordComm(-1, e->nranks, false, why);
    return;
  }
  const bool usable = ce->usable();
  if (!usable && s.verbose)
    fmt::print(stderr, "corun: copy-engine path not available, NCCL serves this communicator: {}\n", ce->why());
  CeRecordComm(ce->rank(), e->nranks, usable, ce->why());
  e->state = usable ? CeState::kUsable : CeState::kUnusable;
  if (usable) e->ce = std::move(ce);
}

// One collective under `ce`: served here (returns true, *r the result) or left to NCCL (false,
// *to_nccl the reason, counted by the hook once NCCL has accepted the call).
bool Serve(CeOp kind, const void* send, void* recv, size_t count, ncclDataType_t dt, ncclRedOp_t op, ncclComm_t comm,
           cudaStream_t st, ncclResult_t* r, CeRoute* to_nccl) {
  std::shared_ptr<CommEntry> e = Find(comm);
  CeCallFacts f;
  f.tracked = e != nullptr;
  f.in_group = t_group_depth > 0;
  size_t eb = 1;
  f.dtype = TypeName(dt, &eb);
  f.op = kind == CeOp::kAllGather ? "sum" : OpName(op);
  const CeConfig& cfg = S().cfg.ce;
  std::unique_lock<std::mutex> l;
  if (e) {
    l = std::unique_lock<std::mutex>(e->mu);
    f.nonblocking = e->nonblocking;
    f.nranks = e->nranks;
    f.max_ranks = S().cfg.ce_max_ranks;
    f.state = e->state;
    const uint64_t ranks = kind == CeOp::kAllReduce ? 1 : static_cast<uint64_t>(e->nranks > 0 ? e->nranks : 1);
    f.bytes = static_cast<uint64_t>(count) * eb * ranks;
  }
  // The capture query only where everything before it already allows the CE path.
  if (f.tracked && !f.nonblocking && !f.in_group) f.capturing = Capturing(st);
  CeRoute route = CeRouteCall(f, cfg);
  if (route == CeRoute::kServe && f.state == CeState::kNotCreated) {
    CreateCe(comm, e.get());
    f.state = e->state;
    route = CeRouteCall(f, cfg);
  }
  if (route != CeRoute::kServe) {
    *to_nccl = route;
    return false;
  }
  DType t = DType::kFp32;
  ParseDType(f.dtype, &t);  // bf16 or fp32: CeRouteCall served nothing else
  int prev = -1;
  const bool had_dev = cudaGetDevice(&prev) == cudaSuccess;
  Status s = Status::Ok();
  const auto t0 = std::chrono::steady_clock::now();
  switch (kind) {
    case CeOp::kAllReduce: s = e->ce->AllReduce(send, recv, count, t, st); break;
    case CeOp::kReduceScatter: s = e->ce->ReduceScatter(send, recv, count, t, st); break;
    case CeOp::kAllGather: s = e->ce->AllGather(send, recv, count, t, st); break;
  }
  const uint64_t ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  if (had_dev) cudaSetDevice(prev);
  if (!s.ok()) {
    // Part of the call may be enqueued: never NCCL now (the peers are on the CE path).
    fmt::print(stderr, "corun: copy-engine {} failed: {}\n", CeOpName(kind), s.message());
    *r = ncclInternalError;
    return true;
  }
  CeCountServed(f.bytes, ns);
  const uint64_t direct = e->ce->direct_calls();
  CeCountDirect(direct - e->direct_seen);
  e->direct_seen = direct;
  *r = ncclSuccess;
  return true;
}

// Removes the CeComm of a communicator about to be destroyed or aborted.
void Forget(ncclComm_t comm, bool abort) {
  std::shared_ptr<CommEntry> e = Untrack(comm);
  if (!e) return;
  if (abort && e->ce) e->ce->Abort();  // thread-safe: releases the waits before taking the lock
  std::lock_guard<std::mutex> l(e->mu);
  if (e->ce) {
    e->ce->Drain();  // calls still with the enqueue thread are counted below
    CeCountDirect(e->ce->direct_calls() - e->direct_seen);
  }
  e->ce.reset();
  e->state = CeState::kUnusable;  // a call racing the destroy goes to NCCL, never to a freed CeComm
}

// A call NCCL accepted after the CE path declined it, counted by reason.
ncclResult_t ToNccl(ncclResult_t r, CeRoute why) {
  if (r == ncclSuccess) CeCountToNccl(why);
  return r;
}

}  // namespace

}  // namespace corun

using namespace corun;

// ---- the exported hooks (names must match hooks.cpp's table) -------------------------------
CORUN_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  auto real = Real<decltype(&ncclCommInitRank)>(kHookNcclCommInitRank);
  if (!real) return ncclSystemError;
  const ncclResult_t r = real(comm, nranks, id, rank);
  if (r == ncclSuccess && comm && CeOn()) Track(*comm, Blocking(nullptr, true));
  return r;
}

CORUN_EXPORT ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank,
                                                 ncclConfig_t* config) {
  auto real = Real<decltype(&ncclCommInitRankConfig)>(kHookNcclCommInitRankConfig);
  if (!real) return ncclSystemError;
  const ncclResult_t r = real(comm, nranks, id, rank, config);
  // A non-blocking communicator may still be in creation (ncclInProgress): tracked as such.
  if ((r == ncclSuccess || r == ncclInProgress) && comm && CeOn()) Track(*comm, Blocking(config, true));
  return r;
}

// Several devices in one call (one thread): no CE (its Init would need one thread per rank).
CORUN_EXPORT ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int* devlist) {
  auto real = Real<decltype(&ncclCommInitAll)>(kHookNcclCommInitAll);
  if (!real) return ncclSystemError;
  return real(comms, ndev, devlist);
}

CORUN_EXPORT ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, ncclConfig_t* config) {
  auto real = Real<decltype(&ncclCommSplit)>(kHookNcclCommSplit);
  if (!real) return ncclSystemError;
  const ncclResult_t r = real(comm, color, key, newcomm, config);
  if ((r == ncclSuccess || r == ncclInProgress) && newcomm && *newcomm && CeOn()) {
    std::shared_ptr<CommEntry> parent = Find(comm);
    Track(*newcomm, Blocking(config, !parent || !parent->nonblocking));
  }
  return r;
}

CORUN_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  auto real = Real<decltype(&ncclCommDestroy)>(kHookNcclCommDestroy);
  if (!real) return ncclSystemError;
  if (CeOn()) Forget(comm, false);
  return real(comm);
}

CORUN_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  auto real = Real<decltype(&ncclCommAbort)>(kHookNcclCommAbort);
  if (!real) return ncclSystemError;
  if (CeOn()) Forget(comm, true);
  return real(comm);
}

CORUN_EXPORT ncclResult_t ncclGroupStart() {
  auto real = Real<decltype(&ncclGroupStart)>(kHookNcclGroupStart);
  if (!real) return ncclSystemError;
  if (CeOn()) ++t_group_depth;
  return real();
}

CORUN_EXPORT ncclResult_t ncclGroupEnd() {
  auto real = Real<decltype(&ncclGroupEnd)>(kHookNcclGroupEnd);
  if (!real) return ncclSystemError;
  if (CeOn() && t_group_depth > 0) --t_group_depth;
  return real();
}

CORUN_EXPORT ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t dt, ncclRedOp_t op,
                                        ncclComm_t comm, cudaStream_t st) {
  auto real = Real<decltype(&ncclAllReduce)>(kHookNcclAllReduce);
  if (!real) return ncclSystemError;
  ncclResult_t r = ncclSuccess;
  CeRoute why = CeRoute::kServe;
  if (!CeOn()) return real(send, recv, count, dt, op, comm, st);
  if (Serve(CeOp::kAllReduce, send, recv, count, dt, op, comm, st, &r, &why)) return r;
  return ToNccl(real(send, recv, count, dt, op, comm, st), why);
}

CORUN_EXPORT ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recvcount, ncclDataType_t dt,
                                            ncclRedOp_t op, ncclComm_t comm, cudaStream_t st) {
  auto real = Real<decltype(&ncclReduceScatter)>(kHookNcclReduceScatter);
  if (!real) return ncclSystemError;
  ncclResult_t r = ncclSuccess;
  CeRoute why = CeRoute::kServe;
  if (!CeOn()) return real(send, recv, recvcount, dt, op, comm, st);
  if (Serve(CeOp::kReduceScatter, send, recv, recvcount, dt, op, comm, st, &r, &why)) return r;
  return ToNccl(real(send, recv, recvcount, dt, op, comm, st), why);
}

CORUN_EXPORT ncclResult_t ncclAllGather(const void* send, void* recv, size_t sendcount, ncclDataType_t dt,
                                        ncclComm_t comm, cudaStream_t st) {
  auto real = Real<decltype(&ncclAllGather)>(kHookNcclAllGather);
  if (!real) return ncclSystemError;
  ncclResult_t r = ncclSuccess;
  CeRoute why = CeRoute::kServe;
  if (!CeOn()) return real(send, recv, sendcount, dt, comm, st);
  if (Serve(CeOp::kAllGather, send, recv, sendcount, dt, ncclSum, comm, st, &r, &why)) return r;
  return ToNccl(real(send, recv, sendcount, dt, comm, st), why);
}
