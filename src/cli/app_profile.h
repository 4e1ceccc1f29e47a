// The profile-cache key of an application (corun tune -- CMD writes it, corun -p tuned reads it).
#pragma once
#include <string>

#include "corun/profile.h"

namespace corun {

// "app: CMD ARGS..." from argv[first..argc).
std::string AppWorkloadKey(int argc, char** argv, int first);
// The key for this machine: GPU 0's model and SM count, the GPU count, NCCL and CUDA versions
// ("no GPU" where none is usable).
Status AppProfileKey(const std::string& workload, ProfileKey* key);

}  // namespace corun
