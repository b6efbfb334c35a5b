// Test kernels shared by the simulator tests (g++, DEEPSHOCK_SIM) and the GPU tests (nvcc).
// Plain CUDA as README's "Three ways the same code runs" asks: launched through deepshock::launch, dynamic shared
// memory through deepshock::dynamic_smem, only `_sync` intrinsics, no __CUDA_ARCH__.
// Include from exactly one translation unit per binary.
#pragma once

#include <cstdint>

#include "deepshock/core/philox.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/mma.hpp"
#include "deepshock/platform/warp.hpp"
#include "deepshock/platform/wgmma.hpp"

namespace ds_kernels {
using namespace deepshock;

// ---- counter-based random numbers ----------------------------------------------------------
/// For i < n: the Philox4x32-10 block of counter {i, 7i, 0, 0} under `seed` (4 words), Box-Muller
/// of its first two words, and the noisy router's draw gate_noise(seed, i / experts, i % experts);
/// then Box-Muller of the given (a[j], b[j]) pairs (edge inputs) for j < m.
DEEPSHOCK_KERNEL void philox_draws_kernel(std::uint64_t seed, int n, int experts, std::uint32_t* words, float* normals, float* noise,
                                          const std::uint32_t* a, const std::uint32_t* b, int m, float* edge) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) {
    const u32x4 r = Philox4x32::generate(u32x4{{static_cast<std::uint32_t>(i), 7u * static_cast<std::uint32_t>(i), 0u, 0u}},
                                         u32x2{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}});
    for (int k = 0; k < 4; ++k) words[4 * i + k] = r.v[k];
    const f32x2 z = box_muller(r.v[0], r.v[1]);
    normals[2 * i] = z.x;
    normals[2 * i + 1] = z.y;
    noise[i] = gate::gate_noise(seed, i / experts, i % experts);
  }
  if (i < m) {
    const f32x2 z = box_muller(a[i], b[i]);
    edge[2 * i] = z.x;
    edge[2 * i + 1] = z.y;
  }
}

// ---- block primitives ------------------------------------------------------------------------
/// out[b] = sum of x[b*seg, min(n, (b+1)*seg)).
DEEPSHOCK_KERNEL void block_sum_kernel(const float* x, int n, int seg, float* out) {
  __shared__ float scratch[block::kScratchWords];
  const int begin = static_cast<int>(blockIdx.x) * seg;
  const int end = min(n, begin + seg);
  float acc = 0.0f;
  for (int i = begin + static_cast<int>(block::thread_rank()); i < end; i += static_cast<int>(block::num_threads())) acc += x[i];
  const float s = block::reduce_sum(acc, scratch);
  if (block::thread_rank() == 0) out[blockIdx.x] = s;
}

/// One block, one element per thread: exclusive scan, total, arg-max, and the barrier predicates.
DEEPSHOCK_KERNEL void block_scan_argmax_kernel(const int* x, const float* scores, int* excl, int* total, int* best_idx, float* best_score,
                                               int* counts) {
  __shared__ int iscratch[block::kScratchWords];
  __shared__ warp::Ranked<float> rscratch[block::kScratchWords];
  const unsigned r = block::thread_rank();
  int tot = 0;
  excl[r] = block::exclusive_scan_sum(x[r], tot, iscratch);
  const warp::Ranked<float> best = block::argmax(warp::Ranked<float>{scores[r], static_cast<int>(r)}, rscratch);
  const int c = __syncthreads_count(x[r] % 3 == 0);
  const int all_pos = __syncthreads_and(x[r] >= 0);
  const int any_big = __syncthreads_or(x[r] > 90);
  if (r == 0) {
    *total = tot;
    *best_idx = best.index;
    *best_score = best.score;
    counts[0] = c;
    counts[1] = all_pos;
    counts[2] = any_big;
  }
}

// ---- warp top-k ------------------------------------------------------------------------------
/// One warp per row of E scores; lane l holds candidates l, l+32, ... (N per lane).
template <int K, int N>
DEEPSHOCK_KERNEL void warp_topk_kernel(const float* scores, int rows, int E, int* ids, float* vals) {
  const int warps_per_block = static_cast<int>(blockDim.x) / 32;
  const int row = static_cast<int>(blockIdx.x) * warps_per_block + static_cast<int>(threadIdx.x) / 32;
  if (row >= rows) return;  // whole warps leave together
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float s[N];
  int idx[N];
  for (int j = 0; j < N; ++j) {
    const int i = lane + 32 * j;
    s[j] = i < E ? scores[static_cast<long long>(row) * E + i] : 0.0f;
    idx[j] = i < E ? i : -1;
  }
  warp::Ranked<float> out[K];
  warp::topk<K>(s, idx, out);
  if (lane == 0)
    for (int r = 0; r < K; ++r) {
      ids[row * K + r] = out[r].index;
      vals[row * K + r] = out[r].score;
    }
}

