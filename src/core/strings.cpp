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

std::string Join(const std::vector<std::string>& pieces, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < pieces.size(); ++i) out += (i ? sep : "") + pieces[i];
  return out;
}

}  // namespace corun
