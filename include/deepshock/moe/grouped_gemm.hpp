// deepshock/moe/grouped_gemm.hpp — grouped GEMMs of the MoE layer: for every group (expert) g,
//   C_g[p, n] = sum_k A[row(p), k] * B_g[n, k]        p in [offsets[g], offsets[g + 1])
// with A's rows gathered through an index list inside the tile loads (no permuted copy of the
// activations), B_g the group's weights in nn.Linear layout [N, K] (K contiguous), fp32
// accumulation, and an epilogue policy that consumes the accumulators:
//   * ActEpilogue<Act>: gated GEMM 1 — two weight matrices (W1, W3) share the A tile and the
//     epilogue writes T(act(gate, up)) to the intermediate [rows, N] (non-gated: act(gate));
//   * DownEpilogue: GEMM 2 — writes scale[dest] * acc as fp32 to out[dest(p), n] (ordered
//     combine), or atomically adds it (AtomicCombine).
//
// Mapping without a host round trip: the 1-D grid covers an upper bound of the m-tiles
// (ceil(rows / BM) + groups) times the n-tiles, of one or two problems (GemmBatch); the
// device-side m-tile offsets of the groups come from dispatch (DispatchOutputs::tile_offsets
// with tile_rows = BM, moe/dispatch.hpp) and each block finds its group by binary search; blocks past the last tile return at once. Empty groups cost
// nothing. The grid depends only on the planned row count, so the launches can be captured in a
// CUDA graph.
//
// Math: bf16 / fp16 through arch::mma_m16n8k16 (sm_80+, fp32 accumulators, a warp tile of
// MI x NI instructions); fp32 inputs use plain FMAs (exact testing, not a fast path).
// Tiles: GemmTile<BM, BN, KBytes, WarpsM, WarpsN, Stages>, the K step is KBytes / sizeof(T)
// elements (128 bytes: 64 bf16 or 32 fp32 per row and stage). Shared-memory rows are padded by
// 16 bytes so that the fragment loads (ldmatrix: 8 rows of 16 bytes at a stride of 36 words per
// phase) hit 32 different banks.
// Requirements (checked by the layer): K a multiple of 16 / sizeof(T), 16-byte aligned A, B and
// row strides (vector loads).
// Loads: a `Stages`-deep cp.async pipeline (sm_80+) in dynamic shared memory — while one k-tile
// is multiplied, Stages - 1 more are in flight, with one barrier per k-tile. Decode is limited by
// the bytes in flight: at T = 1 a DeepSeek-V2-Lite layer has only ~130-190 blocks per GEMM (about
// one per SM), so the decode tile keeps 3 weight k-tiles (3 x 18 KiB gated) in flight per block,
// where a register-staged loop kept one.
// Hopper: WgmmaTile<BM, BN, Stages> selects grouped_gemm_sw128_kernel for 16-bit inputs — the
// same block mapping, gather and epilogue, with the tiles in 128-byte swizzled shared memory and
// the math on wgmma (platform/wgmma.hpp; sm_90a builds) with one group in flight, or mma.sync
// from the same layout where wgmma is not compiled. HopperGemmTuning uses it for prefill. The
// A rows are gathered per token, so TMA (whole boxes) does not fit the A loads.
// Decode schedule: one block per tile, or stream-K (DecodeSchedule::stream_k, StreamKGemmTuning):
// one wave of blocks shares the actual k-tiles of all active tiles equally, with a fixed-order
// reduction of split tiles (grouped_gemm_streamk_kernel), so that no block idles in a last
// partial wave (e.g. DeepSeek-V3 at T = 1: 288 tiles of 1.8 MB each on 264 block slots).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/moe/activation.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/mma.hpp"
#include "deepshock/platform/wgmma.hpp"
#endif

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

/// The default tiles with the stream-K decode schedule (opt-in until a GPU run has timed it
/// against the default: bench_moe's tiles/<model>/stream_k rows).
using StreamKGemmTuning = GemmTuningOf<GemmTile<16, 64, 128, 1, 4, 4>, GemmTile<64, 64, 128, 2, 2, 3>, DecodeSchedule::stream_k>;

/// GEMM 1 epilogue: h[p, n] = T(Act::apply(gate, up)).
template <class Act, class T>
struct ActEpilogue {
  static constexpr bool kGated = Act::kGated;
  T* out = nullptr;
  long long ld = 0;
  DEEPSHOCK_HOST_DEVICE static T convert(float v) {
    if constexpr (std::is_same_v<T, float>) return v;
    else return T(v);
  }
  DEEPSHOCK_HOST_DEVICE void store(int p, int n, float gate, float up) const {
    out[static_cast<long long>(p) * ld + n] = convert(Act::apply(gate, up));
  }
  /// Columns n and n + 1 (n even, ld even): one 4-byte store for the 16-bit types.
  DEEPSHOCK_HOST_DEVICE void store2(int p, int n, float g0, float u0, float g1, float u1) const {
    if constexpr (std::is_same_v<T, float>) {
      store(p, n, g0, u0);
      store(p, n + 1, g1, u1);
    } else {
      const std::uint32_t v = static_cast<std::uint32_t>(convert(Act::apply(g0, u0)).bits) |
                              (static_cast<std::uint32_t>(convert(Act::apply(g1, u1)).bits) << 16);
      T* dst = out + static_cast<long long>(p) * ld + n;
#if DEEPSHOCK_SIM || !DEEPSHOCK_HAS_KERNELS
      std::memcpy(dst, &v, sizeof v);
#else
      *reinterpret_cast<std::uint32_t*>(dst) = v;
#endif
    }
  }
};

