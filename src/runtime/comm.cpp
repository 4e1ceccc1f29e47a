#include "comm.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <vector>

#include "checks.h"
#include "driver.h"

namespace corun {
namespace {
std::mutex g_mu;
std::set<ncclComm_t>& Live() {
  static std::set<ncclComm_t> s;
  return s;
}
ncclDataType_t NcclType(DType t) { return t == DType::kBf16 ? ncclBfloat16 : ncclFloat32; }
}  // namespace

void AbortAllComms() {
  std::lock_guard<std::mutex> l(g_mu);
  for (ncclComm_t c : Live()) ncclCommAbort(c);
  Live().clear();
}

Comm::~Comm() {
  if (comm_) {
    {
      std::lock_guard<std::mutex> l(g_mu);
      Live().erase(comm_);
    }
    ncclCommDestroy(comm_);
  }
  if (scratch_) cudaFree(scratch_);
}

Status Comm::Init(const ncclUniqueId& id, int nranks, int rank, const CommConfig& cfg) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  if (cfg.max_ctas > 0) {
    config.maxCTAs = cfg.max_ctas;
    config.CTAPolicy = NCCL_CTA_POLICY_EFFICIENCY;
  }
  NCCLCHECK(ncclCommInitRankConfig(&comm_, nranks, id, rank, &config));
  rank_ = rank;
  nranks_ = nranks;
  CUDACHECK(cudaMalloc(&scratch_, sizeof(int)));
  std::lock_guard<std::mutex> l(g_mu);
  Live().insert(comm_);
  return Status::Ok();
}

Status Comm::Run(Collective c, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s) {
  const ncclDataType_t dt = NcclType(t);
  switch (c) {
    case Collective::kAllReduce:
      NCCLCHECK(ncclAllReduce(send, recv, count, dt, ncclSum, comm_, s));
      break;
    case Collective::kAllGather:
      NCCLCHECK(ncclAllGather(send, recv, count, dt, comm_, s));
      break;
    case Collective::kReduceScatter:
      NCCLCHECK(ncclReduceScatter(send, recv, count, dt, ncclSum, comm_, s));
      break;
    case Collective::kAllToAll: {
      const size_t chunk = count * DTypeSize(t);
      NCCLCHECK(ncclGroupStart());
      for (int r = 0; r < nranks_; ++r) {
        NCCLCHECK(ncclSend(static_cast<const char*>(send) + r * chunk, count, dt, r, comm_, s));
        NCCLCHECK(ncclRecv(static_cast<char*>(recv) + r * chunk, count, dt, r, comm_, s));
      }
      NCCLCHECK(ncclGroupEnd());
      break;
    }
  }
  return Status::Ok();
}

Status Comm::Barrier(cudaStream_t s, int flag_in, int* flag_max) {
  CUDACHECK(cudaMemcpyAsync(scratch_, &flag_in, sizeof(int), cudaMemcpyHostToDevice, s));
  NCCLCHECK(ncclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclMax, comm_, s));
  int out = 0;
  CUDACHECK(cudaMemcpyAsync(&out, scratch_, sizeof(int), cudaMemcpyDeviceToHost, s));
  CUDACHECK(cudaStreamSynchronize(s));
  if (flag_max) *flag_max = out;
  return Status::Ok();
}

Status Comm::MaxFloats(float* buf, size_t n, cudaStream_t s) {
  NCCLCHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclMax, comm_, s));
  return Status::Ok();
}

Status Comm::SumInt64(int64_t* buf, size_t n, cudaStream_t s) {
  NCCLCHECK(ncclAllReduce(buf, buf, n, ncclInt64, ncclSum, comm_, s));
  return Status::Ok();
}

Status Comm::ProbeKernel(Collective c, const void* send, void* recv, uint64_t count, DType t, cudaStream_t s,
                         KernelFootprint* fp, int* ctas, std::string* name, const ProbeAgreeFn& agree) {
  const DriverTable& drv = Driver();
  cudaGraph_t graph = nullptr;
  Status captured = Status::Ok();
  bool found = false;
  *ctas = 0;
  if (!drv.cuGraphKernelNodeGetParams || !drv.cuFuncGetAttribute) {
    captured = Status::Error("driver entry points for graph introspection are missing").At(__FILE__, __LINE__);
  } else if (cudaError_t b = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal); b != cudaSuccess) {
    captured = Status::Error(std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(b)).At(__FILE__, __LINE__);
  } else {
    Status run = Run(c, send, recv, count, t, s);
    const cudaError_t end = cudaStreamEndCapture(s, &graph);
    if (!run.ok()) captured = run.At(__FILE__, __LINE__);
    else if (end != cudaSuccess)
      captured = Status::Error(std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end)).At(__FILE__, __LINE__);
  }
  if (captured.ok()) {
    size_t n = 0;
    cudaGraphGetNodes(graph, nullptr, &n);
    std::vector<cudaGraphNode_t> nodes(n);
    cudaGraphGetNodes(graph, nodes.data(), &n);
    for (cudaGraphNode_t node : nodes) {
      cudaGraphNodeType type;
      cudaGraphNodeGetType(node, &type);
      if (type != cudaGraphNodeTypeKernel) continue;
      CUDA_KERNEL_NODE_PARAMS p{};
      if (drv.cuGraphKernelNodeGetParams(reinterpret_cast<CUgraphNode>(node), &p) != CUDA_SUCCESS || !p.func) continue;
      int regs = 0, sshm = 0;
      drv.cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, p.func);
      drv.cuFuncGetAttribute(&sshm, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, p.func);
      const char* fname = nullptr;
      if (drv.cuFuncGetName) drv.cuFuncGetName(&fname, p.func);
      // Keep the largest kernel (NCCL may add small helper kernels).
      const int grid = static_cast<int>(p.gridDimX * p.gridDimY * p.gridDimZ);
      if (!found || grid > *ctas) {
        found = true;
        *ctas = grid;
        fp->threads = static_cast<int>(p.blockDimX * p.blockDimY * p.blockDimZ);
        fp->regs_per_thread = regs;
        fp->static_smem = static_cast<size_t>(sshm);
        fp->dynamic_smem = p.sharedMemBytes;
        if (name) *name = fname ? fname : "?";
      }
    }
  }
  // The replay is a collective: every rank replays, or none does.
  if (agree) {
    bool all = false;
    Status a = agree(captured.ok(), &all);
    if (a.ok() && !all && captured.ok()) a = Status::Error("the kernel probe failed on another rank").At(__FILE__, __LINE__);
    if (!a.ok() || !all) {
      if (graph) cudaGraphDestroy(graph);
      return captured.ok() ? a : captured;
    }
  } else if (!captured.ok()) {
    if (graph) cudaGraphDestroy(graph);
    return captured;
  }
  // Replay once: the communicator on every rank has counted this call.
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  if (e == cudaSuccess) e = cudaGraphLaunch(exec, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  if (exec) cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  CUDACHECK(e);
  if (!found) CORUN_FAIL("no kernel node in the captured collective");
  return Status::Ok();
}

}  // namespace corun
