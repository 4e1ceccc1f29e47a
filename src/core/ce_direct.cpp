// The per-call agreement on direct all-gather copies (corun/ce_direct.h).
#include "corun/ce_direct.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace corun {
namespace {

constexpr uint64_t kUndecided = 0, kDirect = 1, kStaging = 2;
uint64_t Tag(uint32_t seq) { return static_cast<uint64_t>(seq) << 32; }
uint32_t SeqOf(uint64_t w) { return static_cast<uint32_t>(w >> 32); }
bool Before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }  // wrap-aware a < b

// Moves a tagged word to call `seq` (fresh payload) unless it is there already.
void Advance(std::atomic<uint64_t>& w, uint32_t seq) {
  uint64_t v = w.load(std::memory_order_acquire);
  while (Before(SeqOf(v), seq) && !w.compare_exchange_weak(v, Tag(seq), std::memory_order_acq_rel)) {
  }
}

// Spin briefly, then sleep: the peers' host threads are usually a few microseconds apart.
void Pause(int* spins) {
  if (++*spins < 200)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(20));
}

}  // namespace

void* CeDirectMap(const std::string& name, size_t bytes, std::string* why) {
  const int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) {
    *why = "shm_open " + name + ": " + std::strerror(errno);
    return nullptr;
  }
  // Every rank sets the same size; a new segment reads as zeros (every word "call 0"). The pages
  // are reserved now: a full /dev/shm then refuses here instead of raising SIGBUS at first touch.
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    *why = "ftruncate " + name + ": " + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  if (const int e = posix_fallocate(fd, 0, static_cast<off_t>(bytes))) {
    *why = "posix_fallocate " + name + ": " + std::strerror(e);
    close(fd);
    return nullptr;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    *why = "mmap " + name + ": " + std::strerror(errno);
    return nullptr;
  }
  return p;
}
void CeDirectUnlink(const std::string& name) { shm_unlink(name.c_str()); }
void CeDirectUnmap(void* mem, size_t bytes) {
  if (mem) munmap(mem, bytes);
}

size_t CeDirectTable::Bytes(int nranks) {
  return sizeof(Entry) * kCeDirectCalls + sizeof(RankArea) * static_cast<size_t>(nranks);
}

CeDirectTable::CeDirectTable(void* mem, int nranks, int rank) : nranks_(nranks), rank_(rank) {
  entries_ = static_cast<Entry*>(mem);
  ranks_ = reinterpret_cast<RankArea*>(static_cast<char*>(mem) + sizeof(Entry) * kCeDirectCalls);
}

int CeDirectTable::Export(const CeDirectExport& e) {
  RankArea& me = ranks_[rank_];
  const uint32_t n = me.nexports.load(std::memory_order_relaxed);  // this rank is the only writer
  if (n >= kCeDirectExports) return -1;
  me.exports[n] = e;
  me.nexports.store(n + 1, std::memory_order_release);
  return static_cast<int>(n);
}

const CeDirectExport& CeDirectTable::PeerExport(int peer, int index) const { return ranks_[peer].exports[index]; }

void CeDirectTable::SetToken(uint64_t token) { ranks_[rank_].token.store(token, std::memory_order_release); }
uint64_t CeDirectTable::Token(int rank) const { return ranks_[rank].token.load(std::memory_order_acquire); }

CeDirectDecision CeDirectTable::Agree(uint32_t seq, const CeDirectRecord& mine,
                                      const std::function<bool(int, const CeDirectRecord&)>& resolve, uint64_t wait_us,
                                      const std::function<bool()>& stop, std::string* why) {
  using Clock = std::chrono::steady_clock;
  const uint32_t slot = seq % kCeDirectCalls;
  Entry& e = entries_[slot];
  auto say = [&](const std::string& s) {
    if (why) *why = s;
  };
  const auto t0 = Clock::now();
  auto waited_us = [&] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
  };
  // The entry and the records of call seq - kCeDirectCalls must be left by every rank first. A rank
  // that far behind (its thread stalled) has not left them: this call takes the staging at once,
  // the entry untouched (the peers cannot decide direct without this rank's bit; the late rank
  // finds its own call's entry as it was).
  if (seq > kCeDirectCalls)
    for (int p = 0; p < nranks_; ++p)
      if (Before(ranks_[p].done.load(std::memory_order_acquire), seq - kCeDirectCalls)) {
        say("rank " + std::to_string(p) + " is " + std::to_string(kCeDirectCalls) + " calls behind");
        ranks_[rank_].done.store(seq, std::memory_order_release);
        return CeDirectDecision::kStaging;
      }
  Rec& my = ranks_[rank_].recs[slot];
  my.export_index = mine.export_index;
  my.ok = mine.ok ? 1 : 0;
  my.offset = mine.offset;
  my.ptr = mine.ptr;
  my.seq.store(seq, std::memory_order_release);
  Advance(e.ready, seq);
  Advance(e.decision, seq);

  // Written once per call: the first compare-and-swap from "undecided" wins.
  auto decide = [&](uint64_t state) {
    uint64_t want = Tag(seq) | kUndecided;
    e.decision.compare_exchange_strong(want, Tag(seq) | state, std::memory_order_acq_rel);
  };
  std::string reason;  // built only when this rank stages the call
  auto stage = [&](const std::string& r) {
    reason = r;
    decide(kStaging);
  };
  if (!mine.ok) stage("this rank cannot offer its output");
  const uint64_t full = (nranks_ >= 64 ? ~0ull : (1ull << nranks_) - 1);
  uint64_t resolved = 1ull << rank_;
  bool bit_set = false;
  int spins = 0;
  for (;;) {
    const uint64_t d = e.decision.load(std::memory_order_acquire);
    if (SeqOf(d) == seq && (d & 0xffffffffu) != kUndecided) {
      const bool direct = (d & 0xffffffffu) == kDirect;
      if (!direct) say(reason.empty() ? "a peer decided staging" : reason);
      ranks_[rank_].done.store(seq, std::memory_order_release);
      return direct ? CeDirectDecision::kDirect : CeDirectDecision::kStaging;
    }
    for (int p = 0; p < nranks_; ++p) {
      if (resolved >> p & 1) continue;
      const Rec& r = ranks_[p].recs[slot];
      if (r.seq.load(std::memory_order_acquire) != seq) continue;
      resolved |= 1ull << p;
      CeDirectRecord rec;
      rec.export_index = r.export_index;
      rec.ok = r.ok != 0;
      rec.offset = r.offset;
      rec.ptr = r.ptr;
      if (!rec.ok)
        stage("rank " + std::to_string(p) + " cannot offer its output");
      else if (!resolve(p, rec))
        stage("rank " + std::to_string(p) + "'s output cannot be mapped here");
    }
    if (resolved == full && !bit_set) {
      bit_set = true;
      const uint64_t m = e.ready.fetch_or(1ull << rank_, std::memory_order_acq_rel) | (1ull << rank_);
      if ((m & full) == full) decide(kDirect);
      continue;
    }
    if (stop && stop()) stage("aborted");
    if (waited_us() >= wait_us) stage("the peers did not reach this call within " + std::to_string(wait_us) + " us");
    Pause(&spins);
  }
}

}  // namespace corun
