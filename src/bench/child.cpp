#include "child.h"

#include <fmt/format.h>

#include "corun/parse.h"
#include "corun/policy.h"
#include "../runtime/watchdog.h"
#include "corun/strings.h"
#include "self_spawn.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace corun {

int ChildDeadlineS(int watchdog_s, int rows) {
  return watchdog_s > 0 ? watchdog_s * std::max(rows, 1) + kChildStartupS : 0;
}

bool RunChild(const BenchOptions& o, const ChildSpec& c, std::vector<RunRecord>* out, std::string* why) {
  const std::string json = TempFile("corun-child");
  if (json.empty()) {
    *why = "cannot create a temporary file";
    return false;
  }
  SpawnSpec spec;
  spec.args = {"bench"};
  if (!c.own_flags)
    for (const auto& a : o.argv) spec.args.push_back(a);
  for (const auto& a : c.args) spec.args.push_back(a);
  spec.args.push_back("--json");
  spec.args.push_back(json);
  // Same environment (NVLink-multicast settings included) plus the variables under test;
  // its table is ours to print, so its stdout is dropped.
  for (const std::string& e : c.env) spec.drop_env.push_back(e.substr(0, e.find('=') + 1));
  for (const std::string& d : c.drop) spec.drop_env.push_back(d);
  spec.add_env = c.env;
  spec.own_group = true;
  const pid_t pid = SpawnSelf(spec);
  if (pid < 0) {
    *why = "cannot start the child process";
    unlink(json.c_str());
    return false;
  }
  const int per = c.own_flags ? 1 : static_cast<int>(Workloads(o).size());
  const int deadline = ChildDeadlineS(o.watchdog_s, per * c.policies);
  bool late = false;
  const int code = WaitExit(pid, deadline, [] { Watchdog::Get().Kick(); }, &late);
  if (late) {
    unlink(json.c_str());
    *why = fmt::format("child `{}` did not finish within {} s: killed", c.tag, deadline);
    return false;
  }
  const std::string text = TakeFile(json);
  Meta meta;
  std::string err;
  if (!RecordsFromJson(text, &meta, out, &err)) {
    *why = "child exited with status " + std::to_string(code) + " and no readable results (" + err + ")";
    return false;
  }
  if (code != 0) {
    // Rows came back (wrong results are in them); the caller's exit code reflects them.
    *why = "child exited with status " + std::to_string(code);
  }
  return true;
}

ChildSpec MaxConn1Child() {
  return {"maxconn1", {"--policies", "maxconn1", "--child-maxconn1", "--no-probe"}, {"CUDA_DEVICE_MAX_CONNECTIONS=1"}, {}};
}

bool CeConnectionsHere() {
  const char* v = std::getenv("CUDA_DEVICE_MAX_CONNECTIONS");
  return v && *v && std::atoi(v) >= kCeConnections;
}

ChildSpec CeChild(const std::vector<std::string>& policies) {
  ChildSpec c{"ce", {"--policies", Join(policies, ",")}, {"CUDA_DEVICE_MAX_CONNECTIONS=" + std::to_string(kCeConnections)}, {}};
  c.policies = static_cast<int>(policies.size());
  return c;
}

ChildSpec GeometryChild(const std::string& geometry, const std::vector<std::string>& policies) {
  ChildSpec c{geometry, {"--policies", Join(policies, ",")}, {}, {}};
  c.policies = static_cast<int>(policies.size());
  Policy p;
  if (!policies.empty() && ParsePolicy(policies[0], &p).ok())
    for (const auto& [k, v] : CommGeometryEnv(p)) c.env.push_back(k + "=" + v);
  // A geometry variable of the user's that this geometry does not set would mix into its rows.
  for (const std::string& k : CommGeometryVars()) c.drop.push_back(k + "=");
  return c;
}

bool NeedsGeometryChild(const Policy& p) { return p.has_env_geometry() && !CommGeometryEnvHolds(p, ProcessEnv); }
bool NeedsQueuesChild(const Policy& p) { return (p.ce || p.ncclzero) && !CeConnectionsHere(); }
bool RunsInChild(const Policy& p) { return NeedsGeometryChild(p) || NeedsQueuesChild(p); }

ChildSpec TuneChild(const BenchOptions& o, const Workload& w, const Policy& p, int reps, int ngpus) {
  // The whole command line from the options: the parent's own (tune's) lists several workloads.
  ChildSpec c{p.Name(),
              {"--compute", w.compute, "--gemm", FormatGemm(w.g), "--gemms", std::to_string(o.gemms_per_step), "-o",
               CollectiveName(w.coll), "-d", o.dtype, "-b", std::to_string(w.bytes), "-n", std::to_string(reps), "-w",
               std::to_string(o.warmup), "--sustain", fmt::format("{}", o.sustain_s), "--watchdog",
               std::to_string(o.watchdog_s), "--samples", std::to_string(o.gemm_samples), "-g",
               std::to_string(ngpus), "--policies", p.Name()},
              {},
              {},
              true};
  if (!o.probe_comm) c.args.push_back("--no-probe");
  if (p.has_env_geometry()) {
    for (const auto& [k, v] : CommGeometryEnv(p)) c.env.push_back(k + "=" + v);
    for (const std::string& k : CommGeometryVars()) c.drop.push_back(k + "=");
  }
  if (p.ce || p.ncclzero) c.env.push_back("CUDA_DEVICE_MAX_CONNECTIONS=" + std::to_string(kCeConnections));
  return c;
}

}  // namespace corun