/// GEMM 2 epilogue: out[d, n] = s * acc (or += atomically) with d = dest_row[p] (p if null)
/// and s = scale[scale_index[p]] (scale_index null: d; scale null: 1).
template <bool Atomic>
struct DownEpilogue {
  static constexpr bool kGated = false;
  float* out = nullptr;
  long long ld = 0;
  const int* dest_row = nullptr;
  const int* scale_index = nullptr;
  const float* scale = nullptr;
#if DEEPSHOCK_HAS_KERNELS
  /// Destination row of sorted row p and its scale.
  DEEPSHOCK_DEVICE float* target(int p, int n, float& s) const {
    const int d = dest_row != nullptr ? dest_row[p] : p;
    s = scale == nullptr ? 1.0f : scale[scale_index != nullptr ? scale_index[p] : d];
    return out + static_cast<long long>(d) * ld + n;
  }
  DEEPSHOCK_DEVICE void store(int p, int n, float acc, float) const {
    float s;
    float* dst = target(p, n, s);
    if constexpr (Atomic) atomicAdd(dst, s * acc);
    else *dst = s * acc;
  }
  /// Columns n and n + 1 (n even, ld even): one 8-byte store (ordered) or two atomics.
  DEEPSHOCK_DEVICE void store2(int p, int n, float a0, float, float a1, float) const {
    float s;
    float* dst = target(p, n, s);
    if constexpr (Atomic) {
      atomicAdd(dst, s * a0);
      atomicAdd(dst + 1, s * a1);
    } else {
      *reinterpret_cast<float2*>(dst) = make_float2(s * a0, s * a1);
    }
  }
#endif
};

/// The operands of one grouped GEMM (device pointers).
template <class T>
struct GroupedGemmArgs {
  const T* a = nullptr;             ///< activations; row r at a + r * lda
  long long lda = 0;
  const int* a_rows = nullptr;      ///< [rows] A row of sorted row p; null: p itself
  const T* b0 = nullptr;            ///< group g's [N, K] weights at b0 + g * b_stride
  const T* b1 = nullptr;            ///< second weights (gated up projection); gated epilogues only
  long long b_stride = 0;
  int n = 0;                        ///< N
  int k = 0;                        ///< K (a multiple of 16 / sizeof(T))
  const int* group_offsets = nullptr;  ///< [groups + 1] row ranges; null: one group [0, rows)
  const int* tile_offsets = nullptr;   ///< [groups + 1] m-tile offsets (dispatch's tile_offsets); null with group_offsets
  int groups = 1;
  int rows = 0;                     ///< rows of the single group when group_offsets is null
};

/// One launch of grouped_gemm_kernel: one or two independent grouped GEMMs with the same tile
/// and epilogue type. The MoE layer runs its routed experts and its shared expert together, so
/// that at decode every SM streams weights at once instead of two half-empty launches. Blocks
/// [0, blocks(0)) compute problem 0 and the next blocks(1) problem 1; inside a problem the
/// m-tile varies fastest (neighbouring blocks share a weight tile).
template <class T, class Epi>
struct GemmBatch {
  GroupedGemmArgs<T> args[2];
  Epi epi[2];
  int m_tiles[2] = {0, 0};  ///< m-tile slots of each problem (max_m_tiles: an upper bound)
  int n_tiles[2] = {0, 0};
  int count = 0;
  DEEPSHOCK_HOST_DEVICE long long blocks(int i) const { return i < count ? static_cast<long long>(m_tiles[i]) * n_tiles[i] : 0; }
  DEEPSHOCK_HOST_DEVICE long long total_blocks() const { return blocks(0) + blocks(1); }
  /// Appends a problem of `m_tile_slots` m-tiles and `bn`-wide n-tiles; empty ones are skipped.
  void add(const GroupedGemmArgs<T>& a, const Epi& e, long long m_tile_slots, int bn) {
    if (m_tile_slots <= 0 || a.n <= 0 || count == 2) return;
    args[count] = a;
    epi[count] = e;
    m_tiles[count] = static_cast<int>(m_tile_slots);
    n_tiles[count] = (a.n + bn - 1) / bn;
    ++count;
  }
};

/// Scratch of a stream-K launch (device pointers; DecodeSchedule::stream_k): fp32 partial tiles and
/// per-tile tickets. Sizes: streamk_partial_bytes, and one ticket per GemmBatch::total_blocks();
/// the tickets must be zero before the first launch and are left zero by every launch.
struct StreamKScratch {
  float* partials = nullptr;  ///< [grid][2][threads x accumulators] a block's first and last partial segments
  int* tickets = nullptr;     ///< [GemmBatch::total_blocks()] arrivals per tile
};

