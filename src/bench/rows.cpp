// Result rows: rank 0 prints each row as it completes, with the baseline columns against the
// rows of the same workload so far (the rule itself: core/report.cpp SetBaselineColumns).
#include <cstdio>

#include "rank.h"

namespace corun {

void RowSink::Emit(RunRecord rec) {
  if (print_ && !printed_header_) {
    header_();
    printed_header_ = true;
  }
  SetBaselineColumns(&rec, rows_);
  if (print_) {
    PrintRow(stdout, rec);
    std::fflush(stdout);
  }
  rows_.push_back(std::move(rec));
}

}  // namespace corun
