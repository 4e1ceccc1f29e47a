#include "probe.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "../runtime/bootstrap.h"
#include "../runtime/checks.h"
#include "../runtime/data.h"
#include "child.h"
#include "corun/agree.h"
#include "self_spawn.h"

namespace corun {

void to_json(nlohmann::json& j, const ProbedKernel& k) {
  j = {{"ctas", k.ctas}, {"threads", k.fp.threads}, {"regs", k.fp.regs_per_thread},
       {"static_smem", k.fp.static_smem}, {"dynamic_smem", k.fp.dynamic_smem}, {"kernel", k.kernel}};
}

void from_json(const nlohmann::json& j, ProbedKernel& k) {
  j.at("ctas").get_to(k.ctas);
  j.at("threads").get_to(k.fp.threads);
  j.at("regs").get_to(k.fp.regs_per_thread);
  j.at("static_smem").get_to(k.fp.static_smem);
  j.at("dynamic_smem").get_to(k.fp.dynamic_smem);
  j.at("kernel").get_to(k.kernel);
}

std::string ProbeKey(Collective c, uint64_t bytes, const std::string& dtype) {
  return std::string(CollectiveName(c)) + "/" + std::to_string(bytes) + "/" + dtype;
}

namespace {

Status ProbeAll(const BenchOptions& o, const ProcessModel& pm, int device, nlohmann::json* out) {
  CUDACHECK(cudaSetDevice(device));
  ncclUniqueId id;
  CORUN_CHECK(ExchangeUniqueId(pm, &id, 60));
  Comm comm;
  CORUN_CHECK(comm.Init(id, pm.world, pm.rank, CommConfig{}));
  DType t;
  ParseDType(o.dtype, &t);
  cudaStream_t s;
  CUDACHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  FailureInjection inject;
  CORUN_CHECK(FailureInjectionFromEnv(&inject));
  std::set<std::string> done;
  for (const std::string& cn : o.collectives) {
    Collective c;
    ParseCollective(cn, &c);
    for (uint64_t bytes : o.sizes) {
      const std::string key = ProbeKey(c, bytes, DTypeName(t));
      if (!done.insert(key).second) continue;
      const CollectiveShape sh = ShapeOf(c, bytes, t, pm.world);
      void *send = nullptr, *recv = nullptr;
      CUDACHECK(cudaMalloc(&send, std::max<uint64_t>(sh.send_elems * DTypeSize(t), 16)));
      CUDACHECK(cudaMalloc(&recv, std::max<uint64_t>(sh.recv_elems * DTypeSize(t), 16)));
      CORUN_CHECK(FillCollective(send, t, sh.send_elems, pm.rank, 0, 1, s));
      KernelFootprint fp;
      int ctas = 0;
      std::string name;
      // Every child replays, or none does (a child left in the replay would never exit).
      Status ps = comm.ProbeKernel(c, send, recv, sh.count, t, s, &fp, &ctas, &name, [&](bool ok, bool* all) {
        if (inject.Hits(pm.rank, "probe")) ok = false;
        int worst = 0;
        Status b = comm.Barrier(s, ok ? 0 : 1, &worst);
        *all = worst == 0;
        return b;
      });
      cudaFree(send);
      cudaFree(recv);
      if (!ps.ok()) return ps.At(__FILE__, __LINE__);
      (*out)[key] = ProbedKernel{fp, ctas, name};
    }
  }
  CUDACHECK(cudaStreamDestroy(s));
  return Status::Ok();
}

}  // namespace

int RunProbeOnly(const BenchOptions& o, const ProcessModel& pm, int device) {
  nlohmann::json j = nlohmann::json::object();
  Status s = ProbeAll(o, pm, device, &j);
  if (!s.ok()) {
    std::fprintf(stderr, "corun probe: rank %d: %s\n", pm.rank, s.ToString(true).c_str());
    return 1;
  }
  if (pm.rank == 0) {
    std::ofstream f(o.probe_only);
    f << j.dump() << "\n";
    if (!f) return 1;
  }
  return 0;
}

bool ProbeInChildren(const BenchOptions& o, int nranks, std::map<std::string, ProbedKernel>* out, std::string* why) {
  const std::string file = TempFile("corun-probe");
  if (file.empty()) {
    *why = "cannot create a temporary file";
    return false;
  }
  const int port = FreeLocalPort();
  std::vector<pid_t> pids;
  for (int r = 0; r < nranks; ++r) {
    SpawnSpec spec;
    spec.args = {"bench"};
    for (const auto& a : o.argv) spec.args.push_back(a);
    spec.args.push_back("--probe-only");
    spec.args.push_back(file);
    // The launcher variables of an outer job must not leak into the probe's own world.
    spec.drop_env = {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "MASTER_ADDR=", "MASTER_PORT=", "CORUN_BOOTSTRAP_PORT=",
                     "OMPI_COMM_WORLD_", "PMI_"};
    spec.add_env = {"RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(nranks),
                    "LOCAL_RANK=" + std::to_string(r), "MASTER_ADDR=127.0.0.1",
                    "CORUN_BOOTSTRAP_PORT=" + std::to_string(port)};
    const pid_t pid = SpawnSelf(spec);
    if (pid >= 0) pids.push_back(pid);
  }
  bool ok = static_cast<int>(pids.size()) == nranks, late = false;
  // Bounded as every child of the bench (child.h): a probe process stuck past the deadline is
  // killed, and its peers, which wait for it, after a second each.
  for (pid_t pid : pids) {
    bool this_late = false;
    if (WaitExit(pid, late ? 1 : ChildDeadlineS(o.watchdog_s, 1), {}, &this_late) != 0) ok = false;
    late |= this_late;
  }
  const std::string text = TakeFile(file);
  if (!ok) {
    *why = late ? "a probe process did not finish within " + std::to_string(ChildDeadlineS(o.watchdog_s, 1)) +
                      " s: killed"
                : "a probe process failed";
    return false;
  }
  try {
    *out = nlohmann::json::parse(text).get<std::map<std::string, ProbedKernel>>();
  } catch (const std::exception& e) {
    *why = std::string("unreadable probe output: ") + e.what();
    return false;
  }
  return true;
}

}  // namespace corun
