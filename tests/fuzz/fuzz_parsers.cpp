// libFuzzer target: every parser of user text (policies, the preload's environment, sizes, GEMM
// shapes, sweeps). Any violated property aborts with the input that broke it.
#include <cstdio>
#include <cstdlib>

#include "parser_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string err = corun::fuzz::CheckParsers(data, size);
  if (!err.empty()) {
    std::fprintf(stderr, "%s\n", err.c_str());
    std::abort();
  }
  return 0;
}
