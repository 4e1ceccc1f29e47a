#include "greenctx.h"

#include <cuda.h>

#include "checks.h"
#include "driver.h"

namespace corun {

GreenSplit::~GreenSplit() {
  const DriverTable& d = Driver();
  if (stream_) cudaStreamDestroy(stream_);
  if (green_ && d.cuGreenCtxDestroy) d.cuGreenCtxDestroy(static_cast<CUgreenCtx>(green_));
}

Status GreenSplit::Create(int device, int comm_sms) {
  const DriverTable& d = Driver();
  if (!d.cuDeviceGetDevResource || !d.cuDevSmResourceSplitByCount || !d.cuDevResourceGenerateDesc ||
      !d.cuGreenCtxCreate || !d.cuGreenCtxStreamCreate || !d.cuDeviceGet)
    CORUN_FAIL("this driver has no green-context API");
  CUdevice dev;
  CUCHECK(d.cuDeviceGet(&dev, device));
  CUdevResource all{};
  CUCHECK(d.cuDeviceGetDevResource(dev, &all, CU_DEV_RESOURCE_TYPE_SM));
  total_sms_ = static_cast<int>(all.sm.smCount);
  const int want = total_sms_ - comm_sms;
  if (want < 1) CORUN_FAIL("greenctx:" + std::to_string(comm_sms) + " leaves no SM for compute");
  CUdevResource group{}, rest{};
  unsigned groups = 1;
  CUCHECK(d.cuDevSmResourceSplitByCount(&group, &groups, &all, &rest, 0, static_cast<unsigned>(want)));
  if (groups < 1) CORUN_FAIL("green-context split produced no group");
  compute_sms_ = static_cast<int>(group.sm.smCount);
  if (compute_sms_ >= total_sms_)
    CORUN_FAIL("green-context split of " + std::to_string(want) + " SMs rounded up to all " +
               std::to_string(total_sms_) + " SMs: nothing left for communication");
  CUdevResourceDesc desc;
  CUCHECK(d.cuDevResourceGenerateDesc(&desc, &group, 1));
  CUgreenCtx g;
  CUCHECK(d.cuGreenCtxCreate(&g, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM));
  green_ = g;
  CUstream s;
  CUCHECK(d.cuGreenCtxStreamCreate(&s, g, CU_STREAM_NON_BLOCKING, 0));
  stream_ = reinterpret_cast<cudaStream_t>(s);
  return Status::Ok();
}

}  // namespace corun
