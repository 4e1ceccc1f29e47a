#include "child.h"

#include "corun/policy.h"
#include "self_spawn.h"

#include <unistd.h>

#include <cstdlib>

namespace corun {
namespace {

// `corun bench <same flags> <extra>` in a child with `env` ("NAME=value") in place of the user's
// values of those variables; its rows come back in `out`.
// `also_drop`: further variables the child must not inherit ("NAME=").
bool RunChild(const BenchOptions& o, const std::string& tag, const std::vector<std::string>& extra,
              const std::vector<std::string>& env, std::vector<RunRecord>* out, std::string* why,
              const std::vector<std::string>& also_drop = {}) {
  const std::string json = TempFile(("corun-" + tag).c_str());
  if (json.empty()) {
    *why = "cannot create a temporary file";
    return false;
  }
  SpawnSpec spec;
  spec.args = {"bench"};
  for (const auto& a : o.argv) spec.args.push_back(a);
  for (const auto& a : extra) spec.args.push_back(a);
  spec.args.push_back("--json");
  spec.args.push_back(json);
  // Same environment (NVLink-multicast settings included) plus the variables under test;
  // its table is ours to print, so its stdout is dropped.
  for (const std::string& e : env) spec.drop_env.push_back(e.substr(0, e.find('=') + 1));
  for (const std::string& d : also_drop) spec.drop_env.push_back(d);
  spec.add_env = env;
  const pid_t pid = SpawnSelf(spec);
  if (pid < 0) {
    *why = "cannot start the child process";
    unlink(json.c_str());
    return false;
  }
  const int code = WaitExit(pid);
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

}  // namespace

bool RunMaxConn1Child(const BenchOptions& o, std::vector<RunRecord>* out, std::string* why) {
  return RunChild(o, "maxconn1", {"--policies", "maxconn1", "--child-maxconn1", "--no-probe"},
                  {"CUDA_DEVICE_MAX_CONNECTIONS=1"}, out, why);
}

bool CeConnectionsHere() {
  const char* v = std::getenv("CUDA_DEVICE_MAX_CONNECTIONS");
  return v && *v && std::atoi(v) >= kCeConnections;
}

bool RunCeChild(const BenchOptions& o, const std::string& policies, std::vector<RunRecord>* out, std::string* why) {
  return RunChild(o, "ce", {"--policies", policies},
                  {"CUDA_DEVICE_MAX_CONNECTIONS=" + std::to_string(kCeConnections)}, out, why);
}

bool RunGeometryChild(const BenchOptions& o, const std::vector<std::string>& policies, std::vector<RunRecord>* out,
                      std::string* why) {
  Policy p;
  if (policies.empty() || !ParsePolicy(policies[0], &p).ok()) {
    *why = "no geometry policy to run";
    return false;
  }
  std::string list;
  for (const std::string& x : policies) list += (list.empty() ? "" : ",") + x;
  std::vector<std::string> env;
  for (const auto& [k, v] : CommGeometryEnv(p)) env.push_back(k + "=" + v);
  // A geometry variable of the user's that this geometry does not set would mix into its rows.
  std::vector<std::string> drop;
  for (const std::string& k : CommGeometryVars()) drop.push_back(k + "=");
  return RunChild(o, "geom", {"--policies", list}, env, out, why, drop);
}

}  // namespace corun
