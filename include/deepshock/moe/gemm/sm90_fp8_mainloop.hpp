// deepshock/moe/gemm/sm90_fp8_mainloop.hpp — the Hopper grouped GEMM's k-loop for FP8 activations
// and weights (quant::Fp8BlockA8): the 16-bit kernel's swizzled stages (sm90_mainloop.hpp) with
// 128 E4M3 codes per row, the k-tile's activation and weight scales staged beside them, wgmma k32
// E4M3 (or mma.sync m16n8k32 E4M3 from the same tiles) into partial sums promoted per k-tile.
#pragma once

#include "deepshock/core/config.hpp"
#include "deepshock/moe/gemm/arguments.hpp"
#include "deepshock/moe/gemm/scheduler.hpp"
#include "deepshock/moe/gemm/sm90_mainloop.hpp"
#include "deepshock/moe/gemm/tile_loader.hpp"
#include "deepshock/quant/codec.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/wgmma.hpp"

namespace deepshock::moe::detail {

/// The k-loop of grouped_gemm_sw128_kernel for FP8 activations and weights over all k-tiles of the
/// tile `job` (row indices in `rows`), adding into `acc`: this thread's part of its warpgroup's
/// 64 x BN accumulators per matrix, in the wgmma D layout. A k-tile is one 128-byte row of K: 128
/// E4M3 codes, one scale group of both operands. Its MMAs sum into partial accumulators that
/// start at zero; after its group's wait they are promoted into acc times s_weight(block) x
/// s_act(row, group) (DeepSeek-V3's recipe: the FP8 tensor cores' sums keep fewer bits than fp32,
/// so no more than 128 of K is summed there). Pipeline: k-tile kt lives in stage kt % kStages and
/// the loads run kStages - 2 k-tiles ahead, as in sw128_mainloop; no wgmma group outlives its
/// iteration (the promotion needs its sums), so the stage refilled in iteration kt (k-tile kt - 2's)
/// is free.
template <class T, class Tile, int NB, class Epi, class Codec>
DEEPSHOCK_DEVICE void sw128_fp8_mainloop(unsigned char* smem, const int* rows, const TileJob<T, Epi, Codec>& job, int tid,
                                         float (&acc)[NB][Tile::kBN / 2]) {
  static_assert(quant::act_fp8_v<Codec>, "sw128_fp8_mainloop: FP8 activations and weights (quant::Fp8BlockA8).");
  static_assert(quant::scale_share_v<Codec> % Tile::kBN == 0, "sw128_fp8_mainloop: a tile's channels must lie in one weight block.");
  using Smem = SwizzledSmem<Tile, NB, true>;
  using W = typename Codec::template storage<T>;  // E4M3 codes, as the activations
  constexpr int BM = Tile::kBM, BN = Tile::kBN, BK = 128, kThreads = Tile::kThreads, kStages = Tile::kStages;
  constexpr bool kWgmma = Tile::kUseWgmma && DEEPSHOCK_WGMMA;
  const GroupedGemmArgs<T, Codec>& args = job.args;
  const int n0 = job.n0;
  const W* const* b = job.b;
  const long long ldb = args.ldb != 0 ? args.ldb : args.k;  // weight row stride

  const int ktiles = (args.k + BK - 1) / BK;
  auto issue = [&](int kt) {
    if (kt < ktiles) {
      const int k0 = kt * BK, stage = kt % kStages;
      sw128_load_tiles<Tile, NB, Smem>(smem, stage, tid, rows, args, b, ldb, n0, k0);
      // The k-tile's scales: each gathered row's (group kt of its row) and each matrix's block
      // (the tile's BN channels lie in one 128-channel block). Plain loads and stores, published
      // with the stage's copies by the consuming barrier.
      const int groups_a = (args.k + 127) / 128;
      for (int r = tid; r < BM; r += kThreads) {
        const int row = rows[r];
        Smem::a_scales(smem, stage)[r] = row >= 0 ? args.a_scale[static_cast<long long>(row) * groups_a + kt] : 0.0f;
      }
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m)  // unrolled: a run-time index into the kernel parameter would copy it to local memory
        if (tid == m) Smem::w_scales(smem, stage)[m] = Codec::block_scale(args.bq[m], job.g, n0, kt, args.k);
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
    float part[NB][BN / 2] = {};
    sw128_ktile<T, Tile, NB, true, kWgmma, 0>(smem, stage, tid, part);
    // Element i of the D fragment is in row 16 (warp in the warpgroup) + lane / 4 + 8 ((i / 2) % 2).
    const int r = (tid / 128) * 64 + ((tid / 32) % 4) * 16 + (tid % 32) / 4;
    const float sa0 = Smem::a_scales(smem, stage)[r], sa1 = Smem::a_scales(smem, stage)[r + 8];
    DEEPSHOCK_UNROLL
    for (int m = 0; m < NB; ++m) {
      const float sw = Smem::w_scales(smem, stage)[m], s0 = sw * sa0, s1 = sw * sa1;
      DEEPSHOCK_UNROLL
      for (int i = 0; i < BN / 2; ++i) acc[m][i] += part[m][i] * ((i / 2) % 2 == 0 ? s0 : s1);
    }
  }
}

}  // namespace deepshock::moe::detail
#endif  // DEEPSHOCK_HAS_KERNELS
