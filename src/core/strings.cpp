// The one string splitter.
#include "corun/strings.h"

namespace corun {

std::vector<std::string> Split(const std::string& s, char sep, bool keep_empty) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    const std::string piece = s.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    if (keep_empty || !piece.empty()) out.push_back(piece);
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

}  // namespace corun
