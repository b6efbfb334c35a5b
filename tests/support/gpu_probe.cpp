// Linked into GPU test binaries: tells the test main how many CUDA devices there are.
#include "deepshock/platform/runtime.hpp"

extern "C" int deepshock_test_device_count() {
  int n = 0;
  if (!deepshock::rt::device_count(n).ok()) return 0;
  return n;
}
