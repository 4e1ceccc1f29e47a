// libcorun_trace.so: CUPTI activity records of one process into CORUN_TRACE_DIR (format in
// include/corun/trace_records.h).
//
// Started by the driver at cuInit through CUDA_INJECTION64_PATH (what `corun trace` sets: only
// processes that use CUDA are traced, from their first CUDA call), or from the constructor when the
// library is LD_PRELOADed by hand. CUPTI hands over full buffers (and, every second, partial ones)
// on its own thread, where they are formatted and written: the application's threads only pay
// CUPTI's record copy. Flushed at exit (atexit and the destructor) and on SIGTERM (then the
// previous handler runs).
#include <cupti.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#define EXPORT __attribute__((visibility("default")))

namespace {

constexpr size_t kBufferBytes = 4u << 20;
constexpr uint32_t kFlushPeriodMs = 1000;

std::mutex g_mu;                     // the file and the name table
FILE* g_file = nullptr;
std::unordered_map<std::string, int> g_names;
std::atomic<bool> g_started{false};
std::atomic<bool> g_finished{false};
pid_t g_pid = 0;
struct sigaction g_prev_term;
bool g_verbose = false;

void Warn(const char* what, CUptiResult r) {
  const char* s = nullptr;
  cuptiGetResultString(r, &s);
  std::fprintf(stderr, "corun trace: pid %d: %s failed: %s\n", getpid(), what, s ? s : "?");
}

#define CUPTI_TRY(call)                              \
  do {                                               \
    CUptiResult _r = (call);                         \
    if (_r != CUPTI_SUCCESS) Warn(#call, _r);        \
  } while (0)

// JSON string body (names are C identifiers or demangled signatures; escape what JSON needs).
void Escape(const char* s, std::string* out) {
  for (; s && *s; ++s) {
    const unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out->append(b);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

// Name id, emitting its table line the first time (caller holds g_mu).
int NameId(const char* name, std::string* out) {
  const std::string key = name ? name : "?";
  auto it = g_names.find(key);
  if (it != g_names.end()) return it->second;
  const int id = static_cast<int>(g_names.size()) + 1;
  g_names.emplace(key, id);
  out->append("{\"t\":\"n\",\"i\":").append(std::to_string(id)).append(",\"s\":\"");
  Escape(key.c_str(), out);
  out->append("\"}\n");
  return id;
}

const char* CopyKind(uint8_t k) {
  switch (k) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "htod";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "dtoh";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOA: return "htoa";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOH: return "atoh";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOA: return "atoa";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOD: return "atod";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOA: return "dtoa";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "dtod";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH: return "htoh";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return "ptop";
    default: return "other";
  }
}

const char* SyncType(int t) {
  switch (t) {
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_EVENT_SYNCHRONIZE: return "event";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_WAIT_EVENT: return "stream_wait_event";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_SYNCHRONIZE: return "stream";
    case CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_CONTEXT_SYNCHRONIZE: return "context";
    default: return "other";
  }
}

// Open NVTX ranges by id (start and end come as two records); touched on CUPTI's thread only.
struct OpenRange {
  uint64_t start;
  int name;
  uint32_t thread;
};
std::unordered_map<uint32_t, OpenRange> g_open;

void Format(CUpti_Activity* rec, std::string* out) {
  char b[512];
  int n = 0;
  switch (rec->kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      auto* k = reinterpret_cast<CUpti_ActivityKernel10*>(rec);
      const int id = NameId(k->name, out);
      n = std::snprintf(b, sizeof b,
                        "{\"t\":\"k\",\"s\":%llu,\"e\":%llu,\"d\":%u,\"q\":%u,\"c\":%u,\"n\":%d,\"g\":[%d,%d,%d],"
                        "\"b\":[%d,%d,%d]}\n",
                        (unsigned long long)k->start, (unsigned long long)k->end, k->deviceId, k->streamId,
                        k->correlationId, id, k->gridX, k->gridY, k->gridZ, k->blockX, k->blockY, k->blockZ);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      auto* m = reinterpret_cast<CUpti_ActivityMemcpy6*>(rec);
      n = std::snprintf(b, sizeof b,
                        "{\"t\":\"m\",\"s\":%llu,\"e\":%llu,\"d\":%u,\"q\":%u,\"c\":%u,\"y\":\"%s\",\"by\":%llu}\n",
                        (unsigned long long)m->start, (unsigned long long)m->end, m->deviceId, m->streamId,
                        m->correlationId, CopyKind(m->copyKind), (unsigned long long)m->bytes);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY2: {  // peer to peer
      auto* m = reinterpret_cast<CUpti_ActivityMemcpyPtoP4*>(rec);
      n = std::snprintf(b, sizeof b,
                        "{\"t\":\"m\",\"s\":%llu,\"e\":%llu,\"d\":%u,\"q\":%u,\"c\":%u,\"y\":\"ptop\",\"by\":%llu,"
                        "\"src\":%u,\"dst\":%u}\n",
                        (unsigned long long)m->start, (unsigned long long)m->end, m->deviceId, m->streamId,
                        m->correlationId, (unsigned long long)m->bytes, m->srcDeviceId, m->dstDeviceId);
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      auto* m = reinterpret_cast<CUpti_ActivityMemset4*>(rec);
      n = std::snprintf(b, sizeof b, "{\"t\":\"z\",\"s\":%llu,\"e\":%llu,\"d\":%u,\"q\":%u,\"c\":%u,\"by\":%llu}\n",
                        (unsigned long long)m->start, (unsigned long long)m->end, m->deviceId, m->streamId,
                        m->correlationId, (unsigned long long)m->bytes);
      break;
    }
    case CUPTI_ACTIVITY_KIND_RUNTIME:
    case CUPTI_ACTIVITY_KIND_DRIVER: {
      auto* a = reinterpret_cast<CUpti_ActivityAPI*>(rec);
      const char* name = nullptr;
      cuptiGetCallbackName(rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME ? CUPTI_CB_DOMAIN_RUNTIME_API
                                                                    : CUPTI_CB_DOMAIN_DRIVER_API,
                           a->cbid, &name);
      const int id = NameId(name, out);
      n = std::snprintf(b, sizeof b, "{\"t\":\"a\",\"s\":%llu,\"e\":%llu,\"c\":%u,\"n\":%d,\"h\":%u}\n",
                        (unsigned long long)a->start, (unsigned long long)a->end, a->correlationId, id, a->threadId);
      break;
    }
    case CUPTI_ACTIVITY_KIND_SYNCHRONIZATION: {
      auto* y = reinterpret_cast<CUpti_ActivitySynchronization2*>(rec);
      n = std::snprintf(b, sizeof b, "{\"t\":\"y\",\"s\":%llu,\"e\":%llu,\"q\":%u,\"y\":\"%s\"}\n",
                        (unsigned long long)y->start, (unsigned long long)y->end, y->streamId, SyncType(y->type));
      break;
    }
    case CUPTI_ACTIVITY_KIND_MARKER: {
      auto* m = reinterpret_cast<CUpti_ActivityMarker2*>(rec);
      if (m->flags & CUPTI_ACTIVITY_FLAG_MARKER_START) {
        const uint32_t tid = m->objectKind == CUPTI_ACTIVITY_OBJECT_THREAD ? m->objectId.pt.threadId : 0;
        g_open[m->id] = OpenRange{m->timestamp, NameId(m->name, out), tid};
      } else if (m->flags & CUPTI_ACTIVITY_FLAG_MARKER_END) {
        auto it = g_open.find(m->id);
        if (it == g_open.end()) break;
        n = std::snprintf(b, sizeof b, "{\"t\":\"r\",\"s\":%llu,\"e\":%llu,\"n\":%d,\"h\":%u}\n",
                          (unsigned long long)it->second.start, (unsigned long long)m->timestamp, it->second.name,
                          it->second.thread);
        g_open.erase(it);
      }
      break;
    }
    default:
      break;
  }
  if (n > 0) out->append(b, static_cast<size_t>(std::min<int>(n, sizeof b - 1)));
}

void CUPTIAPI BufferRequested(uint8_t** buffer, size_t* size, size_t* max_records) {
  void* p = nullptr;
  if (posix_memalign(&p, 8, kBufferBytes) != 0) p = nullptr;
  *buffer = static_cast<uint8_t*>(p);
  *size = p ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI BufferCompleted(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::string out;
  out.reserve(valid / 2);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    CUpti_Activity* rec = nullptr;
    while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) Format(rec, &out);
    // A forked child shares the parent's file: it writes nothing.
    if (g_file && getpid() == g_pid && !out.empty()) {
      std::fwrite(out.data(), 1, out.size(), g_file);
      std::fflush(g_file);
    }
  }
  std::free(buffer);
}

// API records only for the calls that issue GPU work (the launch that produced each kernel).
void EnableLaunchApis() {
  struct Dom {
    CUpti_CallbackDomain dom;
    uint32_t n;
    CUptiResult (*enable)(CUpti_CallbackId, uint8_t);
  } doms[] = {{CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_SIZE, cuptiActivityEnableRuntimeApi},
              {CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_SIZE, cuptiActivityEnableDriverApi}};
  int on = 0;
  for (const Dom& d : doms)
    for (uint32_t cb = 1; cb < d.n; ++cb) {
      const char* name = nullptr;
      if (cuptiGetCallbackName(d.dom, cb, &name) != CUPTI_SUCCESS || !name) continue;
      const std::string s = name;
      if (s.find("Launch") == std::string::npos && s.find("Memcpy") == std::string::npos &&
          s.find("Memset") == std::string::npos)
        continue;
      if (s.find("Attribute") != std::string::npos || s.find("Occupancy") != std::string::npos) continue;
      if (d.enable(cb, 1) == CUPTI_SUCCESS) ++on;
    }
  if (g_verbose) std::fprintf(stderr, "corun trace: pid %d: %d launch/copy API calls recorded\n", getpid(), on);
}

void Finish() {
  if (!g_started.load() || g_finished.exchange(true) || getpid() != g_pid) return;
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  size_t dropped = 0;
  cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped);
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_file) {
    std::fprintf(g_file, "{\"t\":\"end\",\"dropped\":%zu}\n", dropped);
    std::fclose(g_file);
    g_file = nullptr;
  }
}

