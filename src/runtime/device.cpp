#include "device.h"

#include "checks.h"

namespace corun {

Status CountDevices(int* n) {
  *n = 0;
  const cudaError_t e = cudaGetDeviceCount(n);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || (e == cudaSuccess && *n == 0))
    CORUN_FAIL(std::string("no CUDA GPU is usable here (") + cudaGetErrorString(e == cudaSuccess ? cudaErrorNoDevice : e) + ")");
  CUDACHECK(e);
  return Status::Ok();
}

Status QueryDevice(int index, DeviceInfo* info) {
  cudaDeviceProp p{};
  CUDACHECK(cudaGetDeviceProperties(&p, index));
  info->index = index;
  info->name = p.name;
  char pci[32];
  std::snprintf(pci, sizeof(pci), "%08x:%02x:%02x.0", p.pciDomainID, p.pciBusID, p.pciDeviceID);
  info->pci = pci;
  info->sm_major = p.major;
  info->sm_minor = p.minor;
  info->sms = p.multiProcessorCount;
  info->memory = p.totalGlobalMem;
  int cur = 0;
  CUDACHECK(cudaGetDevice(&cur));
  CUDACHECK(cudaSetDevice(index));
  CUDACHECK(cudaDeviceGetStreamPriorityRange(&info->priority_lowest, &info->priority_highest));
  CUDACHECK(cudaSetDevice(cur));
  DeviceLimits& d = info->limits;
  d.sm_major = p.major;
  d.sm_minor = p.minor;
  d.num_sms = p.multiProcessorCount;
  d.warp_size = p.warpSize;
  d.max_threads_per_sm = p.maxThreadsPerMultiProcessor;
  d.max_threads_per_block = p.maxThreadsPerBlock;
  d.max_blocks_per_sm = p.maxBlocksPerMultiProcessor;
  d.regs_per_sm = p.regsPerMultiprocessor;
  d.regs_per_block = p.regsPerBlock;
  d.smem_per_sm = p.sharedMemPerMultiprocessor;
  d.smem_per_block_optin = p.sharedMemPerBlockOptin;
  d.smem_reserved_per_block = p.reservedSharedMemPerBlock;
  // Allocation units are not device properties; take them from the architecture table.
  if (auto t = LimitsForArch(p.major, p.minor)) {
    d.reg_alloc_unit = t->reg_alloc_unit;
    d.smem_alloc_unit = t->smem_alloc_unit;
    d.reg_subpartitions = t->reg_subpartitions;
  }
  return Status::Ok();
}

static std::string Ver(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

std::string CudaRuntimeVersion() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return Ver(v);
}
std::string CudaDriverVersion() {
  int v = 0;
  cudaDriverGetVersion(&v);
  return Ver(v);
}
std::string NcclVersion() {
  int v = 0;
  ncclGetVersion(&v);
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

}  // namespace corun
