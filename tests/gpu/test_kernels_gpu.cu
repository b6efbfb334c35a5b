// The tests of kernel_tests.inc, run on the gpu backend.
#include "backend_gpu.hpp"
#include "kernel_tests.inc"

// ---- programmatic dependent launch (GPU only: the simulator runs kernels one after another) ----
namespace {
/// Nanoseconds of the GPU's global timer.
__device__ inline unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/// One block: lets its dependants be scheduled at once, spins for `spin_ns`, writes buf[i] =
/// 7i + seed and records when it finished writing.
DEEPSHOCK_KERNEL void pdl_producer_kernel(int* buf, int n, int seed, unsigned long long spin_ns, unsigned long long* end_ns) {
  ds::pdl::launch_dependents();
  const unsigned long long t0 = global_ns();
  while (global_ns() - t0 < spin_ns) {}
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) buf[i] = 7 * i + seed;
  __syncthreads();
  __threadfence();
  if (threadIdx.x == 0) *end_ns = global_ns();
}

/// Records when it started (memory no earlier work uses), waits for the producer, then copies
/// buf + 1 to out.
DEEPSHOCK_KERNEL void pdl_consumer_kernel(const int* buf, int n, int* out, unsigned long long* start_ns) {
  if (threadIdx.x == 0) start_ns[blockIdx.x] = global_ns();
  ds::pdl::wait();
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += static_cast<int>(gridDim.x * blockDim.x))
    out[i] = buf[i] + 1;
}
}  // namespace

TEST_CASE("a dependent launch starts during its predecessor where supported and still reads its results after pdl::wait", "[gpu]") {
  int device = 0, major = 0;
  REQUIRE(cudaGetDevice(&device) == cudaSuccess);
  REQUIRE(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess);
  bool supported = false;
  DS_REQUIRE_OK(ds::detail::dependent_launch_supported(reinterpret_cast<const void*>(&pdl_consumer_kernel), supported));
  INFO("compute capability major " << major << ", dependent launch " << (supported ? "honoured" : "ordinary"));
  if (major < 9) CHECK_FALSE(supported);
#ifdef DEEPSHOCK_TEST_EXPECT_WGMMA
  if (major == 9) CHECK(supported);  // this build has sm_90a code: the attribute must be used
#endif
  const int n = 4099, blocks = 5;
  constexpr unsigned long long kSpin = 200000;  // 200 us: far longer than a launch
  auto buf = poisoned<int>(n);
  auto out = poisoned<int>(n);
  auto end_ns = poisoned<unsigned long long>(1);
  auto start_ns = poisoned<unsigned long long>(blocks);
  rt::Stream stream;
  DS_REQUIRE_OK(stream.create());
  int overlapped = 0;
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    const int seed = 1000 * round + 17;
    DS_REQUIRE_OK(ds::launch(pdl_producer_kernel, {dim3(1), dim3(256), 0, stream.get()}, buf.data(), n, seed, kSpin, end_ns.data()));
    DS_REQUIRE_OK(ds::launch(pdl_consumer_kernel, {dim3(blocks), dim3(128), 0, stream.get(), /*dependent=*/true}, buf.data(), n, out.data(),
                             start_ns.data()));
    DS_REQUIRE_OK(stream.synchronize());
    const std::vector<int> got = download(out);
    bool all = true;
    for (int i = 0; i < n; ++i) all = all && got[std::size_t(i)] == 7 * i + seed + 1;
    CHECK(all);  // pdl::wait() made the producer's writes visible
    const unsigned long long end = download(end_ns)[0];
    const std::vector<unsigned long long> starts = download(start_ns);
    const unsigned long long first_start = *std::min_element(starts.begin(), starts.end());
    INFO("consumer's first block started " << (static_cast<double>(first_start) - static_cast<double>(end)) / 1000.0
                                           << " us after the producer's end");
    if (first_start < end) ++overlapped;
    if (!supported) CHECK(first_start >= end);  // an ordinary launch waits for the producer's end
  }
  // The overlap is opportunistic (CUDA may run the dependant later, e.g. on a busy GPU), so one
  // round of three must show it: the consumer scheduled during the producer's 200 us spin.
  if (supported) CHECK(overlapped >= 1);
}
