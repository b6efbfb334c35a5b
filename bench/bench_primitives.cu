// bench/bench_primitives.cu — GPU throughput of deepshock's primitives (nvcc, Google Benchmark).
//
//   BM_block_reduce_sum/n     two-pass block::reduce_sum over n floats      bytes = 4n
//   BM_warp_topk<E,K>/T       warp::topk of K over [T, E] fp32 scores       bytes = 4TE + 8TK
//   BM_mma_gemm_bf16/M/N/K    mma.sync m16n8k16 GEMM, C = A W^T (bf16->fp32) FLOP = 2MNK
//
// Timing: CUDA events around the kernels of one iteration (manual time), after an untimed write
// of twice the L2 size, so every iteration reads its inputs from HBM (cold L2) and launch latency
// stays outside the events. Each benchmark allocates and fills its inputs outside the timed loop,
// runs warm-up iterations, checks the result against a host reference (a wrong kernel is reported
// as an error, not as a speed), then times. Counters: bytes_per_second / flop_per_second and
// pct_of_bw_roofline / pct_of_flop_roofline against H200 datasheet peaks (bench_util.hpp).
// Without a GPU the binary prints one line and exits 0.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "primitives.cuh"

namespace {
namespace ds = deepshock;
namespace bench = deepshock::bench;
using ds::Status;

constexpr int kWarmup = 3;

using bench::GpuContext;

Status sm_count(int& sms) {
  int dev = 0;
  DEEPSHOCK_RETURN_IF_ERROR(ds::rt::from_cuda(cudaGetDevice(&dev), "cudaGetDevice"));
  return ds::rt::from_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute(SMs)");
}

/// Fills `buf` with the seeded sequence of ds_bench::uniform_pm1 (converted to T).
template <class T>
Status fill_uniform(ds::rt::DeviceBuffer<T>& buf, std::uint32_t seed, ds::rt::stream_t s) {
  return ds::launch(ds_bench::fill_uniform_kernel<T>, {dim3(1024), dim3(256), 0, s}, buf.data(), static_cast<long long>(buf.size()), seed);
}

/// Runs `work` kWarmup times and waits for it.
template <class Work>
Status warm_up(Work& work, ds::rt::stream_t s) {
  for (int i = 0; i < kWarmup; ++i) DEEPSHOCK_RETURN_IF_ERROR(work());
  return ds::rt::stream_synchronize(s);
}

// ---- block reduce ------------------------------------------------------------------------------
/// Arg n: floats summed. Pass 1: 8 blocks of 256 threads per SM write partials; pass 2: one block
/// of 1024 threads sums them. bytes = 4n (the input; the partials' 8 bytes per block of pass 1
/// are left out as noise).
void BM_block_reduce_sum(benchmark::State& state) {
  const long long n = state.range(0);
  GpuContext g;
  int sms = 0;
  if (!bench::ok_or_skip(state, g.init()) || !bench::ok_or_skip(state, sm_count(sms))) return;
  const unsigned grid = 8u * static_cast<unsigned>(sms);
  ds::rt::DeviceBuffer<float> x, partials, out;
  auto work = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(ds::launch(ds_bench::reduce_sum_kernel, {dim3(grid), dim3(256), 0, g.s()}, x.data(), n, partials.data()));
    return ds::launch(ds_bench::reduce_sum_kernel, {dim3(1), dim3(1024), 0, g.s()}, partials.data(), static_cast<long long>(grid),
                      out.data());
  };
  float sum = 0.0f;
  auto prepare = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(x.allocate(static_cast<std::size_t>(n)));
    DEEPSHOCK_RETURN_IF_ERROR(partials.allocate(grid));
    DEEPSHOCK_RETURN_IF_ERROR(out.allocate(1));
    DEEPSHOCK_RETURN_IF_ERROR(ds::launch(ds_bench::fill_ramp_kernel, {dim3(1024), dim3(256), 0, g.s()}, x.data(), n));
    DEEPSHOCK_RETURN_IF_ERROR(warm_up(work, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(out.copy_to_host(&sum, 1, g.s()));
    return g.stream.synchronize();
  };
  if (!bench::ok_or_skip(state, prepare())) return;
  const double expect = ds_bench::ref::ramp_sum(n);
  if (!(std::fabs(sum - expect) <= 1e-4 * std::fabs(expect))) {
    state.SkipWithError(("wrong sum: " + std::to_string(sum) + ", expected " + std::to_string(expect)).c_str());
    return;
  }
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, g.timer, g.l2, g.s(), work)) return;
  bench::set_roofline_counters(state, 4.0 * static_cast<double>(n), 0.0, bench::kH200HbmBytesPerSecond, bench::kH200DenseBf16FlopPerSecond,
                               g.timer.total_seconds());
}

