// Built only with DEEPSHOCK_SANITIZER=address. A kernel writes one element past its dynamic
// shared memory; the simulator allocates exactly the requested bytes, so AddressSanitizer must
// report a heap-buffer-overflow. CTest passes this program only if that report appears.
#include <cstdio>
#include <vector>

#include "deepshock/platform/launch.hpp"

DEEPSHOCK_KERNEL void smem_out_of_bounds(int n) {
  int* s = deepshock::dynamic_smem<int>();
  s[threadIdx.x] = static_cast<int>(threadIdx.x);  // thread n writes s[n]: one past the end
  (void)n;
}

int main() {
  const int n = 32;
  // n + 1 threads, shared memory for n ints.
  const deepshock::Status st = deepshock::launch(smem_out_of_bounds, {dim3(1), dim3(n + 1), sizeof(int) * n}, n);
  std::printf("kernel finished without a report: %s\n", st.to_string().c_str());
  return 0;
}
