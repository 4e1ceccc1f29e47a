// Test controls of the stand-in libnccl.so.2 (fake_nccl.cpp).
#pragma once
#include <cstddef>

extern "C" {
// How many times the program's call of `fn` ("ncclAllReduce", ...) reached this NCCL.
int fake_nccl_calls(const char* fn);
// The arguments of the last collective that reached it.
struct FakeNcclCall {
  const void* send;
  void* recv;
  size_t count;
  int dtype, op;
  void* comm;
  void* stream;
};
FakeNcclCall fake_nccl_last();
}
