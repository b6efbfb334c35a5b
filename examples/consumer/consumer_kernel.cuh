// A kernel written against the installed headers; built by nvcc (gpu.cu) and by g++ in the
// simulator (sim.cpp).
#pragma once
#include <cstdio>
#include <deepshock/deepshock.hpp>
#include <vector>

DEEPSHOCK_KERNEL void sum_rows(const float* x, int cols, float* out) {
  __shared__ float scratch[deepshock::block::kScratchWords];
  float acc = 0.0f;
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x)) acc += x[blockIdx.x * cols + c];
  const float s = deepshock::block::reduce_sum(acc, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

inline int run_consumer(const char* name) {
  namespace ds = deepshock;
  if (!ds::rt::device_available()) {
    std::printf("%s: no CUDA device, nothing to run (backend %s)\n", name, ds::rt::backend_name());
    return 0;
  }
  const int rows = 5, cols = 300;
  std::vector<float> x(rows * cols), out(rows, -1.0f);
  for (int i = 0; i < rows * cols; ++i) x[i] = static_cast<float>(i % 7);
  ds::rt::DeviceBuffer<float> dx, dout;
  auto run = [&]() -> ds::Status {
    DEEPSHOCK_RETURN_IF_ERROR(dx.allocate(x.size()));
    DEEPSHOCK_RETURN_IF_ERROR(dout.allocate(rows));
    DEEPSHOCK_RETURN_IF_ERROR(dx.copy_from_host(x.data(), x.size()));
    DEEPSHOCK_RETURN_IF_ERROR(ds::launch(sum_rows, {dim3(rows), dim3(96)}, dx.data(), cols, dout.data()));
    DEEPSHOCK_RETURN_IF_ERROR(dout.copy_to_host(out.data(), rows));
    return ds::rt::device_synchronize();
  };
  if (const ds::Status st = run(); !st.ok()) {
    std::printf("%s: %s\n", name, st.to_string().c_str());
    return 1;
  }
  int bad = 0;
  for (int r = 0; r < rows; ++r) {
    double ref = 0;
    for (int c = 0; c < cols; ++c) ref += x[r * cols + c];
    bad += out[r] != static_cast<float>(ref);  // small integers: exact
  }
  std::printf("%s: %d row sums on %s: %s\n", name, rows, ds::rt::device_name().c_str(), bad ? "FAILED" : "OK");
  return bad ? 1 : 0;
}
