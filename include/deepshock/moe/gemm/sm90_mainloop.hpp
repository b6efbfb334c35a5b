// deepshock/moe/gemm/sm90_mainloop.hpp — the Hopper grouped GEMM's shared memory and k-loop:
// 128-byte swizzled tiles (each 1024-byte aligned) fed by a cp.async ring, multiplied by wgmma
// (sm_90a builds and the simulator) with one group in flight, or by mma.sync from the same
// layout where wgmma is not compiled (platform/wgmma.hpp). Shared with the FP8 k-loop
// (sm90_fp8_mainloop.hpp): the shared-memory layout and one k-tile's MMAs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "deepshock/core/config.hpp"
#include "deepshock/moe/gemm/arguments.hpp"
#include "deepshock/moe/gemm/scheduler.hpp"
#include "deepshock/moe/gemm/tile_loader.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/mma.hpp"
#include "deepshock/platform/wgmma.hpp"

namespace deepshock::moe::detail {

/// Dynamic shared memory of the swizzled (wgmma) kernel, from a 1024-byte aligned base:
/// kStages stages of {A [BM][128 B], B [NB][BN][128 B]} (each tile 1024-byte aligned); with
/// Scales (FP8 activations) then per stage the k-tile's BM row scales and NB weight-block scales;
/// then the BM gathered row indices. 1024 bytes of slack for the alignment.
template <class Tile, int NB, bool Scales = false>
struct SwizzledSmem {
  static constexpr int kABytes = Tile::kBM * 128, kBBytes = Tile::kBN * 128;
  static constexpr int kStageBytes = kABytes + NB * kBBytes;
  static constexpr int kScaleFloats = Scales ? Tile::kBM + NB : 0;  ///< per stage
  static constexpr std::size_t kScalesOffset = static_cast<std::size_t>(Tile::kStages) * kStageBytes;
  static constexpr std::size_t kRowsOffset =
      kScalesOffset + (static_cast<std::size_t>(Tile::kStages) * kScaleFloats * sizeof(float) + 15) / 16 * 16;
  static constexpr std::size_t kBytes = 1024 + kRowsOffset + Tile::kBM * sizeof(int);
  static_assert(kABytes % 1024 == 0 && kBBytes % 1024 == 0, "SwizzledSmem: tiles must stay 1024-byte aligned.");
  DEEPSHOCK_HOST_DEVICE static unsigned char* a(unsigned char* base, int stage) { return base + stage * kStageBytes; }
  DEEPSHOCK_HOST_DEVICE static unsigned char* b(unsigned char* base, int stage, int m) { return a(base, stage) + kABytes + m * kBBytes; }
  /// The k-tile's activation scale of each gathered row, then (w_scales) each matrix's block scale.
  DEEPSHOCK_HOST_DEVICE static float* a_scales(unsigned char* base, int stage) {
    return reinterpret_cast<float*>(base + kScalesOffset) + stage * kScaleFloats;
  }
  DEEPSHOCK_HOST_DEVICE static float* w_scales(unsigned char* base, int stage) { return a_scales(base, stage) + Tile::kBM; }
  DEEPSHOCK_HOST_DEVICE static int* rows(unsigned char* base) { return reinterpret_cast<int*>(base + kRowsOffset); }
};

/// The swizzled kernel's shared memory for a codec: FP8 activations stage their scales.
template <class Tile, int NB, class Codec>
using SwizzledSmemOf = SwizzledSmem<Tile, NB, quant::act_fp8_v<Codec>>;

/// One k-tile's MMAs from `stage` into `c` (this thread's part of its warpgroup's 64 x BN sums per
/// matrix, the wgmma D layout): wgmma, issued and committed as one group, returning when at most
/// Pending groups are in flight, or mma.sync from the same swizzled tiles. A k-tile is 128 bytes of K, four 32-byte MMA steps of
/// 16-bit values (k16) or E4M3 codes (k32), which have the same fragment byte layout, so one
/// addressing serves both.
template <class T, class Tile, int NB, bool Fp8, bool Wgmma, int Pending>
DEEPSHOCK_DEVICE void sw128_ktile(unsigned char* smem, int stage, int tid, float (&c)[NB][Tile::kBN / 2]) {
  using Smem = SwizzledSmem<Tile, NB, Fp8>;
  constexpr int BN = Tile::kBN;
  const int wg = tid / 128, warp_in_wg = (tid / 32) % 4, lane = tid % 32;
  const unsigned char* sa = Smem::a(smem, stage) + wg * 64 * 128;
  if constexpr (Wgmma) {
    DEEPSHOCK_UNROLL
    for (int m = 0; m < NB; ++m) arch::wgmma_fence_operand(c[m]);
    arch::wgmma_fence();
    DEEPSHOCK_UNROLL
    for (int kk = 0; kk < 4; ++kk) {
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) {
        if constexpr (Fp8) arch::wgmma_m64k32_e4m3<BN>(c[m], sa + kk * 32, Smem::b(smem, stage, m) + kk * 32);
        else arch::wgmma_m64k16<T, BN>(c[m], sa + kk * 32, Smem::b(smem, stage, m) + kk * 32);
      }
    }
    arch::wgmma_commit();
    arch::wgmma_wait<Pending>();
    DEEPSHOCK_UNROLL
    for (int m = 0; m < NB; ++m) arch::wgmma_fence_operand(c[m]);
  } else {
    // Fragments by ldmatrix from the swizzled tiles (a 16-byte chunk stays contiguous under the
    // swizzle): A rows warp_in_wg * 16 + l % 16 at chunk 2 kk + l / 16; B two n8 tiles per x4,
    // n row l % 8 + 8 (l / 16) at chunk 2 kk + (l / 8) % 2 (as in grouped_gemm_kernel).
    static_assert(BN % 16 == 0, "grouped_gemm_sw128_kernel: B fragments are loaded two n8 tiles at a time.");
    DEEPSHOCK_UNROLL
    for (int kk = 0; kk < 4; ++kk) {
      std::uint32_t af[4];
      arch::ldmatrix<4>(af, sa + arch::sw128_offset(warp_in_wg * 16 + lane % 16, 2 * kk + lane / 16));
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) {
        const unsigned char* sb = Smem::b(smem, stage, m);
        DEEPSHOCK_UNROLL
        for (int ni = 0; ni < BN / 8; ni += 2) {
          std::uint32_t bq[4];
          arch::ldmatrix<4>(bq, sb + arch::sw128_offset(ni * 8 + lane % 8 + 8 * (lane / 16), 2 * kk + (lane / 8) % 2));
          DEEPSHOCK_UNROLL
          for (int h = 0; h < 2; ++h) {
            const std::uint32_t bf[2] = {bq[2 * h], bq[2 * h + 1]};
            const int n8 = ni + h;
            float d[4] = {c[m][n8 * 4], c[m][n8 * 4 + 1], c[m][n8 * 4 + 2], c[m][n8 * 4 + 3]};
            if constexpr (Fp8) arch::mma_m16n8k32_e4m3(d, af, bf, d);
            else arch::mma_m16n8k16<T>(d, af, bf, d);
            DEEPSHOCK_UNROLL
            for (int j = 0; j < 4; ++j) c[m][n8 * 4 + j] = d[j];
          }
        }
      }
    }
  }
}

