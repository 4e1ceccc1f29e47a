// Policies that need another CUDA environment run the same benchmark again in a child process:
// CUDA_DEVICE_MAX_CONNECTIONS is read once when a process creates its CUDA context.
//  - maxconn1: the variable set to 1.
//  - ce: the copy-engine collectives hold several streams waiting on flags; with the default 8
//    hardware queues an unrelated stream can share a queue with a waiting one and stall behind it
//    (runtime/ce_comm.h). The child gets 32 queues. Setting the variable in this process instead
//    would change the queue mapping of every other row of the run, so ce rows run here only when
//    the user already gave the process enough queues.
//  - ncclzero in one process: the same 32 queues (bench/prepare.cpp says why).
//  - the communication kernel's geometry (nthreads, proto, ctas): NCCL reads NCCL_NTHREADS,
//    NCCL_PROTO and NCCL_MIN/MAX_CTAS once per process. One child per geometry runs every row
//    of that geometry; rows run here only when this process's environment already holds it.
// corun tune measures such a candidate in a child of its own (TuneChild): one workload, one
// policy, the repetitions the search asked for.
#pragma once
#include <string>
#include <vector>

#include "bench.h"
#include "corun/policy.h"
#include "workload.h"

namespace corun {

// The hardware queues the copy-engine rows need (and what their child process gets).
constexpr int kCeConnections = 32;

// One child run: `corun bench <same flags> <args>` with `env` ("NAME=value") in place of the
// user's values of those variables and without the variables in `drop` ("NAME=").
struct ChildSpec {
  std::string tag;                // names its messages and its rows' header
  std::vector<std::string> args;  // after this process's own flags
  std::vector<std::string> env, drop;
  bool own_flags = false;         // args are the child's whole command line (without this process's flags)
  int policies = 1;               // per workload: with the workloads, what its deadline allows for
};
// How long a child may run before it is killed (0: no limit, as --watchdog 0): --watchdog's
// seconds for each row it runs, plus start-up (CUDA, NCCL, the probes). Its own watchdog catches
// a stall within a row; this catches a child that never ends (or whose watchdog cannot fire).
constexpr int kChildStartupS = 120;
int ChildDeadlineS(int watchdog_s, int rows);
// maxconn1: the deferred workloads with CUDA_DEVICE_MAX_CONNECTIONS=1.
ChildSpec MaxConn1Child();
// True when this process was started with CUDA_DEVICE_MAX_CONNECTIONS >= kCeConnections.
bool CeConnectionsHere();
// The ce policies with CUDA_DEVICE_MAX_CONNECTIONS=kCeConnections.
ChildSpec CeChild(const std::vector<std::string>& policies);
// Policies of one geometry (GeometryName() `geometry`) with exactly its NCCL variables.
ChildSpec GeometryChild(const std::string& geometry, const std::vector<std::string>& policies);
// Whether `p` needs another process environment than this one (the rules of the bench's deferral
// and of corun tune's children, in one place). Under mpirun/torchrun no child can be started:
// RunPolicy and PolicyNotApplicable skip such rows with the reason.
//  - a geometry this environment does not hold;
bool NeedsGeometryChild(const Policy& p);
//  - ce, or ncclzero in one process (its check holds every SM while NCCL's copies must run on
//    a queue of their own), without kCeConnections hardware queues.
bool NeedsQueuesChild(const Policy& p);
bool RunsInChild(const Policy& p);
// corun tune's child for one candidate: workload `w` alone under `p` with `reps` timed
// repetitions and the environment `p` needs; the workload's other flags from `o`.
ChildSpec TuneChild(const BenchOptions& o, const Workload& w, const Policy& p, int reps, int ngpus);
// Runs it; its rows come back in `out`. False when none came back (or it ran past its deadline:
// killed with its process group); true with *why set when rows came back from a child that
// exited non-zero (a wrong value, an error). While it runs within its deadline this process's
// watchdog is kicked: the wait is progress, the child's own watchdog watches the child.
bool RunChild(const BenchOptions& o, const ChildSpec& c, std::vector<RunRecord>* out, std::string* why);

}  // namespace corun