/// One block of `valid` threads (a partial warp when valid < 32) per row of E scores; lane l
/// holds candidates l, l+32, ... (N per lane), a candidate with present[i] == 0 as an empty slot.
template <int K, int N>
DEEPSHOCK_KERNEL void warp_topk_order_kernel(const float* scores, const unsigned char* present, int E, int valid, int* ids, float* vals) {
  const int lane = static_cast<int>(threadIdx.x);
  const long long row = blockIdx.x;
  float s[N];
  int idx[N];
  for (int j = 0; j < N; ++j) {
    const int i = lane + 32 * j;
    const bool here = i < E && present[row * E + i] != 0;
    s[j] = here ? scores[row * E + i] : 0.0f;
    idx[j] = here ? i : -1;
  }
  warp::Ranked<float> out[K];
  warp::topk<K>(s, idx, out, valid);
  if (lane == valid - 1)  // any lane: all hold the result
    for (int r = 0; r < K; ++r) {
      ids[row * K + r] = out[r].index;
      vals[row * K + r] = out[r].score;
    }
}

// ---- shared-memory tiled GEMM (fp32) -----------------------------------------------------------
inline constexpr int kGemmTile = 16;
/// C[M,N] = A[M,K] * B[K,N], row-major; block (16,16), grid (ceil(N/16), ceil(M/16)).
DEEPSHOCK_KERNEL void smem_gemm_kernel(const float* A, const float* B, float* C, int M, int N, int K) {
  __shared__ float As[kGemmTile][kGemmTile];
  __shared__ float Bs[kGemmTile][kGemmTile];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int row = static_cast<int>(blockIdx.y) * kGemmTile + ty;
  const int col = static_cast<int>(blockIdx.x) * kGemmTile + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += kGemmTile) {
    As[ty][tx] = (row < M && k0 + tx < K) ? A[row * K + k0 + tx] : 0.0f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(k0 + ty) * N + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < kGemmTile; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N) C[row * N + col] = acc;
}

// ---- asynchronous copies (cp.async) -------------------------------------------------------------
/// One block of `threads` threads; dynamic shared memory 3 x threads x 16 bytes. Group g
/// (g = 0, 1, 2, committed separately) copies 16-byte chunk c = g * threads + t of `src` to slot
/// [g][t] (zero-filled when c >= valid_chunks). Then wait<2>, wait<1>, wait<0> each publish the
/// thread's own slot of the group just completed to out[c]; after a barrier, thread t copies its
/// neighbour's group-2 slot to neighbour[t]. `early[t]` gets slot [2][t] read before any wait
/// (undefined on hardware; the simulator's model makes it 0xFF poison).
DEEPSHOCK_KERNEL void cp_async_kernel(const uint4* src, int valid_chunks, uint4* out, uint4* neighbour, uint4* early) {
  const int t = static_cast<int>(threadIdx.x), threads = static_cast<int>(blockDim.x);
  uint4* slot = dynamic_smem<uint4>();
  for (int g = 0; g < 3; ++g) {
    const int c = g * threads + t;
    mem::cp_async16(&slot[c], c < valid_chunks ? &src[c] : src, c < valid_chunks);
    mem::cp_async_commit();
  }
  mem::copy16(&early[t], &slot[2 * threads + t]);
  mem::cp_async_wait<2>();
  mem::copy16(&out[t], &slot[t]);
  mem::cp_async_wait<1>();
  mem::copy16(&out[threads + t], &slot[threads + t]);
  mem::cp_async_wait<0>();
  mem::copy16(&out[2 * threads + t], &slot[2 * threads + t]);
  __syncthreads();
  mem::copy16(&neighbour[t], &slot[2 * threads + (t + 1) % threads]);
}

