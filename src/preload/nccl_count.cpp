// The NCCL stage's counts under `ce`: collectives served by copy engines (bytes, host time to
// enqueue, allreduces by direct copies), those NCCL took and why (corun/ce_route.h), and each
// communicator's CeComm creation; the report's JSON and the exit summary line read them.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ce_debug.h"
#include "preload.h"

namespace corun {

namespace {
std::atomic<uint64_t> g_served{0}, g_served_bytes{0};
// Served allreduces whose all-gather copies went straight between the outputs (CeConfig::direct).
std::atomic<uint64_t> g_served_direct{0};
// Host time the served calls spent enqueueing (the program's thread is held that long: DDP's
// backward issues its next kernels only after the call returns).
std::atomic<uint64_t> g_enqueue_ns{0}, g_enqueue_max_ns{0};
std::atomic<uint64_t> g_fallback[static_cast<int>(CeRoute::kCount)]{};

struct CommRecord {
  int rank = -1, nranks = 0;
  bool usable = false;
  std::string why;
};
struct Records {
  std::mutex mu;
  std::vector<CommRecord> all;
};
Records& Recs() {
  static Records* r = new Records;  // lives as long as the process: hooks can run during exit
  return *r;
}
}  // namespace

bool CeOn() {
  const State& s = S();
  return s.enabled && s.cfg.policy.ce;
}

void CeCountServed(uint64_t bytes, uint64_t enqueue_ns) {
  g_served.fetch_add(1, std::memory_order_relaxed);
  g_served_bytes.fetch_add(bytes, std::memory_order_relaxed);
  g_enqueue_ns.fetch_add(enqueue_ns, std::memory_order_relaxed);
  CeAtomicMax(g_enqueue_max_ns, enqueue_ns);
}

void CeCountDirect(uint64_t calls) { g_served_direct.fetch_add(calls, std::memory_order_relaxed); }

void CeCountToNccl(CeRoute why) { g_fallback[static_cast<int>(why)].fetch_add(1, std::memory_order_relaxed); }

void CeRecordComm(int rank, int nranks, bool usable, const std::string& why) {
  std::lock_guard<std::mutex> l(Recs().mu);
  Recs().all.push_back(CommRecord{rank, nranks, usable, why});
}

void CeReportJson(nlohmann::ordered_json* j) {
  if (!CeOn()) return;
  (*j)["ce_served"] = g_served.load();
  (*j)["ce_served_bytes"] = g_served_bytes.load();
  (*j)["ce_served_direct"] = g_served_direct.load();
  const uint64_t n = g_served.load();
  (*j)["ce_enqueue_us_mean"] = n ? g_enqueue_ns.load() / 1e3 / static_cast<double>(n) : 0.0;
  (*j)["ce_enqueue_us_max"] = g_enqueue_max_ns.load() / 1e3;
  nlohmann::ordered_json fb = nlohmann::ordered_json::object();
  for (int i = 1; i < static_cast<int>(CeRoute::kCount); ++i) fb[CeRouteName(static_cast<CeRoute>(i))] = g_fallback[i].load();
  (*j)["ce_fallback"] = fb;
  nlohmann::ordered_json comms = nlohmann::ordered_json::array();
  std::lock_guard<std::mutex> l(Recs().mu);
  for (const CommRecord& r : Recs().all)
    comms.push_back({{"rank", r.rank}, {"nranks", r.nranks}, {"usable", r.usable}, {"why", r.why}});
  (*j)["ce_comms"] = comms;
}

std::string CeSummaryLine() {
  if (!CeOn()) return "";
  uint64_t to_nccl = 0;
  std::string why;
  for (int i = 1; i < static_cast<int>(CeRoute::kCount); ++i) {
    const uint64_t n = g_fallback[i].load();
    if (!n) continue;
    to_nccl += n;
    why += fmt::format("{}{} {}", why.empty() ? "" : ", ", CeRouteName(static_cast<CeRoute>(i)), n);
  }
  const uint64_t served = g_served.load();
  int usable = 0, comms = 0;
  std::string first_why;
  {
    std::lock_guard<std::mutex> l(Recs().mu);
    for (const CommRecord& r : Recs().all) {
      ++comms;
      usable += r.usable;
      if (!r.usable && first_why.empty()) first_why = r.why;
    }
  }
  if (!served && !to_nccl) return "";
  const std::string enq =
      served ? fmt::format(", enqueue {:.0f} us per call (max {:.0f})", g_enqueue_ns.load() / 1e3 / served,
                           g_enqueue_max_ns.load() / 1e3)
             : "";
  return fmt::format("corun: pid {} copy engines: {} collectives served ({:.1f} MiB{}; {} allreduces by direct "
                     "copies), {} to NCCL ({}); {} of {} communicators usable{}",
                     static_cast<int>(getpid()), served, g_served_bytes.load() / 1048576.0, enq, g_served_direct.load(), to_nccl,
                     why.empty() ? "-" : why, usable, comms, first_why.empty() ? "" : " (" + first_why + ")");
}

}  // namespace corun
