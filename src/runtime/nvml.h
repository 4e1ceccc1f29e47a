// SM clock, power and throttle reasons through NVML, loaded with dlopen at run time (the build
// machine has neither nvml.h nor the library). A background sampler covers the timed repetitions.
#pragma once
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "corun/report.h"

namespace corun {

class Nvml {
 public:
  static Nvml& Get();
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  std::string DriverVersion();
  // The NVML handle of the CUDA device with this PCI bus id ("0000:19:00.0"); nullptr if unknown.
  void* DeviceByPci(const std::string& pci);
  bool Sample(void* dev, unsigned* sm_mhz, double* watts, unsigned long long* reasons);
  static std::vector<std::string> ReasonNames(unsigned long long mask);

 private:
  Nvml();
  bool ok_ = false;
  std::string why_;
  void* lib_ = nullptr;
  int (*get_by_pci_)(const char*, void**) = nullptr;
  int (*clock_)(void*, int, unsigned*) = nullptr;
  int (*power_)(void*, unsigned*) = nullptr;
  int (*reasons_)(void*, unsigned long long*) = nullptr;
  int (*driver_version_)(char*, unsigned) = nullptr;
};

// Samples a set of devices every `period_ms` between Start() and Stop().
class ClockSampler {
 public:
  explicit ClockSampler(std::vector<void*> devices, int period_ms = 20);
  ~ClockSampler();
  void Start();
  ClockSample Stop();  // summary over every device and sample

 private:
  void Loop();
  std::vector<void*> devs_;
  int period_ms_;
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<double> mhz_, watts_;
  unsigned long long reasons_ = 0;
};

}  // namespace corun
