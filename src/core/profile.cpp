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

Status ProfileCache::Load(const std::string& path) {
  entries_.clear();
  std::ifstream f(path);
  if (!f) return Status::Ok();
  try {
    json j = json::parse(f);
    for (const json& e : j.at("entries")) {
      ProfileEntry p;
      const json& k = e.at("key");
      p.key = {k.at("card"), k.at("sms"), k.at("gpus"), k.at("nccl"), k.at("cuda"), k.at("workload")};
      p.policy = e.at("policy");
      p.t_ms = e.value("t_ms", 0.0);
      p.overlap_ms = e.value("overlap_ms", 0.0);
      p.date = e.value("date", "");
      entries_.push_back(p);
    }
  } catch (const std::exception& ex) {
    return Status::Error("unreadable profile cache " + path + ": " + ex.what());
  }
  return Status::Ok();
}

Status ProfileCache::Save(const std::string& path) const {
  json arr = json::array();
  for (const ProfileEntry& e : entries_)
    arr.push_back({{"key",
                    {{"card", e.key.card}, {"sms", e.key.sms}, {"gpus", e.key.gpus}, {"nccl", e.key.nccl},
                     {"cuda", e.key.cuda}, {"workload", e.key.workload}}},
                   {"policy", e.policy},
                   {"t_ms", e.t_ms},
                   {"overlap_ms", e.overlap_ms},
                   {"date", e.date}});
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << json{{"version", 1}, {"entries", arr}}.dump(1) << "\n";
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
