// A stand-in libcublasLt.so for the CPU tests: records the SM-count target set on descriptors.
#include <cstring>

extern "C" {
struct FakeDesc {
  int sm_target;
};
int fake_last_sm_target = 0;

int cublasLtMatmulDescCreate(FakeDesc** d, int, int) {
  *d = new FakeDesc{0};
  return 0;
}
int cublasLtMatmulDescSetAttribute(FakeDesc* d, int attr, const void* buf, size_t size) {
  if (attr == 15 /* CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET */ && size == sizeof(int)) {
    std::memcpy(&d->sm_target, buf, sizeof(int));
    fake_last_sm_target = d->sm_target;
  }
  return 0;
}
}
