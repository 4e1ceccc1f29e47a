// SpawnSelf/WaitExit: the child is this same program; it checks what it was given and answers
// with its exit code (0 = arguments and environment as specified).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "self_spawn.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "child") {
    const char* added = std::getenv("SPAWN_ADDED");
    const char* dropped = std::getenv("SPAWN_DROPPED");
    const char* kept = std::getenv("SPAWN_KEPT");
    if (argc != 4 || std::string(argv[2]) != "a b" || std::string(argv[3]) != "c") return 10;
    if (!added || std::string(added) != "1") return 11;
    if (dropped) return 12;
    if (!kept || std::string(kept) != "yes") return 13;
    std::puts("to stdout");
    return 7;
  }
  setenv("SPAWN_DROPPED", "x", 1);
  setenv("SPAWN_KEPT", "yes", 1);
  corun::SpawnSpec spec;
  spec.args = {"child", "a b", "c"};
  spec.drop_env = {"SPAWN_DROPPED="};
  spec.add_env = {"SPAWN_ADDED=1"};
  const int code = corun::WaitExit(corun::SpawnSelf(spec));
  if (code != 7) {
    std::printf("FAIL: child answered %d\n", code);
    return 1;
  }
  std::printf("ok: child got its arguments and environment\n");
  return 0;
}
