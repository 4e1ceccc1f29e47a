// The process model and RunBench: options checked, ranks of this process started (a thread per
// GPU, or the one rank under mpirun/torchrun), run metadata, the maxconn1 child, the profile
// cache of corun tune, the JSON document and the exit status.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "../runtime/checks.h"
#include "../runtime/watchdog.h"
#include "child.h"
#include "corun/strings.h"
#include "rank.h"

namespace corun {
namespace {

// The devices of this process's ranks; returns an exit code (0: go on).
int SelectDevices(const BenchOptions& o, Shared* sh, std::vector<int>* devices) {
  Status s = DetectProcessModel(&sh->pm);
  int ndev = 0;
  if (s.ok()) s = CountDevices(&ndev);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", CommandName(o), s.message().c_str());
    return 2;
  }
  if (sh->pm.multi_process()) {
    sh->nranks = sh->pm.world;
    devices->push_back(DeviceForLocalRank(sh->pm.local_rank, ndev));
  } else {
    const int n = o.ngpus > 0 ? o.ngpus : ndev;
    if (n > ndev) {
      std::fprintf(stderr, "%s: -g %d asks for more GPUs than the %d visible\n", CommandName(o), n, ndev);
      return 2;
    }
    sh->nranks = n;
    for (int i = 0; i < n; ++i) devices->push_back(i);
  }
  return 0;
}

void FillMeta(const BenchOptions& o, const Shared& sh, const DeviceInfo& d0, Meta* m) {
  m->card = d0.name;
  m->gpus = sh.nranks;
  m->sms = d0.sms;
  m->nccl = NcclVersion();
  m->cuda_runtime = CudaRuntimeVersion();
  m->cuda_driver = CudaDriverVersion();
  m->driver = Nvml::Get().DriverVersion();
  m->date = NowIsoUtc();
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  m->host = host;
  m->process_model = sh.pm.kind;
  m->priority_lowest = d0.priority_lowest;
  m->priority_highest = d0.priority_highest;
  m->sustain_s = o.sustain_s;
  m->warmup = o.warmup;
  m->reps = o.reps;
  m->command_line = o.command_line;
  if (!Nvml::Get().ok()) m->notes.push_back("NVML unavailable (" + Nvml::Get().why() + "): no clock/power columns");
}

void PrintBanner(const BenchOptions& o, const Meta& m) {
  std::printf("# corun bench: %d x %s (%d SMs), NCCL %s, CUDA runtime %s / driver %s, %s, %s\n", m.gpus,
              m.card.c_str(), m.sms, m.nccl.c_str(), m.cuda_runtime.c_str(), m.cuda_driver.c_str(),
              m.process_model.c_str(), m.date.c_str());
  std::printf("# stream priorities: lowest %d, highest %d; warm-up %d, sustain %.1f s, %d timed reps (median, rank max)\n",
              m.priority_lowest, m.priority_highest, o.warmup, o.sustain_s, o.reps);
}

// Runs this process's ranks to the end; 1 when any failed (each failure on stderr).
int RunRanks(Shared& sh, const std::vector<int>& devices, int first_rank) {
  Watchdog::Get().Start(sh.o->watchdog_s);
  std::vector<std::thread> threads;
  std::vector<Status> results(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    threads.emplace_back([&, i] {
      Rank r(sh, first_rank + static_cast<int>(i), devices[i]);
      results[i] = r.Run();
    });
  }
  for (auto& t : threads) t.join();
  Watchdog::Get().Stop();
  int code = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) {
      std::fprintf(stderr, "%s: rank %d: %s\n", CommandName(*sh.o), first_rank + static_cast<int>(i),
                   results[i].ToString(true).c_str());
      code = 1;
    }
  }
  return code;
}

// A child's rows: printed under their own header, baseline columns against this process's rows.
void PrintChildRows(const std::string& title, std::vector<RunRecord>& child, Shared& sh) {
  std::printf("#\n# %s; vs columns against the rows above\n", title.c_str());
  PrintTableHeader(stdout);
  for (RunRecord& r : child) {
    SetBaselineColumns(&r, sh.records);
    std::printf("# workload: %s\n", WorkloadKey(r).c_str());
    PrintRow(stdout, r);
    sh.records.push_back(r);
  }
}

