// What corun needs to know about one GPU, read once from the runtime.
#pragma once
#include <string>
#include <vector>

#include "corun/occupancy.h"
#include "corun/status.h"

namespace corun {

struct DeviceInfo {
  int index = 0;
  std::string name, pci;
  int sm_major = 0, sm_minor = 0, sms = 0;
  size_t memory = 0;
  int priority_lowest = 0, priority_highest = 0;  // numerically: lowest 0, highest e.g. -5
  DeviceLimits limits;  // from the device's own properties
};

Status QueryDevice(int index, DeviceInfo* info);
Status CountDevices(int* n);  // error with a clear message when there is no usable GPU
std::string CudaRuntimeVersion();
std::string CudaDriverVersion();
std::string NcclVersion();

}  // namespace corun
