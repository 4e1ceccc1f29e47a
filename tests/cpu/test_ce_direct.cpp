// The per-call agreement on direct all-gather copies (corun/ce_direct.h): ranks as threads on one
// table (a heap block, or a shared-memory segment mapped once per rank as processes would).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "corun/ce_direct.h"

namespace corun {
namespace {

struct Block {
  explicit Block(int nranks) : bytes(CeDirectTable::Bytes(nranks)) {
    mem = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    std::memset(mem, 0, bytes);
  }
  ~Block() { std::free(mem); }
  size_t bytes;
  void* mem;
};

// What each rank decided for each call (1 = direct), and how often its resolver ran.
struct Decisions {
  std::vector<std::vector<int>> decided;
  std::vector<int> resolves;
};

// R ranks agree on `calls` calls. `ok(rank, seq)`: the rank offers its output; `can(rank, peer,
// seq)`: the rank maps that peer's; `delay_us(rank, seq)`: sleep before the call; the resolver
// checks the record it gets is the peer's for that call.
Decisions Agree(std::vector<void*> mems, int R, uint32_t calls, uint64_t wait_us,
          const std::function<bool(int, uint32_t)>& ok, const std::function<bool(int, int, uint32_t)>& can,
          const std::function<int(int, uint32_t)>& delay_us) {
  Decisions run;
  run.decided.assign(R, std::vector<int>(calls + 1, -1));
  run.resolves.assign(R, 0);
  std::vector<std::thread> th;
  std::atomic<int> bad_records{0}, started{0};
  for (int r = 0; r < R; ++r)
    th.emplace_back([&, r] {
      CeDirectTable t(mems[r % mems.size()], R, r);
      for (++started; started.load() < R;) std::this_thread::yield();  // the ranks start together
      for (uint32_t seq = 1; seq <= calls; ++seq) {
        if (const int d = delay_us(r, seq)) std::this_thread::sleep_for(std::chrono::microseconds(d));
        CeDirectRecord mine;
        mine.ok = ok(r, seq);
        mine.ptr = (static_cast<uint64_t>(r) << 40) | seq;  // identifies (rank, call)
        mine.offset = seq * 16;
        const auto resolve = [&](int p, const CeDirectRecord& rec) {
          ++run.resolves[r];
          if (rec.ptr != ((static_cast<uint64_t>(p) << 40) | seq) || rec.offset != seq * 16u) ++bad_records;
          return can(r, p, seq);
        };
        std::string why;
        run.decided[r][seq] = t.Agree(seq, mine, resolve, wait_us, nullptr, &why) == CeDirectDecision::kDirect ? 1 : 0;
      }
    });
  for (auto& t : th) t.join();
  EXPECT_EQ(bad_records.load(), 0) << "a resolver saw another call's or rank's record";
  return run;
}

void ExpectSameOnEveryRank(const Decisions& run, int R, uint32_t calls) {
  for (uint32_t seq = 1; seq <= calls; ++seq)
    for (int r = 1; r < R; ++r)
      ASSERT_EQ(run.decided[r][seq], run.decided[0][seq]) << "ranks 0 and " << r << " disagree on call " << seq;
}

TEST(CeDirect, EveryRankReadyMeansDirect) {
  for (int R : {2, 4, 8}) {
    Block b(R);
    const uint32_t calls = 300;
    const Decisions run = Agree({b.mem}, R, calls, 2000000, [](int, uint32_t) { return true; },
                          [](int, int, uint32_t) { return true; }, [](int, uint32_t) { return 0; });
    ExpectSameOnEveryRank(run, R, calls);
    for (uint32_t seq = 1; seq <= calls; ++seq) EXPECT_EQ(run.decided[0][seq], 1) << "R " << R << " call " << seq;
    for (int r = 0; r < R; ++r) EXPECT_EQ(run.resolves[r], static_cast<int>(calls) * (R - 1));
  }
}

TEST(CeDirect, ARankThatCannotOfferOrMapMakesTheCallStage) {
  const int R = 4;
  Block b(R);
  const uint32_t calls = 200;
  const Decisions run = Agree(
      {b.mem}, R, calls, 2000000, [](int r, uint32_t seq) { return !(r == 2 && seq % 3 == 0); },
      [](int r, int p, uint32_t seq) { return !(r == 1 && p == 3 && seq % 5 == 0); }, [](int, uint32_t) { return 0; });
  ExpectSameOnEveryRank(run, R, calls);
  for (uint32_t seq = 1; seq <= calls; ++seq)
    EXPECT_EQ(run.decided[0][seq], (seq % 3 == 0 || seq % 5 == 0) ? 0 : 1) << "call " << seq;
}

TEST(CeDirect, ALateRankMakesTheCallStageAndFollowsIt) {
  const int R = 2;
  Block b(R);
  const uint32_t calls = 60;
  // Rank 1 reaches call 4 300 ms late; rank 0 waits 20 ms at most per call, so it stages call 4
  // and the calls after it until rank 1 has caught up (which then finds them decided), then both
  // go direct again. (Margins wide enough for a loaded machine.)
  const Decisions run = Agree({b.mem}, R, calls, 20000, [](int, uint32_t) { return true; },
                              [](int, int, uint32_t) { return true; },
                              [](int r, uint32_t seq) { return r == 1 && seq == 4 ? 300000 : 0; });
  ExpectSameOnEveryRank(run, R, calls);
  for (uint32_t seq = 1; seq <= 3; ++seq) EXPECT_EQ(run.decided[0][seq], 1) << "call " << seq;
  EXPECT_EQ(run.decided[0][4], 0);
  int staged = 0;
  for (uint32_t seq = 4; seq <= calls; ++seq) staged += 1 - run.decided[0][seq];
  EXPECT_LT(staged, 40) << "rank 1 never caught up";
  EXPECT_EQ(run.decided[0][calls], 1);
}

// More calls than entries, ranks jittering: each entry is reused many times, never while a rank
// is still in it, and the ranks always agree (whatever each call's decision).
TEST(CeDirect, EntriesAreReusedSafelyUnderJitter) {
  const int R = 3;
  Block b(R);
  const uint32_t calls = 2 * kCeDirectCalls + 77;
  const Decisions run = Agree({b.mem}, R, calls, 20000, [](int, uint32_t) { return true; },
                        [](int r, int p, uint32_t seq) { return (seq * 7 + r * 3 + p) % 97 != 0; },
                        [](int r, uint32_t seq) { return (seq * 2654435761u + r * 97u) % 211u == 0 ? 300 : 0; });
  ExpectSameOnEveryRank(run, R, calls);
  int direct = 0;
  for (uint32_t seq = 1; seq <= calls; ++seq) {
    direct += run.decided[0][seq];
    // A refused mapping makes its call stage, whatever an entry held kDirectCalls calls before.
    bool refused = false;
    for (int r = 0; r < R; ++r)
      for (int p = 0; p < R; ++p) refused |= r != p && (seq * 7 + r * 3 + p) % 97 == 0;
    if (refused) ASSERT_EQ(run.decided[0][seq], 0) << "call " << seq << " went direct with a mapping refused";
  }
  EXPECT_GT(direct, static_cast<int>(calls) / 2) << "most calls should be direct";
  EXPECT_LT(direct, static_cast<int>(calls)) << "the refused mappings must make some calls stage";
}

// A rank that runs a whole ring of calls ahead of a stalled peer does not wait for it: its calls
// stage at once (never overwriting an entry the peer has not left), and the peer, once it goes on,
// follows every decision.
TEST(CeDirect, ARankAWholeRingAheadStagesWithoutWaiting) {
  const int R = 2;
  Block b(R);
  const uint32_t calls = kCeDirectCalls + 50;
  std::vector<std::vector<int>> decided(R, std::vector<int>(calls + 1, -1));
  std::atomic<bool> ahead_done{false};
  double ahead_s = 0;
  std::thread fast([&] {
    CeDirectTable t(b.mem, R, 0);
    const auto t0 = std::chrono::steady_clock::now();
    for (uint32_t seq = 1; seq <= calls; ++seq) {
      CeDirectRecord mine;
      decided[0][seq] = t.Agree(seq, mine, [](int, const CeDirectRecord&) { return true; }, 0, nullptr, nullptr) ==
                        CeDirectDecision::kDirect;
    }
    ahead_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ahead_done = true;
  });
  std::thread slow([&] {
    while (!ahead_done) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // stalled meanwhile
    CeDirectTable t(b.mem, R, 1);
    for (uint32_t seq = 1; seq <= calls; ++seq) {
      CeDirectRecord mine;
      decided[1][seq] = t.Agree(seq, mine, [](int, const CeDirectRecord&) { return true; }, 0, nullptr, nullptr) ==
                        CeDirectDecision::kDirect;
    }
  });
  fast.join();
  slow.join();
  EXPECT_LT(ahead_s, 60.0) << "the rank ahead waited for its stalled peer (a wait per call would take minutes)";
  for (uint32_t seq = 1; seq <= calls; ++seq) {
    ASSERT_EQ(decided[0][seq], 0) << "call " << seq << " went direct without the peer";
    ASSERT_EQ(decided[1][seq], 0) << "the late rank did not follow call " << seq;
  }
}

TEST(CeDirect, TokensShowWhetherTheRanksShareTheTable) {
  Block shared(2), other(2);
  CeDirectTable a(shared.mem, 2, 0), b1(shared.mem, 2, 1), c(other.mem, 2, 1);
  a.SetToken(11);
  b1.SetToken(22);
  EXPECT_EQ(a.Token(1), 22u);
  EXPECT_EQ(b1.Token(0), 11u);
  c.SetToken(33);  // a rank on a segment of its own: the others never see its token
  EXPECT_EQ(a.Token(1), 22u);
  EXPECT_EQ(c.Token(0), 0u);
}

// As processes: each rank maps the segment itself; the peers' exports are visible through it.
TEST(CeDirect, SharedMemorySegmentCarriesRecordsAndExports) {
  const int R = 2;
  const std::string name = "/corun_test_cedir_" + std::to_string(getpid());
  std::string why;
  const size_t bytes = CeDirectTable::Bytes(R);
  void* m0 = CeDirectMap(name, bytes, &why);
  ASSERT_NE(m0, nullptr) << why;
  void* m1 = CeDirectMap(name, bytes, &why);
  ASSERT_NE(m1, nullptr) << why;
  ASSERT_NE(m0, m1);
  CeDirectUnlink(name);  // both mapped: the name can go
  {
    CeDirectTable t0(m0, R, 0), t1(m1, R, 1);
    CeDirectExport e;
    e.id = 42;
    e.bytes = 1 << 20;
    std::memset(e.handle, 0xab, sizeof(e.handle));
    EXPECT_EQ(t1.Export(e), 0);
    e.id = 43;
    EXPECT_EQ(t1.Export(e), 1);
    EXPECT_EQ(t0.PeerExport(1, 0).id, 42u);
    EXPECT_EQ(t0.PeerExport(1, 1).id, 43u);
    EXPECT_EQ(t0.PeerExport(1, 1).handle[63], 0xab);
  }
  const Decisions run = Agree({m0, m1}, R, 50, 2000000, [](int, uint32_t) { return true; },
                        [](int, int, uint32_t) { return true; }, [](int, uint32_t) { return 0; });
  ExpectSameOnEveryRank(run, R, 50);
  for (uint32_t seq = 1; seq <= 50; ++seq) EXPECT_EQ(run.decided[0][seq], 1);
  CeDirectUnmap(m0, bytes);
  CeDirectUnmap(m1, bytes);
}

TEST(CeDirect, ExportTableFillsUpAndAStopEndsTheWait) {
  Block b(2);
  CeDirectTable t(b.mem, 2, 0);
  for (uint32_t i = 0; i < kCeDirectExports; ++i) ASSERT_EQ(t.Export(CeDirectExport{}), static_cast<int>(i));
  EXPECT_EQ(t.Export(CeDirectExport{}), -1);
  // The peer never comes: a stop ends the wait at once (a long time-out would not).
  CeDirectRecord mine;
  std::string why;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(t.Agree(1, mine, [](int, const CeDirectRecord&) { return true; }, 60000000, [] { return true; }, &why),
            CeDirectDecision::kStaging);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(why, "aborted");
}

}  // namespace
}  // namespace corun
