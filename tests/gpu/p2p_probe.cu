// How fast can each GPU's copy engines move data to (or from) every peer at once, by the way the
// copies are issued? Every GPU sends `bytes` to each of its peers (an all-gather's traffic), issued
//   push_seq       one stream, peers in rotated order (GPU i: i+1, i+2, ...), as pushes
//   push_streams   one stream per peer, pushes
//   push_batch     one cudaMemcpyBatchAsync per GPU with a push to every peer (NCCL's CE path)
//   pull_seq       one stream, pulls in rotated order
//   pull_streams   one stream per peer, pulls
//   push_seq_chunk one stream, pushes cut into `chunk` pieces, peers rotated piece by piece
//   push_batch_chunk one batch per piece index, all peers
//   push_streams_chunk one stream per peer, each copying its peer's pieces in order
//   push_peer_chunk  one stream, pieces peer by peer (all of peer i+1's, then i+2's, ...)
//   local_chunk      no peer traffic: the same bytes copied within each GPU, pieces on one stream
//   push_streams_chunk_local  push_streams_chunk while local_chunk runs on another stream (the
//                    push form's unpack beside its pushes)
// and prints one JSON object per pattern: median wall time over the repetitions and the bandwidth
// each GPU sent (bytes * (n-1) / time). Every stream is held behind a gate (a one-thread kernel
// spinning on a mapped host word) while the host queues the copies, and the clock starts when the
// gate opens, so host issue time (reported apart, issue_ms) is not timed with the copies. Data is
// checked after the last repetition of each pattern.
//   p2p_probe [--gpus N] [--mib M] [--chunk-mib C] [--reps R]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// The gate every stream waits behind while the copies are queued (a mapped host word); opened on
// any failure too, so that no gate kernel is left spinning.
volatile unsigned* g_gate = nullptr;