// ---- ldmatrix -------------------------------------------------------------------------------------
/// One warp. Copies `rows` rows of `stride` 16-bit values (stride a multiple of 8) from `src` to
/// dynamic shared memory (rows * stride * 2 bytes), then lane l names row row_of_lane[l] and
/// loads Count matrices; lane l writes its Count words to out[l * Count ...].
template <int Count>
DEEPSHOCK_KERNEL void ldmatrix_kernel(const std::uint16_t* src, int rows, int stride, const int* row_of_lane, std::uint32_t* out) {
  const int lane = static_cast<int>(threadIdx.x);
  auto* tile = dynamic_smem<std::uint16_t>();
  for (int i = lane; i < rows * stride; i += 32) tile[i] = src[i];
  __syncthreads();
  std::uint32_t r[Count];
  arch::ldmatrix<Count>(r, tile + row_of_lane[lane] * stride);
  for (int i = 0; i < Count; ++i) out[lane * Count + i] = r[i];
}

// ---- warpgroup MMA (wgmma, sm_90a) ---------------------------------------------------------------
/// Writes DEEPSHOCK_WGMMA as the device code was compiled (1: wgmma available).
DEEPSHOCK_KERNEL void wgmma_built_kernel(int* out) { *out = DEEPSHOCK_WGMMA; }

/// D[64, N] = C + A[64, K] * B[N, K]^T (row-major A and B, C = 1 in every element) by one
/// warpgroup (128 threads); T = bf16 / fp16, or uint8_t for E4M3 codes. Each 128-byte K stage (64
/// 16-bit or 128 E4M3 values; K a multiple of it here) is stored into 128-byte swizzled tiles (A 64
/// rows, B N rows, after 1024 bytes of alignment slack: dynamic shared memory 1024 + (64 + N) *
/// 128 bytes), then multiplied by 4 wgmmas (k16, or k32 for E4M3) in one group. The result goes
/// out through the documented D fragment layout.
template <class T, int N>
DEEPSHOCK_KERNEL void wgmma_tile_kernel(const T* a, const T* b, float* d, int K) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(T)), kStageK = 8 * kVec;
  unsigned char* sa = arch::align_smem_1024(dynamic_smem<unsigned char>());
  unsigned char* sb = sa + 64 * 128;
  const int tid = static_cast<int>(threadIdx.x);
  float acc[N / 2];
  for (int i = 0; i < N / 2; ++i) acc[i] = 1.0f;
  for (int k0 = 0; k0 < K; k0 += kStageK) {
    for (int c = tid; c < 64 * 8; c += 128) mem::copy16(sa + arch::sw128_offset(c / 8, c % 8), a + (c / 8) * K + k0 + (c % 8) * kVec);
    for (int c = tid; c < N * 8; c += 128) mem::copy16(sb + arch::sw128_offset(c / 8, c % 8), b + (c / 8) * K + k0 + (c % 8) * kVec);
    arch::fence_proxy_async_smem();
    __syncthreads();
    arch::wgmma_fence_operand(acc);
    arch::wgmma_fence();
    for (int kk = 0; kk < 4; ++kk) {
      if constexpr (sizeof(T) == 1) arch::wgmma_m64k32_e4m3<N>(acc, sa + kk * 32, sb + kk * 32);
      else arch::wgmma_m64k16<T, N>(acc, sa + kk * 32, sb + kk * 32);
    }
    arch::wgmma_commit();
    arch::wgmma_wait<0>();
    arch::wgmma_fence_operand(acc);
    __syncthreads();  // before the next stage overwrites the tiles
  }
  const int w = tid / 32, lane = tid % 32;
  for (int i = 0; i < N / 2; ++i) {
    const int row = 16 * w + lane / 4 + 8 * ((i / 2) % 2), col = 8 * (i / 4) + 2 * (lane % 4) + (i % 2);
    d[row * N + col] = acc[i];
  }
}

