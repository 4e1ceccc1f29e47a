// A program that stops making progress: the watchdog must name the phase and end it with exit 3.
#include <chrono>
#include <cstdio>
#include <thread>

#include "watchdog.h"

int main() {
  corun::Watchdog::Get().Start(1, 1);
  corun::Watchdog::Get().Phase("workload test-wl policy shape:2+priority");
  std::this_thread::sleep_for(std::chrono::seconds(30));
  std::puts("watchdog did not fire");
  return 0;
}
