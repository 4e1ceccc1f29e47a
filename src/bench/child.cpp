#include "child.h"

#include "self_spawn.h"

#include <unistd.h>

#include <cstdlib>

namespace corun {

bool RunMaxConn1Child(const BenchOptions& o, std::vector<RunRecord>* out, std::string* why) {
  const std::string json = TempFile("corun-maxconn1");
  if (json.empty()) {
    *why = "cannot create a temporary file";
    return false;
  }
  SpawnSpec spec;
  spec.args = {"bench"};
  for (const auto& a : o.argv) spec.args.push_back(a);
  for (const char* a : {"--policies", "maxconn1", "--json", json.c_str(), "--child-maxconn1", "--no-probe"})
    spec.args.push_back(a);
  // Same environment (NVLink-multicast settings included) plus the one variable under test;
  // its table is ours to print, so its stdout is dropped.
  spec.drop_env = {"CUDA_DEVICE_MAX_CONNECTIONS="};
  spec.add_env = {"CUDA_DEVICE_MAX_CONNECTIONS=1"};
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

}  // namespace corun
