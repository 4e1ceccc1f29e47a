// Rank agreement around set-up steps that can fail on one rank: every rank agrees that it is ready
// before a step (so nobody enters a collective that a failed rank will never join) and on the
// step's outcome after it, so a failure anywhere ends the step on every rank with the reason.
// Host-only: the agreement itself (an allreduce of one integer in the harness) is passed in.
#pragma once
#include <functional>
#include <string>

#include "corun/status.h"

namespace corun {

// Test-only fault injection: CORUN_TEST_FAIL_SETUP=<rank>:<step> makes that set-up step fail on
// that rank (docs/ARCHITECTURE.md lists the steps). Empty: nothing injected.
struct FailureInjection {
  int rank = -1;
  std::string step;
  bool Hits(int r, const std::string& s) const { return r == rank && s == step; }
};
Status ParseFailureInjection(const std::string& text, FailureInjection* out);
// Reads CORUN_TEST_FAIL_SETUP (a malformed value is an error naming it).
Status FailureInjectionFromEnv(FailureInjection* out);

// One integer in, the maximum over all ranks out (a collective: every rank must call it).
using AgreeFn = std::function<Status(int flag, int* max_flag)>;

// Runs one set-up step on this rank, agreeing before and after:
//   1. ready: 0, or rank + 1 when the step is injected to fail here; any rank not ready ends the
//      step everywhere before `step` runs;
//   2. `step` (may be a collective: every rank reaches it or none does);
//   3. outcome: the same encoding; a failure on any rank ends the step everywhere.
// Returns the local error (with the step named), or "failed on rank R" when another rank failed.
Status AgreedStep(const std::string& name, int rank, const FailureInjection& inject, const AgreeFn& agree,
                  const std::function<Status()>& step);

}  // namespace corun
