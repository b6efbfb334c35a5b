// bench/kernels/primitives.cuh — kernels timed by bench_primitives.cu.
//
// Plain CUDA as README's "Three ways the same code runs" asks (launched through deepshock::launch, library warp/block
// primitives, the mma wrapper for tensor cores, no __CUDA_ARCH__), so the same source also runs
// in the simulator, which is how their results were checked on a machine without a GPU.
// Include from one translation unit per binary.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/philox.hpp"
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/mma.hpp"
#include "deepshock/platform/warp.hpp"

namespace ds_bench {
using namespace deepshock;

// ---- block reduction ---------------------------------------------------------------------------
/// out[blockIdx.x] = sum of this block's grid-stride share of x[0, n). 16-byte loads (x must be
/// 16-byte aligned), four in flight per thread. Run with G blocks for partials, then 1 block over
/// the G partials: a deterministic two-pass sum for a fixed G.
DEEPSHOCK_KERNEL void reduce_sum_kernel(const float* x, long long n, float* out) {
  __shared__ float scratch[block::kScratchWords];
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const long long gid = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const long long n4 = n / 4;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  long long i = gid;
  for (; i + 3 * stride < n4; i += 4 * stride) {
    const float4 v0 = x4[i], v1 = x4[i + stride], v2 = x4[i + 2 * stride], v3 = x4[i + 3 * stride];
    a0 += (v0.x + v0.y) + (v0.z + v0.w);
    a1 += (v1.x + v1.y) + (v1.z + v1.w);
    a2 += (v2.x + v2.y) + (v2.z + v2.w);
    a3 += (v3.x + v3.y) + (v3.z + v3.w);
  }
  for (; i < n4; i += stride) {
    const float4 v = x4[i];
    a0 += (v.x + v.y) + (v.z + v.w);
  }
  for (long long j = 4 * n4 + gid; j < n; j += stride) a1 += x[j];
  const float s = block::reduce_sum((a0 + a1) + (a2 + a3), scratch);
  if (block::thread_rank() == 0) out[blockIdx.x] = s;
}

/// x[i] = (i % 1000) / 1024: exact in float, so the host knows the sum in closed form.
DEEPSHOCK_KERNEL void fill_ramp_kernel(float* x, long long n) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = static_cast<float>(i % 1000) * (1.0f / 1024.0f);
}

// ---- inputs ------------------------------------------------------------------------------------
/// Element i of a seeded uniform sequence in [-1, 1) (multiples of 2^-23): identical on host and
/// device, so the host can recompute any input it checks without copying it back.
DEEPSHOCK_HOST_DEVICE float uniform_pm1(unsigned long long i, std::uint32_t seed) {
  const Philox4x32::Counter c{{static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i >> 32), 0u, 0u}};
  const Philox4x32::Key k{{seed, 0xBE4C4u}};
  return 2.0f * u32_to_unit_float(Philox4x32::generate(c, k)[0]) - 1.0f;
}

/// x[i] = T(uniform_pm1(i, seed)) for float or bf16 (the conversion is bitwise the same on the host).
template <class T>
DEEPSHOCK_KERNEL void fill_uniform_kernel(T* x, long long n, std::uint32_t seed) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = static_cast<T>(uniform_pm1(static_cast<unsigned long long>(i), seed));
}

// ---- warp top-k --------------------------------------------------------------------------------
/// One warp per row of E scores (row-major [rows, E]); lane l holds experts l, l+32, ... (N per
/// lane, N = ceil(E/32)). Writes the K best ids and scores of each row, in rank order.
template <int K, int N>
DEEPSHOCK_KERNEL void warp_topk_kernel(const float* scores, int rows, int E, int* ids, float* vals) {
  const int warps_per_block = static_cast<int>(blockDim.x) / 32;
  const int row = static_cast<int>(blockIdx.x) * warps_per_block + static_cast<int>(threadIdx.x) / 32;
  if (row >= rows) return;  // whole warps leave together
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const float* r = scores + static_cast<long long>(row) * E;
  float s[N];
  int idx[N];
  DEEPSHOCK_UNROLL
  for (int j = 0; j < N; ++j) {
    const int e = lane + 32 * j;
    s[j] = e < E ? r[e] : 0.0f;
    idx[j] = e < E ? e : -1;
  }
  warp::Ranked<float> best[K];
  warp::topk<K>(s, idx, best);
  DEEPSHOCK_UNROLL
  for (int k = 0; k < K; ++k)  // lane k writes entry k: K lanes store at once
    if (lane == k) {
      ids[static_cast<long long>(row) * K + k] = best[k].index;
      vals[static_cast<long long>(row) * K + k] = best[k].score;
    }
}