#if DEEPSHOCK_HAS_KERNELS
namespace detail {

/// Storage type of T in shared memory (raw bits for the 16-bit types).
template <class T>
using smem_t = std::conditional_t<sizeof(T) == 2, std::uint16_t, float>;

/// Dynamic shared memory of one block: kStages stages of {A [BM][LD], B [NB][BN][LD]}, then
/// the BM gathered row indices. Rows are padded by 16 bytes (see the file comment).
template <class T, class Tile, int NB>
struct GemmSmem {
  using S = smem_t<T>;
  static constexpr int kBK = Tile::kKBytes / static_cast<int>(sizeof(T));
  static constexpr int kLD = kBK + 16 / static_cast<int>(sizeof(T));
  static constexpr int kStageElems = (Tile::kBM + NB * Tile::kBN) * kLD;
  static constexpr std::size_t kRowsOffset = static_cast<std::size_t>(Tile::kStages) * kStageElems * sizeof(S);
  static constexpr std::size_t kBytes = kRowsOffset + Tile::kBM * sizeof(int);
  static_assert(kStageElems * sizeof(S) % 16 == 0, "GemmSmem: stages must stay 16-byte aligned.");
  DEEPSHOCK_HOST_DEVICE static S* a(unsigned char* base, int stage) { return reinterpret_cast<S*>(base) + stage * kStageElems; }
  DEEPSHOCK_HOST_DEVICE static S* b(unsigned char* base, int stage, int m) {
    return a(base, stage) + Tile::kBM * kLD + m * Tile::kBN * kLD;
  }
  DEEPSHOCK_HOST_DEVICE static int* rows(unsigned char* base) { return reinterpret_cast<int*>(base + kRowsOffset); }
};

}  // namespace detail

