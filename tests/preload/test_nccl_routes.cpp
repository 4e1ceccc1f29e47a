// An unmodified NCCL program against the stand-in libnccl (fake_nccl.cpp) and a driver without a
// GPU (fake_cuda_capture.cpp): every collective must reach NCCL with its arguments unchanged and
// NCCL's result must reach the program, with or without the interposer and under any policy. One
// call per routing reason (group, capture, dtype, op, small, nonblocking, untracked) and four the
// copy-engine path would take but cannot start here (unusable): the report's counts under `ce`
// are checked by check_report.py (tests/CMakeLists.txt).
#include <cuda.h>
#include <nccl.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "fake_nccl.h"

namespace {
int g_fail = 0;
#define EXPECT(cond)                                                  \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond); \
      ++g_fail;                                                       \
    }                                                                 \
  } while (0)

std::vector<char> g_send(8 << 20, 1), g_recv(16 << 20, 0);

// One collective: it reached NCCL once, unchanged, and NCCL's output reached the program.
template <class F>
void Check(const char* fn, size_t count, int dtype, int op, ncclComm_t c, cudaStream_t st, F call) {
  const int before = fake_nccl_calls(fn);
  std::memset(g_recv.data(), 0, 4);
  const ncclResult_t r = call();
  EXPECT(r == ncclSuccess);
  EXPECT(fake_nccl_calls(fn) == before + 1);
  const FakeNcclCall last = fake_nccl_last();
  EXPECT(last.send == g_send.data() && last.recv == g_recv.data() && last.count == count && last.dtype == dtype &&
         last.op == op && last.comm == c && last.stream == st);
  EXPECT(std::memcmp(g_recv.data(), "NCCL", 4) == 0);
}
void AllReduce(size_t count, ncclDataType_t t, ncclRedOp_t op, ncclComm_t c, cudaStream_t st = nullptr) {
  Check("ncclAllReduce", count, t, op, c, st,
        [&] { return ncclAllReduce(g_send.data(), g_recv.data(), count, t, op, c, st); });
}
}  // namespace

int main() {
  // The fake driver's capture answer, as the interposer will see it.
  CUstreamCaptureStatus cs = CU_STREAM_CAPTURE_STATUS_NONE;
  EXPECT(cuStreamIsCapturing(reinterpret_cast<CUstream>(0x1234), &cs) == CUDA_SUCCESS &&
         cs == CU_STREAM_CAPTURE_STATUS_ACTIVE);
  const size_t big = 1 << 20;  // elements: 4 MiB of fp32, 2 MiB of bf16 (above the 1 MiB threshold)
  ncclUniqueId id{};
  ncclComm_t a = nullptr;
  EXPECT(ncclCommInitRank(&a, 2, id, 0) == ncclSuccess && a);
  AllReduce(big, ncclFloat32, ncclSum, a);  // unusable (no GPU: the CE path cannot start)
  EXPECT(ncclGroupStart() == ncclSuccess);
  AllReduce(big, ncclBfloat16, ncclSum, a);  // group
  EXPECT(ncclGroupEnd() == ncclSuccess);
  AllReduce(big, ncclFloat32, ncclSum, a, reinterpret_cast<cudaStream_t>(0x1234));  // capture
  AllReduce(big, ncclFloat16, ncclSum, a);   // dtype
  AllReduce(big, ncclFloat32, ncclMax, a);   // op
  AllReduce(256, ncclFloat32, ncclSum, a);   // small
  Check("ncclReduceScatter", big, ncclFloat32, ncclSum, a, nullptr, [&] {  // unusable
    return ncclReduceScatter(g_send.data(), g_recv.data(), big, ncclFloat32, ncclSum, a, nullptr);
  });
  Check("ncclAllGather", big, ncclBfloat16, -1, a, nullptr, [&] {  // unusable
    return ncclAllGather(g_send.data(), g_recv.data(), big, ncclBfloat16, a, nullptr);
  });

  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  ncclComm_t nb = nullptr;
  EXPECT(ncclCommInitRankConfig(&nb, 2, id, 0, &cfg) == ncclSuccess && nb);
  AllReduce(big, ncclFloat32, ncclSum, nb);  // nonblocking

  ncclComm_t all[2] = {nullptr, nullptr};
  const int devs[2] = {0, 1};
  EXPECT(ncclCommInitAll(all, 2, devs) == ncclSuccess && all[0]);
  AllReduce(big, ncclFloat32, ncclSum, all[0]);  // untracked
  // NCCL refuses a call (no communicator): its answer reaches the program, and the report counts
  // it nowhere (ce_fallback counts calls NCCL accepted; untracked stays 1).
  EXPECT(ncclAllReduce(g_send.data(), g_recv.data(), big, ncclFloat32, ncclSum, nullptr, nullptr) == ncclInvalidArgument);

  ncclComm_t sub = nullptr;
  EXPECT(ncclCommSplit(a, 0, 0, &sub, nullptr) == ncclSuccess && sub);
  AllReduce(big, ncclFloat32, ncclSum, sub);  // unusable (a second communicator tried)

  EXPECT(ncclCommDestroy(sub) == ncclSuccess);
  EXPECT(ncclCommAbort(nb) == ncclSuccess);
  EXPECT(ncclCommDestroy(all[0]) == ncclSuccess && ncclCommDestroy(all[1]) == ncclSuccess);
  EXPECT(ncclCommDestroy(a) == ncclSuccess);
  EXPECT(fake_nccl_calls("ncclAllReduce") == 10 && fake_nccl_calls("ncclCommDestroy") == 4 &&
         fake_nccl_calls("ncclCommAbort") == 1 && fake_nccl_calls("ncclGroupStart") == 1 &&
         fake_nccl_calls("ncclGroupEnd") == 1 && fake_nccl_calls("ncclCommSplit") == 1);
  if (g_fail) std::fprintf(stderr, "test_nccl_routes: %d checks failed\n", g_fail);
  else std::printf("test_nccl_routes: every call reached NCCL unchanged\n");
  return g_fail ? 1 : 0;
}
