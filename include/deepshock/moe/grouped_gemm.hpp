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
// 16 bytes so that the fragment loads (row stride 36 words) hit 32 different banks.
// Requirements (checked by the layer): K a multiple of 16 / sizeof(T), 16-byte aligned A, B and
// row strides (vector loads).
// Loads: a `Stages`-deep cp.async pipeline (sm_80+) in dynamic shared memory — while one k-tile
// is multiplied, Stages - 1 more are in flight, with one barrier per k-tile. Decode is limited by
// the bytes in flight: at T = 1 a DeepSeek-V2-Lite layer has only ~130-190 blocks per GEMM (about
// one per SM), so the decode tile keeps 3 weight k-tiles (3 x 18 KiB gated) in flight per block,
// where a register-staged loop kept one. Split-K for decode and a wgmma / TMA path for sm_90 are
// tuning work that slots in behind GemmTile.
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

/// A pair of tile shapes for the MoE layer (its `Tuning` parameter). Decode: few rows per
/// expert, so short and wide tiles that read each weight row once; prefill: tiles that reuse
/// both operands. The decode tiles run while the assignments average at most one decode m-tile
/// (Decode::kBM rows) per expert.
template <class DecodeTile, class PrefillTile>
struct GemmTuningOf {
  using Decode = DecodeTile;
  using Prefill = PrefillTile;
  static bool use_decode(long long assignments, int groups) { return assignments <= static_cast<long long>(Decode::kBM) * groups; }
};

/// The default tiles. Tuning values, still to be set from bench_moe's tiles/ rows on a GPU
/// (which time these against wider prefill tiles and narrower or deeper decode tiles).
using GemmTuning = GemmTuningOf<GemmTile<16, 64, 128, 1, 4, 4>, GemmTile<64, 64, 128, 2, 2, 3>>;

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

namespace kernels {

/// One block per (m-tile, n-tile); see the file comment. Dynamic shared memory:
/// grouped_gemm_smem_bytes<T, Tile, Epi>().
template <class T, class Tile, class Epi>
DEEPSHOCK_KERNEL void grouped_gemm_kernel(GemmBatch<T, Epi> batch) {
  constexpr int NB = Epi::kGated ? 2 : 1;
  using Smem = detail::GemmSmem<T, Tile, NB>;
  constexpr int BM = Tile::kBM, BN = Tile::kBN, BK = Smem::kBK, LD = Smem::kLD, VEC = 16 / static_cast<int>(sizeof(T));
  constexpr int kThreads = Tile::kThreads, kStages = Tile::kStages;
  constexpr int kChunksPerRow = BK / VEC;
  unsigned char* smem = dynamic_smem<unsigned char>();
  int* rows = Smem::rows(smem);
  const int tid = static_cast<int>(threadIdx.x);

  // Which problem, which n-tile, which group and which of its m-tiles this block computes.
  const long long first_second = batch.blocks(0), bid = blockIdx.x;
  const bool second = bid >= first_second;
  const GroupedGemmArgs<T> args = second ? batch.args[1] : batch.args[0];
  const Epi epi = second ? batch.epi[1] : batch.epi[0];
  const long long local = second ? bid - first_second : bid;
  const int m_slots = second ? batch.m_tiles[1] : batch.m_tiles[0];
  const int tile = static_cast<int>(local % m_slots);
  const int n0 = static_cast<int>(local / m_slots) * BN;
  int g = 0, row_begin = 0, row_end = args.rows, local_tile = tile;
  if (args.group_offsets != nullptr) {
    if (tile >= args.tile_offsets[args.groups]) return;
    int lo = 0, hi = args.groups - 1;  // last g with tile_offsets[g] <= tile
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (args.tile_offsets[mid] <= tile) lo = mid;
      else hi = mid - 1;
    }
    g = lo;
    row_begin = args.group_offsets[g];
    row_end = args.group_offsets[g + 1];
    local_tile = tile - args.tile_offsets[g];
  } else if (static_cast<long long>(tile) * BM >= args.rows) {
    return;
  }
  const int m0 = row_begin + local_tile * BM;
  const T* b[NB];
  b[0] = args.b0 + static_cast<long long>(g) * args.b_stride;
  if constexpr (NB == 2) b[1] = args.b1 + static_cast<long long>(g) * args.b_stride;

  for (int r = tid; r < BM; r += kThreads) {
    const int p = m0 + r;
    rows[r] = p < row_end ? (args.a_rows != nullptr ? args.a_rows[p] : p) : -1;
  }
  __syncthreads();

  constexpr bool kMma = sizeof(T) == 2;
  // Accumulators: the mma warp tile, or BM x BN / threads outputs per thread for fp32.
  constexpr int MI = Tile::kWM / 16, NI = Tile::kWN / 8;
  constexpr int kOut = BM * BN / kThreads;
  constexpr int kFrags = kMma ? MI * NI : kOut / 4;  // groups of 4 accumulators
  static_assert(kMma || kOut % 4 == 0, "grouped_gemm_kernel: fp32 outputs per thread must be a multiple of 4.");
  float acc[NB][kFrags][4] = {};

  const int warp_id = tid / 32, lane = tid % 32;
  const int warp_m = warp_id % Tile::kWarpsM, warp_n = warp_id / Tile::kWarpsM;
  const int fg = lane / 4, ft = lane % 4;  // fragment group and thread in group

