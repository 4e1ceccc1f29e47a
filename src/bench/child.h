// maxconn1: CUDA_DEVICE_MAX_CONNECTIONS is read once when a process creates its CUDA context, so
// that policy runs the same benchmark again in a child process with the variable set.
#pragma once
#include <string>
#include <vector>

#include "bench.h"

namespace corun {

// Runs `corun bench <same flags> --policies maxconn1` as a child; its rows come back in `out`.
bool RunMaxConn1Child(const BenchOptions& o, std::vector<RunRecord>* out, std::string* why);

}  // namespace corun