// Policies that need another environment (bench/child.h): one child each, its rows printed
// under their own header; 1 when it failed or exited non-zero (a wrong value, an error).
int MergeChild(const BenchOptions& o, const ChildSpec& c, Shared& sh) {
  const std::string env = Join(c.env, " ");
  std::fprintf(stderr, "corun: %s: running %s in a child with %s\n", c.tag.c_str(), Join(c.args, " ").c_str(),
               env.c_str());
  std::vector<RunRecord> child;
  std::string why;
  if (!RunChild(o, c, &child, &why)) {
    std::fprintf(stderr, "%s: %s child failed: %s\n", CommandName(o), c.tag.c_str(), why.c_str());
    return 1;
  }
  PrintChildRows(c.tag + ": own process with " + env, child, sh);
  if (!why.empty()) std::fprintf(stderr, "%s: %s child: %s\n", CommandName(o), c.tag.c_str(), why.c_str());
  return why.empty() ? 0 : 1;
}

int SaveTunes(Shared& sh) {
  for (const TuneSummary& t : sh.tunes) {
    ProfileEntry e;
    e.key = BenchProfileKey(sh.meta, t.workload);
    e.policy = t.policy;
    e.t_ms = t.t_ms;
    e.overlap_ms = t.overlap_ms;
    e.date = sh.meta.date;
    sh.cache.Put(e);
  }
  if (Status cs = sh.cache.Save(sh.cache_path); !cs.ok()) {
    std::fprintf(stderr, "corun tune: %s\n", cs.message().c_str());
    return 1;
  }
  std::printf("# %zu tuned profile(s) saved in %s\n", sh.tunes.size(), sh.cache_path.c_str());
  return 0;
}

// Rank 0's end: profiles, JSON, the summary lines; the exit status.
int Finish(const BenchOptions& o, Shared& sh, int code) {
  int64_t wrong = 0, errors = 0;
  for (const RunRecord& r : sh.records) {
    wrong += r.wrong;
    if (r.status == "error") ++errors;
  }
  if (o.child_maxconn1) {
    // The child reports its rows under the maxconn1 name.
    for (RunRecord& r : sh.records) r.policy = "maxconn1";
  }
  if (o.tune && !sh.tunes.empty() && SaveTunes(sh) != 0) code = 1;
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    f << RecordsToJson(sh.meta, sh.records, 1, sh.tunes) << "\n";
    if (!f) {
      std::fprintf(stderr, "%s: cannot write %s\n", CommandName(o), o.json_path.c_str());
      code = 1;
    }
  }
  if (!o.child_maxconn1) {
    std::printf("#\n# Out of bounds values : %lld %s\n", static_cast<long long>(wrong), wrong ? "FAILED" : "OK");
    std::printf("# Runs: %zu, errors: %lld\n#\n", sh.records.size(), static_cast<long long>(errors));
  }
  if (wrong || errors) code = 1;
  return code;
}

}  // namespace