// ---- tensor-core GEMM tile (mma.sync m16n8k16) --------------------------------------------------
/// C[M,N] = A[M,K] * B[K,N] (row-major inputs of T = bf16/fp16, fp32 out). One warp per 16x8
/// tile: block 32 threads, grid (ceil(N/8), ceil(M/16)). Out-of-range elements load as zero.
template <class T>
DEEPSHOCK_KERNEL void mma_gemm_kernel(const T* A, const T* B, float* C, int M, int N, int K) {
  const int lane = static_cast<int>(threadIdx.x);
  const int m0 = static_cast<int>(blockIdx.y) * 16, n0 = static_cast<int>(blockIdx.x) * 8;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < K; k0 += 16) {
    T av[8], bv[4];
    for (int i = 0; i < 8; ++i) {
      const arch::FragCoord p = arch::mma_a_coord(lane, i);
      const int r = m0 + p.row, c = k0 + p.col;
      av[i] = (r < M && c < K) ? A[r * K + c] : T::from_bits(0);
    }
    for (int i = 0; i < 4; ++i) {
      const arch::FragCoord p = arch::mma_b_coord(lane, i);
      const int k = k0 + p.row, n = n0 + p.col;
      bv[i] = (k < K && n < N) ? B[k * N + n] : T::from_bits(0);
    }
    const std::uint32_t a[4] = {arch::pack2(av[0], av[1]), arch::pack2(av[2], av[3]), arch::pack2(av[4], av[5]), arch::pack2(av[6], av[7])};
    const std::uint32_t b[2] = {arch::pack2(bv[0], bv[1]), arch::pack2(bv[2], bv[3])};
    arch::mma_m16n8k16<T>(acc, a, b, acc);
  }
  for (int i = 0; i < 4; ++i) {
    const arch::FragCoord p = arch::mma_c_coord(lane, i);
    const int r = m0 + p.row, c = n0 + p.col;
    if (r < M && c < N) C[r * N + c] = acc[i];
  }
}

/// C[M,N] = A[M,K] * B[K,N] for int8 inputs with int32 accumulation (mma.sync m16n8k32 s8), the
/// fragments gathered from global memory by the documented coordinates; as mma_gemm_kernel.
DEEPSHOCK_KERNEL void mma_s8_gemm_kernel(const std::int8_t* A, const std::int8_t* B, std::int32_t* C, int M, int N, int K) {
  const int lane = static_cast<int>(threadIdx.x);
  const int m0 = static_cast<int>(blockIdx.y) * 16, n0 = static_cast<int>(blockIdx.x) * 8;
  std::int32_t acc[4] = {0, 0, 0, 0};
  for (int k0 = 0; k0 < K; k0 += 32) {
    std::uint32_t a[4] = {0u, 0u, 0u, 0u}, b[2] = {0u, 0u};
    for (int i = 0; i < 16; ++i) {
      const arch::FragCoord p = arch::mma_s8_a_coord(lane, i);
      const int r = m0 + p.row, c = k0 + p.col;
      const std::uint8_t v = (r < M && c < K) ? static_cast<std::uint8_t>(A[r * K + c]) : 0u;
      a[i / 4] |= static_cast<std::uint32_t>(v) << (8 * (i % 4));
    }
    for (int i = 0; i < 8; ++i) {
      const arch::FragCoord p = arch::mma_s8_b_coord(lane, i);
      const int k = k0 + p.row, n = n0 + p.col;
      const std::uint8_t v = (k < K && n < N) ? static_cast<std::uint8_t>(B[k * N + n]) : 0u;
      b[i / 4] |= static_cast<std::uint32_t>(v) << (8 * (i % 4));
    }
    arch::mma_m16n8k32_s8(acc, a, b, acc);
  }
  for (int i = 0; i < 4; ++i) {
    const arch::FragCoord p = arch::mma_c_coord(lane, i);
    const int r = m0 + p.row, c = n0 + p.col;
    if (r < M && c < N) C[r * N + c] = acc[i];
  }
}

/// C[M,N] = A[M,K] * B[K,N] for FP8 E4M3 inputs (bytes) with fp32 accumulation (mma.sync
/// m16n8k32 e4m3, sm_89+), the fragments gathered as in mma_s8_gemm_kernel (padding: code 0).
DEEPSHOCK_KERNEL void mma_e4m3_gemm_kernel(const std::uint8_t* A, const std::uint8_t* B, float* C, int M, int N, int K) {
  const int lane = static_cast<int>(threadIdx.x);
  const int m0 = static_cast<int>(blockIdx.y) * 16, n0 = static_cast<int>(blockIdx.x) * 8;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < K; k0 += 32) {
    std::uint32_t a[4] = {0u, 0u, 0u, 0u}, b[2] = {0u, 0u};
    for (int i = 0; i < 16; ++i) {
      const arch::FragCoord p = arch::mma_s8_a_coord(lane, i);
      const int r = m0 + p.row, c = k0 + p.col;
      a[i / 4] |= static_cast<std::uint32_t>((r < M && c < K) ? A[r * K + c] : 0u) << (8 * (i % 4));
    }
    for (int i = 0; i < 8; ++i) {
      const arch::FragCoord p = arch::mma_s8_b_coord(lane, i);
      const int k = k0 + p.row, n = n0 + p.col;
      b[i / 4] |= static_cast<std::uint32_t>((k < K && n < N) ? B[k * N + n] : 0u) << (8 * (i % 4));
    }
    arch::mma_m16n8k32_e4m3(acc, a, b, acc);
  }
  for (int i = 0; i < 4; ++i) {
    const arch::FragCoord p = arch::mma_c_coord(lane, i);
    const int r = m0 + p.row, c = n0 + p.col;
    if (r < M && c < N) C[r * N + c] = acc[i];
  }
}

