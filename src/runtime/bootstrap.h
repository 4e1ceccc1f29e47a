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

// Rank 0 creates the id and serves it; the others connect (retrying until `timeout_s`).
Status ExchangeUniqueId(const ProcessModel& pm, ncclUniqueId* id, int timeout_s);

}  // namespace corun
