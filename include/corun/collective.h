// Collectives as corun measures them, host-only: data types, the per-rank buffer shapes of a
// nccl-tests-style size for any rank count, the bus-bandwidth factors, and what each rank's
// output must hold (the expectation itself is corun/datagen.h's CollExpected, shared with the
// GPU check).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "corun/datagen.h"

namespace corun {

enum class DType { kBf16, kFp32 };
inline size_t DTypeSize(DType t) { return t == DType::kBf16 ? 2 : 4; }
const char* DTypeName(DType t);
bool ParseDType(const std::string& s, DType* t);

enum class Collective { kAllReduce, kAllGather, kReduceScatter, kAllToAll };
const char* CollectiveName(Collective c);
bool ParseCollective(const std::string& s, Collective* c);

// Element counts per rank for a nccl-tests-style size (`bytes` as nccl-tests reports it).
struct CollectiveShape {
  uint64_t count = 0;       // the "count" of the NCCL call (per-rank chunk for gather/scatter/a2a)
  uint64_t send_elems = 0;  // send buffer length
  uint64_t recv_elems = 0;  // recv buffer length
  double busbw_factor = 1;  // busbw = algbw * factor (nccl-tests' definitions)
  VerifyMode verify = VerifyMode::kSumAll;
  uint64_t fill_first = 0;  // index of the send buffer's first element in the global pattern
};
CollectiveShape ShapeOf(Collective c, uint64_t bytes, DType t, int nranks);

}  // namespace corun
