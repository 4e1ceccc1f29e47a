// A program built against an installed corun (find_package(corun) -> corun::core).
#include <cstdio>

#include "corun/policy.h"

int main() {
  corun::Policy p;
  const corun::Status s = corun::ParsePolicy("priority+shape:2", &p);
  if (!s.ok()) return 1;
  std::printf("%s\n", p.Name().c_str());
  return 0;
}