/// Issues the cp.async copies of one k-tile into `stage`: the tile's gathered A rows (rows[r] < 0:
/// a padding row) and output channels n0 .. n0 + BN of each weight matrix, k0 .. k0 + 128 bytes,
/// with the mma.sync kernels' loader (tile_loader.hpp) into the swizzled layout: 8 chunks of 16
/// bytes per row (8 16-bit values or 16 E4M3 codes).
template <class Tile, int NB, class Smem, class Args, class W>
DEEPSHOCK_DEVICE void sw128_load_tiles(unsigned char* smem, int stage, int tid, const int* rows, const Args& args, const W* const* b,
                                       long long ldb, int n0, int k0) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(W));
  load_tile_async<Swizzled128, Tile::kBM, 8, Tile::kThreads>(Smem::a(smem, stage), tid, args.a, [&](int r, int ch) -> const void* {
    const int row = rows[r], kc = ch * kVec;
    return row >= 0 && k0 + kc < args.k ? args.a + static_cast<long long>(row) * args.lda + k0 + kc : nullptr;
  });
  DEEPSHOCK_UNROLL
  for (int m = 0; m < NB; ++m) {
    load_tile_async<Swizzled128, Tile::kBN, 8, Tile::kThreads>(Smem::b(smem, stage, m), tid, b[m], [&](int r, int ch) -> const void* {
      const int kc = ch * kVec;
      return n0 + r < args.n && k0 + kc < args.k ? b[m] + static_cast<long long>(n0 + r) * ldb + k0 + kc : nullptr;
    });
  }
}

