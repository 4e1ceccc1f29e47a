// Copy-engine collectives, direct all-gather copies: this rank's output offered to the peers per
// call (exported once per allocation) and the peers' outputs mapped here (once per allocation,
// for the process), through the per-call agreement of corun/ce_direct.h.
#include <cstring>
#include <mutex>
#include <utility>

#include "ce_comm.h"
#include "ce_debug.h"
#include "driver.h"

namespace corun {
namespace {

// Peers' allocations opened here: a legacy IPC handle is opened once per process, whichever
// communicator meets it first, and closed when the last communicator with direct copies goes.
// Key: (owner's process token, buffer id). An owner that frees an allocation while it is open here
// leaves it allocated until then (CUDA calls a free before the importers' close undefined): an
// output freed and reallocated gets a new buffer id, so the old mapping is never used again.
std::mutex g_import_mu;
int g_direct_comms = 0;
std::map<std::pair<uint64_t, uint64_t>, char*>& Imports() {
  static std::map<std::pair<uint64_t, uint64_t>, char*> m;
  return m;
}

// The allocation holding `p`: its never-reused buffer id, start and size, and whether legacy IPC
// (cudaIpcGetMemHandle) can share it; false when `p` is not device memory of the CUDA runtime.
struct Alloc {
  unsigned long long id = 0;
  CUdeviceptr start = 0;
  size_t bytes = 0;
  int ipc_capable = 0;
};
bool FindAlloc(const void* p, Alloc* a) {
  if (!Driver().cuPointerGetAttributes) return false;
  CUpointer_attribute attrs[4] = {CU_POINTER_ATTRIBUTE_BUFFER_ID, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
                                  CU_POINTER_ATTRIBUTE_RANGE_SIZE, CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE};
  void* data[4] = {&a->id, &a->start, &a->bytes, &a->ipc_capable};
  // Not a CUDA pointer: success with every attribute left at zero.
  if (Driver().cuPointerGetAttributes(4, attrs, data, reinterpret_cast<CUdeviceptr>(p)) != CUDA_SUCCESS) return false;
  return a->id != 0 && a->start != 0 && a->ipc_capable != 0;
}

}  // namespace

void CeComm::DirectRetain() {
  std::lock_guard<std::mutex> l(g_import_mu);
  ++g_direct_comms;
}

void CeComm::DirectRelease() {
  std::lock_guard<std::mutex> l(g_import_mu);
  if (--g_direct_comms > 0) return;
  for (const auto& [key, m] : Imports()) cudaIpcCloseMemHandle(m);  // every copy that used them has drained
  Imports().clear();
  (void)cudaGetLastError();
}

bool CeComm::AgreeDirect(void* recv, uint64_t bytes) {
  CeDirectRecord mine;
  Alloc a;
  // cudaMalloc memory only, with ranks as threads too: the peers' copy engines use it through peer
  // access, which memory from other allocators (pools, managed, host) may not grant.
  mine.ok = FindAlloc(recv, &a) && reinterpret_cast<CUdeviceptr>(recv) + bytes <= a.start + a.bytes;
  mine.ptr = reinterpret_cast<uint64_t>(recv);
  if (mine.ok) mine.offset = reinterpret_cast<CUdeviceptr>(recv) - a.start;
  if (mine.ok && !dir_threads_) {
    auto it = dir_exports_.find(a.id);
    if (it == dir_exports_.end()) {
      CeDirectExport e;
      e.id = a.id;
      e.bytes = a.bytes;
      cudaIpcMemHandle_t h;
      int index = -1;
      if (cudaIpcGetMemHandle(&h, reinterpret_cast<void*>(a.start)) == cudaSuccess) {
        static_assert(sizeof(h) <= sizeof(e.handle), "an IPC handle fits the export");
        std::memcpy(e.handle, &h, sizeof(h));
        index = dir_->Export(e);
      } else {
        (void)cudaGetLastError();
      }
      CE_DLOG("direct: export of allocation %llu (%zu B): %s", a.id, a.bytes, index >= 0 ? "ok" : "refused");
      it = dir_exports_.emplace(a.id, index).first;
    }
    mine.export_index = it->second;
    mine.ok = it->second >= 0;
  }
  peer_out_.assign(nranks_, nullptr);
  const auto resolve = [&](int p, const CeDirectRecord& rec) -> bool {
    if (dir_threads_) {
      peer_out_[p] = reinterpret_cast<char*>(rec.ptr);
      return true;
    }
    if (rec.export_index < 0 || rec.export_index >= static_cast<int>(kCeDirectExports)) return false;
    const CeDirectExport& e = dir_->PeerExport(p, rec.export_index);
    if (rec.offset + bytes > e.bytes) return false;  // the ranks disagree on the call's size
    std::lock_guard<std::mutex> l(g_import_mu);
    const auto key = std::make_pair(peers_[p].process, e.id);
    auto it = Imports().find(key);
    if (it == Imports().end()) {
      cudaIpcMemHandle_t h;
      std::memcpy(&h, e.handle, sizeof(h));
      void* m = nullptr;
      const cudaError_t err = cudaIpcOpenMemHandle(&m, h, cudaIpcMemLazyEnablePeerAccess);
      CE_DLOG("direct: rank %d's allocation %llu opened: %s", p, static_cast<unsigned long long>(e.id),
              err == cudaSuccess ? "ok" : cudaGetErrorString(err));
      if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return false;  // not cached: a later call tries again
      }
      it = Imports().emplace(key, static_cast<char*>(m)).first;
    }
    peer_out_[p] = it->second + rec.offset;
    return true;
  };
  std::string why;
  const bool direct =
      dir_->Agree(++dir_seq_, mine, resolve, cfg_.direct_wait_us,
                  [this] { return aborted_.load() || lost_rank_.load() >= 0; }, &why) == CeDirectDecision::kDirect;
  if (!direct) CE_DLOG("direct: call %u takes the staging: %s", dir_seq_, why.c_str());
  return direct;
}

}  // namespace corun
