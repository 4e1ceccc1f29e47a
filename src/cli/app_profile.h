// The profile-cache key of an application (corun tune -- CMD writes it, corun -p tuned reads it).
#pragma once
#include <string>
#include <vector>

#include "corun/profile.h"

namespace corun {

// "app: CMD ARGS...".
std::string AppWorkloadKey(const std::vector<std::string>& cmd);
// The key for this machine: GPU 0's model and SM count, the GPU count, NCCL and CUDA versions
// ("no GPU" where none is usable).
Status AppProfileKey(const std::string& workload, ProfileKey* key);

}  // namespace corun