  // Multi-stage cp.async pipeline: k-tile kt lives in stage kt % kStages; kStages - 1 k-tiles
  // are in flight while one is multiplied. Each thread owns fixed 16-byte chunks of the tiles
  // and commits one group per k-tile (empty past the end, so that the group count stays uniform).
  constexpr int kAChunks = BM * kChunksPerRow / kThreads, kBChunks = BN * kChunksPerRow / kThreads;
  static_assert(BM * kChunksPerRow % kThreads == 0 && BN * kChunksPerRow % kThreads == 0,
                "grouped_gemm_kernel: the tile loads must divide evenly among the threads.");
  const int ktiles = (args.k + BK - 1) / BK;
  auto issue = [&](int kt) {
    if (kt < ktiles) {
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
  for (int s = 0; s < kStages - 1; ++s) issue(s);
  for (int kt = 0; kt < ktiles; ++kt) {
    // Groups committed so far: kStages - 1 + kt; allowing kStages - 2 pending completes k-tile
    // kt. The barrier publishes every thread's part of it and ends the reads of k-tile kt - 1,
    // whose stage the next issue refills.
    mem::cp_async_wait<kStages - 2>();
    __syncthreads();
    issue(kt + kStages - 1);
    const int stage = kt % kStages;
    const auto* sa = Smem::a(smem, stage);
    if constexpr (kMma) {
      DEEPSHOCK_UNROLL
      for (int kk = 0; kk < BK; kk += 16) {
        std::uint32_t af[MI][4];
        DEEPSHOCK_UNROLL
        for (int mi = 0; mi < MI; ++mi) {
          const int r = warp_m * Tile::kWM + mi * 16 + fg;
          af[mi][0] = mem::lds32(sa + r * LD + kk + 2 * ft);
          af[mi][1] = mem::lds32(sa + (r + 8) * LD + kk + 2 * ft);
          af[mi][2] = mem::lds32(sa + r * LD + kk + 2 * ft + 8);
          af[mi][3] = mem::lds32(sa + (r + 8) * LD + kk + 2 * ft + 8);
        }
        DEEPSHOCK_UNROLL
        for (int m = 0; m < NB; ++m) {
          const auto* sb = Smem::b(smem, stage, m);
          DEEPSHOCK_UNROLL
          for (int ni = 0; ni < NI; ++ni) {
            const int col = warp_n * Tile::kWN + ni * 8 + fg;
            const std::uint32_t bf[2] = {mem::lds32(sb + col * LD + kk + 2 * ft), mem::lds32(sb + col * LD + kk + 2 * ft + 8)};
            DEEPSHOCK_UNROLL
            for (int mi = 0; mi < MI; ++mi) arch::mma_m16n8k16<T>(acc[m][mi * NI + ni], af[mi], bf, acc[m][mi * NI + ni]);
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

  // Epilogue: each accumulator to its (row, column). In the mma layout c0, c1 (and c2, c3) are
  // columns n, n + 1 of one row with n even; N is a multiple of 8, so both are in range or
  // neither, and they go out as one paired store.
  const int rows_here = row_end - m0;
  if constexpr (kMma) {
    DEEPSHOCK_UNROLL
    for (int mi = 0; mi < MI; ++mi)
      DEEPSHOCK_UNROLL
      for (int ni = 0; ni < NI; ++ni)
        DEEPSHOCK_UNROLL
        for (int half = 0; half < 2; ++half) {
          const int r = warp_m * Tile::kWM + mi * 16 + fg + 8 * half;
          const int n = n0 + warp_n * Tile::kWN + ni * 8 + 2 * ft;
          if (r < rows_here && n < args.n) {
            const float* c0 = acc[0][mi * NI + ni];
            const float* c1 = acc[NB - 1][mi * NI + ni];
            epi.store2(m0 + r, n, c0[2 * half], NB == 2 ? c1[2 * half] : 0.0f, c0[2 * half + 1], NB == 2 ? c1[2 * half + 1] : 0.0f);
          }
        }
  } else {
    DEEPSHOCK_UNROLL
    for (int o = 0; o < kOut; ++o) {
      const int idx = tid + o * kThreads, r = idx / BN, n = n0 + idx % BN;
      if (r < rows_here && n < args.n)
        epi.store(m0 + r, n, acc[0][o / 4][o % 4], NB == 2 ? acc[NB - 1][o / 4][o % 4] : 0.0f);
    }
  }
}

}  // namespace kernels

/// Dynamic shared memory (bytes) of grouped_gemm_kernel<T, Tile, Epi>.
template <class T, class Tile, class Epi>
constexpr std::size_t grouped_gemm_smem_bytes() {
  return detail::GemmSmem<T, Tile, Epi::kGated ? 2 : 1>::kBytes;
}

/// Launches the problems of `batch` (nothing when it has no blocks).
template <class T, class Tile, class Epi>
Status launch_grouped_gemm(const GemmBatch<T, Epi>& batch, rt::stream_t stream) {
  const long long blocks = batch.total_blocks();
  if (blocks == 0) return Status::success();
  if (blocks > 0x7fffffffLL) return Status::invalid_argument("tokens", "the grouped GEMM needs more than 2^31 - 1 blocks");
  return launch(kernels::grouped_gemm_kernel<T, Tile, Epi>,
                {dim3(static_cast<unsigned>(blocks)), dim3(Tile::kThreads), grouped_gemm_smem_bytes<T, Tile, Epi>(), stream}, batch);
}
#endif  // DEEPSHOCK_HAS_KERNELS

/// Upper bound of the m-tiles of `rows` rows split into `groups` groups of any sizes.
inline long long max_m_tiles(long long rows, int bm, int groups) {
  if (rows <= 0) return 0;
  return (rows + bm - 1) / bm + (groups < rows ? groups : rows);
}

}  // namespace deepshock::moe
