#include "corun/profile.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace corun {
using nlohmann::json;

std::string DefaultProfilePath() {
  if (const char* c = std::getenv("CORUN_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/corun/profiles.json";
  const char* h = std::getenv("HOME");
  return std::string(h && *h ? h : ".") + "/.cache/corun/profiles.json";
}

void to_json(json& j, const ProfileKey& k) {
  j = json{{"card", k.card}, {"sms", k.sms}, {"gpus", k.gpus}, {"nccl", k.nccl}, {"cuda", k.cuda}, {"workload", k.workload}};
}
void from_json(const json& j, ProfileKey& k) {  // every field of the key is required
  j.at("card").get_to(k.card);
  j.at("sms").get_to(k.sms);
  j.at("gpus").get_to(k.gpus);
  j.at("nccl").get_to(k.nccl);
  j.at("cuda").get_to(k.cuda);
  j.at("workload").get_to(k.workload);
}
void to_json(json& j, const ProfileEntry& e) {
  j = json{{"key", e.key}, {"policy", e.policy}, {"t_ms", e.t_ms}, {"overlap_ms", e.overlap_ms}, {"date", e.date}};
}
void from_json(const json& j, ProfileEntry& e) {
  j.at("key").get_to(e.key);
  j.at("policy").get_to(e.policy);
  e.t_ms = j.value("t_ms", 0.0);
  e.overlap_ms = j.value("overlap_ms", 0.0);
  e.date = j.value("date", "");
}

Status ProfileCache::Load(const std::string& path) {
  entries_.clear();
  std::ifstream f(path);
  if (!f) return Status::Ok();
  try {
    entries_ = json::parse(f).at("entries").get<std::vector<ProfileEntry>>();
  } catch (const std::exception& ex) {
    entries_.clear();
    return Status::Error("unreadable profile cache " + path + ": " + ex.what());
  }
  return Status::Ok();
}

Status ProfileCache::Save(const std::string& path) const {
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << json{{"version", 1}, {"entries", entries_}}.dump(1) << "\n";
    if (!f) return Status::Error("cannot write profile cache " + path);
  }
  std::filesystem::rename(tmp, path, ec);  // atomic: readers never see half a file
  if (ec) return Status::Error("cannot write profile cache " + path + ": " + ec.message());
  return Status::Ok();
}

void ProfileCache::Put(const ProfileEntry& e) {
  for (ProfileEntry& x : entries_)
    if (x.key == e.key) {
      x = e;
      return;
    }
  entries_.push_back(e);
}

const ProfileEntry* ProfileCache::Find(const ProfileKey& k, std::string* stale) const {
  for (const ProfileEntry& e : entries_)
    if (e.key == k) return &e;
  for (const ProfileEntry& e : entries_)
    if (e.key.workload == k.workload && stale) {
      std::ostringstream os;
      os << "a profile for this workload was tuned on " << e.key.gpus << " x " << e.key.card << " (" << e.key.sms
         << " SMs), NCCL " << e.key.nccl << ", CUDA " << e.key.cuda << "; this is " << k.gpus << " x " << k.card << " ("
         << k.sms << " SMs), NCCL " << k.nccl << ", CUDA " << k.cuda << ": not applied";
      *stale = os.str();
      break;
    }
  return nullptr;
}

}  // namespace corun
