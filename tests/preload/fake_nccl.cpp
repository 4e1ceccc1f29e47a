// A stand-in libnccl.so.2 for the CPU tests of the interposer's NCCL stage: communicators of 2
// ranks on device 0, collectives that write "NCCL" into the output (host memory) and record their
// arguments, so a test program can tell which calls NCCL served and that they arrived unchanged.
#include <nccl.h>

#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "fake_nccl.h"

namespace {
std::mutex g_mu;
std::map<std::string, int> g_calls;
FakeNcclCall g_last{};
struct FakeComm {
  int nranks = 2, rank = 0;
};
void Count(const char* fn) {
  std::lock_guard<std::mutex> l(g_mu);
  ++g_calls[fn];
}
ncclResult_t Coll(const char* fn, const void* s, void* r, size_t n, int t, int op, ncclComm_t c, cudaStream_t st) {
  Count(fn);
  {
    std::lock_guard<std::mutex> l(g_mu);
    g_last = {s, r, n, t, op, c, st};
  }
  if (!c) return ncclInvalidArgument;
  if (r) std::memcpy(r, "NCCL", 4);
  return ncclSuccess;
}
}  // namespace

extern "C" {
int fake_nccl_calls(const char* fn) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_calls.find(fn);
  return it == g_calls.end() ? 0 : it->second;
}
FakeNcclCall fake_nccl_last() {
  std::lock_guard<std::mutex> l(g_mu);
  return g_last;
}

ncclResult_t ncclCommInitRank(ncclComm_t* c, int nranks, ncclUniqueId, int rank) {
  Count("ncclCommInitRank");
  *c = reinterpret_cast<ncclComm_t>(new FakeComm{nranks, rank});
  return ncclSuccess;
}
ncclResult_t ncclCommInitRankConfig(ncclComm_t* c, int nranks, ncclUniqueId, int rank, ncclConfig_t*) {
  Count("ncclCommInitRankConfig");
  *c = reinterpret_cast<ncclComm_t>(new FakeComm{nranks, rank});
  return ncclSuccess;
}
ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int*) {
  Count("ncclCommInitAll");
  for (int i = 0; i < ndev; ++i) comms[i] = reinterpret_cast<ncclComm_t>(new FakeComm{ndev, i});
  return ncclSuccess;
}
ncclResult_t ncclCommSplit(ncclComm_t c, int, int, ncclComm_t* nc, ncclConfig_t*) {
  Count("ncclCommSplit");
  *nc = reinterpret_cast<ncclComm_t>(new FakeComm(*reinterpret_cast<FakeComm*>(c)));
  return ncclSuccess;
}
ncclResult_t ncclCommDestroy(ncclComm_t c) {
  Count("ncclCommDestroy");
  delete reinterpret_cast<FakeComm*>(c);
  return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t c) {
  Count("ncclCommAbort");
  delete reinterpret_cast<FakeComm*>(c);
  return ncclSuccess;
}
ncclResult_t ncclCommCount(const ncclComm_t c, int* n) {
  *n = reinterpret_cast<const FakeComm*>(c)->nranks;
  return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t c, int* r) {
  *r = reinterpret_cast<const FakeComm*>(c)->rank;
  return ncclSuccess;
}
ncclResult_t ncclCommCuDevice(const ncclComm_t, int* d) {
  *d = 0;
  return ncclSuccess;
}
const char* ncclGetErrorString(ncclResult_t r) { return r == ncclSuccess ? "no error" : "fake error"; }
ncclResult_t ncclGroupStart() {
  Count("ncclGroupStart");
  return ncclSuccess;
}
ncclResult_t ncclGroupEnd() {
  Count("ncclGroupEnd");
  return ncclSuccess;
}
ncclResult_t ncclAllReduce(const void* s, void* r, size_t n, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
                           cudaStream_t st) {
  return Coll("ncclAllReduce", s, r, n, t, op, c, st);
}
ncclResult_t ncclReduceScatter(const void* s, void* r, size_t n, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
                               cudaStream_t st) {
  return Coll("ncclReduceScatter", s, r, n, t, op, c, st);
}
ncclResult_t ncclAllGather(const void* s, void* r, size_t n, ncclDataType_t t, ncclComm_t c, cudaStream_t st) {
  return Coll("ncclAllGather", s, r, n, t, -1, c, st);
}
}
