// The test API of the fake libcuda.so.1 (fake_cuda.cpp), shared with the test programs.
#pragma once

struct FakeLaunch {
  char api[32];
  char name[96];
  unsigned grid, block, shmem;
  int has_prio, prio, coop, nattrs;
};
