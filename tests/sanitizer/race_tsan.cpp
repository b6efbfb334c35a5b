// Built only with DEEPSHOCK_SANITIZER=thread. Runs a kernel that writes shared memory and reads a
// neighbour's element without __syncthreads. The simulator switches fibers with TSan's no_sync
// flag and creates happens-before edges only at barriers, so ThreadSanitizer must report a data
// race here; CTest passes this program only if that report appears.
#include <cstdio>
#include <vector>

#include "deepshock/platform/launch.hpp"

DEEPSHOCK_KERNEL void racy_shift(const int* in, int* out, int n) {
  int* s = deepshock::dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x);
  if (t < n) s[t] = in[t];
  if (t < n) out[t] = t > 0 ? s[t - 1] : 0;  // missing __syncthreads() (deliberate)
}

int main() {
  const int n = 64;
  std::vector<int> in(n, 1), out(n, 0);
  const deepshock::Status st = deepshock::launch(racy_shift, {dim3(1), dim3(n), sizeof(int) * n}, in.data(), out.data(), n);
  std::printf("racy kernel finished: %s\n", st.to_string().c_str());
  return 0;
}
