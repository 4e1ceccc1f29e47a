#include "driver.h"

#include <cuda_runtime.h>

#include <mutex>

namespace corun {

const DriverTable& Driver() {
  static DriverTable table;
  static std::once_flag once;
  std::call_once(once, [] {
#define CORUN_DRIVER_LOAD(name, symbol, ver)                                                        \
  {                                                                                               \
    void* fn = nullptr;                                                                           \
    cudaDriverEntryPointQueryResult q;                                                            \
    if (cudaGetDriverEntryPointByVersion(symbol, &fn, ver, cudaEnableDefault, &q) == cudaSuccess && \
        q == cudaDriverEntryPointSuccess)                                                         \
      table.name = reinterpret_cast<decltype(table.name)>(fn);                                                    \
  }
    CORUN_DRIVER_ENTRY_POINTS(CORUN_DRIVER_LOAD)
#undef CORUN_DRIVER_LOAD
  });
  return table;
}

}  // namespace corun