void OnTerm(int sig, siginfo_t* info, void* ctx) {
  // Not async-signal-safe, as every profiler's flush on a signal: the alternative is losing the
  // last second of records of a run that torchrun ends with SIGTERM.
  Finish();
  if (g_prev_term.sa_flags & SA_SIGINFO) {
    if (g_prev_term.sa_sigaction) g_prev_term.sa_sigaction(sig, info, ctx);
    return;
  }
  if (g_prev_term.sa_handler == SIG_IGN) return;
  if (g_prev_term.sa_handler != SIG_DFL && g_prev_term.sa_handler) {
    g_prev_term.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

int EnvRank() {
  for (const char* k : {"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID", "LOCAL_RANK"})
    if (const char* v = std::getenv(k); v && *v) return std::atoi(v);
  return -1;
}

std::string Cmdline() {
  std::string s;
  if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
    char b[4096];
    const size_t n = std::fread(b, 1, sizeof b, f);
    std::fclose(f);
    for (size_t i = 0; i < n; ++i) s.push_back(b[i] ? b[i] : ' ');
    while (!s.empty() && s.back() == ' ') s.pop_back();
  }
  return s;
}

void Start() {
  if (g_started.exchange(true)) return;
  const char* dir = std::getenv("CORUN_TRACE_DIR");
  if (!dir || !*dir) return;
  g_verbose = std::getenv("CORUN_TRACE_VERBOSE") != nullptr;
  g_pid = getpid();
  const int rank = EnvRank();
  const std::string path = std::string(dir) + "/corun_trace." + (rank >= 0 ? "r" + std::to_string(rank) + "." : "") +
                           "p" + std::to_string(g_pid) + ".jsonl";
  g_file = std::fopen(path.c_str(), "w");
  if (!g_file) {
    std::fprintf(stderr, "corun trace: pid %d: cannot write %s: %s\n", g_pid, path.c_str(), std::strerror(errno));
    return;
  }
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  uint64_t now = 0;
  cuptiGetTimestamp(&now);
  std::string h = "{\"corun_trace\":1,\"pid\":" + std::to_string(g_pid) + ",\"rank\":" + std::to_string(rank) +
                  ",\"host\":\"";
  Escape(host, &h);
  h += "\",\"start_ns\":" + std::to_string(now) + ",\"cmd\":\"";
  Escape(Cmdline().c_str(), &h);
  h += "\"}\n";
  std::fwrite(h.data(), 1, h.size(), g_file);
  std::fflush(g_file);

  CUPTI_TRY(cuptiActivityRegisterCallbacks(BufferRequested, BufferCompleted));
  // CONCURRENT_KERNEL keeps kernels concurrent (KERNEL would serialize them). If CUPTI cannot
  // start (no driver, another profiler attached), one line says so and the file keeps its header.
  if (CUptiResult r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL); r != CUPTI_SUCCESS) {
    Warn("cuptiActivityEnable(CONCURRENT_KERNEL)", r);
    return;
  }
  for (CUpti_ActivityKind k : {CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMCPY2, CUPTI_ACTIVITY_KIND_MEMSET,
                               CUPTI_ACTIVITY_KIND_SYNCHRONIZATION, CUPTI_ACTIVITY_KIND_MARKER})
    CUPTI_TRY(cuptiActivityEnable(k));
  // CORUN_TRACE_API=0 (corun trace --no-api): no launch-call records. Each recorded call costs
  // the calling thread time, which weighs on programs that launch thousands of small kernels per
  // step (PyTorch's backward: its launch calls took ~1.7x as long traced).
  if (const char* a = std::getenv("CORUN_TRACE_API"); !(a && std::strcmp(a, "0") == 0)) EnableLaunchApis();
  CUPTI_TRY(cuptiActivityFlushPeriod(kFlushPeriodMs));
  std::atexit(Finish);
  pthread_atfork(nullptr, nullptr, [] { g_file = nullptr; });  // the child never writes the parent's file
  struct sigaction sa {};
  sa.sa_sigaction = OnTerm;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, &g_prev_term);
  if (g_verbose) std::fprintf(stderr, "corun trace: pid %d rank %d -> %s\n", g_pid, rank, path.c_str());
}

bool InjectedByDriver() {
  const char* inj = std::getenv("CUDA_INJECTION64_PATH");
  if (!inj || !*inj) return false;
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&Start), &info) || !info.dli_fname) return false;
  char a[4096], b[4096];
  return realpath(inj, a) && realpath(info.dli_fname, b) && std::strcmp(a, b) == 0;
}

__attribute__((constructor)) void OnLoad() {
  // With CUDA_INJECTION64_PATH naming this library, the driver starts it (InitializeInjection).
  if (std::getenv("CORUN_TRACE_DIR") && !InjectedByDriver()) Start();
}

__attribute__((destructor)) void OnUnload() { Finish(); }

}  // namespace

// The driver calls this at cuInit when CUDA_INJECTION64_PATH names this library.
extern "C" EXPORT int InitializeInjection(void) {
  Start();
  return 1;
}