namespace detail {

/// What one block of a grouped-GEMM launch computes: its problem's operands and epilogue, the
/// group g, the rows [m0, row_end) of its m-tile (row_end: the group's end) and the n-tile n0.
template <class T, class Epi>
struct TileJob {
  GroupedGemmArgs<T> args;
  Epi epi;
  int g = 0, m0 = 0, row_end = 0, n0 = 0;
  const T* b[2] = {nullptr, nullptr};  ///< the group's weights (b[1]: gated only)
};

/// Active m-tiles of problem `i` of `batch` (device): the routed problem's from dispatch's tile
/// offsets, the ungrouped problem's from its row count (never more than the planned slots).
template <int BM, class T, class Epi>
DEEPSHOCK_DEVICE int active_m_tiles(const GemmBatch<T, Epi>& batch, int i) {
  // Selects rather than indexes by i: a run-time index into the kernel parameter would copy the
  // batch to local memory.
  const GroupedGemmArgs<T>& args = i == 1 ? batch.args[1] : batch.args[0];
  const int planned = i == 1 ? batch.m_tiles[1] : batch.m_tiles[0];
  const int active = args.group_offsets != nullptr ? args.tile_offsets[args.groups] : (args.rows + BM - 1) / BM;
  return active < planned ? active : planned;
}

/// Fills `job` for m-tile `tile` (its problem's m-tile index, in dispatch's tile order) and
/// n-tile `n_tile` of problem `i` (false: a tile slot past the problem's last tile).
template <int BM, int BN, class T, class Epi>
DEEPSHOCK_DEVICE bool locate_tile_at(const GemmBatch<T, Epi>& batch, int i, int tile, int n_tile, TileJob<T, Epi>& job) {
  job.args = i == 1 ? batch.args[1] : batch.args[0];  // selects, see active_m_tiles
  job.epi = i == 1 ? batch.epi[1] : batch.epi[0];
  const GroupedGemmArgs<T>& args = job.args;
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
  job.b[0] = args.b0 + static_cast<long long>(job.g) * args.b_stride;
  if constexpr (Epi::kGated) job.b[1] = args.b1 + static_cast<long long>(job.g) * args.b_stride;
  return true;
}

/// Locates block `bid`'s tile in the one-block-per-tile grid (m-tile slot fastest; false: a
/// block past the last tile, which returns at once).
template <int BM, int BN, class T, class Epi>
DEEPSHOCK_DEVICE bool locate_tile(const GemmBatch<T, Epi>& batch, long long bid, TileJob<T, Epi>& job) {
  const long long first_second = batch.blocks(0);
  const int i = bid >= first_second ? 1 : 0;
  const long long local = i == 1 ? bid - first_second : bid;
  const int m_slots = i == 1 ? batch.m_tiles[1] : batch.m_tiles[0];
  return locate_tile_at<BM, BN>(batch, i, static_cast<int>(local % m_slots), static_cast<int>(local / m_slots), job);
}

/// Stores the tile's accumulators in the mma.sync warp-tile layout: frag(m, mi * NI + ni) are
/// the 4 C-fragment floats of matrix m, m16 tile mi, n8 tile ni of this thread's warp. c0, c1 (and
/// c2, c3) are columns n, n + 1 of one row with n even; N is a multiple of 8, so both are in
/// range or neither, and they go out as one paired store.
template <class Tile, int NB, class T, class Epi, class Frag>
DEEPSHOCK_DEVICE void store_mma_tile(const TileJob<T, Epi>& job, int tid, Frag&& frag) {
  constexpr int MI = Tile::kWM / 16, NI = Tile::kWN / 8;
  const int warp_id = tid / 32, lane = tid % 32;
  const int warp_m = warp_id % Tile::kWarpsM, warp_n = warp_id / Tile::kWarpsM;
  const int fg = lane / 4, ft = lane % 4;
  const int rows_here = job.row_end - job.m0;
  DEEPSHOCK_UNROLL
  for (int mi = 0; mi < MI; ++mi)
    DEEPSHOCK_UNROLL
    for (int ni = 0; ni < NI; ++ni)
      DEEPSHOCK_UNROLL
      for (int half = 0; half < 2; ++half) {
        const int r = warp_m * Tile::kWM + mi * 16 + fg + 8 * half;
        const int n = job.n0 + warp_n * Tile::kWN + ni * 8 + 2 * ft;
        if (r < rows_here && n < job.args.n) {
          const float* c0 = frag(0, mi * NI + ni);
          const float* c1 = frag(NB - 1, mi * NI + ni);
          job.epi.store2(job.m0 + r, n, c0[2 * half], NB == 2 ? c1[2 * half] : 0.0f, c0[2 * half + 1], NB == 2 ? c1[2 * half + 1] : 0.0f);
        }
      }
}

/// Fills the tile's gathered A-row indices (-1 past the group's end) and publishes them.
template <int BM, int kThreads, class T, class Epi>
DEEPSHOCK_DEVICE void load_rows(const TileJob<T, Epi>& job, int* rows, int tid) {
  for (int r = tid; r < BM; r += kThreads) {
    const int p = job.m0 + r;
    rows[r] = p < job.row_end ? (job.args.a_rows != nullptr ? job.args.a_rows[p] : p) : -1;
  }
  __syncthreads();
}

/// Locates the block's tile (false: nothing to do), then loads its row indices.
template <int BM, int BN, int kThreads, class T, class Epi>
DEEPSHOCK_DEVICE bool start_tile(const GemmBatch<T, Epi>& batch, int* rows, int tid, TileJob<T, Epi>& job) {
  if (!locate_tile<BM, BN>(batch, static_cast<long long>(blockIdx.x), job)) return false;
  load_rows<BM, kThreads>(job, rows, tid);
  return true;
}

/// Dynamic shared memory of the swizzled (wgmma) kernel, from a 1024-byte aligned base:
/// kStages stages of {A [BM][128 B], B [NB][BN][128 B]} (each tile 1024-byte aligned), then the
/// BM gathered row indices; 1024 bytes of slack for the alignment.
template <class Tile, int NB>
struct SwizzledSmem {
  static constexpr int kABytes = Tile::kBM * 128, kBBytes = Tile::kBN * 128;
  static constexpr int kStageBytes = kABytes + NB * kBBytes;
  static constexpr std::size_t kRowsOffset = static_cast<std::size_t>(Tile::kStages) * kStageBytes;
  static constexpr std::size_t kBytes = 1024 + kRowsOffset + Tile::kBM * sizeof(int);
  static_assert(kABytes % 1024 == 0 && kBBytes % 1024 == 0, "SwizzledSmem: tiles must stay 1024-byte aligned.");
  DEEPSHOCK_HOST_DEVICE static unsigned char* a(unsigned char* base, int stage) { return base + stage * kStageBytes; }
  DEEPSHOCK_HOST_DEVICE static unsigned char* b(unsigned char* base, int stage, int m) { return a(base, stage) + kABytes + m * kBBytes; }
  DEEPSHOCK_HOST_DEVICE static int* rows(unsigned char* base) { return reinterpret_cast<int*>(base + kRowsOffset); }
};

/// The accumulator shape of grouped_gemm_kernel's block: per thread NB x kFrags groups of 4
/// floats (the mma warp tile's C fragments, or BM x BN / threads outputs for fp32).
template <class T, class Tile, int NB>
struct GemmAccShape {
  static constexpr bool kMma = sizeof(T) == 2;
  static constexpr int kMI = Tile::kWM / 16, kNI = Tile::kWN / 8;
  static constexpr int kOut = Tile::kBM * Tile::kBN / Tile::kThreads;
  static constexpr int kFrags = kMma ? kMI * kNI : kOut / 4;
  static constexpr int kFloats = NB * kFrags * 4;  ///< per thread
  static_assert(kMma || kOut % 4 == 0, "grouped_gemm_kernel: fp32 outputs per thread must be a multiple of 4.");
};

/// The k-loop of grouped_gemm_kernel over k-tiles [kt_begin, kt_end) of the tile `job` (row
/// indices in `rows`), adding into `acc`. Multi-stage cp.async pipeline: k-tile kt lives in stage
/// kt % kStages; kStages - 1 k-tiles are in flight while one is multiplied. Each thread owns
/// fixed 16-byte chunks of the tiles and commits one group per k-tile (empty past the end, so
/// that the group count stays uniform). Ends with copies still in flight only as empty groups;
/// a caller that reuses the stages waits for them and synchronises first.
template <class T, class Tile, int NB, class Epi>
DEEPSHOCK_DEVICE void gemm_mainloop(unsigned char* smem, const int* rows, const TileJob<T, Epi>& job, int kt_begin, int kt_end, int tid,
                                    float (&acc)[NB][GemmAccShape<T, Tile, NB>::kFrags][4]) {
  using Smem = GemmSmem<T, Tile, NB>;
  using Acc = GemmAccShape<T, Tile, NB>;
  constexpr int BM = Tile::kBM, BN = Tile::kBN, BK = Smem::kBK, LD = Smem::kLD, VEC = 16 / static_cast<int>(sizeof(T));
  constexpr int kThreads = Tile::kThreads, kStages = Tile::kStages;
  constexpr int kChunksPerRow = BK / VEC;
  constexpr int MI = Acc::kMI, NI = Acc::kNI, kOut = Acc::kOut;
  const GroupedGemmArgs<T>& args = job.args;
  const int n0 = job.n0;
  const T* const* b = job.b;
  const int warp_id = tid / 32, lane = tid % 32;
  const int warp_m = warp_id % Tile::kWarpsM, warp_n = warp_id / Tile::kWarpsM;

  constexpr int kAChunks = BM * kChunksPerRow / kThreads, kBChunks = BN * kChunksPerRow / kThreads;
  static_assert(BM * kChunksPerRow % kThreads == 0 && BN * kChunksPerRow % kThreads == 0,
                "grouped_gemm_kernel: the tile loads must divide evenly among the threads.");
  auto issue = [&](int kt) {
    if (kt < kt_end) {
      const int k0 = kt * BK, stage = kt % kStages;
      auto* sa = Smem::a(smem, stage);
      DEEPSHOCK_UNROLL
      for (int i = 0; i < kAChunks; ++i) {
        const int c = tid + i * kThreads, r = c / kChunksPerRow, kc = (c % kChunksPerRow) * VEC;
        const int row = rows[r];
        const bool ok = row >= 0 && k0 + kc < args.k;
        mem::cp_async16(sa + r * LD + kc, ok ? args.a + static_cast<long long>(row) * args.lda + k0 + kc : args.a, ok);
      }
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) {
        auto* sb = Smem::b(smem, stage, m);
        DEEPSHOCK_UNROLL
        for (int i = 0; i < kBChunks; ++i) {
          const int c = tid + i * kThreads, r = c / kChunksPerRow, kc = (c % kChunksPerRow) * VEC;
          const bool ok = n0 + r < args.n && k0 + kc < args.k;
          mem::cp_async16(sb + r * LD + kc, ok ? b[m] + static_cast<long long>(n0 + r) * args.k + k0 + kc : b[m], ok);
        }
      }
    }
    mem::cp_async_commit();
  };

