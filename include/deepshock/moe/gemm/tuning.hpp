// deepshock/moe/gemm/tuning.hpp — the grouped GEMM's tuning values: tile shapes (GemmTile for
// the mma.sync kernels, WgmmaTile for the Hopper kernel), the decode schedule, and the tile pairs
// the MoE layer takes as its `Tuning` parameter. Plain values: printable and testable on the host.
#pragma once

#include <cstddef>

#include "deepshock/core/config.hpp"

namespace deepshock::moe {

/// A grouped-GEMM tile shape (tuning values; see the file comment).
template <int BM, int BN, int KBytes, int WarpsM, int WarpsN, int Stages>
struct GemmTile {
  static constexpr int kBM = BM;
  static constexpr int kBN = BN;
  static constexpr int kKBytes = KBytes;
  static constexpr int kWarpsM = WarpsM;
  static constexpr int kWarpsN = WarpsN;
  static constexpr int kStages = Stages;
  static constexpr int kThreads = 32 * WarpsM * WarpsN;
  static constexpr int kWM = BM / WarpsM;  ///< warp tile rows
  static constexpr int kWN = BN / WarpsN;  ///< warp tile columns
  static_assert(BM % (16 * WarpsM) == 0, "GemmTile: BM must be a multiple of 16 x WarpsM.");
  static_assert(BN % (8 * WarpsN) == 0, "GemmTile: BN must be a multiple of 8 x WarpsN.");
  static_assert(KBytes % 64 == 0, "GemmTile: the K stage must be a multiple of 64 bytes (32 half-precision values).");
  static_assert((BM * BN) % kThreads == 0, "GemmTile: BM x BN must divide evenly among the threads.");
  static_assert(Stages >= 2 && Stages <= 8, "GemmTile: the pipeline needs 2 to 8 stages.");
};

/// A Hopper tile: BM / 64 warpgroups (BM = 64 or 128), each computing 64 rows x BN columns (BN =
/// 64 or 128 per weight matrix) with wgmma from 128-byte swizzled shared memory
/// (platform/wgmma.hpp), K stage 64 values, a `Stages`-deep cp.async ring whose loads run
/// Stages - 2 k-tiles ahead while one wgmma group stays in flight. Where wgmma is not available
/// (a build without sm_90a, or UseWgmma = false) the same kernel multiplies with mma.sync from the
/// same layout; fp32 inputs take the generic kernel with the GemmTile shape this derives from.
template <int BM, int BN, int Stages, bool UseWgmma = true>
struct WgmmaTile : GemmTile<BM, BN, 128, BM / 16, 1, Stages> {
  static constexpr bool kSwizzled = true;
  static constexpr bool kUseWgmma = UseWgmma;
  static_assert(BM == 64 || BM == 128, "WgmmaTile: BM must be 64 or 128 (one or two warpgroups of 64 rows).");
  static_assert(BN == 64 || BN == 128, "WgmmaTile: BN must be 64 or 128 (the wgmma widths wrapped).");
  static_assert(Stages >= 3, "WgmmaTile: the loads run Stages - 2 k-tiles ahead of the MMAs, so at least 3 stages.");
};

namespace detail {
template <class Tile>
concept SwizzledTile = Tile::kSwizzled;
}  // namespace detail

/// How the decode tiles are spread over blocks: one block per tile, or stream-K (see the file
/// comment).
enum class DecodeSchedule { tile_per_block, stream_k };

/// A pair of tile shapes for the MoE layer (its `Tuning` parameter). Decode: few rows per
/// expert, so short and wide tiles that read each weight row once; prefill: tiles that reuse
/// both operands. The decode tiles run while the assignments average at most one decode m-tile
/// (Decode::kBM rows) per expert, with the given schedule.
template <class DecodeTile, class PrefillTile, DecodeSchedule Schedule = DecodeSchedule::tile_per_block>
struct GemmTuningOf {
  using Decode = DecodeTile;
  using Prefill = PrefillTile;
  static constexpr DecodeSchedule kDecodeSchedule = Schedule;
  static bool use_decode(long long assignments, int groups) { return assignments <= static_cast<long long>(Decode::kBM) * groups; }
};

/// The default tiles. Tuning values, still to be set from bench_moe's tiles/ rows on a GPU
/// (which time these against wider prefill tiles and narrower or deeper decode tiles).
using GemmTuning = GemmTuningOf<GemmTile<16, 64, 128, 1, 4, 4>, GemmTile<64, 64, 128, 2, 2, 3>>;

/// Hopper tiles: the default decode tile, and wgmma prefill tiles of 128 rows x 128 columns per
/// weight matrix (gated: 128 x 256 of MMA work per block) with 4 stages (gated: 192 KiB of
/// shared memory, so sm_90 only). Needs a build for sm_90a to use wgmma (see WgmmaTile).
using HopperGemmTuning = GemmTuningOf<GemmTile<16, 64, 128, 1, 4, 4>, WgmmaTile<128, 128, 4>>;

/// Hopper tiles for FP8 experts with FP8 activations (quant::Fp8BlockA8): the default decode
/// tile, and wgmma prefill tiles of 128 rows x 64 columns per weight matrix with 4 stages (gated:
/// 132 KiB of shared memory, over sm_89's 99 KiB per block: sm_90 only). 64 columns, not 128: each k-tile's partial sums sit
/// beside the accumulators until they are promoted, and at 128 columns the gated GEMM's 256
/// floats per thread would not fit in registers.
using HopperFp8GemmTuning = GemmTuningOf<GemmTile<16, 64, 128, 1, 4, 4>, WgmmaTile<128, 64, 4>>;

/// The default tiles with the stream-K decode schedule (opt-in until a GPU run has timed it
/// against the default: bench_moe's tiles/<model>/stream_k rows).
using StreamKGemmTuning = GemmTuningOf<GemmTile<16, 64, 128, 1, 4, 4>, GemmTile<64, 64, 128, 2, 2, 3>, DecodeSchedule::stream_k>;

namespace detail {
/// Whether <T, Tile> runs grouped_gemm_sw128_kernel (16-bit inputs on a WgmmaTile).
template <class T, class Tile>
inline constexpr bool uses_sw128_kernel_v = SwizzledTile<Tile> && sizeof(T) == 2;
}  // namespace detail

}  // namespace deepshock::moe
