// Policies that need another CUDA environment run the same benchmark again in a child process:
// CUDA_DEVICE_MAX_CONNECTIONS is read once when a process creates its CUDA context.
//  - maxconn1: the variable set to 1.
//  - ce: the copy-engine collectives hold several streams waiting on flags; with the default 8
//    hardware queues an unrelated stream can share a queue with a waiting one and stall behind it
//    (runtime/ce_comm.h). The child gets 32 queues. Setting the variable in this process instead
//    would change the queue mapping of every other row of the run, so ce rows run here only when
//    the user already gave the process enough queues.
//  - the communication kernel's geometry (nthreads, proto, ctas): NCCL reads NCCL_NTHREADS,
//    NCCL_PROTO and NCCL_MIN/MAX_CTAS once per process. One child per geometry runs every row
//    of that geometry; rows run here only when this process's environment already holds it.
#pragma once
#include <string>
#include <vector>

#include "bench.h"

namespace corun {

// The hardware queues the copy-engine rows need (and what their child process gets).
constexpr int kCeConnections = 32;

// Runs `corun bench <same flags> --policies maxconn1` as a child; its rows come back in `out`.
bool RunMaxConn1Child(const BenchOptions& o, std::vector<RunRecord>* out, std::string* why);

// True when this process was started with CUDA_DEVICE_MAX_CONNECTIONS >= kCeConnections.
bool CeConnectionsHere();
// Runs `corun bench <same flags> --policies <policies>` as a child with
// CUDA_DEVICE_MAX_CONNECTIONS=kCeConnections; its rows come back in `out`.
bool RunCeChild(const BenchOptions& o, const std::string& policies, std::vector<RunRecord>* out, std::string* why);

// Runs `corun bench <same flags> --policies <policies>` as a child with the NCCL variables of
// their geometry (policies of one GeometryName()); its rows come back in `out`.
bool RunGeometryChild(const BenchOptions& o, const std::vector<std::string>& policies, std::vector<RunRecord>* out,
                      std::string* why);

}  // namespace corun