  DEEPSHOCK_UNROLL
  for (int s = 0; s < kStages - 1; ++s) issue(kt_begin + s);
  for (int kt = kt_begin; kt < kt_end; ++kt) {
    // Groups committed so far: kStages - 1 + (kt - kt_begin); allowing kStages - 2 pending
    // completes k-tile kt. The barrier publishes every thread's part of it and ends the reads of
    // k-tile kt - 1, whose stage the next issue refills.
    mem::cp_async_wait<kStages - 2>();
    __syncthreads();
    issue(kt + kStages - 1);
    const int stage = kt % kStages;
    const auto* sa = Smem::a(smem, stage);
    if constexpr (Acc::kMma) {
      DEEPSHOCK_UNROLL
      for (int kk = 0; kk < BK; kk += 16) {
        // Fragments by ldmatrix (platform/mma.hpp). A: lane l names row l % 16 of the m16 tile at
        // column kk + 8 (l / 16), giving a0..a3. B (n rows, K contiguous): x4 loads two n8 tiles,
        // lane l naming n row l % 8 + 8 (l / 16) at column kk + 8 ((l / 8) % 2); an odd last tile
        // takes x2 (lanes 0-15).
        std::uint32_t af[MI][4];
        DEEPSHOCK_UNROLL
        for (int mi = 0; mi < MI; ++mi)
          arch::ldmatrix<4>(af[mi], sa + (warp_m * Tile::kWM + mi * 16 + lane % 16) * LD + kk + 8 * (lane / 16));
        DEEPSHOCK_UNROLL
        for (int m = 0; m < NB; ++m) {
          const auto* sb = Smem::b(smem, stage, m) + (warp_n * Tile::kWN + lane % 8) * LD + kk + 8 * ((lane / 8) % 2);
          DEEPSHOCK_UNROLL
          for (int ni = 0; ni < NI; ni += 2) {
            std::uint32_t bq[4];
            if (ni + 1 < NI) {
              arch::ldmatrix<4>(bq, sb + (ni * 8 + 8 * (lane / 16)) * LD);
            } else {
              std::uint32_t b2[2];
              arch::ldmatrix<2>(b2, sb + ni * 8 * LD);
              bq[0] = b2[0];
              bq[1] = b2[1];
              bq[2] = bq[3] = 0u;
            }
            DEEPSHOCK_UNROLL
            for (int h = 0; h < 2 && ni + h < NI; ++h) {
              const std::uint32_t bf[2] = {bq[2 * h], bq[2 * h + 1]};
              DEEPSHOCK_UNROLL
              for (int mi = 0; mi < MI; ++mi)
                arch::mma_m16n8k16<T>(acc[m][mi * NI + ni + h], af[mi], bf, acc[m][mi * NI + ni + h]);
            }
          }
        }
      }
    } else {
      DEEPSHOCK_UNROLL
      for (int o = 0; o < kOut; ++o) {
        const int idx = tid + o * kThreads, r = idx / BN, col = idx % BN;
        DEEPSHOCK_UNROLL
        for (int m = 0; m < NB; ++m) {
          const auto* sb = Smem::b(smem, stage, m);
          float s = acc[m][o / 4][o % 4];
          for (int kk = 0; kk < BK; ++kk) s = fmaf(sa[r * LD + kk], sb[col * LD + kk], s);
          acc[m][o / 4][o % 4] = s;
        }
      }
    }
  }
}

