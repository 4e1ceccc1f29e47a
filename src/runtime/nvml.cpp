#include "nvml.h"

#include <dlfcn.h>

#include <chrono>

namespace corun {

Nvml& Nvml::Get() {
  static Nvml n;
  return n;
}

Nvml::Nvml() {
  lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib_) {
    why_ = "libnvidia-ml.so.1 not found";
    return;
  }
  auto init = reinterpret_cast<int (*)()>(dlsym(lib_, "nvmlInit_v2"));
  get_by_pci_ = reinterpret_cast<int (*)(const char*, void**)>(dlsym(lib_, "nvmlDeviceGetHandleByPciBusId_v2"));
  clock_ = reinterpret_cast<int (*)(void*, int, unsigned*)>(dlsym(lib_, "nvmlDeviceGetClockInfo"));
  power_ = reinterpret_cast<int (*)(void*, unsigned*)>(dlsym(lib_, "nvmlDeviceGetPowerUsage"));
  reasons_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(dlsym(lib_, "nvmlDeviceGetCurrentClocksEventReasons"));
  if (!reasons_)
    reasons_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(dlsym(lib_, "nvmlDeviceGetCurrentClocksThrottleReasons"));
  driver_version_ = reinterpret_cast<int (*)(char*, unsigned)>(dlsym(lib_, "nvmlSystemGetDriverVersion"));
  if (!init || !get_by_pci_ || !clock_ || !power_) {
    why_ = "libnvidia-ml.so.1 lacks a needed function";
    return;
  }
  if (init() != 0) {
    why_ = "nvmlInit failed";
    return;
  }
  ok_ = true;
}

std::string Nvml::DriverVersion() {
  char buf[96] = {0};
  if (ok_ && driver_version_ && driver_version_(buf, sizeof(buf)) == 0) return buf;
  return "";
}

void* Nvml::DeviceByPci(const std::string& pci) {
  void* dev = nullptr;
  if (!ok_ || get_by_pci_(pci.c_str(), &dev) != 0) return nullptr;
  return dev;
}

bool Nvml::Sample(void* dev, unsigned* mhz, double* watts, unsigned long long* reasons) {
  if (!ok_ || !dev) return false;
  unsigned mw = 0;
  constexpr int kClockSm = 1;  // NVML_CLOCK_SM
  if (clock_(dev, kClockSm, mhz) != 0 || power_(dev, &mw) != 0) return false;
  *watts = mw / 1000.0;
  *reasons = 0;
  if (reasons_) reasons_(dev, reasons);
  return true;
}

std::vector<std::string> Nvml::ReasonNames(unsigned long long m) {
  static const std::pair<unsigned long long, const char*> kNames[] = {
      {0x1, "gpu_idle"},          {0x2, "applications_clocks"}, {0x4, "sw_power_cap"},
      {0x8, "hw_slowdown"},       {0x10, "sync_boost"},         {0x20, "sw_thermal"},
      {0x40, "hw_thermal"},       {0x80, "hw_power_brake"},     {0x100, "display_clock"}};
  std::vector<std::string> out;
  for (const auto& [bit, name] : kNames)
    if (m & bit) out.push_back(name);
  return out;
}

ClockSampler::ClockSampler(std::vector<void*> devices, int period_ms)
    : devs_(std::move(devices)), period_ms_(period_ms) {}

ClockSampler::~ClockSampler() {
  if (running_) Stop();
}

void ClockSampler::Start() {
  {
    std::lock_guard<std::mutex> l(mu_);
    mhz_.clear();
    watts_.clear();
    reasons_ = 0;
  }
  if (devs_.empty() || !Nvml::Get().ok()) return;
  running_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void ClockSampler::Loop() {
  while (running_) {
    for (void* d : devs_) {
      unsigned mhz = 0;
      double w = 0;
      unsigned long long r = 0;
      if (Nvml::Get().Sample(d, &mhz, &w, &r)) {
        std::lock_guard<std::mutex> l(mu_);
        mhz_.push_back(mhz);
        watts_.push_back(w);
        reasons_ |= r;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(period_ms_));
  }
}

ClockSample ClockSampler::Stop() {
  if (running_) {
    running_ = false;
    thread_.join();
  }
  std::lock_guard<std::mutex> l(mu_);
  ClockSample s;
  if (mhz_.empty()) return s;
  s.valid = true;
  s.sm_mhz = Summarize(mhz_);
  s.power_w = Summarize(watts_);
  s.throttle = Nvml::ReasonNames(reasons_ & ~0x1ull);  // "idle" is noise between launches
  return s;
}

}  // namespace corun
