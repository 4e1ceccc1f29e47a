// The interposer must reach libraries that a program loads with RTLD_LOCAL (PyTorch's CUDA
// libraries): a plugin needing libcublasLt is dlopen'ed locally and creates a matmul descriptor.
// Without the preload the descriptor keeps target 0; with CORUN_POLICY=smtarget:100 it gets 100.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int want = std::atoi(argv[2]);
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::printf("FAIL dlopen: %s\n", dlerror());
    return 1;
  }
  auto fn = reinterpret_cast<int (*)(int*)>(dlsym(h, "plugin_create_desc"));
  int target = -1;
  const int st = fn ? fn(&target) : -1;
  std::printf("status %d, sm target %d (want %d)\n", st, target, want);
  return st == 0 && target == want ? 0 : 1;
}
