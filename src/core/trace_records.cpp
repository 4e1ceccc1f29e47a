// Reader of libcorun_trace.so's record files (format in include/corun/trace_records.h).
#include "corun/trace_records.h"

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace corun {

bool IsCommKernelName(const std::string& name) {
  return name.find("ncclDevKernel") != std::string::npos || name.find("ncclKernel") != std::string::npos ||
         name == "memcpy ptop";
}

namespace {

using nlohmann::json;

int64_t I(const json& j, const char* k) {
  auto it = j.find(k);
  return it == j.end() || !it->is_number() ? 0 : it->get<int64_t>();
}

// One parsed line into the file; false for an unknown shape (ignored: newer writers may add kinds).
void Apply(const json& j, std::unordered_map<int64_t, std::string>* names, TraceFile* f) {
  if (j.contains("corun_trace")) {
    f->pid = static_cast<int>(I(j, "pid"));
    f->rank = static_cast<int>(j.value("rank", -1));
    f->host = j.value("host", "");
    f->command = j.value("cmd", "");
    f->start_ns = I(j, "start_ns");
    return;
  }
  const std::string t = j.value("t", "");
  auto name = [&](const char* k) -> std::string {
    auto it = names->find(I(j, k));
    return it == names->end() ? "?" : it->second;
  };
  if (t == "n") {
    (*names)[I(j, "i")] = j.value("s", "");
  } else if (t == "k" || t == "m" || t == "z") {
    GpuActivity a;
    a.kind = t == "k" ? GpuKind::kKernel : t == "m" ? GpuKind::kMemcpy : GpuKind::kMemset;
    a.start = I(j, "s");
    a.end = I(j, "e");
    a.device = static_cast<int>(I(j, "d"));
    a.stream = static_cast<uint32_t>(I(j, "q"));
    a.corr = static_cast<uint32_t>(I(j, "c"));
    a.bytes = static_cast<uint64_t>(I(j, "by"));
    if (t == "k") {
      a.name = name("n");
      auto g = j.find("g"), b = j.find("b");
      if (g != j.end() && b != j.end() && g->is_array() && b->is_array() && g->size() == 3 && b->size() == 3)
        a.grid = std::to_string((*g)[0].get<int64_t>()) + "," + std::to_string((*g)[1].get<int64_t>()) + "," +
                 std::to_string((*g)[2].get<int64_t>()) + "/" + std::to_string((*b)[0].get<int64_t>()) + "," +
                 std::to_string((*b)[1].get<int64_t>()) + "," + std::to_string((*b)[2].get<int64_t>());
    } else if (t == "m")
      a.name = "memcpy " + j.value("y", std::string("?"));
    else
      a.name = "memset";
    a.comm = IsCommKernelName(a.name);
    f->gpu.push_back(std::move(a));
  } else if (t == "a") {
    f->api.push_back(ApiCall{I(j, "s"), I(j, "e"), static_cast<uint32_t>(I(j, "c")),
                             static_cast<uint32_t>(I(j, "h")), name("n")});
  } else if (t == "y") {
    f->syncs.push_back(SyncWait{I(j, "s"), I(j, "e"), static_cast<uint32_t>(I(j, "q")), j.value("y", "")});
  } else if (t == "r") {
    f->ranges.push_back(NvtxRange{I(j, "s"), I(j, "e"), static_cast<uint32_t>(I(j, "h")), name("n")});
  } else if (t == "end") {
    f->complete = true;
    f->dropped = static_cast<uint64_t>(I(j, "dropped"));
  }
}

}  // namespace

Status ReadTraceFile(const std::string& path, TraceFile* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) CORUN_FAIL("cannot read trace file " + path);
  *out = TraceFile{};
  out->path = path;
  std::unordered_map<int64_t, std::string> names;
  std::string line;
  int64_t lineno = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    // A line without its newline is the last one of a file cut short: keep what came before.
    const bool last_unterminated = in.eof();
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      if (last_unterminated || in.peek() == EOF) {
        out->torn_tail = true;
        break;
      }
      CORUN_FAIL(path + ":" + std::to_string(lineno) + ": not a trace record");
    }
    if (lineno == 1 && !j.contains("corun_trace")) CORUN_FAIL(path + ": not a corun trace file (no header line)");
    header = true;
    Apply(j, &names, out);
  }
  if (!header) CORUN_FAIL(path + ": empty trace file");
  const int64_t before = static_cast<int64_t>(out->gpu.size());
  out->gpu.erase(std::remove_if(out->gpu.begin(), out->gpu.end(),
                                [&](const GpuActivity& a) {
                                  return a.end <= 0 || a.end < a.start || (out->start_ns > 0 && a.start < out->start_ns);
                                }),
                 out->gpu.end());
  out->incomplete = before - static_cast<int64_t>(out->gpu.size());
  std::stable_sort(out->gpu.begin(), out->gpu.end(),
                   [](const GpuActivity& a, const GpuActivity& b) { return a.start < b.start; });
  std::sort(out->ranges.begin(), out->ranges.end(),
            [](const NvtxRange& a, const NvtxRange& b) { return a.start < b.start; });
  return Status::Ok();
}

Status ListTraceFiles(const std::string& dir, std::vector<std::string>* files) {
  files->clear();
  DIR* d = opendir(dir.c_str());
  if (!d) CORUN_FAIL("cannot open folder " + dir);
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.rfind("corun_trace.", 0) == 0 && n.size() > 6 && n.compare(n.size() - 6, 6, ".jsonl") == 0)
      files->push_back(dir + "/" + n);
  }
  closedir(d);
  std::sort(files->begin(), files->end());
  return Status::Ok();
}

}  // namespace corun
