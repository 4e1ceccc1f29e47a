#include "corun/collective.h"

namespace corun {

const char* DTypeName(DType t) { return t == DType::kBf16 ? "bf16" : "fp32"; }

bool ParseDType(const std::string& s, DType* t) {
  if (s == "bf16" || s == "bfloat16") *t = DType::kBf16;
  else if (s == "fp32" || s == "float" || s == "float32") *t = DType::kFp32;
  else return false;
  return true;
}

const char* CollectiveName(Collective c) {
  switch (c) {
    case Collective::kAllReduce: return "allreduce";
    case Collective::kAllGather: return "allgather";
    case Collective::kReduceScatter: return "reducescatter";
    case Collective::kAllToAll: return "alltoall";
  }
  return "?";
}

bool ParseCollective(const std::string& s, Collective* c) {
  if (s == "allreduce" || s == "all_reduce") *c = Collective::kAllReduce;
  else if (s == "allgather" || s == "all_gather") *c = Collective::kAllGather;
  else if (s == "reducescatter" || s == "reduce_scatter") *c = Collective::kReduceScatter;
  else if (s == "alltoall" || s == "all_to_all") *c = Collective::kAllToAll;
  else return false;
  return true;
}

CollectiveShape ShapeOf(Collective c, uint64_t bytes, DType t, int n) {
  CollectiveShape s;
  const uint64_t elems = bytes / DTypeSize(t);
  const double nn = n;
  switch (c) {
    case Collective::kAllReduce:
      s.count = elems;
      s.send_elems = s.recv_elems = elems;
      s.busbw_factor = 2 * (nn - 1) / nn;
      s.verify = VerifyMode::kSumAll;
      break;
    case Collective::kAllGather:
      s.count = elems / n;
      s.send_elems = s.count;
      s.recv_elems = s.count * n;
      s.busbw_factor = (nn - 1) / nn;
      s.verify = VerifyMode::kGather;
      break;
    case Collective::kReduceScatter:
      s.count = elems / n;
      s.send_elems = s.count * n;
      s.recv_elems = s.count;
      s.busbw_factor = (nn - 1) / nn;
      s.verify = VerifyMode::kSumOwnChunk;
      break;
    case Collective::kAllToAll:
      s.count = elems / n;
      s.send_elems = s.recv_elems = s.count * n;
      s.busbw_factor = (nn - 1) / nn;
      s.verify = VerifyMode::kAllToAll;
      break;
  }
  return s;
}

}  // namespace corun