// ---- bf16 tensor-core GEMM ---------------------------------------------------------------------
/// C[M,N] (fp32, row-major) = A[M,K] * W[N,K]^T, A and W bf16 row-major (W as a linear layer's
/// [out, in] weight). Block tile 128x128 over K steps of 32, 8 warps as 2 (m) x 4 (n), each warp
/// 64x32 = 4 x 4 mma.sync m16n8k16 tiles. Shared tiles hold bf16 pairs as 32-bit words, rows padded
/// to 20 words so fragment loads are free of bank conflicts. No pipelining, no ldmatrix: simple,
/// not fast. Needs M % 128 == 0, N % 128 == 0, K % 32 == 0, 16-byte aligned A and W.
inline constexpr int kGemmBM = 128, kGemmBN = 128, kGemmBK = 32;
inline constexpr int kGemmWarpsN = 4, kGemmThreads = 256;
inline constexpr int kGemmWM = 64, kGemmWN = 32;  // warp tile
inline constexpr int kGemmRowWords = kGemmBK / 2 + 4;

// Fragment words read below, tied to the library's documented fragment layout (g = lane/4, t = lane%4):
// A word q of lane 5 (g=1, t=1): q=0 rows g, k 2t..2t+1; q=1 row g+8; q=2 k+8; q=3 row g+8, k+8.
static_assert(arch::mma_a_coord(5, 0).row == 1 && arch::mma_a_coord(5, 0).col == 2 && arch::mma_a_coord(5, 1).col == 3);
static_assert(arch::mma_a_coord(5, 2).row == 9 && arch::mma_a_coord(5, 2).col == 2);
static_assert(arch::mma_a_coord(5, 4).row == 1 && arch::mma_a_coord(5, 4).col == 10);
static_assert(arch::mma_a_coord(5, 6).row == 9 && arch::mma_a_coord(5, 6).col == 10);
// B word q of lane 5: k = 2t + 8q (+1 in the high half), n = g.
static_assert(arch::mma_b_coord(5, 0).row == 2 && arch::mma_b_coord(5, 1).row == 3 && arch::mma_b_coord(5, 0).col == 1);
static_assert(arch::mma_b_coord(5, 2).row == 10 && arch::mma_b_coord(5, 2).col == 1);
// C element e of lane 5: row g + 8*(e/2), col 2t + e%2.
static_assert(arch::mma_c_coord(5, 3).row == 9 && arch::mma_c_coord(5, 3).col == 3);

