// A barrier for the processes (or threads) of one node in POSIX shared memory, named by a key
// that every participant derives alike (e.g. from descriptors they exchanged). Host-only.
#pragma once
#include <string>

namespace corun {

// One-shot: blocks until `n` participants called it with the same key, or `timeout_s` passed.
// Returns false (with *why) on a time-out or when shared memory is not available; the caller then
// goes on without the barrier. The segment is removed once every participant has passed.
bool NodeBarrier(const std::string& key, int n, double timeout_s, std::string* why);

}  // namespace corun