#define CK(x)                                                                                     \
  do {                                                                                            \
    cudaError_t e_ = (x);                                                                         \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "p2p_probe: %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
      if (g_gate) *g_gate = 1;                                                                    \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

namespace {

__global__ void Fill(unsigned* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = seed * 2654435761u + unsigned(i);
}
__global__ void Gate(const volatile unsigned* open) {
  while (*open == 0) {
  }
}
__global__ void Check(const unsigned* p, size_t n, unsigned seed, unsigned long long* bad) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    if (p[i] != seed * 2654435761u + unsigned(i)) atomicAdd(bad, 1ull);
}

struct Gpu {
  char* src = nullptr;  // this GPU's block
  char* dst = nullptr;  // n blocks: block j holds GPU j's data
  char* local = nullptr;  // n - 1 blocks: local copies of src (local_* patterns)
  std::vector<cudaStream_t> st;
  cudaEvent_t gated = nullptr;  // st[0] past the gate; the other streams wait for it
  unsigned long long* bad = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  int n = 0, reps = 10;
  size_t mib = 64, chunk_mib = 8;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> long {
      if (i + 1 >= argc) { std::fprintf(stderr, "p2p_probe: %s needs a value\n", a.c_str()); std::exit(2); }
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end || v <= 0) { std::fprintf(stderr, "p2p_probe: bad value '%s' for %s\n", argv[i], a.c_str()); std::exit(2); }
      return v;
    };
    if (a == "--gpus") n = int(val());
    else if (a == "--mib") mib = size_t(val());
    else if (a == "--chunk-mib") chunk_mib = size_t(val());
    else if (a == "--reps") reps = int(val());
    else { std::fprintf(stderr, "p2p_probe: unknown argument '%s' (--gpus --mib --chunk-mib --reps)\n", a.c_str()); return 2; }
  }
  int have = 0;
  CK(cudaGetDeviceCount(&have));
  if (n == 0) n = have;
  if (n < 2 || n > have) { std::fprintf(stderr, "p2p_probe: need 2..%d GPUs, asked %d\n", have, n); return 2; }
  const size_t bytes = mib << 20, chunk = std::min(bytes, chunk_mib << 20);
  // Every copy is queued while the streams wait behind the gate: past a few hundred on one stream
  // the runtime may block the queueing thread, which would then never open the gate.
  const size_t per_stream = size_t(n - 1) * ((bytes + chunk - 1) / chunk);
  constexpr size_t kMaxCopiesPerStream = 256;
  if (per_stream > kMaxCopiesPerStream) {
    std::fprintf(stderr, "p2p_probe: %zu copies on one stream (%d peers x %zu MiB / %zu MiB pieces); at most %zu: "
                 "raise --chunk-mib or lower --mib\n", per_stream, n - 1, mib, chunk_mib, kMaxCopiesPerStream);
    return 2;
  }
  std::vector<Gpu> g(n);
  for (int i = 0; i < n; ++i) {
    CK(cudaSetDevice(i));
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      int ok = 0;
      CK(cudaDeviceCanAccessPeer(&ok, i, j));
      if (!ok) { std::fprintf(stderr, "p2p_probe: GPU %d cannot access GPU %d\n", i, j); return 1; }
      const cudaError_t e = cudaDeviceEnablePeerAccess(j, 0);
      if (e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) CK(e);
      (void)cudaGetLastError();
    }
    CK(cudaMalloc(&g[i].src, bytes));
    CK(cudaMalloc(&g[i].dst, bytes * n));
    CK(cudaMalloc(&g[i].local, bytes * (n - 1)));
    CK(cudaMalloc(&g[i].bad, sizeof(unsigned long long)));
    Fill<<<264, 256>>>(reinterpret_cast<unsigned*>(g[i].src), bytes / 4, unsigned(i + 1));
    g[i].st.resize(n);
    for (auto& s : g[i].st) CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&g[i].gated, cudaEventDisableTiming));
  }
  for (int i = 0; i < n; ++i) { CK(cudaSetDevice(i)); CK(cudaDeviceSynchronize()); }
  unsigned* gate_word = nullptr;
  CK(cudaHostAlloc(&gate_word, sizeof(unsigned), cudaHostAllocMapped | cudaHostAllocPortable));
  volatile unsigned* gate = gate_word;
  g_gate = gate;

  auto peer = [&](int i, int step) { return (i + step) % n; };
  // dst block of sender j at GPU p
  auto slot = [&](int p, int j) { return g[p].dst + size_t(j) * bytes; };
  auto batch = [&](int i, std::vector<void*>& d, std::vector<void*>& s, std::vector<size_t>& b) {
    cudaMemcpyAttributes attr;
    std::memset(&attr, 0, sizeof attr);
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    attr.flags = cudaMemcpyFlagPreferOverlapWithCompute;
    size_t idx = 0;
    CK(cudaMemcpyBatchAsync(d.data(), s.data(), b.data(), d.size(), &attr, &idx, 1, g[i].st[0]));
  };
  const char* patterns[] = {"push_seq", "push_streams", "push_batch", "pull_seq", "pull_streams", "push_seq_chunk",
                            "push_batch_chunk", "push_streams_chunk", "push_peer_chunk", "local_chunk",
                            "push_streams_chunk_local"};
  int rc = 0;
  for (const char* pat : patterns) {
    const std::string P = pat;
    std::vector<double> t, issue;
    for (int rep = 0; rep < reps + 2; ++rep) {
      for (int i = 0; i < n; ++i) { CK(cudaSetDevice(i)); CK(cudaMemsetAsync(g[i].dst, 0, bytes * n, g[i].st[0])); CK(cudaMemsetAsync(g[i].local, 0, bytes * (n - 1), g[i].st[0])); CK(cudaDeviceSynchronize()); }
      *gate = 0;
      for (int i = 0; i < n; ++i) {
        CK(cudaSetDevice(i));
        Gate<<<1, 1, 0, g[i].st[0]>>>(gate);
        CK(cudaGetLastError());
        CK(cudaEventRecord(g[i].gated, g[i].st[0]));
        for (int k = 1; k < n; ++k) CK(cudaStreamWaitEvent(g[i].st[k], g[i].gated, 0));
      }
      const auto q0 = std::chrono::steady_clock::now();
      for (int i = 0; i < n; ++i) {
        CK(cudaSetDevice(i));
        if (P == "push_seq" || P == "push_streams") {
          for (int s = 1; s < n; ++s) {
            const int p = peer(i, s);
            CK(cudaMemcpyAsync(slot(p, i), g[i].src, bytes, cudaMemcpyDeviceToDevice, g[i].st[P == "push_seq" ? 0 : s]));
          }
        } else if (P == "pull_seq" || P == "pull_streams") {
          for (int s = 1; s < n; ++s) {
            const int p = peer(i, s);
            CK(cudaMemcpyAsync(slot(i, p), g[p].src, bytes, cudaMemcpyDeviceToDevice, g[i].st[P == "pull_seq" ? 0 : s]));
          }
        } else if (P == "push_batch") {
          std::vector<void*> d, s;
          std::vector<size_t> b;
          for (int k = 1; k < n; ++k) { d.push_back(slot(peer(i, k), i)); s.push_back(g[i].src); b.push_back(bytes); }
          batch(i, d, s, b);
        } else if (P == "push_streams_chunk" || P == "push_peer_chunk" || P == "local_chunk" ||
                   P == "push_streams_chunk_local") {
          // Local copies: from this GPU's own block to its own slot (checked like a peer's data).
          for (int k = 1; k < n && (P == "local_chunk" || P == "push_streams_chunk_local"); ++k)
            for (size_t off = 0; off < bytes; off += chunk)
              CK(cudaMemcpyAsync(g[i].local + size_t(k - 1) * bytes + off, g[i].src + off, std::min(chunk, bytes - off),
                                 cudaMemcpyDeviceToDevice, g[i].st[0]));
          for (int k = 1; k < n && P != "local_chunk"; ++k) {
            const int p = peer(i, k);
            for (size_t off = 0; off < bytes; off += chunk)
              CK(cudaMemcpyAsync(slot(p, i) + off, g[i].src + off, std::min(chunk, bytes - off), cudaMemcpyDeviceToDevice,
                                 g[i].st[P == "push_peer_chunk" ? 0 : k]));
          }
        } else {  // chunked, rotated piece by piece
          for (size_t off = 0; off < bytes; off += chunk) {
            const size_t len = std::min(chunk, bytes - off);
            std::vector<void*> d, s;
            std::vector<size_t> b;
            for (int k = 1; k < n; ++k) {
              const int p = peer(i, k);
              if (P == "push_seq_chunk")
                CK(cudaMemcpyAsync(slot(p, i) + off, g[i].src + off, len, cudaMemcpyDeviceToDevice, g[i].st[0]));
              else { d.push_back(slot(p, i) + off); s.push_back(g[i].src + off); b.push_back(len); }
            }
            if (!d.empty()) batch(i, d, s, b);
          }
        }
      }
      const auto t0 = std::chrono::steady_clock::now();
      __sync_synchronize();
      *gate = 1;  // every copy is queued: open the gate, start the clock
      for (int i = 0; i < n; ++i) { CK(cudaSetDevice(i)); CK(cudaDeviceSynchronize()); }
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep >= 2) {
        t.push_back(sec);
        issue.push_back(std::chrono::duration<double>(t0 - q0).count());
      }
    }
    unsigned long long wrong = 0;
    for (int i = 0; i < n; ++i) {
      CK(cudaSetDevice(i));
      CK(cudaMemset(g[i].bad, 0, sizeof(unsigned long long)));
      const bool local = P == "local_chunk" || P == "push_streams_chunk_local";
      for (int j = 0; j < n; ++j)
        if (j != i && P != "local_chunk")
          Check<<<264, 256>>>(reinterpret_cast<const unsigned*>(slot(i, j)), bytes / 4, unsigned(j + 1), g[i].bad);
      for (int k = 1; k < n && local; ++k)
        Check<<<264, 256>>>(reinterpret_cast<const unsigned*>(g[i].local + size_t(k - 1) * bytes), bytes / 4, unsigned(i + 1),
                            g[i].bad);
      unsigned long long b = 0;
      CK(cudaMemcpy(&b, g[i].bad, sizeof b, cudaMemcpyDeviceToHost));
      wrong += b;
    }
    std::sort(t.begin(), t.end());
    std::sort(issue.begin(), issue.end());
    const double med = t[t.size() / 2];
    std::printf("{\"pattern\":\"%s\",\"gpus\":%d,\"mib_per_peer\":%zu,\"chunk_mib\":%zu,\"reps\":%d,\"ms_median\":%.4f,"
                "\"ms_min\":%.4f,\"ms_max\":%.4f,\"gbps_sent_per_gpu\":%.1f,\"issue_ms\":%.4f,\"wrong\":%llu}\n",
                pat, n, mib, chunk_mib, reps, med * 1e3, t.front() * 1e3, t.back() * 1e3,
                double(bytes) * (n - 1) / med / 1e9, issue[issue.size() / 2] * 1e3, wrong);
    if (wrong) rc = 1;
  }
  return rc;
}
