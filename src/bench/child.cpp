#include "child.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

extern char** environ;

namespace corun {

bool RunMaxConn1Child(const BenchOptions& o, std::vector<RunRecord>* out, std::string* why) {
  char tmpl[] = "/tmp/corun-maxconn1-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) {
    *why = "cannot create a temporary file";
    return false;
  }
  close(fd);
  const std::string json = tmpl;
  std::vector<std::string> args = {"/proc/self/exe", "bench"};
  for (const auto& a : o.argv) args.push_back(a);
  for (const char* a : {"--policies", "maxconn1", "--json", json.c_str(), "--child-maxconn1", "--no-probe"}) args.push_back(a);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Same environment (NVLink-multicast settings included) plus the one variable under test.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("CUDA_DEVICE_MAX_CONNECTIONS=", 0) != 0) env.emplace_back(*e);
  env.emplace_back("CUDA_DEVICE_MAX_CONNECTIONS=1");
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);  // its table is ours to print
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *why = "posix_spawn failed";
    unlink(json.c_str());
    return false;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream f(json);
  std::stringstream ss;
  ss << f.rdbuf();
  unlink(json.c_str());
  Meta meta;
  std::string err;
  if (!RecordsFromJson(ss.str(), &meta, out, &err)) {
    *why = "child exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
           " and no readable results (" + err + ")";
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // Rows came back (wrong results are in them); the caller's exit code reflects them.
    *why = "child exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  return true;
}

}  // namespace corun
