// Results of a benchmark run: one record per (workload, policy), the nccl-tests-style table and
// the JSON document (schema in docs/ARCHITECTURE.md).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "corun/smid.h"
#include "corun/stats.h"

namespace corun {

struct Meta {
  std::string card;
  int gpus = 0;
  int sms = 0;
  std::string nccl, cuda_runtime, cuda_driver, driver;
  std::string date;  // ISO 8601, UTC
  std::string host;
  std::string process_model;  // "threads" (one process) or "mpi" / "torchrun" / "env"
  int priority_lowest = 0, priority_highest = 0;
  double sustain_s = 0;
  int warmup = 0, reps = 0;
  std::string command_line;
  std::vector<std::string> notes;  // facts learned during the run (e.g. green-context fallback)
};

struct ClockSample {
  Summary sm_mhz;
  Summary power_w;
  std::vector<std::string> throttle;  // reasons seen during the timed repetitions
  bool valid = false;
};

struct RunRecord {
  // workload
  std::string compute;  // "tiled64x64x32", "tiled64x64x64", "cublaslt", "none"
  int64_t m = 0, n = 0, k = 0;
  int gemms = 1;
  std::string collective;  // "allreduce", "allgather", "reducescatter", "alltoall", "none"
  std::string dtype;
  uint64_t bytes = 0;
  // policy
  std::string policy;
  std::string status = "ok";  // "ok", "skipped", "error", "wrong"
  std::string note;
  uint64_t pad_bytes = 0;
  int blocks_per_sm = 0;      // resident compute blocks/SM under the policy (own GEMM)
  int comm_ctas = 0;          // CTAs of the communication kernel, when known
  int compute_sms = 0;        // SMs the compute side may use (green context / SM target)
  // timings (ms): medians with spread over the repetitions, rank-maximum per repetition
  Summary t_total, t_comp, t_comm, t_comp_end, t_comm_end;
  double efficiency = 0, comp_slowdown = 0, comm_slowdown = 0;
  double vs_sequential = 0, vs_overlap = 0;
  bool has_vs_sequential = false, has_vs_overlap = false;
  double algbw = 0, busbw = 0;  // GB/s of the collective alone
  double tflops = 0;            // of the compute alone
  ClockSample clocks;
  int64_t wrong = 0;
  std::vector<double> samples;  // step time of every timed repetition (ms, rank maximum)
  // Wall-clock seconds of the whole run of this policy (set-up, warm-up, sustained phase, timed
  // repetitions, verification) and of its timed repetitions alone (rank maximum).
  double wall_s = 0, timed_wall_s = 0;
  // The %smid probe (bench --smid-probe, own GEMM): whether communication CTAs and compute blocks
  // shared SMs in one untimed step after the timed repetitions; absent from JSON when not run.
  SmidReport smid;
};

// What corun tune chose for one workload, and how it compares with an exhaustive sweep.
struct TuneSummary {
  std::string workload;
  std::string policy;
  double t_ms = 0, overlap_ms = 0;
  int trials = 0;        // timed repetitions the search ran
  int budget = 0;        // trial limit (0: none; the budget is wall-clock, budget_s)
  int sweep_trials = 0;  // timed repetitions of the exhaustive sweep
  int candidates = 0;
  std::string stop;
  // Wall-clock seconds of every phase (set-up, warm-up, sustained phase, timed repetitions,
  // verification) of the search, its budget, and the sweep's (estimated before it runs from the
  // search's own runs; measured when --sweep runs it).
  double wall_s = 0, budget_s = 0, sweep_wall_s_estimate = 0, sweep_wall_s = 0;
  bool has_sweep = false;
  std::string sweep_best_policy;
  double sweep_best_ms = 0, tuned_in_sweep_ms = 0, overlap_in_sweep_ms = 0;
};

// The JSON of each part of the document (nlohmann's ADL hooks; readers default missing fields).
void to_json(nlohmann::json& j, const Summary& s);
void from_json(const nlohmann::json& j, Summary& s);
void to_json(nlohmann::json& j, const Meta& m);
void from_json(const nlohmann::json& j, Meta& m);
void to_json(nlohmann::json& j, const ClockSample& c);
void from_json(const nlohmann::json& j, ClockSample& c);
void to_json(nlohmann::json& j, const RunRecord& r);
void from_json(const nlohmann::json& j, RunRecord& r);
void to_json(nlohmann::json& j, const TuneSummary& t);
void from_json(const nlohmann::json& j, TuneSummary& t);

std::string RecordsToJson(const Meta& meta, const std::vector<RunRecord>& runs, int indent = 1,
                          const std::vector<TuneSummary>& tunes = {});
// Parses a document written by RecordsToJson (used by the maxconn1 child and by tests).
bool RecordsFromJson(const std::string& text, Meta* meta, std::vector<RunRecord>* runs, std::string* err,
                     std::vector<TuneSummary>* tunes = nullptr);

// The table: a '#' header per workload, one row per policy.
void PrintTableHeader(FILE* f);
void PrintWorkloadLine(FILE* f, const RunRecord& r);
void PrintRow(FILE* f, const RunRecord& r);
std::string WorkloadKey(const RunRecord& r);
// The vs-sequential / vs-overlap columns of `r` against the rows of the same workload in
// `earlier` that ran (status ok or wrong); a row that did not run itself gets none.
void SetBaselineColumns(RunRecord* r, const std::vector<RunRecord>& earlier);

// The current UTC time as 2026-11-26T16:00:17Z (run metadata, profile entries).
std::string NowIsoUtc();

}  // namespace corun
