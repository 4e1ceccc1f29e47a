// The profile cache: the policy `corun tune` chose, keyed by everything that decides whether it
// still holds (GPU model, SM count, GPU count, NCCL and CUDA versions, the workload). Read by
// `corun bench --policies tuned`, by the launcher (`corun -p tuned -- CMD`) and by library users.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "corun/status.h"

namespace corun {

struct ProfileKey {
  std::string card;
  int sms = 0;
  int gpus = 0;
  std::string nccl, cuda;
  std::string workload;  // e.g. "tiled64x64x64 8192x8192x8192 x1 + allreduce bf16 896M", or "app: CMD"
  bool operator==(const ProfileKey& o) const {
    return card == o.card && sms == o.sms && gpus == o.gpus && nccl == o.nccl && cuda == o.cuda && workload == o.workload;
  }
};

struct ProfileEntry {
  ProfileKey key;
  std::string policy;
  double t_ms = 0;           // the tuned policy's median
  double overlap_ms = 0;     // naive two streams, same run
  std::string date;
};

// The cache file's JSON (nlohmann's ADL hooks): {"version": 1, "entries": [{key, policy, ...}]}.
void to_json(nlohmann::json& j, const ProfileKey& k);
void from_json(const nlohmann::json& j, ProfileKey& k);
void to_json(nlohmann::json& j, const ProfileEntry& e);
void from_json(const nlohmann::json& j, ProfileEntry& e);

// Default cache file: $CORUN_CACHE, else $XDG_CACHE_HOME/corun/profiles.json, else ~/.cache/corun/profiles.json.
std::string DefaultProfilePath();

class ProfileCache {
 public:
  Status Load(const std::string& path);  // a missing file is an empty cache
  Status Save(const std::string& path) const;
  void Put(const ProfileEntry& e);       // replaces an entry with the same key
  // The entry for exactly this key. When only the workload matches (another GPU, GPU count or
  // library version), returns nullptr and says why in `*stale` — such an entry is never applied.
  const ProfileEntry* Find(const ProfileKey& k, std::string* stale) const;
  const std::vector<ProfileEntry>& entries() const { return entries_; }

 private:
  std::vector<ProfileEntry> entries_;
};

}  // namespace corun
