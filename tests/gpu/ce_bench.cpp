// Standalone measurement of the copy-engine allreduce against NCCL on the GPUs of one process
// (a thread per GPU): bus bandwidth alone, and overlap beside cuBLASLt bf16 GEMMs on another
// stream (T_c, T_m, T, E). Burst timing: every stream is held on a host flag while the work is
// queued, then released at once, so host enqueue speed does not enter the numbers. Every output
// is verified. JSON on --out, a table on stdout.
#include <CLI/CLI.hpp>
#include <cuda.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "ce_comm.h"
#include "ce_reduce.h"
#include "corun/stats.h"
#include "data.h"
#include "device.h"
#include "driver.h"
#include "gemm_cublaslt.h"

using namespace corun;
using json = nlohmann::json;

namespace {

class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    const int gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(l, [&] { return gen != gen_; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_, count_ = 0, gen_ = 0;
};

#define DIE_IF(cond, msg)                                           \
  do {                                                              \
    if (cond) {                                                     \
      std::fprintf(stderr, "ce_bench: rank %d: %s\n", rank, std::string(msg).c_str()); \
      std::exit(1);                                                 \
    }                                                               \
  } while (0)
#define CK(expr)                                                    \
  do {                                                              \
    Status _s = (expr);                                             \
    DIE_IF(!_s.ok(), _s.ToString(true));                            \
  } while (0)
#define CU(expr) DIE_IF((expr) != cudaSuccess, std::string(#expr) + ": " + cudaGetErrorString(cudaGetLastError()))

struct Workload {
  std::string name;
  int64_t m = 0, n = 0, k = 0;
  int gemms = 0;
  int buckets = 0;
  uint64_t bucket_bytes = 0;
};

struct Shared {
  int n = 2, reps = 10, warmup = 3;
  Barrier* bar = nullptr;
  std::mutex mu;
  // key -> per-rank samples (ms); per-rep the maximum over ranks is taken.
  std::map<std::string, std::vector<std::vector<double>>> samples;
  std::map<std::string, unsigned long long> wrong;
  std::map<std::string, std::string> notes;
  // What the communicator resolved (rank 0): the form and flags may differ from the request
  // (CeConfig::pull_by_ranks, ranks as threads).
  bool ran_pull = false, ran_signal_copy = false;
  uint64_t direct_calls = 0, staged_calls = 0;  // allreduces by direct copies / by the staging (rank 0)
};

void Record(Shared& sh, const std::string& key, int rank, double ms) {
  std::lock_guard<std::mutex> l(sh.mu);
  auto& v = sh.samples[key];
  if (v.size() < static_cast<size_t>(sh.n)) v.resize(sh.n);
  v[rank].push_back(ms);
}

void Rank(int rank, Shared& sh, const ncclUniqueId& id, const std::vector<uint64_t>& alone_sizes,
          const std::vector<Workload>& wls, const CeConfig& cfg) {
  CU(cudaSetDevice(rank));
  ncclComm_t nccl;
  DIE_IF(ncclCommInitRank(&nccl, sh.n, id, rank) != ncclSuccess, "ncclCommInitRank");
  int lo = 0, hi = 0;
  CU(cudaDeviceGetStreamPriorityRange(&lo, &hi));
  cudaStream_t cs, cs_hi, gs;
  CU(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
  CU(cudaStreamCreateWithPriority(&cs_hi, cudaStreamNonBlocking, hi));
  CU(cudaStreamCreateWithFlags(&gs, cudaStreamNonBlocking));
  CeComm ce;
  CK(ce.Init(nccl, cfg, cs));
  DIE_IF(!ce.usable(), ce.why());
  if (rank == 0) {
    sh.ran_pull = ce.ag_pull();
    sh.ran_signal_copy = ce.signal_copy();
  }
  // The gate: a device word the streams wait on, released by a copy on a stream of its own.
  uint32_t* gate = nullptr;
  uint32_t* gate_host = nullptr;
  cudaStream_t gate_stream;
  CU(cudaMalloc(&gate, 4));
  CU(cudaMemset(gate, 0, 4));
  CU(cudaHostAlloc(reinterpret_cast<void**>(&gate_host), 4, cudaHostAllocPortable));
  CU(cudaStreamCreateWithFlags(&gate_stream, cudaStreamNonBlocking));
  uint32_t gate_gen = 0;
  cudaEvent_t e0, e1, eg;
  CU(cudaEventCreate(&e0));
  CU(cudaEventCreate(&e1));
  CU(cudaEventCreate(&eg));
  unsigned long long* dw = nullptr;
  CU(cudaMalloc(&dw, sizeof(*dw)));

  // One timed burst: `issue` queues work on cs (and gs, joined back into cs) behind the gate.
  auto burst = [&](const std::function<void()>& issue, bool uses_gemm) -> double {
    ++gate_gen;
    sh.bar->Wait();
    // Safety: if queueing blocks (a library waiting on the held stream), release after 5 s; the
    // repetition is then marked and left out. It cannot help when the blocked call holds the
    // context (a lazy module load that synchronises it): hence nothing is launched for the first
    // time behind the gate.
    std::mutex gm;
    std::condition_variable gcv;
    bool released = false, forced = false;
    auto release = [&] {
      *gate_host = gate_gen;
      cudaMemcpyAsync(gate, gate_host, 4, cudaMemcpyHostToDevice, gate_stream);
      cudaStreamSynchronize(gate_stream);
    };
    std::thread safety([&] {
      cudaSetDevice(rank);
      std::unique_lock<std::mutex> l(gm);
      if (!gcv.wait_for(l, std::chrono::seconds(5), [&] { return released; })) {
        forced = true;
        release();
      }
    });
    Driver().cuStreamWaitValue32(reinterpret_cast<CUstream>(cs), reinterpret_cast<CUdeviceptr>(gate), gate_gen,
                                 CU_STREAM_WAIT_VALUE_GEQ);
    CU(cudaEventRecord(e0, cs));
    if (uses_gemm) CU(cudaStreamWaitEvent(gs, e0, 0));
    issue();
    if (uses_gemm) {
      CU(cudaEventRecord(eg, gs));
      CU(cudaStreamWaitEvent(cs, eg, 0));
    }
    CU(cudaEventRecord(e1, cs));
    sh.bar->Wait();
    {
      std::lock_guard<std::mutex> l(gm);
      if (!forced) release();
      released = true;
    }
    gcv.notify_all();
    safety.join();
    CU(cudaStreamSynchronize(cs));
    if (forced) {
      std::lock_guard<std::mutex> l(sh.mu);
      sh.notes["forced_gate_release"] = "yes: queueing blocked behind the gate at least once";
      return -1.0;
    }
    float ms = 0;
    CU(cudaEventElapsedTime(&ms, e0, e1));
    return ms;
  };
  auto verify = [&](const void* out, uint64_t count, uint32_t seed) -> unsigned long long {
    CU(cudaMemsetAsync(dw, 0, sizeof(*dw), cs));
    CK(VerifyCollective(out, DType::kBf16, VerifyMode::kSumAll, count, rank, sh.n, seed, dw, cs));
    unsigned long long w = 0;
    CU(cudaMemcpyAsync(&w, dw, sizeof(w), cudaMemcpyDeviceToHost, cs));
    CU(cudaStreamSynchronize(cs));
    return w;
  };
  auto add_wrong = [&](const std::string& key, unsigned long long w) {
    std::lock_guard<std::mutex> l(sh.mu);
    sh.wrong[key] += w;
  };
  // backend: "nccl" (default-priority stream), "nccl_prio" (highest priority), "ce".
  auto allreduce = [&](const std::string& backend, const void* in, void* out, uint64_t count) {
    if (backend == "ce") {
      CK(ce.AllReduce(in, out, count, DType::kBf16, cs));
    } else if (backend == "nccl") {
      DIE_IF(ncclAllReduce(in, out, count, ncclBfloat16, ncclSum, nccl, cs) != ncclSuccess, "ncclAllReduce");
    } else {
      // On the high-priority stream, joined with cs both ways.
      CU(cudaEventRecord(eg, cs));
      CU(cudaStreamWaitEvent(cs_hi, eg, 0));
      DIE_IF(ncclAllReduce(in, out, count, ncclBfloat16, ncclSum, nccl, cs_hi) != ncclSuccess, "ncclAllReduce");
      CU(cudaEventRecord(eg, cs_hi));
      CU(cudaStreamWaitEvent(cs, eg, 0));
    }
  };
  const std::vector<std::string> backends = {"nccl", "nccl_prio", "ce"};
  // Rule of this tool: nothing is launched for the first time behind the gate (see the GEMM
  // below). The verifier and the fill kernel are loaded here, outside any gate.
  {
    void* tmp = nullptr;
    CU(cudaMalloc(&tmp, 4096));
    CK(FillCollective(tmp, DType::kBf16, 2048, rank, 0, 11, cs));
    (void)verify(tmp, 2048, 11);
    CU(cudaFree(tmp));
  }

  // Alone.
  for (uint64_t bytes : alone_sizes) {
    const uint64_t count = bytes / 2;
    void *in = nullptr, *out = nullptr;
    CU(cudaMalloc(&in, bytes));
    CU(cudaMalloc(&out, bytes));
    CK(FillCollective(in, DType::kBf16, count, rank, 0, 11, cs));
    for (const auto& b : backends) {
      const std::string key = "alone/" + std::to_string(bytes >> 20) + "MiB/" + b;
      for (int i = 0; i < sh.warmup + sh.reps; ++i) {
        CU(cudaMemsetAsync(out, 0xFF, bytes, cs));
        const double ms = burst([&] { allreduce(b, in, out, count); }, false);
        if (i >= sh.warmup && ms >= 0) Record(sh, key, rank, ms);
        if (i == 0 || i + 1 == sh.warmup + sh.reps) add_wrong(key, verify(out, count, 11));
      }
    }
    CU(cudaFree(in));
    CU(cudaFree(out));
  }

  // Overlap beside GEMMs.
  for (const Workload& w : wls) {
    CublasLtGemm g;
    CK(g.Init(w.m, w.n, w.k));
    __nv_bfloat16 *a, *bm, *c;
    CU(cudaMalloc(&a, w.m * w.k * 2));
    CU(cudaMalloc(&bm, w.n * w.k * 2));
    CU(cudaMalloc(&c, w.m * w.n * 2));
    CK(FillGemmInput(a, w.m * w.k, 1, cs));
    CK(FillGemmInput(bm, w.n * w.k, 2, cs));
    const uint64_t count = w.bucket_bytes / 2;
    std::vector<void*> in(w.buckets), out(w.buckets);
    for (int b = 0; b < w.buckets; ++b) {
      CU(cudaMalloc(&in[b], w.bucket_bytes));
      CU(cudaMalloc(&out[b], w.bucket_bytes));
      CK(FillCollective(in[b], DType::kBf16, count, rank, 0, 100 + b, cs));
    }
    auto gemms = [&] {
      for (int i = 0; i < w.gemms; ++i) CK(g.Run(a, bm, c, 0, gs));
    };
    // One GEMM outside the gate first: cuBLASLt's kernel is loaded at its first launch (lazy
    // loading), and a load may synchronise the context. Behind the gate that waits for the held
    // stream, whose release needs this thread at the next barrier (the hang after the alone phase).
    CK(g.Run(a, bm, c, 0, gs));
    CU(cudaStreamSynchronize(gs));
    auto comm = [&](const std::string& be) {
      for (int b = 0; b < w.buckets; ++b) allreduce(be, in[b], out[b], count);
    };
    for (int i = 0; i < sh.warmup + sh.reps; ++i) {
      const double ms = burst(gemms, true);
      if (i >= sh.warmup && ms >= 0) Record(sh, w.name + "/T_m", rank, ms);
    }
    for (const auto& be : backends) {
      for (int i = 0; i < sh.warmup + sh.reps; ++i) {
        double ms = burst([&] { comm(be); }, false);
        if (i >= sh.warmup && ms >= 0) Record(sh, w.name + "/" + be + "/T_c", rank, ms);
        ms = burst([&] {
          gemms();
          comm(be);
        }, true);
        if (i >= sh.warmup && ms >= 0) Record(sh, w.name + "/" + be + "/T", rank, ms);
        if (i + 1 == sh.warmup + sh.reps) {
          unsigned long long wr = 0;
          for (int b = 0; b < w.buckets; ++b) wr += verify(out[b], count, 100 + b);
          add_wrong(w.name + "/" + be, wr);
        }
      }
    }
    for (int b = 0; b < w.buckets; ++b) {
      CU(cudaFree(in[b]));
      CU(cudaFree(out[b]));
    }
    CU(cudaFree(a));
    CU(cudaFree(bm));
    CU(cudaFree(c));
  }
  CK(ce.CheckError());
  if (rank == 0) {
    sh.direct_calls = ce.direct_calls();
    sh.staged_calls = ce.staged_calls();
  }
  sh.bar->Wait();
  ncclCommDestroy(nccl);
}

json Sum(const Summary& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}}; }

// The reduction kernel alone on GPU 0, as a 2-rank allreduce launches it: a batch of two 16 MiB
// bf16 slices (own + the peer's staging), writing the output and, in the pull form, the staging
// the peer pulls from. Rate = bytes read and written per second; every output is verified.
// `reduce_sms` > 0: sized for that many SMs (CeConfig::reduce_sms), else for all.
json ReduceKernelRate(int reps, int reduce_sms, unsigned long long* wrong) {
  const int rank = 0;  // for the error lines
  const uint64_t count = 8ull << 20;  // bf16 elements per slice: 16 MiB
  const int items = 2;
  CU(cudaSetDevice(0));
  cudaStream_t s;
  CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  int sms = 0;
  CU(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  if (reduce_sms > 0) sms = std::min(sms, reduce_sms);
  std::vector<void*> bufs;
  auto alloc = [&]() {
    void* p = nullptr;
    CU(cudaMalloc(&p, count * 2));
    bufs.push_back(p);
    return p;
  };
  unsigned long long* dw = nullptr;
  CU(cudaMalloc(&dw, sizeof(*dw)));
  CU(cudaMemset(dw, 0, sizeof(*dw)));
  CeReduceBatch b;
  b.items = items;
  b.npeers = 1;
  for (int i = 0; i < items; ++i) {
    CeReduceItem& it = b.item[i];
    it.own = alloc();
    it.peer[0] = alloc();
    it.out = alloc();
    it.out2 = alloc();
    it.count = count;
    // As rank 0 and rank 1 of an allreduce of `count` elements: the sum is checkable.
    CK(FillCollective(const_cast<void*>(it.own), DType::kBf16, count, 0, 0, 7 + i, s));
    CK(FillCollective(const_cast<void*>(it.peer[0]), DType::kBf16, count, 1, 0, 7 + i, s));
  }
  cudaEvent_t e0, e1;
  CU(cudaEventCreate(&e0));
  CU(cudaEventCreate(&e1));
  json j = json::array();
  for (bool two : {true, false}) {
    CeReduceBatch rb = b;
    if (!two)
      for (int i = 0; i < items; ++i) rb.item[i].out2 = nullptr;
    std::vector<double> ms;
    for (int r = 0; r < reps + 3; ++r) {
      for (int i = 0; i < items; ++i) {  // stale outputs must not pass the check
        CU(cudaMemsetAsync(rb.item[i].out, 0xff, count * 2, s));
        if (two) CU(cudaMemsetAsync(rb.item[i].out2, 0xff, count * 2, s));
      }
      CU(cudaEventRecord(e0, s));
      CK(CeReduceLaunch(rb, DType::kBf16, sms, s));
      CU(cudaEventRecord(e1, s));
      CU(cudaEventSynchronize(e1));
      float t = 0;
      CU(cudaEventElapsedTime(&t, e0, e1));
      if (r >= 3) ms.push_back(t);
      for (int i = 0; i < items; ++i) {
        for (void* o : {rb.item[i].out, rb.item[i].out2})
          if (o) CK(VerifyCollective(o, DType::kBf16, VerifyMode::kSumAll, count, 0, 2, 7 + i, dw, s));
      }
    }
    unsigned long long w = 0;
    CU(cudaMemcpy(&w, dw, sizeof(w), cudaMemcpyDeviceToHost));
    CU(cudaMemset(dw, 0, sizeof(*dw)));
    *wrong += w;
    const Summary sm = Summarize(ms);
    const double bytes = double(items) * count * 2 * (two ? 4 : 3);
    const double gbs = bytes / (sm.median * 1e-3) / 1e9;
    j.push_back({{"outputs", two ? 2 : 1}, {"items", items}, {"sms", sms}, {"bytes_per_item", count * 2}, {"t_ms", Sum(sm)},
                 {"traffic_gbs", gbs}, {"wrong", w}});
    std::printf("reduce kernel, %d x 16 MiB bf16, %d output(s)%s %3d SMs %8.1f us (%.1f-%.1f) %7.0f GB/s moved %6llu wrong\n",
                items, two ? 2 : 1, two ? " (pull form):" : " (push form):", sms, 1e3 * sm.median, 1e3 * sm.min,
                1e3 * sm.max, gbs, w);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  for (void* p : bufs) cudaFree(p);
  cudaFree(dw);
  cudaStreamDestroy(s);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  // Enough hardware queues that a stream wait never blocks an unrelated stream (the gate's
  // release copy above all). Read when a CUDA context is created: first thing, before any CUDA call.
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  CLI::App app{"copy-engine allreduce vs NCCL: alone and beside cuBLASLt GEMMs"};
  int gpus = 0, reps = 10, warmup = 3;
  std::string out_path;
  bool quick = false;
  CeConfig cfg;
  app.add_option("--gpus", gpus, "GPUs (threads of this process); 0 = all");
  app.add_option("--reps", reps, "timed repetitions (>= 10 for reports)");
  app.add_option("--warmup", warmup, "untimed repetitions first");
  app.add_option("--chunk-mib", cfg.chunk_bytes, "chunk size in bytes")->transform([](std::string s) {
    return std::to_string(std::stoull(s) << 20);
  });
  app.add_option("--slots", cfg.slots);
  app.add_option("--lanes", cfg.lanes);
  app.add_option("--batch", cfg.batch);
  app.add_option("--reduce-sms", cfg.reduce_sms, "SMs a reduction kernel is sized for, 0 = all (CeConfig::reduce_sms)");
  std::string reduce_priority = cfg.reduce_least_priority ? "least" : "top";
  app.add_option("--reduce-priority", reduce_priority,
                 "the reductions' launch priority, the device's top or least (CeConfig::reduce_least_priority)")
      ->check(CLI::IsMember({"top", "least"}));
  app.add_flag("--pull,!--push", cfg.ag_pull, "all-gather step by pulls or by pushes + unpack (CeConfig::ag_pull)");
  app.add_flag("--phases,!--no-phases", cfg.phases, "allreduce in rounds of slots chunks (CeConfig::phases)");
  app.add_flag("--direct,!--no-direct", cfg.direct,
               "allreduce all-gather copies straight between the outputs (CeConfig::direct)");
  app.add_flag("--bulk,!--no-bulk", cfg.bulk, "direct push-form allreduces a round per copy (CeConfig::bulk)");
  app.add_option("--bulk-round", cfg.bulk_round, "chunks per bulk round, 0 = slots (CeConfig::bulk_round)")
      ->check(CLI::Range(0, 64));
  app.add_flag("--bulk-caller,!--no-bulk-caller", cfg.bulk_on_caller,
               "phased bulk allreduces on the caller's stream (CeConfig::bulk_on_caller)");
  app.add_flag("--enqueue-thread,!--no-enqueue-thread", cfg.enqueue_thread,
               "calls queued on the GPU by the communicator's thread (CeConfig::enqueue_thread)");
  std::string signal = cfg.signal_copy ? "copy" : "write";
  app.add_option("--signal", signal, "flags to peers by stream writes or by 4-byte copies (CeConfig::signal_copy)")
      ->check(CLI::IsMember({"write", "copy"}));
  bool alone_only = false;
  std::vector<uint64_t> sizes_mib;
  app.add_flag("--alone-only", alone_only, "only the allreduce alone (no GEMM workloads)");
  app.add_option("--sizes-mib", sizes_mib, "comma-separated allreduce sizes alone, MiB (default 25,224,896)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--out", out_path, "JSON output file");
  app.add_flag("--quick", quick, "smaller run (smoke test)");
  CLI11_PARSE(app, argc, argv);
  if (app.count("--pull") + app.count("--push") > 0) cfg.pull_by_ranks = false;
  cfg.signal_copy = signal == "copy";
  cfg.reduce_least_priority = reduce_priority == "least";
  const std::string bad = CeConfigError(cfg);
  if (!bad.empty()) {
    std::fprintf(stderr, "ce_bench: %s\n", bad.c_str());
    return 2;
  }
  int have = 0;
  if (cudaGetDeviceCount(&have) != cudaSuccess || have < 2) {
    std::fprintf(stderr, "ce_bench: needs 2 GPUs, %d visible\n", have);
    return 2;
  }
  Shared sh;
  sh.n = gpus > 0 ? std::min(gpus, have) : have;
  sh.reps = reps;
  sh.warmup = warmup;
  Barrier bar(sh.n);
  sh.bar = &bar;
  std::vector<uint64_t> alone = {25ull << 20, 224ull << 20, 896ull << 20};
  std::vector<Workload> wls = {{"gemm1024x16384x4096x32+40x25MiB", 1024, 16384, 4096, 32, 40, 25ull << 20},
                               {"gemm8192^3x4+896MiB", 8192, 8192, 8192, 4, 1, 896ull << 20},
                               {"gemm8192^3x4+4x224MiB", 8192, 8192, 8192, 4, 4, 224ull << 20}};
  if (quick) {
    alone = {25ull << 20};
    wls.resize(1);
  }
  if (!sizes_mib.empty()) {
    alone.clear();
    for (uint64_t mib : sizes_mib) alone.push_back(mib << 20);
  }
  if (alone_only) wls.clear();
  ncclUniqueId id;
  ncclGetUniqueId(&id);
  unsigned long long reduce_wrong = 0;
  const json reduce_rate = ReduceKernelRate(std::max(reps, 10), cfg.reduce_sms, &reduce_wrong);
  std::vector<std::thread> th;
  for (int r = 0; r < sh.n; ++r) th.emplace_back([&, r] { Rank(r, sh, id, alone, wls, cfg); });
  for (auto& t : th) t.join();

  DeviceInfo dev;
  QueryDevice(0, &dev);
  json j;
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d", std::gmtime(&now));
  j["meta"] = {{"card", dev.name}, {"gpus", sh.n}, {"nccl", NcclVersion()}, {"cuda_runtime", CudaRuntimeVersion()},
               {"cuda_driver", CudaDriverVersion()}, {"date", date}, {"reps", reps}, {"warmup", warmup},
               {"timing", "burst (streams held on a host flag while queued), per rep the max over ranks"},
               {"ce_config", {{"chunk_bytes", cfg.chunk_bytes}, {"slots", cfg.slots}, {"lanes", cfg.lanes}, {"batch", cfg.batch},
                              {"phases", cfg.phases}, {"direct", cfg.direct}, {"bulk", cfg.bulk}, {"bulk_round", cfg.bulk_round}, {"bulk_on_caller", cfg.bulk_on_caller}, {"enqueue_thread", cfg.enqueue_thread}, {"reduce_sms", cfg.reduce_sms}, {"reduce_priority", reduce_priority}, {"ag_pull", cfg.ag_pull}, {"pull_by_ranks", cfg.pull_by_ranks},
                              {"signal", signal}, {"ran_ag_pull", sh.ran_pull},
                              {"ran_signal", sh.ran_signal_copy ? "copy" : "write"},
                              {"direct_calls", sh.direct_calls}, {"staged_calls", sh.staged_calls}}}};
  auto per_rep_max = [&](const std::string& key) {
    const auto& v = sh.samples[key];
    if (v.empty()) return Summary{};
    std::vector<double> m(v[0].size(), 0);
    for (const auto& r : v)
      for (size_t i = 0; i < r.size() && i < m.size(); ++i) m[i] = std::max(m[i], r[i]);
    return Summarize(m);
  };
  unsigned long long total_wrong = 0;
  for (auto& kv : sh.wrong) total_wrong += kv.second;
  total_wrong += reduce_wrong;
  j["reduce_kernel"] = reduce_rate;
  std::printf("%-40s %10s %20s %10s %6s\n", "alone (bf16 allreduce)", "t ms", "min-max", "busbw GB/s", "wrong");
  for (uint64_t bytes : alone) {
    for (const std::string b : {"nccl", "nccl_prio", "ce"}) {
      const std::string key = "alone/" + std::to_string(bytes >> 20) + "MiB/" + b;
      const Summary s = per_rep_max(key);
      const double factor = 2.0 * (sh.n - 1) / sh.n;
      auto bw = [&](double ms) { return bytes * factor / (ms * 1e-3) / 1e9; };
      j["alone"].push_back({{"bytes", bytes}, {"backend", b}, {"t_ms", Sum(s)},
                            {"busbw_gbs", {{"median", bw(s.median)}, {"min", bw(s.max)}, {"max", bw(s.min)}}},
                            {"wrong", sh.wrong[key]}});
      std::printf("%-40s %10.3f %9.3f-%-9.3f %10.1f %6llu\n", key.c_str(), s.median, s.min, s.max, bw(s.median),
                  sh.wrong[key]);
    }
  }
  std::printf("\n%-48s %9s %9s %9s %6s %6s\n", "overlap", "T_m", "T_c", "T", "E %", "wrong");
  for (const Workload& w : wls) {
    const Summary tm = per_rep_max(w.name + "/T_m");
    for (const std::string b : {"nccl", "nccl_prio", "ce"}) {
      const Summary tc = per_rep_max(w.name + "/" + b + "/T_c");
      const Summary t = per_rep_max(w.name + "/" + b + "/T");
      const double e = OverlapEfficiency(tm.median, tc.median, t.median);
      j["overlap"].push_back({{"workload", w.name}, {"backend", b}, {"T_m", Sum(tm)}, {"T_c", Sum(tc)}, {"T", Sum(t)},
                              {"E", e}, {"sequential_ms", tm.median + tc.median},
                              {"vs_sequential", RelativeChange(t.median, tm.median + tc.median)},
                              {"wrong", sh.wrong[w.name + "/" + b]}});
      std::printf("%-38s %-9s %9.3f %9.3f %9.3f %6.1f %6llu   T %.3f-%.3f\n", w.name.c_str(), b.c_str(), tm.median,
                  tc.median, t.median, 100 * e, sh.wrong[w.name + "/" + b], t.min, t.max);
    }
  }
  j["wrong_total"] = total_wrong;
  j["notes"] = sh.notes;
  if (!out_path.empty()) std::ofstream(out_path) << j.dump(2) << "\n";
  if (total_wrong) {
    std::fprintf(stderr, "ce_bench: %llu wrong values\n", total_wrong);
    return 1;
  }
  return 0;
}
