// The one string splitter of the project (policy terms, policy lists, patterns, env lists).
#pragma once
#include <string>
#include <vector>

namespace corun {

// Splits at every `sep`. keep_empty: "a,,b" gives {"a", "", "b"} and "" gives {""} (the policy
// parser reports empty terms); otherwise empty pieces are dropped ("" gives {}).
std::vector<std::string> Split(const std::string& s, char sep, bool keep_empty = true);
// The pieces with `sep` between them (Join(Split(s, c), c) == s).
std::string Join(const std::vector<std::string>& pieces, const std::string& sep);

}  // namespace corun