/// grouped_gemm_kernel's epilogue: each accumulator of the tile to its (row, column).
template <class T, class Tile, int NB, class Epi>
DEEPSHOCK_DEVICE void store_tile(const TileJob<T, Epi>& job, int tid, const float (&acc)[NB][GemmAccShape<T, Tile, NB>::kFrags][4]) {
  using Acc = GemmAccShape<T, Tile, NB>;
  if constexpr (Acc::kMma) {
    store_mma_tile<Tile, NB>(job, tid, [&](int m, int f) -> const float* { return acc[m][f]; });
  } else {
    const int rows_here = job.row_end - job.m0;
    DEEPSHOCK_UNROLL
    for (int o = 0; o < Acc::kOut; ++o) {
      const int idx = tid + o * Tile::kThreads, r = idx / Tile::kBN, n = job.n0 + idx % Tile::kBN;
      if (r < rows_here && n < job.args.n) job.epi.store(job.m0 + r, n, acc[0][o / 4][o % 4], NB == 2 ? acc[NB - 1][o / 4][o % 4] : 0.0f);
    }
  }
}

}  // namespace detail

namespace kernels {

/// One block per (m-tile, n-tile); see the file comment. Dynamic shared memory:
/// grouped_gemm_smem_bytes<T, Tile, Epi>().
template <class T, class Tile, class Epi>
DEEPSHOCK_KERNEL void grouped_gemm_kernel(GemmBatch<T, Epi> batch) {
  constexpr int NB = Epi::kGated ? 2 : 1;
  using Smem = detail::GemmSmem<T, Tile, NB>;
  unsigned char* smem = dynamic_smem<unsigned char>();
  int* rows = Smem::rows(smem);
  const int tid = static_cast<int>(threadIdx.x);

  // Programmatic dependent launch: the tile offsets, the gathered rows and the outputs belong to
  // earlier kernels (dispatch, GEMM 1), so wait for them before anything else; then let the next
  // kernel be scheduled into this one's tail.
  pdl::wait();
  pdl::launch_dependents();
  detail::TileJob<T, Epi> job;
  if (!detail::start_tile<Tile::kBM, Tile::kBN, Tile::kThreads>(batch, rows, tid, job)) return;
  float acc[NB][detail::GemmAccShape<T, Tile, NB>::kFrags][4] = {};
  const int ktiles = (job.args.k + Smem::kBK - 1) / Smem::kBK;
  detail::gemm_mainloop<T, Tile, NB>(smem, rows, job, 0, ktiles, tid, acc);
  detail::store_tile<T, Tile, NB>(job, tid, acc);
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
template <class T, class Tile, class Epi>
DEEPSHOCK_KERNEL void grouped_gemm_streamk_kernel(GemmBatch<T, Epi> batch, StreamKScratch sk) {
  constexpr int NB = Epi::kGated ? 2 : 1;
  using Smem = detail::GemmSmem<T, Tile, NB>;
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
    detail::TileJob<T, Epi> job;
    detail::locate_tile_at<BM, BN>(batch, i, t % active, t / active, job);  // t < active x n_tiles: always a tile
    if (it != begin) {  // the previous segment's copies and reads of the stages and rows are over
      mem::cp_async_wait<0>();
      __syncthreads();
    }
    detail::load_rows<BM, kThreads>(job, rows, tid);
    float acc[NB][Acc::kFrags][4] = {};
    detail::gemm_mainloop<T, Tile, NB>(smem, rows, job, k_first, k_last, tid, acc);
    if (k_first == 0 && k_last == ktiles) {
      detail::store_tile<T, Tile, NB>(job, tid, acc);
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
        detail::store_tile<T, Tile, NB>(job, tid, sum);
      }
    }
    it = seg_end;
  }
}

