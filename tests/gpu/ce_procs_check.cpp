// Copy-engine collectives with one process per GPU (the cross-process path: IPC handles), run by
// a launcher (mpirun -np N, torchrun, ...): every collective x dtype x odd sizes against NCCL's
// result (bit for bit on 2 ranks) and the exact expectation; every wait bounded (a stuck call
// aborts the CE communicator, prints its flags and fails instead of hanging).
// --exit-rank R: a rank lost mid-collective instead. Rank R _exit()s (status 0, one line on
// stderr) right after queueing the first of --calls allreduces of --mib MiB; every other rank
// must find it gone through the communicator's liveness check (ce_comm.h), end its waits, abort
// NCCL and exit 1 with "peer lost: ... rank R (pid X) exited" (ce_procs_check.sh exit NP checks
// the bound and that no process is left).
// Exit: 0 all matched, 1 a mismatch or an error (a lost peer too), 2 bad input or environment.
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "bootstrap.h"
#include "ce_check.h"
#include "ce_comm.h"
#include "data.h"

using namespace corun;

namespace {

int g_rank = 0;
int g_fail = 0;

void Fail(const std::string& what) {
  std::fprintf(stderr, "ce_procs_check: rank %d: FAIL: %s\n", g_rank, what.c_str());
  ++g_fail;
}

using cecheck::Case;

struct Options {
  int exit_rank = -1;  // -1: the matching checks
  int calls = 8;
  int mib = 256;
};

// One rank leaves mid-series; the others must end with the reason, never hang (see the top).
int RunPeerExit(const ProcessModel& pm, ncclComm_t nccl, cudaStream_t s, const Options& o) {
  CeComm ce;
  Status st = ce.Init(nccl, CeConfig{}, s);
  if (!st.ok()) {
    Fail("CeComm::Init: " + st.ToString(true));
    return 1;
  }
  if (!ce.usable()) {
    Fail("CE path unusable across processes: " + ce.why());
    return 1;
  }
  const uint64_t count = (static_cast<uint64_t>(o.mib) << 20) / DTypeSize(DType::kBf16);
  void* buf = nullptr;
  int* tok = nullptr;
  if (cudaMalloc(&buf, count * DTypeSize(DType::kBf16)) != cudaSuccess || cudaMalloc(&tok, sizeof(int)) != cudaSuccess) {
    Fail("cudaMalloc of " + std::to_string(o.mib) + " MiB");
    return 1;
  }
  cudaMemsetAsync(buf, 0, count * DTypeSize(DType::kBf16), s);
  // Every rank starts the series together: the survivors are inside it when the rank leaves.
  ncclAllReduce(tok, tok, 1, ncclInt32, ncclSum, nccl, s);
  cudaStreamSynchronize(s);
  const auto t0 = std::chrono::steady_clock::now();
  int issued = 0;
  for (int i = 0; i < o.calls; ++i) {
    st = ce.AllReduce(buf, buf, count, DType::kBf16, s);
    if (!st.ok()) break;  // the abort came while this thread was still queueing
    ++issued;
    if (pm.rank == o.exit_rank) {
      std::fprintf(stderr, "ce_procs_check: rank %d: exiting on purpose with call 1 of %d queued\n", pm.rank, o.calls);
      std::fflush(stderr);
      _exit(0);
    }
  }
  // Bounded: the liveness check must end the waits long before this.
  const double limit_s = 60;
  while (cudaStreamQuery(s) == cudaErrorNotReady &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < limit_s)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const bool drained = cudaStreamQuery(s) != cudaErrorNotReady;
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Status err = ce.CheckError();
  if (!drained) {
    Fail("rank " + std::to_string(o.exit_rank) + " left and the calls were still waiting after " +
         std::to_string(limit_s) + " s; flags: " + ce.DumpFlags());
    ce.Abort();
  } else if (err.ok()) {
    Fail(std::to_string(issued) + " calls ended without an error, yet rank " + std::to_string(o.exit_rank) +
         " had left with call 1 queued");
  } else {
    std::fprintf(stderr, "ce_procs_check: rank %d: peer lost: %s (after %.2f s, %d of %d calls queued)\n", pm.rank,
                 err.message().c_str(), took, issued, o.calls);
  }
  cudaStreamSynchronize(s);
  cudaFree(buf);
  cudaFree(tok);
  return 1;  // a survivor of a lost rank never succeeds
}

int Run(const Options& o) {
  ProcessModel pm;
  Status st = DetectProcessModel(&pm);
  if (!st.ok()) {
    std::fprintf(stderr, "ce_procs_check: %s\n", st.message().c_str());
    return 2;
  }
  if (!pm.multi_process() || pm.world < 2) {
    std::fprintf(stderr, "ce_procs_check: needs a launcher with 2 or more ranks (mpirun -np 2, torchrun)\n");
    return 2;
  }
  g_rank = pm.rank;
  if (o.exit_rank >= pm.world) {
    std::fprintf(stderr, "ce_procs_check: --exit-rank %d: not a rank of %d\n", o.exit_rank, pm.world);
    return 2;
  }
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess || visible < 1) {
    std::fprintf(stderr, "ce_procs_check: rank %d: no GPU visible\n", pm.rank);
    return 1;
  }
  cudaSetDevice(DeviceForLocalRank(pm.local_rank, visible));
  ncclUniqueId id;
  st = ExchangeUniqueId(pm, &id, 60);
  if (!st.ok()) {
    std::fprintf(stderr, "ce_procs_check: rank %d: %s\n", pm.rank, st.message().c_str());
    return 1;
  }
  ncclComm_t nccl = nullptr;
  if (ncclCommInitRank(&nccl, pm.world, id, pm.rank) != ncclSuccess) {
    Fail("ncclCommInitRank");
    return 1;
  }
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (o.exit_rank >= 0) {
    // A lost rank: NCCL's kernels would wait for it forever, so its communicator is aborted.
    cecheck::WarmKernels(pm.rank, pm.world, s);
    const int rc = RunPeerExit(pm, nccl, s, o);
    ncclCommAbort(nccl);
    cudaStreamDestroy(s);
    return rc;
  }
  const int n = pm.world;
  std::vector<Case> cases;
  for (Collective col : {Collective::kAllReduce, Collective::kReduceScatter, Collective::kAllGather})
    for (DType t : {DType::kBf16, DType::kFp32})
      for (uint64_t c : {uint64_t{1}, uint64_t{7}, uint64_t{1000003}, static_cast<uint64_t>((25ull << 20) / DTypeSize(t) + 5)})
        cases.push_back({col, t, c});
  // The default configuration, then a stressed one (tiny chunks, two slots: every slot reused) in
  // the pull form whatever the rank count (the default pushes: CePullByRanks).
  CeConfig stressed = cecheck::StressedConfig();
  // The pull form at the default chunks whatever the rank count (CORUN_CE_PULL=1 on 4 ranks).
  CeConfig pull;
  pull.ag_pull = true;
  pull.pull_by_ranks = false;
  // The push form of the all-gather step, with flags by 4-byte copies (the defaults write the
  // flags straight into the peers' mapped memory).
  CeConfig push, stressed_push = stressed;
  push.ag_pull = stressed_push.ag_pull = false;
  push.pull_by_ranks = stressed_push.pull_by_ranks = false;
  push.signal_copy = stressed_push.signal_copy = true;
  push.bulk_round = 2;   // bulk rounds of 2 chunks, a round's pushes beside the previous all-gather
  push.phases = false;
  // The stressed configurations through the staging alone (the others copy straight between the
  // outputs where they can: CeConfig::direct).
  stressed.direct = stressed_push.direct = false;
  cecheck::WarmKernels(pm.rank, n, s);
  // The defaults with every call queued by the communicator's thread (CeConfig::enqueue_thread).
  CeConfig queued;
  queued.enqueue_thread = true;
  for (const CeConfig& cfg : {CeConfig{}, stressed, pull, push, stressed_push, queued}) {
    // The buffers outlive the communicator: its peers map this rank's outputs (direct copies) until
    // their communicators are destroyed, and every rank passes the token allreduce below only after
    // every rank's communicator is gone.
    cecheck::Buffers b;
    if (!b.Alloc(cases, n)) {
      Fail("cudaMalloc");
      break;
    }
    bool going = true;
    {
      CeComm ce;
      st = ce.Init(nccl, cfg, s);
      if (!st.ok()) { Fail("CeComm::Init: " + st.ToString(true)); break; }
      if (!ce.usable()) { Fail("CE path unusable across processes: " + ce.why()); break; }
      if (cfg.pull_by_ranks && ce.ag_pull() != CePullByRanks(cfg, n)) {
        Fail(std::string("the default form on ") + std::to_string(n) + " ranks is " + (ce.ag_pull() ? "pull" : "push"));
        break;
      }
      for (const Case& c : cases)
        // The stressed configurations (64 KiB chunks) on the small and odd sizes only: every slot
        // is reused hundreds of times there already, and 25 MiB in 64 KiB chunks takes seconds.
        if (going && (cfg.chunk_bytes >= (1u << 20) || (c.count != 1 && c.count * DTypeSize(c.t) < (8u << 20))))
          going = cecheck::CheckCase(ce, nccl, s, pm.rank, n, c, b, 30, Fail, [&] { ce.Abort(); });
      // Direct all-gather copies (on by default): the outputs were shared by IPC and most
      // allreduces used them (a call whose ranks are more than CeConfig::direct_wait_us apart
      // takes the staging).
      if (going && ce.direct_on() != cfg.direct) Fail("direct copies are not " + std::string(cfg.direct ? "on" : "off"));
      if (going && ce.queued() != cfg.enqueue_thread)
        Fail("calls are " + std::string(ce.queued() ? "" : "not ") + "queued by the communicator's thread");
      if (going && cfg.direct && ce.direct_calls() == 0)
        Fail("no allreduce took the direct copies (" + std::to_string(ce.staged_calls()) + " took the staging)");
      std::printf("ce_procs_check: rank %d: configuration %s: %llu allreduces direct, %llu by the staging\n", pm.rank,
                  cfg.ag_pull ? "pull" : "push", static_cast<unsigned long long>(ce.direct_calls()),
                  static_cast<unsigned long long>(ce.staged_calls()));
    }
    // Every rank's communicator is gone (drained, the peers' buffers closed) before any rank frees
    // buffers its peers had mapped.
    int* tok = nullptr;
    cudaMalloc(&tok, sizeof(int));
    ncclAllReduce(tok, tok, 1, ncclInt32, ncclSum, nccl, s);
    cudaStreamSynchronize(s);
    cudaFree(tok);
    if (!going) break;
  }
  cudaStreamDestroy(s);
  ncclCommDestroy(nccl);
  if (g_fail == 0) std::printf("ce_procs_check: rank %d of %d: every case matched\n", pm.rank, n);
  return g_fail ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"copy-engine collectives, one process per GPU, against NCCL"};
  app.add_option("--exit-rank", o.exit_rank, "this rank leaves after queueing the first call; the others must end")
      ->check(CLI::Range(0, 1023));
  app.add_option("--calls", o.calls, "allreduces in the series (--exit-rank)")->check(CLI::Range(2, 1000));
  app.add_option("--mib", o.mib, "MiB per allreduce (--exit-rank)")->check(CLI::Range(1, 4096));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "ce_procs_check: %s\n", e.what());
    return 2;
  }
  return Run(o);
}
