// Like a Python extension module: it needs libcublasLt and is itself loaded with RTLD_LOCAL.
extern "C" {
struct FakeDesc {
  int sm_target;
};
int cublasLtMatmulDescCreate(FakeDesc** d, int, int);

int plugin_create_desc(int* sm_target) {
  FakeDesc* d = nullptr;
  const int st = cublasLtMatmulDescCreate(&d, 68, 0);
  *sm_target = d ? d->sm_target : -1;
  return st;
}
}
