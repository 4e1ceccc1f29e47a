#include "corun/ce_plan.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "corun/parse.h"

namespace corun {

const char* CeOpName(CeOp op) {
  switch (op) {
    case CeOp::kAllReduce: return "allreduce";
    case CeOp::kReduceScatter: return "reducescatter";
    case CeOp::kAllGather: return "allgather";
  }
  return "?";
}

uint64_t CeAlignElems(int elem_bytes) { return elem_bytes > 0 && elem_bytes <= 16 ? 16 / elem_bytes : 1; }

std::vector<CeRange> CeChunks(uint64_t count, uint64_t chunk_elems, int nranks, int elem_bytes) {
  std::vector<CeRange> out;
  const uint64_t unit = CeAlignElems(elem_bytes) * static_cast<uint64_t>(std::max(nranks, 1));
  uint64_t c = chunk_elems / unit * unit;
  if (c == 0) c = unit;
  for (uint64_t first = 0; first < count; first += c) out.push_back({first, std::min(c, count - first)});
  return out;
}

CeRange CeSlice(uint64_t count, int nranks, int j, int elem_bytes) {
  const uint64_t a = CeAlignElems(elem_bytes);
  // Per-rank share rounded up to the alignment: every slice but the tail ones is full.
  const uint64_t per = (count + nranks - 1) / nranks;
  const uint64_t step = (per + a - 1) / a * a;
  const uint64_t first = std::min(count, step * static_cast<uint64_t>(j));
  const uint64_t last = std::min(count, first + step);
  return {first, last - first};
}

int CeBulkChunks(uint64_t count, int nranks, uint64_t piece, int elem_bytes) {
  const uint64_t region = CeSlice(count, std::max(nranks, 1), 0, elem_bytes).count;
  return piece ? static_cast<int>((region + piece - 1) / piece) : 0;
}

CeRange CeBulkPart(uint64_t count, int nranks, int j, uint64_t piece, int a, int e, int elem_bytes) {
  const CeRange region = CeSlice(count, std::max(nranks, 1), j, elem_bytes);
  const uint64_t lo = std::min(region.count, piece * static_cast<uint64_t>(a));
  const uint64_t hi = std::min(region.count, piece * static_cast<uint64_t>(e));
  return {region.first + lo, hi - lo};
}

std::vector<std::pair<CeSeq, int>> CeSlotRuns(CeSeq q, int n, int slots) {
  std::vector<std::pair<CeSeq, int>> runs;
  if (n <= 0 || slots <= 0) return runs;
  const int first = std::min(n, slots - CeSlot(q, slots));
  runs.push_back({q, first});
  if (n > first) runs.push_back({q + static_cast<CeSeq>(first), n - first});
  return runs;
}

uint64_t CeSliceCapacity(uint64_t chunk_elems, int nranks, int elem_bytes) {
  uint64_t cap = 0;
  for (int j = 0; j < nranks; ++j) cap = std::max(cap, CeSlice(chunk_elems, nranks, j, elem_bytes).count);
  return cap;
}

std::vector<CeSeq> CeLastPerLane(CeSeq q_first, CeSeq q_last, int lanes) {
  std::vector<CeSeq> last(lanes, 0);
  if (q_last < q_first) return last;  // an empty range
  // The last `lanes` chunks of the range are enough: every lane's last one is among them.
  const CeSeq from = q_last - q_first >= static_cast<CeSeq>(lanes) ? q_last - static_cast<CeSeq>(lanes) + 1 : q_first;
  for (CeSeq q = from; q <= q_last; ++q) last[CeLane(q, lanes)] = q;
  return last;
}

std::vector<std::pair<int, int>> CeBatches(int nchunks, int batch, int slots) {
  const int b = std::max(1, std::min(batch, slots / 2));
  std::vector<std::pair<int, int>> out;
  for (int i = 0; i < nchunks; i += b) out.emplace_back(i, std::min(nchunks, i + b));
  return out;
}

std::vector<std::pair<int, int>> CeRounds(int nchunks, int slots, bool phased) {
  const int r = phased ? std::max(1, slots) : std::max(1, nchunks);
  std::vector<std::pair<int, int>> out;
  for (int i = 0; i < nchunks; i += r) out.emplace_back(i, std::min(nchunks, i + r));
  return out;
}

std::string CeCommDecision(const CeCaps& caps) {
  if (caps.nranks < 2) return "unsupported: a single rank has nothing to move";
  if (static_cast<int>(caps.peers.size()) != caps.nranks - 1) return "unsupported: peer list incomplete";
  if (!caps.stream_mem_ops) return "unsupported: device lacks stream memory operations";
  if (!caps.mapped_host) return "unsupported: pinned host memory cannot be mapped into the device";
  int here = 0;
  for (const CePeerCaps& p : caps.peers) here += p.same_process ? 1 : 0;
  if (here != 0 && here != static_cast<int>(caps.peers.size()))
    return "unsupported: peers both in this process and in others (one rank per process, or all ranks in one)";
  for (size_t i = 0; i < caps.peers.size(); ++i) {
    const CePeerCaps& p = caps.peers[i];
    const std::string name = std::to_string(p.rank >= 0 ? p.rank : static_cast<int>(i));
    if (!p.can_access_peer) return "unsupported: no peer access to peer " + name;
    if (!p.nvlink) return "unsupported: peer " + name + " not linked by NVLink";
    if (!p.same_process && !p.ipc_ok)
      return "unsupported: IPC handle of peer " + name + " refused" + (p.ipc_error.empty() ? "" : ": " + p.ipc_error);
  }
  // Keep a margin: the caller's own buffers come after the staging.
  if (caps.free_bytes < caps.staging_bytes + (caps.staging_bytes >> 2))
    return "unsupported: too little device memory for staging (" + std::to_string(caps.staging_bytes >> 20) +
           " MiB needed, " + std::to_string(caps.free_bytes >> 20) + " MiB free)";
  return "";
}

std::string CeCallDecision(const std::string& dtype, const std::string& op, uint64_t bytes, const CeConfig& cfg) {
  if (dtype != "bf16" && dtype != "fp32") return "unsupported: dtype " + dtype;
  if (op != "sum") return "unsupported: reduction " + op;
  if (bytes < cfg.min_bytes)
    return "unsupported: " + std::to_string(bytes) + " bytes below threshold " + std::to_string(cfg.min_bytes);
  return "";
}

uint64_t CeCallChunksBound(uint64_t bytes, const CeConfig& cfg) {
  const uint64_t chunk = cfg.chunk_bytes > 2048 ? cfg.chunk_bytes - 1024 : 1024;
  return (bytes + chunk - 1) / chunk;
}

std::string CeChunksDecision(uint64_t bytes, const CeConfig& cfg) {
  if (CeCallChunksBound(bytes, cfg) <= kCeMaxCallChunks) return "";
  return "unsupported: a call of " + std::to_string(bytes) + " bytes takes more than " +
         std::to_string(kCeMaxCallChunks) + " chunks of " + std::to_string(cfg.chunk_bytes) +
         " bytes (a larger CORUN_CE_CHUNK serves it)";
}

std::string CeConfigError(const CeConfig& cfg) {
  if (cfg.chunk_bytes < 4096) return "chunk_bytes must be at least 4096";
  if (cfg.slots < 2 || cfg.slots > 64) return "slots must be in [2, 64]";
  if (cfg.lanes < 1 || cfg.lanes > 8) return "lanes must be in [1, 8]";
  if (cfg.batch < 1 || cfg.batch > 32) return "batch must be in [1, 32]";
  if (cfg.reduce_sms < 0 || cfg.reduce_sms > 1024) return "reduce_sms must be in [0, 1024]";
  if (cfg.direct_wait_us > 10000000) return "direct_wait_us must be in [0, 10000000]";
  if (cfg.bulk_round < 0 || cfg.bulk_round > 64) return "bulk_round must be in [0, 64]";
  if (cfg.first_seq >= (1ull << 62)) return "first_seq must be below 2^62";
  return "";
}

std::string CeConfigFromEnv(const char* (*get)(const char*), CeConfig* cfg) {
  CeConfig c = *cfg;
  auto size = [&](const char* name, uint64_t* v) -> std::string {
    const char* t = get(name);
    if (!t) return "";
    if (!ParseSize(t, v).ok()) return std::string("bad ") + name + " '" + Printable(t) + "' (a size: 16M, 4096, ...)";
    return "";
  };
  auto integer = [&](const char* name, int* v, int lo, int hi) -> std::string {
    const char* t = get(name);
    if (!t) return "";
    char* end = nullptr;
    const long x = std::strtol(t, &end, 10);
    if (!*t || *end || x < lo || x > hi)
      return std::string("bad ") + name + " '" + Printable(t) + "' (an integer in [" + std::to_string(lo) + ", " +
             std::to_string(hi) + "])";
    *v = static_cast<int>(x);
    return "";
  };
  int pull = c.ag_pull ? 1 : 0, phases = c.phases ? 1 : 0, direct = c.direct ? 1 : 0, bulk = c.bulk ? 1 : 0;
  int on_caller = c.bulk_on_caller ? 1 : 0, thread = c.enqueue_thread ? 1 : 0;
  int direct_wait = static_cast<int>(c.direct_wait_us);
  if (const char* t = get("CORUN_CE_SIGNAL")) {
    const std::string v = t;
    if (v != "write" && v != "copy") return "bad CORUN_CE_SIGNAL '" + Printable(t) + "' (write or copy)";
    c.signal_copy = v == "copy";
  }
  if (const char* t = get("CORUN_CE_REDUCE_PRIORITY")) {
    const std::string v = t;
    if (v != "top" && v != "least") return "bad CORUN_CE_REDUCE_PRIORITY '" + Printable(t) + "' (top or least)";
    c.reduce_least_priority = v == "least";
  }
  if (const char* t = get("CORUN_CE_COPY")) {
    const std::string v = t;
    if (v != "streams" && v != "batch") return "bad CORUN_CE_COPY '" + Printable(t) + "' (streams or batch)";
    c.batch_copies = v == "batch";
  }
  for (const std::string& e : {size("CORUN_CE_CHUNK", &c.chunk_bytes), size("CORUN_CE_MIN_BYTES", &c.min_bytes),
                               integer("CORUN_CE_SLOTS", &c.slots, 2, 64), integer("CORUN_CE_LANES", &c.lanes, 1, 8),
                               integer("CORUN_CE_BATCH", &c.batch, 1, 32), integer("CORUN_CE_PULL", &pull, 0, 1),
                               integer("CORUN_CE_PHASES", &phases, 0, 1),
                               integer("CORUN_CE_REDUCE_SMS", &c.reduce_sms, 0, 1024),
                               integer("CORUN_CE_DIRECT", &direct, 0, 1), integer("CORUN_CE_BULK", &bulk, 0, 1),
                               integer("CORUN_CE_BULK_ROUND", &c.bulk_round, 0, 64),
                               integer("CORUN_CE_BULK_CALLER", &on_caller, 0, 1),
                               integer("CORUN_CE_THREAD", &thread, 0, 1),
                               integer("CORUN_CE_DIRECT_WAIT_US", &direct_wait, 0, 10000000)})
    if (!e.empty()) return e;
  c.ag_pull = pull != 0;
  if (get("CORUN_CE_PULL")) c.pull_by_ranks = false;
  c.phases = phases != 0;
  c.direct = direct != 0;
  c.bulk = bulk != 0;
  c.bulk_on_caller = on_caller != 0;
  c.enqueue_thread = thread != 0;
  c.direct_wait_us = static_cast<uint64_t>(direct_wait);
  const std::string bad = CeConfigError(c);
  if (!bad.empty()) return "bad copy-engine configuration from CORUN_CE_*: " + bad;
  *cfg = c;
  return "";
}

std::string CeProfileLine(int rank, uint64_t calls, const CeHostTimes& t) {
  static const char* const kName[kCeHostOps] = {"copies", "memops", "launches", "events", "whole call"};
  std::string line = "corun ce: rank " + std::to_string(rank) + ": host time per call over " + std::to_string(calls) + " calls:";
  const double c = calls ? static_cast<double>(calls) : 1.0;
  for (int i = 0; i < kCeHostOps; ++i) {
    char b[192];
    std::snprintf(b, sizeof(b), " %s %.1f us (%.1f each, %.1f runtime calls, max %.0f)%s", kName[i], t.ns[i] / 1e3 / c,
                  t.n[i] ? t.ns[i] / 1e3 / static_cast<double>(t.n[i]) : 0.0, static_cast<double>(t.n[i]) / c,
                  t.max_ns[i] / 1e3, i + 1 < kCeHostOps ? ";" : "");
    line += b;
  }
  return line;
}

bool CePullByRanks(const CeConfig& cfg, int nranks) { return nranks <= 2 && !(cfg.direct && cfg.bulk); }

int CeSlotsToHold(const CeConfig& cfg, uint64_t bytes) {
  const uint64_t chunks = cfg.chunk_bytes ? (bytes + cfg.chunk_bytes - 1) / cfg.chunk_bytes : 0;
  return static_cast<int>(std::max<uint64_t>(static_cast<uint64_t>(cfg.slots), std::min<uint64_t>(chunks, 64)));
}

int CeLanesFor(const CeConfig& cfg, int nranks) {
  const int fan = std::max(nranks - 1, 1);
  return std::max(1, std::min(cfg.lanes, kCeMaxCopyStreams / (2 * fan)));
}

uint64_t CeSlotBytes(const CeConfig& cfg, int nranks) {
  // Any element size: a slice is ceil(chunk / nranks) rounded up to 16 bytes at most.
  const uint64_t slice = CeSliceCapacity(cfg.chunk_bytes, std::max(nranks, 1), 1);
  return (slice + 255) / 256 * 256;
}

uint64_t CeStagingBytes(const CeConfig& cfg, int nranks) {
  if (nranks < 2) return 0;
  return static_cast<uint64_t>(cfg.slots) * (nranks - 1) * CeSlotBytes(cfg, nranks);
}

}  // namespace corun
