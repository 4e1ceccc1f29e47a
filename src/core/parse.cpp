#include "corun/parse.h"

#include "corun/strings.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace corun {

std::string Printable(const std::string& text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == 80) return out + "...";
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Status ParseSize(const std::string& text, uint64_t* bytes) {
  std::string s = text;
  if (s.size() >= 3 && (s.substr(s.size() - 2) == "iB" || s.substr(s.size() - 2) == "ib"))
    s.resize(s.size() - 2);
  else if (s.size() >= 2 && (s.back() == 'B' || s.back() == 'b') &&
           !std::isdigit(static_cast<unsigned char>(s[s.size() - 2])))
    s.resize(s.size() - 1);
  if (s.empty()) return Status::Error("bad size '" + Printable(text) + "'");
  uint64_t mult = 1;
  switch (s.back()) {
    case 'K': case 'k': mult = 1ull << 10; s.pop_back(); break;
    case 'M': case 'm': mult = 1ull << 20; s.pop_back(); break;
    case 'G': case 'g': mult = 1ull << 30; s.pop_back(); break;
    case 'T': case 't': mult = 1ull << 40; s.pop_back(); break;
    default: break;
  }
  if (s.empty()) return Status::Error("bad size '" + Printable(text) + "'");
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.')
      return Status::Error("bad size '" + Printable(text) + "' (use e.g. 4096, 64K, 896M, 1G)");
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !(v > 0)) return Status::Error("bad size '" + Printable(text) + "'");
  const double b = v * static_cast<double>(mult);
  if (b > 1e15 || b != std::floor(b)) return Status::Error("bad size '" + Printable(text) + "' (not a whole number of bytes)");
  *bytes = static_cast<uint64_t>(b);
  return Status::Ok();
}

std::string FormatSize(uint64_t b) {
  const char* units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  double v = static_cast<double>(b);
  uint64_t exact = b;
  while (u < 4 && exact >= 1024 && exact % 1024 == 0) {
    exact /= 1024;
    ++u;
  }
  if (exact < 10000 || u == 4) return std::to_string(exact) + units[u];
  // Not an exact multiple: one decimal in the largest fitting unit.
  u = 0;
  while (u < 4 && v >= 1024) {
    v /= 1024;
    ++u;
  }
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << v << units[u];
  return os.str();
}

Status ParseGemmShape(const std::string& text, GemmShape* out) {
  GemmShape g{};
  std::string s = text;
  for (char& c : s)
    if (c == 'X') c = 'x';
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    size_t pos = s.find('x', start);
    if ((i < 2) != (pos != std::string::npos))
      return Status::Error("bad GEMM shape '" + Printable(text) + "' (want MxNxK, e.g. 8192x8192x8192)");
    std::string part = s.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    if (part.empty() || part.size() > 7 || part.find_first_not_of("0123456789") != std::string::npos)
      return Status::Error("bad GEMM shape '" + Printable(text) + "' (want MxNxK, e.g. 8192x8192x8192)");
    g[i] = std::strtoll(part.c_str(), nullptr, 10);
    if (g[i] <= 0) return Status::Error("bad GEMM shape '" + Printable(text) + "': dimensions must be positive");
    start = pos + 1;
  }
  *out = g;
  return Status::Ok();
}

Status ParseGemmList(const std::string& text, std::vector<GemmShape>* out) {
  out->clear();
  std::vector<std::string> items = Split(text, ',');
  // A trailing comma is accepted (an empty term elsewhere is a bad shape).
  if (items.back().empty()) items.pop_back();
  for (const std::string& item : items) {
    GemmShape g;
    CORUN_CHECK(ParseGemmShape(item, &g));
    out->push_back(g);
  }
  if (out->empty()) return Status::Error("empty GEMM list");
  return Status::Ok();
}

std::string FormatGemm(const GemmShape& g) {
  return std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]);
}

Status SizeSweep(uint64_t begin, uint64_t end, double factor, uint64_t increment, uint64_t align,
                 std::vector<uint64_t>* out) {
  out->clear();
  if (align == 0) align = 1;
  // A bound that is not a multiple of `align` would be changed behind the user's back: refused.
  for (auto [flag, v] : {std::pair<const char*, uint64_t>{"-b", begin}, {"-e", end}, {"-i", increment}})
    if (v % align != 0 || (v == 0 && flag[1] == 'b'))
      return Status::Error(std::string(flag) + " " + FormatSize(v) + ": collective sizes are multiples of " +
                           FormatSize(align) + " (" + std::to_string(align) + " B)");
  if (end < begin)
    return Status::Error("bad size range: -b " + FormatSize(begin) + " is above -e " + FormatSize(end));
  if (increment == 0 && !(factor > 1.0) && begin != end)
    return Status::Error("bad sweep: -f must be > 1 (or give -i)");
  for (double s = static_cast<double>(begin); s <= static_cast<double>(end) * (1 + 1e-12);) {
    const uint64_t b = static_cast<uint64_t>(s) / align * align;  // >= begin >= align
    if (out->empty() || out->back() != b) out->push_back(b);
    if (begin == end) break;
    s = increment ? s + static_cast<double>(increment) : s * factor;
    if (out->size() > 10000) return Status::Error("sweep has more than 10000 sizes");
  }
  return Status::Ok();
}

}  // namespace corun