// ---- warp top-k --------------------------------------------------------------------------------
const char* topk_model(int E, int K) {
  if (E == 64 && K == 6) return "DeepSeek-V2-Lite (E=64, k=6)";
  if (E == 256 && K == 8) return "DeepSeek-V3 (E=256, k=8)";
  if (E == 128 && K == 8) return "Qwen3-30B-A3B (E=128, k=8)";
  return "";
}

/// Arg T: tokens. One warp per token, 8 warps per block. bytes = 4TE (scores) + 8TK (ids, scores out).
template <int E, int K>
void BM_warp_topk(benchmark::State& state) {
  constexpr int N = (E + 31) / 32;
  constexpr std::uint32_t kSeed = 1234;
  const int T = static_cast<int>(state.range(0));
  state.SetLabel(topk_model(E, K));
  GpuContext g;
  if (!bench::ok_or_skip(state, g.init())) return;
  ds::rt::DeviceBuffer<float> scores, vals;
  ds::rt::DeviceBuffer<int> ids;
  const std::size_t out_n = static_cast<std::size_t>(T) * K;
  auto work = [&]() -> Status {
    return ds::launch(ds_bench::warp_topk_kernel<K, N>, {dim3((T + 7) / 8), dim3(256), 0, g.s()}, scores.data(), T, E, ids.data(),
                      vals.data());
  };
  std::vector<int> h_ids(out_n);
  std::vector<float> h_vals(out_n), h_scores(static_cast<std::size_t>(T) * E);
  auto prepare = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(scores.allocate(h_scores.size()));
    DEEPSHOCK_RETURN_IF_ERROR(vals.allocate(out_n));
    DEEPSHOCK_RETURN_IF_ERROR(ids.allocate(out_n));
    DEEPSHOCK_RETURN_IF_ERROR(fill_uniform(scores, kSeed, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(warm_up(work, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(ids.copy_to_host(h_ids.data(), out_n, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(vals.copy_to_host(h_vals.data(), out_n, g.s()));
    return g.stream.synchronize();
  };
  if (!bench::ok_or_skip(state, prepare())) return;
  for (std::size_t i = 0; i < h_scores.size(); ++i) h_scores[i] = ds_bench::uniform_pm1(i, kSeed);
  const std::string why = ds_bench::ref::check_topk(h_scores, T, E, K, h_ids, h_vals);
  if (!why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, g.timer, g.l2, g.s(), work)) return;
  const double bytes = 4.0 * T * E + 8.0 * T * K;
  bench::set_roofline_counters(state, bytes, 0.0, bench::kH200HbmBytesPerSecond, bench::kH200DenseBf16FlopPerSecond,
                               g.timer.total_seconds());
}

// ---- bf16 mma GEMM -----------------------------------------------------------------------------
const char* gemm_shape(long long M, long long N, long long K) {
  if (M == 4096 && N == 4096 && K == 4096) return "square 4096";
  if (N == 4096 && K == 7168) return "DeepSeek-V3 expert W1|W3 (hidden 7168, 2x2048)";
  if (N == 28672 && K == 4096) return "Mixtral-8x7B expert W1|W3 (hidden 4096, 2x14336)";
  if (N == 1536 && K == 2048) return "Qwen3-30B-A3B expert W1|W3 (hidden 2048, 2x768)";
  return "";
}

/// Args M, N, K: C[M,N] = A[M,K] W[N,K]^T. FLOP = 2MNK; bytes = 2(MK + NK) + 4MN (each operand once).
/// The result is checked at 256 sampled elements against a double-precision host product.
void BM_mma_gemm_bf16(benchmark::State& state) {
  using ds_bench::kGemmBK, ds_bench::kGemmBM, ds_bench::kGemmBN;
  constexpr std::uint32_t kSeedA = 11, kSeedW = 22;
  const int M = static_cast<int>(state.range(0)), N = static_cast<int>(state.range(1)), K = static_cast<int>(state.range(2));
  state.SetLabel(gemm_shape(M, N, K));
  if (M % kGemmBM || N % kGemmBN || K % kGemmBK) {
    state.SkipWithError("M and N must be multiples of 128, K of 32");
    return;
  }
  GpuContext g;
  if (!bench::ok_or_skip(state, g.init())) return;
  ds::rt::DeviceBuffer<ds::bf16> A, W;
  ds::rt::DeviceBuffer<float> C;
  auto work = [&]() -> Status {
    return ds::launch(ds_bench::mma_gemm_bf16_kernel, {dim3(N / kGemmBN, M / kGemmBM), dim3(ds_bench::kGemmThreads), 0, g.s()}, A.data(),
                      W.data(), C.data(), M, N, K);
  };
  std::vector<float> h_c(static_cast<std::size_t>(M) * N);
  auto prepare = [&]() -> Status {
    DEEPSHOCK_RETURN_IF_ERROR(A.allocate(static_cast<std::size_t>(M) * K));
    DEEPSHOCK_RETURN_IF_ERROR(W.allocate(static_cast<std::size_t>(N) * K));
    DEEPSHOCK_RETURN_IF_ERROR(C.allocate(h_c.size()));
    DEEPSHOCK_RETURN_IF_ERROR(fill_uniform(A, kSeedA, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(fill_uniform(W, kSeedW, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(C.fill_bytes(0xFF, g.s()));  // NaN: an element the kernel misses fails the check
    DEEPSHOCK_RETURN_IF_ERROR(warm_up(work, g.s()));
    DEEPSHOCK_RETURN_IF_ERROR(C.copy_to_host(h_c.data(), h_c.size(), g.s()));
    return g.stream.synchronize();
  };
  if (!bench::ok_or_skip(state, prepare())) return;
  for (int i = 0; i < 256; ++i) {  // sample rows and columns spread over every block tile
    const long long m = (i * 977LL) % M, n = (i * 1597LL + 13) % N;
    const double expect = ds_bench::ref::gemm_element(kSeedA, kSeedW, K, m, n);
    const double got = h_c[static_cast<std::size_t>(m * N + n)];
    if (!(std::fabs(got - expect) <= 1e-2 + 1e-3 * std::fabs(expect))) {
      state.SkipWithError(
          ("wrong C[" + std::to_string(m) + "," + std::to_string(n) + "] = " + std::to_string(got) + ", expected " + std::to_string(expect))
              .c_str());
      return;
    }
  }
  for (auto _ : state)
    if (!bench::timed_gpu_iteration(state, g.timer, g.l2, g.s(), work)) return;
  const double flops = 2.0 * M * N * K;
  const double bytes = 2.0 * (double(M) * K + double(N) * K) + 4.0 * double(M) * N;
  bench::set_roofline_counters(state, bytes, flops, bench::kH200HbmBytesPerSecond, bench::kH200DenseBf16FlopPerSecond,
                               g.timer.total_seconds());
}

BENCHMARK(BM_block_reduce_sum)->ArgName("n")->Arg(1 << 20)->Arg(1 << 24)->Arg(1 << 26)->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_TEMPLATE(BM_warp_topk, 64, 6)->ArgName("T")->Arg(1024)->Arg(16384)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_warp_topk, 256, 8)->ArgName("T")->Arg(1024)->Arg(16384)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_warp_topk, 128, 8)->ArgName("T")->Arg(1024)->Arg(16384)->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_mma_gemm_bf16)
    ->ArgNames({"M", "N", "K"})
    ->Args({4096, 4096, 4096})
    ->Args({1024, 4096, 7168})
    ->Args({512, 28672, 4096})
    ->Args({2048, 1536, 2048})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

// GPU benchmarks: skip cleanly without a device; 0.05 s of GPU time per benchmark unless
// --benchmark_min_time says otherwise (each iteration also pays an untimed L2 flush).
DEEPSHOCK_BENCH_MAIN(/*needs_device=*/true, /*default_min_time=*/"0.05")
