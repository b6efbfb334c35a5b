// Built only with DEEPSHOCK_SANITIZER=address. A kernel reads (mode "read") or writes ("write")
// one element past a static __shared__ array through a pointer, which UBSan's bounds check does
// not see. The simulator poisons the redzone after every static shared variable, so
// AddressSanitizer must report a use-after-poison in this file; CTest passes only if it does.
#include <cstdio>
#include <cstring>
#include <vector>

#include "deepshock/platform/launch.hpp"

DEEPSHOCK_KERNEL void static_smem_past_end(int write, int* out) {
  __shared__ int a[32];
  int* volatile opaque = a;  // UBSan's object-size check cannot follow it: only ASan can see the access
  int* p = opaque;
  const int t = static_cast<int>(threadIdx.x);
  a[t % 32] = t;
  __syncthreads();
  if (t == 0) {
    if (write) p[32] = 1;  // one past the end (deliberate)
    else out[0] = p[32];   // one past the end (deliberate)
  }
}

int main(int argc, char** argv) {
  const int write = argc > 1 && std::strcmp(argv[1], "write") == 0;
  std::vector<int> out(1, 0);
  const deepshock::Status st = deepshock::launch(static_smem_past_end, {dim3(1), dim3(32)}, write, out.data());
  std::printf("kernel finished without a report: %s\n", st.to_string().c_str());
  return 0;
}
