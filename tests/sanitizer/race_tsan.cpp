// Built only with DEEPSHOCK_SANITIZER=thread. Each mode runs a kernel with a shared-memory race
// that ThreadSanitizer must report; CTest passes a mode only if TSan's report names this file.
// The simulator switches fibers with TSan's no_sync flag and creates happens-before edges only
// where the program synchronises, so:
//   none     write, then read a neighbour's element with no barrier at all
//   barrier  write *after* a __syncthreads, read a neighbour's element before the next one
//            (a barrier orders what came before it, not what fast threads do after it)
//   warp     the same across a __syncwarp
#include <cstdio>
#include <cstring>
#include <vector>

#include "deepshock/platform/launch.hpp"

DEEPSHOCK_KERNEL void race_no_barrier(const int* in, int* out, int n) {
  int* s = deepshock::dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x);
  s[t] = in[t];
  out[t] = t > 0 ? s[t - 1] : 0;  // missing __syncthreads() (deliberate)
}

DEEPSHOCK_KERNEL void race_after_barrier(const int* in, int* out, int n) {
  int* s = deepshock::dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x);
  s[t] = 0;
  __syncthreads();
  s[t] = in[t];
  out[t] = s[(t + 1) % n];  // races with the neighbour's write above (deliberate)
  __syncthreads();
}

DEEPSHOCK_KERNEL void race_after_syncwarp(const int* in, int* out, int n) {
  int* s = deepshock::dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x);
  s[t] = 0;
  __syncwarp();
  s[t] = in[t];
  out[t] = s[t ^ 1];  // races with the neighbour's write above (deliberate)
  __syncwarp();
  (void)n;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "none";
  void (*kernel)(const int*, int*, int) = race_no_barrier;
  if (std::strcmp(mode, "barrier") == 0) kernel = race_after_barrier;
  else if (std::strcmp(mode, "warp") == 0) kernel = race_after_syncwarp;
  const int n = 32;
  std::vector<int> in(n, 1), out(n, 0);
  const deepshock::Status st = deepshock::launch(kernel, {dim3(1), dim3(n), sizeof(int) * n}, in.data(), out.data(), n);
  std::printf("racy kernel (%s) finished: %s\n", mode, st.to_string().c_str());
  return 0;
}
