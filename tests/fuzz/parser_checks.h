// The properties every parser of user text must have, for any input: no crash, no hang, and
// either a result that reads back as itself or a one-line error. Shared by the libFuzzer target
// and the seeded random-input test of the CPU tier. Returns "" or what was violated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "corun/launch_rules.h"
#include "corun/parse.h"
#include "corun/policy.h"

namespace corun::fuzz {

inline std::string OneLine(const char* what, const std::string& input, const Status& s) {
  if (s.ok()) return "";
  if (s.message().empty()) return std::string(what) + ": empty error for '" + input + "'";
  if (s.message().find('\n') != std::string::npos) return std::string(what) + ": multi-line error for '" + input + "'";
  return "";
}

inline std::string g_env_policy;  // what ConfigFromEnv reads as every variable
inline const char* FuzzEnv(const char*) { return g_env_policy.c_str(); }

// The first byte picks the parser; the rest is its input.
inline std::string CheckParsers(const uint8_t* data, size_t size) {
  if (size == 0) return "";
  const std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string err;
  switch (data[0] % 6) {
    case 0: {  // one policy: parses back to the same canonical name
      Policy p;
      Status s = ParsePolicy(in, &p);
      if (!(err = OneLine("ParsePolicy", in, s)).empty()) return err;
      if (s.ok()) {
        Policy q;
        if (!ParsePolicy(p.Name(), &q).ok() || q.Name() != p.Name())
          return "ParsePolicy: '" + in + "' -> '" + p.Name() + "' does not read back";
        (void)CheckInterposable(p);
      }
      return "";
    }
    case 1: {  // a --policies list
      std::vector<PolicyItem> items;
      Status s = ParsePolicyList(in, &items);
      if (!(err = OneLine("ParsePolicyList", in, s)).empty()) return err;
      if (s.ok() && items.empty()) return "ParsePolicyList: '" + in + "' ok but empty";
      return "";
    }
    case 2: {  // the preload's environment (CORUN_POLICY, patterns, CORUN_NCCL_CTAS)
      g_env_policy = in;
      InterposeConfig cfg;
      return OneLine("ConfigFromEnv", in, ConfigFromEnv(&FuzzEnv, &cfg));
    }
    case 3: {  // a size: reads back from its exact spelling
      uint64_t b = 0;
      Status s = ParseSize(in, &b);
      if (!(err = OneLine("ParseSize", in, s)).empty()) return err;
      if (s.ok()) {
        if (b == 0) return "ParseSize: '" + in + "' gave 0 bytes";
        const std::string f = FormatSize(b);
        uint64_t c = 0;
        if (f.find('.') == std::string::npos && (!ParseSize(f, &c).ok() || c != b))
          return "ParseSize: '" + in + "' -> " + f + " does not read back";
      }
      return "";
    }
    case 4: {  // GEMM shapes: read back from FormatGemm
      std::vector<GemmShape> g;
      Status s = ParseGemmList(in, &g);
      if (!(err = OneLine("ParseGemmList", in, s)).empty()) return err;
      for (const GemmShape& x : g) {
        GemmShape y{};
        if (!ParseGemmShape(FormatGemm(x), &y).ok() || y != x) return "ParseGemmShape: " + FormatGemm(x) + " does not read back";
      }
      return "";
    }
    default: {  // a sweep from three sizes and a factor: bounded, aligned, ascending
      const size_t a = in.find(' '), b = in.find(' ', a == std::string::npos ? a : a + 1);
      if (a == std::string::npos || b == std::string::npos) return "";
      uint64_t lo = 0, hi = 0;
      if (!ParseSize(in.substr(0, a), &lo).ok() || !ParseSize(in.substr(a + 1, b - a - 1), &hi).ok()) return "";
      const double f = 1.0 + static_cast<double>(static_cast<uint8_t>(in[b + 1 < in.size() ? b + 1 : b])) / 64.0;
      std::vector<uint64_t> v;
      Status s = SizeSweep(lo, hi, f, 0, 1024, &v);
      if (!(err = OneLine("SizeSweep", in, s)).empty()) return err;
      for (size_t i = 0; s.ok() && i < v.size(); ++i)
        if (v[i] % 1024 != 0 || v[i] < lo || v[i] > hi || (i > 0 && v[i] <= v[i - 1]))
          return "SizeSweep: '" + in + "' gave size " + std::to_string(v[i]);
      return "";
    }
  }
}

}  // namespace corun::fuzz
