// Process model and NCCL unique-id exchange. One process over all visible GPUs (threads, one per
// GPU) by default; one process per GPU under mpirun (OMPI_COMM_WORLD_*), Slurm/PMI (PMI_*) or
// torchrun (RANK, WORLD_SIZE, LOCAL_RANK), with the id sent over a TCP rendezvous at MASTER_ADDR.
#pragma once
#include <nccl.h>

#include <string>

#include "corun/status.h"

namespace corun {

struct ProcessModel {
  std::string kind = "threads";  // "threads", "mpi", "torchrun", "pmi"
  int rank = 0, world = 1, local_rank = 0;
  std::string addr = "127.0.0.1";
  int port = 0;
  bool multi_process() const { return kind != "threads"; }
};

// Reads the launcher's environment; an inconsistent one (rank >= world, ...) is an error.
Status DetectProcessModel(ProcessModel* pm);

// The GPU of a process: its local rank among the visible GPUs (all of a node's GPUs visible:
// local rank i drives GPU i; one GPU visible per process, as some launchers arrange: GPU 0).
inline int DeviceForLocalRank(int local_rank, int visible_gpus) {
  return visible_gpus > 0 ? local_rank % visible_gpus : 0;
}

// A TCP port on the loopback interface that was free a moment ago (0 if none was found).
int FreeLocalPort();

// Rank 0 sends `n` bytes of `buf` to every other rank over a TCP rendezvous at pm.addr:pm.port;
// the others connect (retrying until `timeout_s`) and receive them into `buf`.
// After notice_s without every rank, one line on stderr says who waits for whom and where (ranks
// given different MASTER_ADDR/MASTER_PORT otherwise wait silently until the timeout).
constexpr int kBootstrapNoticeS = 10;
Status ExchangeBytes(const ProcessModel& pm, void* buf, size_t n, int timeout_s, int notice_s = kBootstrapNoticeS);

// Rank 0 creates the id and serves it (ExchangeBytes); in one process, just creates it.
Status ExchangeUniqueId(const ProcessModel& pm, ncclUniqueId* id, int timeout_s);

}  // namespace corun