DEEPSHOCK_KERNEL void __launch_bounds__(256) mma_gemm_bf16_kernel(const bf16* A, const bf16* W, float* C, int M, int N, int K) {
  __shared__ std::uint32_t As[kGemmBM][kGemmRowWords];
  __shared__ std::uint32_t Ws[kGemmBN][kGemmRowWords];
  const int tid = static_cast<int>(threadIdx.x);
  const int warp_id = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int wm0 = (warp_id / kGemmWarpsN) * kGemmWM, wn0 = (warp_id % kGemmWarpsN) * kGemmWN;
  const long long m_blk = static_cast<long long>(blockIdx.y) * kGemmBM, n_blk = static_cast<long long>(blockIdx.x) * kGemmBN;
  const uint4* A4 = reinterpret_cast<const uint4*>(A);
  const uint4* W4 = reinterpret_cast<const uint4*>(W);
  const long long row_chunks = K / 8;  // 16-byte chunks per row
  float acc[kGemmWM / 16][kGemmWN / 8][4] = {};
  for (int k0 = 0; k0 < K; k0 += kGemmBK) {
    // 128 rows x 4 chunks of 8 bf16 per tile; 256 threads copy two chunks of each tile.
    for (int c = tid; c < kGemmBM * 4; c += kGemmThreads) {
      const int r = c / 4, q = c % 4;
      const uint4 a = A4[(m_blk + r) * row_chunks + k0 / 8 + q];
      const uint4 w = W4[(n_blk + r) * row_chunks + k0 / 8 + q];
      As[r][4 * q] = a.x;
      As[r][4 * q + 1] = a.y;
      As[r][4 * q + 2] = a.z;
      As[r][4 * q + 3] = a.w;
      Ws[r][4 * q] = w.x;
      Ws[r][4 * q + 1] = w.y;
      Ws[r][4 * q + 2] = w.z;
      Ws[r][4 * q + 3] = w.w;
    }
    __syncthreads();
    DEEPSHOCK_UNROLL
    for (int kw = 0; kw < kGemmBK / 2; kw += 8) {  // word offset of each k16 slice
      std::uint32_t a[kGemmWM / 16][4], b[kGemmWN / 8][2];
      DEEPSHOCK_UNROLL
      for (int i = 0; i < kGemmWM / 16; ++i) {
        const int r = wm0 + 16 * i + g;
        a[i][0] = As[r][kw + t];
        a[i][1] = As[r + 8][kw + t];
        a[i][2] = As[r][kw + t + 4];
        a[i][3] = As[r + 8][kw + t + 4];
      }
      DEEPSHOCK_UNROLL
      for (int j = 0; j < kGemmWN / 8; ++j) {
        const int n = wn0 + 8 * j + g;
        b[j][0] = Ws[n][kw + t];
        b[j][1] = Ws[n][kw + t + 4];
      }
      DEEPSHOCK_UNROLL
      for (int i = 0; i < kGemmWM / 16; ++i) {
        DEEPSHOCK_UNROLL
        for (int j = 0; j < kGemmWN / 8; ++j) arch::mma_m16n8k16<bf16>(acc[i][j], a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();
  }
  DEEPSHOCK_UNROLL
  for (int i = 0; i < kGemmWM / 16; ++i) {
    DEEPSHOCK_UNROLL
    for (int j = 0; j < kGemmWN / 8; ++j) {
      DEEPSHOCK_UNROLL
      for (int e = 0; e < 4; ++e) {
        const long long row = m_blk + wm0 + 16 * i + g + 8 * (e / 2);
        const long long col = n_blk + wn0 + 8 * j + 2 * t + e % 2;
        C[row * N + col] = acc[i][j][e];
      }
    }
  }
}

// ---- host references (plain C++, double accumulation) -------------------------------------------
namespace ref {

/// Sum of fill_ramp_kernel's x[0, n).
inline double ramp_sum(long long n) {
  const long long full = n / 1000, rest = n % 1000;
  return (static_cast<double>(full) * (999.0 * 1000.0 / 2.0) + static_cast<double>(rest) * static_cast<double>(rest - 1) / 2.0) / 1024.0;
}

/// Checks top-k ids and scores of every row against a sort (ties to the lower index). Returns ""
/// when they match, else a description of the first mismatch.
inline std::string check_topk(const std::vector<float>& scores, int rows, int E, int K, const std::vector<int>& ids,
                              const std::vector<float>& vals) {
  std::vector<int> order(static_cast<std::size_t>(E));
  for (int r = 0; r < rows; ++r) {
    const float* s = scores.data() + static_cast<std::size_t>(r) * E;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [s](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
    for (int k = 0; k < K; ++k) {
      const std::size_t o = static_cast<std::size_t>(r) * K + k;
      if (ids[o] != order[k] || vals[o] != s[order[k]])
        return "top-k mismatch at row " + std::to_string(r) + " rank " + std::to_string(k) + ": got id " + std::to_string(ids[o]) +
               ", expected " + std::to_string(order[k]);
    }
  }
  return "";
}

/// C[m, n] of A[M,K] * W[N,K]^T in double, A and W filled by fill_uniform_kernel<bf16>.
inline double gemm_element(std::uint32_t seed_a, std::uint32_t seed_w, int K, long long m, long long n) {
  double acc = 0.0;
  for (long long k = 0; k < K; ++k) {
    const float a = bf16(uniform_pm1(static_cast<unsigned long long>(m * K + k), seed_a)).to_float();
    const float w = bf16(uniform_pm1(static_cast<unsigned long long>(n * K + k), seed_w)).to_float();
    acc += static_cast<double>(a) * static_cast<double>(w);
  }
  return acc;
}

}  // namespace ref
}  // namespace ds_bench
