// CeComm's NCCL functions where NCCL is linked (the bench and the tests); the interposer has its own.
#include "ce_comm.h"

namespace corun {

const CeNccl& CeNcclApi() {
  static const CeNccl api = [] {
    CeNccl a;
    a.CommUserRank = &ncclCommUserRank;
    a.CommCount = &ncclCommCount;
    a.CommCuDevice = &ncclCommCuDevice;
    a.AllGather = &ncclAllGather;
    a.AllReduce = &ncclAllReduce;
    a.GetErrorString = &ncclGetErrorString;
    return a;
  }();
  return api;
}

}  // namespace corun
