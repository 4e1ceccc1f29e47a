// corun trace record files: what libcorun_trace.so writes (one file per process) and the reader.
//
// Format: JSON lines, one object per line, written a whole CUPTI buffer at a time and flushed, so
// a file cut short by a kill holds every line written before it (a torn last line is dropped).
//   line 1   {"corun_trace":1,"pid":P,"rank":R,"host":"h","start_ns":T,"cmd":"..."}    (rank -1: none)
//   names    {"t":"n","i":ID,"s":"text"}                   name table (kernel, API, NVTX names)
//   kernel   {"t":"k","s":NS,"e":NS,"d":DEV,"q":STREAM,"c":CORR,"n":ID,"g":[x,y,z],"b":[x,y,z]}
//   memcpy   {"t":"m","s","e","d","q","c","y":KIND,"by":BYTES}   KIND: htod dtoh dtod htoh ptop ...
//   memset   {"t":"z","s","e","d","q","c","by":BYTES}
//   API      {"t":"a","s","e","c":CORR,"n":ID,"h":THREAD}       launch/memcpy/memset calls only
//   sync     {"t":"y","s","e","q":STREAM,"y":TYPE}              host waits (stream/event/context)
//   NVTX     {"t":"r","s","e","n":ID,"h":THREAD}                a push/pop or start/end range
//   last     {"t":"end","dropped":N}                            written at exit; absent if killed
// Times are CUPTI timestamps (ns, one clock for host and GPU, shared by the processes of a node).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "corun/status.h"

namespace corun {

enum class GpuKind { kKernel, kMemcpy, kMemset };

struct GpuActivity {
  GpuKind kind = GpuKind::kKernel;
  int64_t start = 0, end = 0;  // ns
  int device = 0;
  uint32_t stream = 0;
  uint32_t corr = 0;  // correlation id: joins the API call that issued it
  std::string name;   // kernel name, "memcpy ptop", "memset", ...
  uint64_t bytes = 0;
  std::string grid;   // kernels: "gx,gy,gz/bx,by,bz" (one name can run in several shapes)
  bool comm = false;  // NCCL kernel or peer copy
};

struct ApiCall {
  int64_t start = 0, end = 0;
  uint32_t corr = 0;
  uint32_t thread = 0;
  std::string name;
};

struct SyncWait {
  int64_t start = 0, end = 0;
  uint32_t stream = 0;
  std::string type;
};

struct NvtxRange {
  int64_t start = 0, end = 0;
  uint32_t thread = 0;
  std::string name;
};

struct TraceFile {
  std::string path;
  int pid = 0;
  int rank = -1;
  std::string host, command;
  int64_t start_ns = 0;
  std::vector<GpuActivity> gpu;  // sorted by start
  std::vector<ApiCall> api;
  std::vector<SyncWait> syncs;
  std::vector<NvtxRange> ranges;
  bool complete = false;    // the end line was seen (the process exited normally)
  bool torn_tail = false;   // the last line was cut short (killed while writing)
  uint64_t dropped = 0;     // records CUPTI dropped (buffers full)
  int64_t incomplete = 0;   // GPU records without a valid [start, end], left out (see ReadTraceFile)
};

// Communication: NCCL's kernels (ncclDevKernel*, ncclKernel*, also inside a mangled name) and
// peer-to-peer copies.
bool IsCommKernelName(const std::string& name);

// Reads one record file. A torn last line is dropped (torn_tail); a bad line elsewhere is an error.
// GPU records without a valid [start, end] are left out and counted (incomplete): an activity still
// running when the program was killed comes back with zero timestamps, and nothing the GPU ran can
// start before the tracer did (start_ns); either would stretch every window to the clock's origin.
Status ReadTraceFile(const std::string& path, TraceFile* out);
// The record files (corun_trace.*.jsonl) in a folder, sorted by name.
Status ListTraceFiles(const std::string& dir, std::vector<std::string>* files);

}  // namespace corun