/// The WgmmaTile kernel for 16-bit inputs: the same block mapping and epilogue, with the tiles
/// in 128-byte swizzled shared memory and the math on wgmma (sm_90a, the simulator) or mma.sync.
/// Pipeline: k-tile kt lives in stage kt % kStages; the loads run kStages - 2 k-tiles ahead and
/// the wgmma group of k-tile kt - 1 may still run while k-tile kt is issued, so the stage being
/// refilled in iteration kt is that of k-tile kt - 2, which every warpgroup has finished
/// (wgmma_wait<1> in iteration kt - 1, then this iteration's barrier).
template <class T, class Tile, class Epi>
DEEPSHOCK_KERNEL void grouped_gemm_sw128_kernel(GemmBatch<T, Epi> batch) {
  static_assert(sizeof(T) == 2, "grouped_gemm_sw128_kernel: 16-bit inputs only.");
  constexpr int NB = Epi::kGated ? 2 : 1;
  using Smem = detail::SwizzledSmem<Tile, NB>;
  constexpr int BM = Tile::kBM, BN = Tile::kBN, BK = 64, kThreads = Tile::kThreads, kStages = Tile::kStages;
  constexpr bool kWgmma = Tile::kUseWgmma && DEEPSHOCK_WGMMA;
  unsigned char* smem = arch::align_smem_1024(dynamic_smem<unsigned char>());
  int* rows = Smem::rows(smem);
  const int tid = static_cast<int>(threadIdx.x);

  // Programmatic dependent launch: the tile offsets, the gathered rows and the outputs belong to
  // earlier kernels (dispatch, GEMM 1), so wait for them before anything else; then let the next
  // kernel be scheduled into this one's tail.
  pdl::wait();
  pdl::launch_dependents();
  detail::TileJob<T, Epi> job;
  if (!detail::start_tile<BM, BN, kThreads>(batch, rows, tid, job)) return;
  const GroupedGemmArgs<T>& args = job.args;
  const int n0 = job.n0;
  const T* const* b = job.b;

  // Accumulators of this thread: its warpgroup's 64 x BN per matrix, in the wgmma D layout (=
  // per warp the m16n8 C fragments of n8 tiles 0 .. BN / 8 - 1).
  float acc[NB][BN / 2] = {};
  const int wg = tid / 128, warp_in_wg = (tid / 32) % 4, lane = tid % 32;

  constexpr int kAChunks = BM * 8 / kThreads, kBChunks = BN * 8 / kThreads;
  static_assert(BM * 8 % kThreads == 0 && BN * 8 % kThreads == 0, "grouped_gemm_sw128_kernel: the tile loads must divide evenly.");
  const int ktiles = (args.k + BK - 1) / BK;
  auto issue = [&](int kt) {
    if (kt < ktiles) {
      const int k0 = kt * BK, stage = kt % kStages;
      unsigned char* sa = Smem::a(smem, stage);
      DEEPSHOCK_UNROLL
      for (int i = 0; i < kAChunks; ++i) {
        const int c = tid + i * kThreads, r = c / 8, ch = c % 8, kc = ch * 8;
        const int row = rows[r];
        const bool ok = row >= 0 && k0 + kc < args.k;
        mem::cp_async16(sa + arch::sw128_offset(r, ch), ok ? args.a + static_cast<long long>(row) * args.lda + k0 + kc : args.a, ok);
      }
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) {
        unsigned char* sb = Smem::b(smem, stage, m);
        DEEPSHOCK_UNROLL
        for (int i = 0; i < kBChunks; ++i) {
          const int c = tid + i * kThreads, r = c / 8, ch = c % 8, kc = ch * 8;
          const bool ok = n0 + r < args.n && k0 + kc < args.k;
          mem::cp_async16(sb + arch::sw128_offset(r, ch), ok ? b[m] + static_cast<long long>(n0 + r) * args.k + k0 + kc : b[m], ok);
        }
      }
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
      for (int kk = 0; kk < BK / 16; ++kk)
        DEEPSHOCK_UNROLL
        for (int m = 0; m < NB; ++m) arch::wgmma_m64k16<T, BN>(acc[m], sa + kk * 32, Smem::b(smem, stage, m) + kk * 32);
      arch::wgmma_commit();
      arch::wgmma_wait<1>();
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) arch::wgmma_fence_operand(acc[m]);
    } else {
      // Fragments by ldmatrix from the swizzled tiles (a 16-byte chunk stays contiguous under the
      // swizzle): A rows warp_in_wg * 16 + l % 16 at chunk 2 kk + l / 16; B two n8 tiles per x4,
      // n row l % 8 + 8 (l / 16) at chunk 2 kk + (l / 8) % 2 (as in grouped_gemm_kernel).
      static_assert(BN % 16 == 0, "grouped_gemm_sw128_kernel: B fragments are loaded two n8 tiles at a time.");
      DEEPSHOCK_UNROLL
      for (int kk = 0; kk < BK / 16; ++kk) {
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
              float c[4] = {acc[m][n8 * 4], acc[m][n8 * 4 + 1], acc[m][n8 * 4 + 2], acc[m][n8 * 4 + 3]};
              arch::mma_m16n8k16<T>(c, af, bf, c);
              DEEPSHOCK_UNROLL
              for (int j = 0; j < 4; ++j) acc[m][n8 * 4 + j] = c[j];
            }
          }
        }
      }
    }
  }
  if constexpr (kWgmma) {
    arch::wgmma_wait<0>();
    DEEPSHOCK_UNROLL
    for (int m = 0; m < NB; ++m) arch::wgmma_fence_operand(acc[m]);
  }

  // The GemmTile this derives from has kWarpsM = BM / 16 warps of 16 rows and one warp column:
  // warp w's rows 16w .. 16w + 15 are warpgroup w / 4's rows 16 (w % 4) .., as in the D layout.
  detail::store_mma_tile<Tile, NB>(job, tid, [&](int m, int f) -> const float* { return &acc[m][f * 4]; });
}

}  // namespace kernels

namespace detail {
template <class T, class Tile>
inline constexpr bool uses_sw128_kernel_v = SwizzledTile<Tile> && sizeof(T) == 2;
}  // namespace detail

/// Dynamic shared memory (bytes) of the grouped-GEMM kernel for <T, Tile, Epi>.
template <class T, class Tile, class Epi>
constexpr std::size_t grouped_gemm_smem_bytes() {
  if constexpr (detail::uses_sw128_kernel_v<T, Tile>) return detail::SwizzledSmem<Tile, Epi::kGated ? 2 : 1>::kBytes;
  else return detail::GemmSmem<T, Tile, Epi::kGated ? 2 : 1>::kBytes;
}

