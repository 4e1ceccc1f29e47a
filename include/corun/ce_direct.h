// Copy-engine collectives, the per-call agreement on direct all-gather copies (host-only).
//
// Direct copies (CeConfig::direct) read from or write into a peer's output buffer itself instead
// of its staging: the all-gather step of an allreduce then needs no staging copy (pull form: the
// reduction writes the result once instead of twice; push form: the receiving rank unpacks
// nothing). That needs each peer's output address for this call, mapped here, which is only known
// on the host and per call (DDP's buckets are long-lived, but any call may pass any buffer). The
// ranks agree per call through a table in memory every rank maps (POSIX shared memory across
// processes; the same segment serves threads):
//  - each rank publishes a record for call `seq` (its output as an export index and an offset, or
//    its raw pointer for ranks of the same process) after any new export it refers to;
//  - each rank resolves every peer's record (maps the exported buffer once; the caller's resolver
//    does that) and then sets its bit in the call's ready mask;
//  - the rank whose bit completes the mask decides "direct"; any rank may decide "staging" first:
//    it cannot export or map, or its peers did not publish within the time-out (a rank whose host
//    thread runs behind, or a program that blocks one rank between collectives). The decision word
//    is written once per call by compare-and-swap, so every rank follows the same one.
// A call entry is reused `kCeDirectCalls` calls later, only once every rank has left it.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace corun {

constexpr int kCeDirectMaxRanks = 8;
constexpr uint32_t kCeDirectCalls = 4096;  // call entries (ring); a rank may be this many calls ahead
constexpr uint32_t kCeDirectExports = 1024;  // exported allocations per rank

// One exported allocation of a rank: an opaque handle (e.g. a cudaIpcMemHandle_t) and what
// identifies the allocation in its owner (a buffer id that is never reused) and its size.
struct CeDirectExport {
  uint64_t id = 0, bytes = 0;
  unsigned char handle[64] = {};
};
// What a rank says about its output for one call.
struct CeDirectRecord {
  int32_t export_index = -1;  // into the owner's exports; -1: none (same process: ptr is enough)
  uint64_t offset = 0;        // of the output within that allocation
  uint64_t ptr = 0;           // the output in the owner's address space
  bool ok = true;             // false: the owner cannot offer its output (the call takes staging)
};

enum class CeDirectDecision { kDirect, kStaging };

// Maps the table's POSIX shared-memory segment `name` (created zero-filled by the first rank to
// get there), or null with *why. Every rank maps it before any unlinks it (CeDirectUnlink, after a
// barrier); the mapping outlives the name.
void* CeDirectMap(const std::string& name, size_t bytes, std::string* why);
void CeDirectUnlink(const std::string& name);
void CeDirectUnmap(void* mem, size_t bytes);

class CeDirectTable {
 public:
  // Bytes of shared memory a table for `nranks` needs.
  static size_t Bytes(int nranks);
  // `mem`: Bytes(nranks) bytes, zero-filled when first mapped, mapped by every rank.
  CeDirectTable(void* mem, int nranks, int rank);

  // This rank's exports: Export appends one (visible to the peers before any record that names
  // it) and returns its index, or -1 when the table is full.
  int Export(const CeDirectExport& e);
  const CeDirectExport& PeerExport(int peer, int index) const;
  // Whether the ranks really share one table (a separate /dev/shm per container would give each
  // its own): each writes a token it also sent the peers another way, then reads theirs.
  void SetToken(uint64_t token);
  uint64_t Token(int rank) const;

  // Agrees on call `seq` (1, 2, ... in call order, the same on every rank). `resolve(peer, rec)`
  // makes the peer's output usable here (false: it cannot, the call takes staging); it is called
  // once per peer, only for records that are ok. `wait_us` bounds the wait for the peers' records
  // and bits; `stop()` (may be empty) ends any wait early with staging (an abort). `why`, if not
  // null, says why a call takes staging.
  CeDirectDecision Agree(uint32_t seq, const CeDirectRecord& mine,
                         const std::function<bool(int, const CeDirectRecord&)>& resolve, uint64_t wait_us,
                         const std::function<bool()>& stop, std::string* why);

 private:
  struct Rec {
    std::atomic<uint32_t> seq;  // written last (release): the fields below belong to this call
    int32_t export_index;
    int32_t ok;
    uint64_t offset, ptr;
  };
  struct Entry {
    std::atomic<uint64_t> ready;     // (seq << 32) | mask of ranks that resolved every peer
    std::atomic<uint64_t> decision;  // (seq << 32) | 0 undecided, 1 direct, 2 staging
  };
  struct RankArea {
    std::atomic<uint64_t> token;     // SetToken
    std::atomic<uint32_t> done;      // last call this rank has left
    std::atomic<uint32_t> nexports;  // exports[0, nexports) are published
    CeDirectExport exports[kCeDirectExports];
    Rec recs[kCeDirectCalls];
  };
  static_assert(std::atomic<uint64_t>::is_always_lock_free, "the words are shared between processes");
  Entry* entries_;
  RankArea* ranks_;
  int nranks_, rank_;
};

}  // namespace corun
