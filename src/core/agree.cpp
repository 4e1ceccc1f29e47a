// Set-up steps agreed across ranks, and the test-only fault injection that exercises them.
#include "corun/agree.h"

#include <cstdlib>

#include "corun/strings.h"

namespace corun {

Status ParseFailureInjection(const std::string& text, FailureInjection* out) {
  *out = FailureInjection{};
  if (text.empty()) return Status::Ok();
  const std::vector<std::string> parts = Split(text, ':');
  const std::string bad = "bad CORUN_TEST_FAIL_SETUP '" + text + "' (want <rank>:<step>, a test-only knob)";
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty() || parts[0].size() > 6) return Status::Error(bad);
  for (char c : parts[0])
    if (c < '0' || c > '9') return Status::Error(bad);
  out->rank = std::atoi(parts[0].c_str());
  out->step = parts[1];
  return Status::Ok();
}

Status FailureInjectionFromEnv(FailureInjection* out) {
  const char* v = std::getenv("CORUN_TEST_FAIL_SETUP");
  return ParseFailureInjection(v ? v : "", out);
}

namespace {
Status Outcome(const std::string& name, int rank, const Status& mine, int worst) {
  if (!mine.ok()) return Status::Error("set-up step '" + name + "' failed: " + mine.ToString(true));
  return Status::Error("set-up step '" + name + "' failed on rank " + std::to_string(worst - 1) +
                       " (this is rank " + std::to_string(rank) + ")");
}
}  // namespace

Status AgreedStep(const std::string& name, int rank, const FailureInjection& inject, const AgreeFn& agree,
                  const std::function<Status()>& step) {
  Status mine = inject.Hits(rank, name)
                    ? Status::Error("injected failure (CORUN_TEST_FAIL_SETUP=" + std::to_string(rank) + ":" + name + ")")
                    : Status::Ok();
  int worst = 0;
  CORUN_CHECK(agree(mine.ok() ? 0 : rank + 1, &worst));
  if (worst) return Outcome(name, rank, mine, worst);
  mine = step();
  CORUN_CHECK(agree(mine.ok() ? 0 : rank + 1, &worst));
  if (worst) return Outcome(name, rank, mine, worst);
  return Status::Ok();
}

}  // namespace corun
