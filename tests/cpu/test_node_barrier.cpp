// The node barrier across real processes (fork): nobody passes before the last arrives, and a
// missing participant ends in a time-out instead of a hang.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "corun/node_barrier.h"

using namespace corun;

namespace {
int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
std::string Key(const char* what) { return std::string("test_") + what + "_" + std::to_string(getpid()); }
}  // namespace

TEST(NodeBarrier, NobodyPassesBeforeTheLastArrives) {
  const int n = 4;
  const std::string key = Key("pass");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::vector<pid_t> kids;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(60 * i));  // the last arrives ~180 ms late
      const int64_t arrive = NowUs();
      std::string why;
      const bool ok = NodeBarrier(key, n, 10, &why);
      const int64_t rec[3] = {arrive, NowUs(), ok ? 1 : 0};
      if (write(fds[1], rec, sizeof(rec)) != sizeof(rec)) _exit(3);
      _exit(ok ? 0 : 2);
    }
    kids.push_back(pid);
  }
  close(fds[1]);
  int64_t last_arrival = 0;
  std::vector<int64_t> passed;
  int64_t rec[3];
  while (read(fds[0], rec, sizeof(rec)) == sizeof(rec)) {
    last_arrival = std::max(last_arrival, rec[0]);
    passed.push_back(rec[1]);
    EXPECT_EQ(rec[2], 1);
  }
  close(fds[0]);
  for (pid_t k : kids) {
    int st = 0;
    waitpid(k, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  ASSERT_EQ(passed.size(), static_cast<size_t>(n));
  for (int64_t t : passed) EXPECT_GE(t, last_arrival) << "a participant passed before the last one arrived";
  // The segment is gone once all passed: a new barrier of the same key starts from zero.
  std::string why;
  EXPECT_FALSE(NodeBarrier(key, 2, 0.05, &why));
}

TEST(NodeBarrier, MissingParticipantTimesOut) {
  std::string why;
  const auto t0 = NowUs();
  EXPECT_FALSE(NodeBarrier(Key("timeout"), 2, 0.2, &why));
  EXPECT_GE(NowUs() - t0, 200000);
  EXPECT_NE(why.find("1 of 2 arrived"), std::string::npos) << why;
}
