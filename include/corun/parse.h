// Parsing of sizes ("896M", "1G"), GEMM shapes ("8192x57344x8192") and nccl-tests-style sweeps.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "corun/status.h"

namespace corun {

// User text as it goes into a one-line message: control characters as \xNN, at most 80 bytes.
std::string Printable(const std::string& text);

// Bytes from "123", "64K", "896M", "1G" (binary units; optional trailing 'B' / "iB").
Status ParseSize(const std::string& text, uint64_t* bytes);
// "896M", "1.5G", "4096" — the shortest exact binary-unit spelling.
std::string FormatSize(uint64_t bytes);

using GemmShape = std::array<int64_t, 3>;  // M, N, K
Status ParseGemmShape(const std::string& text, GemmShape* out);
Status ParseGemmList(const std::string& text, std::vector<GemmShape>* out);
std::string FormatGemm(const GemmShape& g);

// -b begin -e end -f factor (multiplicative, > 1) or -i increment (additive): sizes in bytes.
// begin, end and increment must be multiples of `align` (an error names the flag otherwise); the
// sizes a factor produces between them are rounded down to a multiple of `align`.
Status SizeSweep(uint64_t begin, uint64_t end, double factor, uint64_t increment, uint64_t align,
                 std::vector<uint64_t>* out);

}  // namespace corun
