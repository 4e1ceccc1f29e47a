// Where corun finds its own libraries (libcorun_preload.so, libcorun_trace.so) and where a command
// given after "--" would be run from: one rule for the launcher and for corun trace.
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli.h"
#include "corun/strings.h"

#ifndef CORUN_BUILD_LIB_DIR
#define CORUN_BUILD_LIB_DIR ""
#endif

namespace corun {

namespace {

std::string SelfDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  std::string p(buf);
  return p.substr(0, p.rfind('/'));
}

bool IsFile(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), R_OK) == 0;
}

}  // namespace

// An installed corun finds the library relative to itself (bin/../lib, as `cmake --install` and
// `pip install .` lay it out), a build-tree corun beside itself; then the tree it was built in,
// then LD_LIBRARY_PATH.
std::string FindCorunLib(const std::string& name, const std::string& explicit_path, const char* env_var,
                         std::string* tried) {
  tried->clear();
  if (!explicit_path.empty()) {
    *tried = explicit_path;
    return IsFile(explicit_path) ? explicit_path : "";
  }
  if (const char* e = env_var ? std::getenv(env_var) : nullptr; e && *e) {
    *tried = fmt::format("${}={}", env_var, e);
    return IsFile(e) ? e : "";
  }
  const std::string self = SelfDir();
  std::vector<std::string> dirs = {self + "/../lib", self};
  if (*CORUN_BUILD_LIB_DIR) dirs.push_back(CORUN_BUILD_LIB_DIR);
  if (const char* l = std::getenv("LD_LIBRARY_PATH"))
    for (const std::string& d : Split(l, ':', /*keep_empty=*/false)) dirs.push_back(d);
  for (const std::string& d : dirs) {
    const std::string c = d + "/" + name;
    tried->append(tried->empty() ? "" : ", ").append(d);
    if (IsFile(c)) {
      char real[PATH_MAX];
      return realpath(c.c_str(), real) ? std::string(real) : c;
    }
  }
  return "";
}

int ResolveCommand(const std::string& cmd, std::string* where) {
  auto check = [](const std::string& p) {
    struct stat st;
    if (stat(p.c_str(), &st) != 0) return 127;
    return S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0 ? 0 : 126;
  };
  if (cmd.find('/') != std::string::npos) {
    *where = cmd;
    return check(cmd);
  }
  const char* path = std::getenv("PATH");
  int best = 127;
  // An empty entry is the current folder, as for execvp.
  for (const std::string& d : Split(path ? path : "/usr/bin:/bin", ':')) {
    const std::string c = (d.empty() ? std::string(".") : d) + "/" + cmd;
    const int r = check(c);
    if (r == 0) {
      *where = c;
      return 0;
    }
    if (r == 126 && best == 127) {
      best = 126;
      *where = c;
    }
  }
  return best;
}

}  // namespace corun