Status ValidateBenchOptions(const BenchOptions& o) {
  if (o.computes.empty()) CORUN_FAIL("no compute kernel given");
  for (const auto& c : o.computes) {
    TileConfig t;
    if (c != "cublaslt" && !ParseTileConfig(c, &t))
      CORUN_FAIL("unknown compute kernel '" + c + "' (tiled64x64x32, tiled64x64x64, cublaslt)");
    for (const auto& g : o.gemms) {
      if (ParseTileConfig(c, &t)) {
        const std::string e = TiledGemm::CheckShape(g[0], g[1], g[2], t);
        if (!e.empty()) CORUN_FAIL("GEMM " + FormatGemm(g) + ": " + e);
      } else if (g[0] > (1 << 30) || g[1] > (1 << 30) || g[2] > (1 << 30)) {
        CORUN_FAIL("GEMM " + FormatGemm(g) + " is too large");
      }
    }
  }
  for (const auto& c : o.collectives) {
    Collective col;
    if (!ParseCollective(c, &col))
      CORUN_FAIL("unknown collective '" + c + "' (allreduce, allgather, reducescatter, alltoall)");
  }
  DType t;
  if (!ParseDType(o.dtype, &t)) CORUN_FAIL("unknown data type '" + o.dtype + "' (bf16, fp32)");
  for (uint64_t b : o.sizes)
    if (b < 1024) CORUN_FAIL("collective size " + std::to_string(b) + " B is below 1 KiB");
  std::vector<PolicyItem> items;
  CORUN_CHECK(ParsePolicyList(o.policies, &items));
  if (o.tune_budget <= 0 || o.tune_budget > 1) CORUN_FAIL("--budget must be in (0, 1] (a fraction of the sweep's wall time)");
  // The CLI checks these first, in the same words (its InRange); this is the guard for other callers.
  const struct {
    const char* flag;
    double v, min, max;
  } ranges[] = {{"-n/--iters", double(o.reps), 1, 100000},
                {"-w/--warmup_iters", double(o.warmup), 0, 100000},
                {"-g/--ngpus", double(o.ngpus), 0, 4096},
                {"--gemms", double(o.gemms_per_step), 1, 1000},
                {"--sustain", o.sustain_s, 0, 86400},
                {"--watchdog", double(o.watchdog_s), 0, 86400 * 7},
                {"--samples", double(o.gemm_samples), 4, 1 << 24},
                {"--max-caps", double(o.max_shape_caps), 0, 1024}};
  for (const auto& r : ranges) {
    if (r.v < r.min) CORUN_FAIL(fmt::format("{}: must be >= {} (got {})", r.flag, r.min, r.v));
    if (r.v > r.max) CORUN_FAIL(fmt::format("{}: must be <= {} (got {})", r.flag, r.max, r.v));
  }
  return Status::Ok();
}

const char* CommandName(const BenchOptions& o) { return o.tune ? "corun tune" : "corun bench"; }

int RunBench(const BenchOptions& o) {
  Status v = ValidateBenchOptions(o);
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", CommandName(o), v.message().c_str());
    return 2;
  }
  Shared sh;
  sh.o = &o;
  if (Status fi = FailureInjectionFromEnv(&sh.inject); !fi.ok()) {
    std::fprintf(stderr, "%s: %s\n", CommandName(o), fi.message().c_str());
    return 2;
  }
  std::vector<int> devices;
  if (int rc = SelectDevices(o, &sh, &devices)) return rc;
  const int my_first_rank = sh.pm.multi_process() ? sh.pm.rank : 0;
  if (!o.probe_only.empty()) return RunProbeOnly(o, sh.pm, devices[0]);
  if (!sh.pm.multi_process() && sh.nranks > 1 && o.probe_comm) {
    std::string why;
    sh.external_probes = true;
    if (!ProbeInChildren(o, sh.nranks, &sh.probes, &why))
      sh.meta.notes.push_back("communication kernel probe (child processes) failed: " + why);
    else
      sh.meta.notes.push_back("communication kernels probed in " + std::to_string(sh.nranks) +
                              " child processes (graph capture is unsafe with several GPUs in one process)");
  }
  Status s = ExchangeUniqueId(sh.pm, &sh.id, 120);
  DeviceInfo d0;
  if (s.ok()) s = QueryDevice(devices[0], &d0);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", CommandName(o), s.ToString(true).c_str());
    return 1;
  }
  FillMeta(o, sh, d0, &sh.meta);
  sh.cache_path = o.cache_path.empty() ? DefaultProfilePath() : o.cache_path;
  if (Status cs = sh.cache.Load(sh.cache_path); !cs.ok()) {
    std::fprintf(stderr, "corun: warning: %s (ignored)\n", cs.message().c_str());
    sh.cache = ProfileCache();
  }
  if (my_first_rank == 0 && !o.child_maxconn1) PrintBanner(o, sh.meta);
  int code = RunRanks(sh, devices, my_first_rank);
  if (code == 0 && my_first_rank == 0) {
    std::vector<ChildSpec> children;
    if (!sh.deferred_maxconn1.empty()) children.push_back(MaxConn1Child());
    if (!sh.deferred_ce.empty()) children.push_back(CeChild(sh.deferred_ce));
    for (const auto& [geom, policies] : sh.deferred_geom) children.push_back(GeometryChild(geom, policies));
    for (const ChildSpec& c : children) code = std::max(code, MergeChild(o, c, sh));
  }
  if (sh.error_rows > 0) code = 1;  // every rank's exit status says a policy failed
  if (my_first_rank != 0) return code;
  return Finish(o, sh, code);
}

}  // namespace corun
