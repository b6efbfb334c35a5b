// deepshock/moe/gemm/scheduler.hpp — which tile a block computes: the 1-D grid covers an upper
// bound of the m-tiles (max_m_tiles) times the n-tiles of one or two problems; a block finds its
// group by binary search in dispatch's device-side tile offsets (no host round trip), and blocks
// past the last tile return at once. Then it gathers its tile's A-row indices.
#pragma once

#include "deepshock/core/config.hpp"
#include "deepshock/moe/gemm/arguments.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"

namespace deepshock::moe::detail {

/// What one block of a grouped-GEMM launch computes: its problem's operands and epilogue, the
/// group g, the rows [m0, row_end) of its m-tile (row_end: the group's end) and the n-tile n0.
template <class T, class Epi, class Codec = quant::None>
struct TileJob {
  GroupedGemmArgs<T, Codec> args;
  Epi epi;
  int g = 0, m0 = 0, row_end = 0, n0 = 0;
  const typename GroupedGemmArgs<T, Codec>::W* b[2] = {nullptr, nullptr};  ///< the group's weights (b[1]: gated only)
};

/// Active m-tiles of problem `i` of `batch` (device): the routed problem's from dispatch's tile
/// offsets, the ungrouped problem's from its row count (never more than the planned slots).
template <int BM, class T, class Epi, class Codec>
DEEPSHOCK_DEVICE int active_m_tiles(const GemmBatch<T, Epi, Codec>& batch, int i) {
  // Selects rather than indexes by i: a run-time index into the kernel parameter would copy the
  // batch to local memory.
  const GroupedGemmArgs<T, Codec>& args = i == 1 ? batch.args[1] : batch.args[0];
  const int planned = i == 1 ? batch.m_tiles[1] : batch.m_tiles[0];
  const int active = args.group_offsets != nullptr ? args.tile_offsets[args.groups] : (args.rows + BM - 1) / BM;
  return active < planned ? active : planned;
}

/// Fills `job` for m-tile `tile` (its problem's m-tile index, in dispatch's tile order) and
/// n-tile `n_tile` of problem `i` (false: a tile slot past the problem's last tile).
template <int BM, int BN, class T, class Epi, class Codec>
DEEPSHOCK_DEVICE bool locate_tile_at(const GemmBatch<T, Epi, Codec>& batch, int i, int tile, int n_tile, TileJob<T, Epi, Codec>& job) {
  job.args = i == 1 ? batch.args[1] : batch.args[0];  // selects, see active_m_tiles
  job.epi = i == 1 ? batch.epi[1] : batch.epi[0];
  const GroupedGemmArgs<T, Codec>& args = job.args;
  job.n0 = n_tile * BN;
  int row_begin = 0, local_tile = tile;
  job.g = 0;
  job.row_end = args.rows;
  if (args.group_offsets != nullptr) {
    if (tile >= args.tile_offsets[args.groups]) return false;
    int lo = 0, hi = args.groups - 1;  // last g with tile_offsets[g] <= tile
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (args.tile_offsets[mid] <= tile) lo = mid;
      else hi = mid - 1;
    }
    job.g = lo;
    row_begin = args.group_offsets[lo];
    job.row_end = args.group_offsets[lo + 1];
    local_tile = tile - args.tile_offsets[lo];
  } else if (static_cast<long long>(tile) * BM >= args.rows) {
    return false;
  }
  job.m0 = row_begin + local_tile * BM;
  const long long b_offset = static_cast<long long>(job.g) * args.b_stride / quant::pack_v<Codec>;  // b_stride counts values
  job.b[0] = args.b0 + b_offset;
  if constexpr (GemmBatch<T, Epi, Codec>::kOperands == 2) job.b[1] = args.b1 + b_offset;
  return true;
}

/// Locates block `bid`'s tile in the one-block-per-tile grid (m-tile slot fastest; false: a
/// block past the last tile, which returns at once).
template <int BM, int BN, class T, class Epi, class Codec>
DEEPSHOCK_DEVICE bool locate_tile(const GemmBatch<T, Epi, Codec>& batch, long long bid, TileJob<T, Epi, Codec>& job) {
  const long long first_second = batch.blocks(0);
  const int i = bid >= first_second ? 1 : 0;
  const long long local = i == 1 ? bid - first_second : bid;
  const int m_slots = i == 1 ? batch.m_tiles[1] : batch.m_tiles[0];
  return locate_tile_at<BM, BN>(batch, i, static_cast<int>(local % m_slots), static_cast<int>(local / m_slots), job);
}

/// Fills the tile's gathered A-row indices (-1 past the group's end) and publishes them.
template <int BM, int kThreads, class T, class Epi, class Codec>
DEEPSHOCK_DEVICE void load_rows(const TileJob<T, Epi, Codec>& job, int* rows, int tid) {
  for (int r = tid; r < BM; r += kThreads) {
    const int p = job.m0 + r;
    rows[r] = p < job.row_end ? (job.args.a_rows != nullptr ? job.args.a_rows[p] : p) : -1;
  }
  __syncthreads();
}

/// Locates the block's tile (false: nothing to do), then loads its row indices.
template <int BM, int BN, int kThreads, class T, class Epi, class Codec>
DEEPSHOCK_DEVICE bool start_tile(const GemmBatch<T, Epi, Codec>& batch, int* rows, int tid, TileJob<T, Epi, Codec>& job) {
  if (!locate_tile<BM, BN>(batch, static_cast<long long>(blockIdx.x), job)) return false;
  load_rows<BM, kThreads>(job, rows, tid);
  return true;
}

}  // namespace deepshock::moe::detail
#endif  // DEEPSHOCK_HAS_KERNELS
