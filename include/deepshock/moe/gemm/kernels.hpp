// deepshock/moe/gemm/kernels.hpp — the grouped GEMM's kernels (one family): thin bodies that
// find their tile (scheduler.hpp), run a mainloop (sm80_mainloop.hpp, sm90_mainloop.hpp) and
// hand the accumulators to the epilogue policy (epilogue.hpp).
//   grouped_gemm_kernel           one block per (m-tile, n-tile), GemmTile
//   grouped_gemm_streamk_kernel   one wave of blocks sharing the k-tiles of the active tiles
//   grouped_gemm_sw128_kernel     one block per tile, WgmmaTile (16-bit or FP8 inputs)
#pragma once

#include "deepshock/core/config.hpp"
#include "deepshock/moe/gemm/arguments.hpp"
#include "deepshock/moe/gemm/scheduler.hpp"
#include "deepshock/moe/gemm/sm80_mainloop.hpp"
#include "deepshock/moe/gemm/sm90_fp8_mainloop.hpp"
#include "deepshock/moe/gemm/sm90_mainloop.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/wgmma.hpp"

namespace deepshock::moe::kernels {

/// One block per (m-tile, n-tile); see the file comment. Dynamic shared memory:
/// grouped_gemm_smem_bytes<T, Tile, Epi>().
template <class T, class Tile, class Epi, class Codec = quant::None>
DEEPSHOCK_KERNEL void grouped_gemm_kernel(GemmBatch<T, Epi, Codec> batch) {
  constexpr int NB = GemmBatch<T, Epi, Codec>::kOperands;
  using Smem = detail::GemmSmem<T, Tile, NB, Codec>;
  unsigned char* smem = dynamic_smem<unsigned char>();
  int* rows = Smem::rows(smem);
  const int tid = static_cast<int>(threadIdx.x);

  // Programmatic dependent launch: the tile offsets, the gathered rows and the outputs belong to
  // earlier kernels (dispatch, GEMM 1), so wait for them before anything else; then let the next
  // kernel be scheduled into this one's tail.
  pdl::wait();
  pdl::launch_dependents();
  detail::TileJob<T, Epi, Codec> job;
  if (!detail::start_tile<Tile::kBM, Tile::kBN, Tile::kThreads>(batch, rows, tid, job)) return;
  float acc[NB][detail::GemmAccShape<T, Tile, NB>::kFrags][4] = {};
  const int ktiles = (job.args.k + Smem::kBK - 1) / Smem::kBK;
  detail::gemm_mainloop<T, Tile, NB>(smem, rows, job, 0, ktiles, tid, acc);
  detail::store_tile<T, Tile, NB>(job, rows, tid, acc);
}

/// Stream-K schedule of grouped_gemm_kernel's tiles (decode, DecodeSchedule::stream_k): a grid of
/// at most one wave of blocks shares the launch's actual work — problem 0's active tiles times
/// their k-tiles, then problem 1's (tile order: m-tile fastest), counted on the device from
/// dispatch's tile offsets — in equal contiguous ranges, so no block idles in a last partial
/// wave. A tile whose k-tiles span several blocks is a set of partial segments: each block
/// stores its fp32 partial accumulators in `partials` (slot 0: its first segment, slot 1: its
/// last), fences, and takes a ticket; the last to arrive sums the segments in k order (its own
/// from registers, the same bits it stored), applies the epilogue and resets the ticket. The sum
/// order is fixed, so the result does not depend on which block arrives last: bitwise
/// reproducible for a given grid, i.e. on a given device configuration (SM count, occupancy);
/// another grid splits the k-tiles elsewhere and differs in rounding, as does one block per tile.
template <class T, class Tile, class Epi, class Codec = quant::None>
DEEPSHOCK_KERNEL void grouped_gemm_streamk_kernel(GemmBatch<T, Epi, Codec> batch, StreamKScratch sk) {
  constexpr int NB = GemmBatch<T, Epi, Codec>::kOperands;
  using Smem = detail::GemmSmem<T, Tile, NB, Codec>;
  using Acc = detail::GemmAccShape<T, Tile, NB>;
  constexpr int BM = Tile::kBM, BN = Tile::kBN, BK = Smem::kBK, kThreads = Tile::kThreads;
  constexpr int kQuads = NB * Acc::kFrags;  // float4 groups per thread
  __shared__ int last_arrival;
  unsigned char* smem = dynamic_smem<unsigned char>();
  int* rows = Smem::rows(smem);
  const int tid = static_cast<int>(threadIdx.x);
  pdl::wait();  // tile offsets, gathered rows and outputs belong to earlier kernels
  pdl::launch_dependents();

  // The iteration space (k-tiles of active tiles) of both problems.
  const int ktiles0 = (batch.args[0].k + BK - 1) / BK, ktiles1 = batch.count > 1 ? (batch.args[1].k + BK - 1) / BK : 1;
  const int active0 = batch.count > 0 ? detail::active_m_tiles<BM>(batch, 0) : 0;
  const int active1 = batch.count > 1 ? detail::active_m_tiles<BM>(batch, 1) : 0;
  const long long iters0 = static_cast<long long>(active0) * batch.n_tiles[0] * ktiles0;
  const long long total = iters0 + static_cast<long long>(active1) * batch.n_tiles[1] * ktiles1;
  const long long grid = total < static_cast<long long>(gridDim.x) ? total : static_cast<long long>(gridDim.x);
  const long long b = blockIdx.x;
  if (b >= grid) return;
  // Block o's range is [begin_of(o), begin_of(o + 1)), never empty (grid <= total); owner_of(x)
  // is the block whose range holds iteration x.
  auto begin_of = [&](long long o) { return o * total / grid; };
  auto owner_of = [&](long long x) { return ((x + 1) * grid + total - 1) / total - 1; };
  const long long begin = begin_of(b), end = begin_of(b + 1);

  for (long long it = begin; it < end;) {
    const int i = it < iters0 ? 0 : 1;
    const long long base = i == 0 ? 0 : iters0;
    const int ktiles = i == 0 ? ktiles0 : ktiles1, active = i == 0 ? active0 : active1;
    const long long local = it - base;
    const int t = static_cast<int>(local / ktiles), k_first = static_cast<int>(local % ktiles);
    const long long tile_start = base + static_cast<long long>(t) * ktiles, tile_end = tile_start + ktiles;
    const long long seg_end = end < tile_end ? end : tile_end;
    const int k_last = k_first + static_cast<int>(seg_end - it);
    detail::TileJob<T, Epi, Codec> job;
    detail::locate_tile_at<BM, BN>(batch, i, t % active, t / active, job);  // t < active x n_tiles: always a tile
    if (it != begin) {  // the previous segment's copies and reads of the stages and rows are over
      mem::cp_async_wait<0>();
      __syncthreads();
    }
    detail::load_rows<BM, kThreads>(job, rows, tid);
    float acc[NB][Acc::kFrags][4] = {};
    detail::gemm_mainloop<T, Tile, NB>(smem, rows, job, k_first, k_last, tid, acc);
    if (k_first == 0 && k_last == ktiles) {
      detail::store_tile<T, Tile, NB>(job, rows, tid, acc);
    } else {
      auto partial = [&](long long owner, int slot) { return sk.partials + (owner * 2 + slot) * (kQuads * kThreads * 4); };
      float* mine = partial(b, it == begin ? 0 : 1);
      DEEPSHOCK_UNROLL
      for (int q = 0; q < kQuads; ++q) {
        const float* a = acc[q / Acc::kFrags][q % Acc::kFrags];
        const float4 v = make_float4(a[0], a[1], a[2], a[3]);  // 16-byte aligned, for the vector store
        mem::copy16(mine + (q * kThreads + tid) * 4, &v);
      }
      __threadfence();
      __syncthreads();
      const long long first_owner = owner_of(tile_start), last_owner = owner_of(tile_end - 1);
      int* ticket = sk.tickets + (i == 0 ? 0 : batch.blocks(0)) + t;
      if (tid == 0) last_arrival = atomicAdd(ticket, 1) == static_cast<int>(last_owner - first_owner);
      __syncthreads();
      if (last_arrival) {
        __threadfence();
        float sum[NB][Acc::kFrags][4] = {};
        for (long long o = first_owner; o <= last_owner; ++o) {
          // Owner o's segment of this tile is its first (slot 0) unless o started before the tile.
          const float* src = o == b ? nullptr : partial(o, begin_of(o) >= tile_start ? 0 : 1);
          DEEPSHOCK_UNROLL
          for (int q = 0; q < kQuads; ++q) {
            const float* a = acc[q / Acc::kFrags][q % Acc::kFrags];
            float4 v = make_float4(a[0], a[1], a[2], a[3]);
            if (src != nullptr) mem::load16_cg(&v, src + (q * kThreads + tid) * 4);
            float* d = sum[q / Acc::kFrags][q % Acc::kFrags];
            d[0] += v.x;
            d[1] += v.y;
            d[2] += v.z;
            d[3] += v.w;
          }
        }
        if (tid == 0) *ticket = 0;  // ready for the next launch
        detail::store_tile<T, Tile, NB>(job, rows, tid, sum);
      }
    }
    it = seg_end;
  }
}

/// The WgmmaTile kernel for 16-bit layers: the same block mapping and epilogue, with the tiles
/// in 128-byte swizzled shared memory and the math on wgmma (sm_90a, the simulator) or mma.sync
/// (detail::sw128_mainloop). Unquantized weights, or FP8 weights and activations
/// (quant::Fp8BlockA8).
template <class T, class Tile, class Epi, class Codec = quant::None>
DEEPSHOCK_KERNEL void grouped_gemm_sw128_kernel(GemmBatch<T, Epi, Codec> batch) {
  static_assert(sizeof(T) == 2, "grouped_gemm_sw128_kernel: 16-bit layers only.");
  static_assert(Codec::kIdentity || quant::act_fp8_v<Codec>,
                "grouped_gemm_sw128_kernel: unquantized or FP8 (Fp8BlockA8) operands only (other codecs run the GemmTile kernels).");
  constexpr int NB = GemmBatch<T, Epi, Codec>::kOperands;
  using Smem = detail::SwizzledSmemOf<Tile, NB, Codec>;
  constexpr int BM = Tile::kBM, BN = Tile::kBN, kThreads = Tile::kThreads;
  unsigned char* smem = arch::align_smem_1024(dynamic_smem<unsigned char>());
  int* rows = Smem::rows(smem);
  const int tid = static_cast<int>(threadIdx.x);

  // Programmatic dependent launch: the tile offsets, the gathered rows and the outputs belong to
  // earlier kernels (dispatch, GEMM 1), so wait for them before anything else; then let the next
  // kernel be scheduled into this one's tail.
  pdl::wait();
  pdl::launch_dependents();
  detail::TileJob<T, Epi, Codec> job;
  if (!detail::start_tile<BM, BN, kThreads>(batch, rows, tid, job)) return;
  float acc[NB][Tile::kBN / 2] = {};
  if constexpr (quant::act_fp8_v<Codec>) detail::sw128_fp8_mainloop<T, Tile, NB>(smem, rows, job, tid, acc);
  else detail::sw128_mainloop<T, Tile, NB>(smem, rows, job, tid, acc);

  // The GemmTile this derives from has kWarpsM = BM / 16 warps of 16 rows and one warp column:
  // warp w's rows 16w .. 16w + 15 are warpgroup w / 4's rows 16 (w % 4) .., as in the D layout.
  detail::store_mma_tile<Tile, NB>(job, rows, tid, [&](int m, int f) -> const float* { return &acc[m][f * 4]; });
}

}  // namespace deepshock::moe::kernels
#endif  // DEEPSHOCK_HAS_KERNELS