/// The k-loop of grouped_gemm_sw128_kernel for 16-bit inputs (FP8: sm90_fp8_mainloop.hpp) over
/// all k-tiles of the tile `job` (row indices in `rows`), adding into `acc`: this thread's part of its warpgroup's 64 x BN accumulators per
/// matrix, in the wgmma D layout (= per warp the m16n8 C fragments of n8 tiles 0 .. BN / 8 - 1).
/// Pipeline: k-tile kt lives in stage kt % kStages; the loads run kStages - 2 k-tiles ahead and
/// the wgmma group of k-tile kt - 1 may still run while k-tile kt is issued, so the stage being
/// refilled in iteration kt is that of k-tile kt - 2, which every warpgroup has finished
/// (wgmma_wait<1> in iteration kt - 1, then this iteration's barrier). Returns with no wgmma in
/// flight.
template <class T, class Tile, int NB, class Epi, class Codec>
DEEPSHOCK_DEVICE void sw128_mainloop(unsigned char* smem, const int* rows, const TileJob<T, Epi, Codec>& job, int tid,
                                     float (&acc)[NB][Tile::kBN / 2]) {
  using Smem = SwizzledSmem<Tile, NB>;
  constexpr int BN = Tile::kBN, BK = 64, kStages = Tile::kStages;
  constexpr bool kWgmma = Tile::kUseWgmma && DEEPSHOCK_WGMMA;
  const GroupedGemmArgs<T, Codec>& args = job.args;
  const int n0 = job.n0;
  const T* const* b = job.b;
  const long long ldb = args.ldb != 0 ? args.ldb : args.k;  // weight row stride

  const int wg = tid / 128;

  const int ktiles = (args.k + BK - 1) / BK;
  auto issue = [&](int kt) {
    if (kt < ktiles) {
      const int k0 = kt * BK, stage = kt % kStages;
      sw128_load_tiles<Tile, NB, Smem>(smem, stage, tid, rows, args, b, ldb, n0, k0);
    }
    mem::cp_async_commit();
  };

  DEEPSHOCK_UNROLL
  for (int s = 0; s < kStages - 2; ++s) issue(s);
  for (int kt = 0; kt < ktiles; ++kt) {
    // Groups committed so far: kStages - 2 + kt; allowing kStages - 3 pending completes k-tile kt.
    mem::cp_async_wait<kStages - 3>();
    if constexpr (kWgmma) arch::fence_proxy_async_smem();
    __syncthreads();
    issue(kt + kStages - 2);
    const int stage = kt % kStages;
    unsigned char* sa = Smem::a(smem, stage) + wg * 64 * 128;
    if constexpr (kWgmma) {
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) arch::wgmma_fence_operand(acc[m]);
      arch::wgmma_fence();
      DEEPSHOCK_UNROLL
      for (int kk = 0; kk < BK / 16; ++kk) {
        DEEPSHOCK_UNROLL
        for (int m = 0; m < NB; ++m) arch::wgmma_m64k16<T, BN>(acc[m], sa + kk * 32, Smem::b(smem, stage, m) + kk * 32);
      }
      arch::wgmma_commit();
      arch::wgmma_wait<1>();
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) arch::wgmma_fence_operand(acc[m]);
    } else {
      sw128_ktile<T, Tile, NB, false, false, 0>(smem, stage, tid, acc);
    }
  }
  if constexpr (kWgmma) {
    arch::wgmma_wait<0>();
    DEEPSHOCK_UNROLL
    for (int m = 0; m < NB; ++m) arch::wgmma_fence_operand(acc[m]);
  }
}

}  // namespace deepshock::moe::detail
#endif  // DEEPSHOCK_HAS_KERNELS