// ---- warp intrinsics, recorded for comparison with the documented semantics ---------------------
inline constexpr int kIntrinsicResults = 28;
/// One warp. Lane l writes kIntrinsicResults values to out[l * kIntrinsicResults ...].
DEEPSHOCK_KERNEL void warp_intrinsics_kernel(const unsigned* in, unsigned* out) {
  const unsigned full = 0xffffffffu;
  const int lane = static_cast<int>(threadIdx.x);
  const unsigned v = in[lane];
  unsigned* my = out + lane * kIntrinsicResults;
  int o = 0;
  for (int width = 32; width >= 8; width /= 2) {
    my[o++] = __shfl_sync(full, v, static_cast<int>(v % 37u), width);
    my[o++] = __shfl_up_sync(full, v, 3u, width);
    my[o++] = __shfl_down_sync(full, v, 5u, width);
    my[o++] = __shfl_xor_sync(full, v, 9, width);
  }
  my[o++] = __ballot_sync(full, v & 1u);
  my[o++] = static_cast<unsigned>(__any_sync(full, v % 7u == 0));
  my[o++] = static_cast<unsigned>(__all_sync(full, v != 12345u));
  my[o++] = __match_any_sync(full, v % 5u);
  int pred = -1;
  my[o++] = __match_all_sync(full, v % 5u, &pred);
  my[o++] = static_cast<unsigned>(pred);
  my[o++] = __match_all_sync(full, 42u, &pred);
  my[o++] = static_cast<unsigned>(pred);
  my[o++] = __reduce_add_sync(full, v);
  my[o++] = __reduce_min_sync(full, v);
  my[o++] = __reduce_max_sync(full, v);
  my[o++] = static_cast<unsigned>(__reduce_min_sync(full, static_cast<int>(v)));
  my[o++] = __reduce_and_sync(full, v) ^ __reduce_or_sync(full, v) ^ __reduce_xor_sync(full, v);
  // Two independent half-warp groups, as divergent code would use them.
  const unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  my[o++] = __shfl_sync(half, v, lane < 16 ? 3 : 19);
  my[o++] = __reduce_add_sync(half, v);
  __syncwarp(half);
  my[o++] = __ballot_sync(half, v & 2u);
}

// ---- atomics across blocks ----------------------------------------------------------------------
/// counters: [0] add, [1] max, [2] min, [3] CAS increments, [4] or, [5] xor; u64 sum; f sum.
DEEPSHOCK_KERNEL void atomics_kernel(int* counters, unsigned long long* u64, float* f, const int* vals, int n) {
  const int gid = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (gid >= n) return;
  const int v = vals[gid];
  atomicAdd(&counters[0], v);
  atomicMax(&counters[1], v);
  atomicMin(&counters[2], v);
  int old = atomicOr(&counters[3], 0);  // an atomic read: a plain one would race with the CAS
  for (;;) {
    const int seen = atomicCAS(&counters[3], old, old + 1);
    if (seen == old) break;
    old = seen;
  }
  atomicOr(&counters[4], 1 << (v % 31));
  atomicXor(&counters[5], v);
  atomicAdd(u64, static_cast<unsigned long long>(v));
  atomicAdd(f, 0.5f);
}

// ---- deliberate bugs the simulator must catch --------------------------------------------------
/// out[t] = in[t-1] through shared memory — *without* the barrier between write and read.
DEEPSHOCK_KERNEL void shift_racy_kernel(const int* in, int* out, int n) {
  int* s = dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x);
  if (t < n) s[t] = in[t];
  // BUG (deliberate): a __syncthreads() belongs here.
  if (t < n) out[t] = t > 0 ? s[t - 1] : 0;
}
/// The same with the barrier.
DEEPSHOCK_KERNEL void shift_synced_kernel(const int* in, int* out, int n) {
  int* s = dynamic_smem<int>();
  const int t = static_cast<int>(threadIdx.x);
  if (t < n) s[t] = in[t];
  __syncthreads();
  if (t < n) out[t] = t > 0 ? s[t - 1] : 0;
}

}  // namespace ds_kernels
