// Built only with DEEPSHOCK_SANITIZER=address. A kernel reads one byte past a 100-byte device
// allocation. On a GPU (and in the simulator without ASan) that byte lies inside the 256-byte
// allocation unit; under ASan the simulator allocates exactly 100 bytes, so AddressSanitizer must
// report a heap-buffer-overflow in this file; CTest passes only if it does.
#include <cstdio>

#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

DEEPSHOCK_KERNEL void read_past_end(const unsigned char* p, int n, int* out) {
  int acc = 0;
  for (int i = static_cast<int>(threadIdx.x); i <= n; i += static_cast<int>(blockDim.x)) acc += p[i];  // i == n: past the end (deliberate)
  atomicAdd(out, acc);
}

int main() {
  void* p = nullptr;
  int* out = nullptr;
  if (!deepshock::rt::malloc_device(&p, 100).ok() || !deepshock::rt::malloc_device(reinterpret_cast<void**>(&out), sizeof(int)).ok())
    return 1;
  *out = 0;
  const deepshock::Status st = deepshock::launch(read_past_end, {dim3(1), dim3(32)}, static_cast<const unsigned char*>(p), 100, out);
  std::printf("kernel finished without a report: %s\n", st.to_string().c_str());
  return 0;
}