/// Launches the problems of `batch` (nothing when it has no blocks). dependent_launch: as a
/// programmatic dependent launch (LaunchConfig::dependent; the kernels wait for earlier work
/// before reading anything, so the results are the same).
template <class T, class Tile, class Epi>
Status launch_grouped_gemm(const GemmBatch<T, Epi>& batch, rt::stream_t stream, bool dependent_launch = false) {
  const long long blocks = batch.total_blocks();
  if (blocks == 0) return Status::success();
  if (blocks > 0x7fffffffLL) return Status::invalid_argument("tokens", "the grouped GEMM needs more than 2^31 - 1 blocks");
  const LaunchConfig cfg{dim3(static_cast<unsigned>(blocks)), dim3(Tile::kThreads), grouped_gemm_smem_bytes<T, Tile, Epi>(), stream,
                         dependent_launch};
  if constexpr (detail::uses_sw128_kernel_v<T, Tile>) return launch(kernels::grouped_gemm_sw128_kernel<T, Tile, Epi>, cfg, batch);
  else return launch(kernels::grouped_gemm_kernel<T, Tile, Epi>, cfg, batch);
}

/// Largest stream-K grid (blocks) a launch uses: one wave of the decode tiles on current GPUs
/// is a few hundred blocks (H200: 132 SMs x 2-4 blocks).
inline constexpr int kStreamKMaxGrid = 1024;

/// Bytes of StreamKScratch::partials for a stream-K launch of <T, Tile> of up to `blocks`
/// one-per-tile blocks (either epilogue: sized for the gated one).
template <class T, class Tile>
constexpr std::size_t streamk_partial_bytes(long long blocks) {
  const long long grid = blocks < kStreamKMaxGrid ? blocks : kStreamKMaxGrid;
  return grid <= 0 ? 0 : static_cast<std::size_t>(grid) * 2 * detail::GemmAccShape<T, Tile, 2>::kFloats * Tile::kThreads * sizeof(float);
}

#if DEEPSHOCK_SIM
namespace detail {
/// The simulator's stream-K grid (one "wave"): 6 blocks by default, so that its tests split
/// tiles across blocks at small sizes; tests may set other values.
inline int& sim_streamk_slots() {
  static int slots = 6;
  return slots;
}
}  // namespace detail
#endif

/// The stream-K grid of <T, Tile, Epi> for a launch of `blocks` one-per-tile blocks: one wave
/// (deepshock::detail::wave_blocks), at most kStreamKMaxGrid and `blocks`. The simulator uses detail::sim_streamk_slots().
template <class T, class Tile, class Epi>
Status streamk_grid(long long blocks, int& grid) {
  grid = 0;
  long long slots = 1;
#if DEEPSHOCK_SIM
  slots = detail::sim_streamk_slots();
#endif
#if DEEPSHOCK_CUDA
  void (*kernel)(GemmBatch<T, Epi>, StreamKScratch) = kernels::grouped_gemm_streamk_kernel<T, Tile, Epi>;
  int wave = 0;
  DEEPSHOCK_RETURN_IF_ERROR(
      deepshock::detail::wave_blocks(reinterpret_cast<const void*>(kernel), Tile::kThreads, grouped_gemm_smem_bytes<T, Tile, Epi>(), wave));
  slots = wave;
#endif
  if (slots < 1) slots = 1;
  if (slots > kStreamKMaxGrid) slots = kStreamKMaxGrid;
  grid = static_cast<int>(blocks < slots ? blocks : slots);
  return Status::success();
}

/// Launches the problems of `batch` with the stream-K schedule (nothing when it has no
/// blocks); `sk` holds streamk_partial_bytes<T, Tile>(batch.total_blocks()) bytes of partials
/// and batch.total_blocks() tickets, zero before the first launch. dependent_launch: as in
/// launch_grouped_gemm.
template <class T, class Tile, class Epi>
Status launch_grouped_gemm_streamk(const GemmBatch<T, Epi>& batch, StreamKScratch sk, rt::stream_t stream, bool dependent_launch = false) {
  static_assert(!detail::uses_sw128_kernel_v<T, Tile>, "launch_grouped_gemm_streamk: stream-K runs the GemmTile kernel (decode tiles).");
  const long long blocks = batch.total_blocks();
  if (blocks == 0) return Status::success();
  if (blocks > 0x7fffffffLL) return Status::invalid_argument("tokens", "the grouped GEMM needs more than 2^31 - 1 blocks");
  if (sk.partials == nullptr) return Status::invalid_argument("sk.partials", "must not be null");
  if (sk.tickets == nullptr) return Status::invalid_argument("sk.tickets", "must not be null");
  int grid = 0;
  DEEPSHOCK_RETURN_IF_ERROR((streamk_grid<T, Tile, Epi>(blocks, grid)));
  const LaunchConfig cfg{dim3(static_cast<unsigned>(grid)), dim3(Tile::kThreads), grouped_gemm_smem_bytes<T, Tile, Epi>(), stream,
                         dependent_launch};
  return launch(kernels::grouped_gemm_streamk_kernel<T, Tile, Epi>, cfg, batch, sk);
}
#endif  // DEEPSHOCK_HAS_KERNELS

/// Upper bound of the m-tiles of `rows` rows split into `groups` groups of any sizes.
inline long long max_m_tiles(long long rows, int bm, int groups) {
  if (rows <= 0) return 0;
  return (rows + bm - 1) / bm + (groups < rows ? groups : rows);
}

}  // namespace deepshock::moe
