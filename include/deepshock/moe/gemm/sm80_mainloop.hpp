// deepshock/moe/gemm/sm80_mainloop.hpp — the mma.sync grouped GEMM's shared memory, k-loop and
// accumulator store (sm_80+; fp32 inputs take exact FMAs). A `Stages`-deep cp.async ring in
// dynamic shared memory (rows padded by 16 bytes, so that ldmatrix's 8 rows hit 32 banks), the
// A rows gathered through the tile's index list, fragments by ldmatrix, arch::mma_m16n8k16 with
// fp32 accumulators. grouped_gemm_kernel and grouped_gemm_streamk_kernel share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/moe/gemm/arguments.hpp"
#include "deepshock/moe/gemm/scheduler.hpp"
#include "deepshock/moe/gemm/tile_loader.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/memory.hpp"
#include "deepshock/platform/mma.hpp"

namespace deepshock::moe::detail {

/// Storage type of T in shared memory (raw bits for the 16-bit types).
template <class T>
using smem_t = std::conditional_t<sizeof(T) == 2, std::uint16_t, float>;

/// The stored scale type of a group codec (unused 16-bit placeholder for the others).
template <class Codec, bool Grouped>
struct ScaleOf {
  using type = std::uint16_t;
};
template <class Codec>
struct ScaleOf<Codec, true> {
  using type = quant::scale_bits_t<Codec>;
};

/// Dynamic shared memory of one block: kStages stages of {A [BM][LD], B [NB][BN][LDB], and for
/// group-wise codecs the k-tile's scales [NB][GS][BN] (the codec's scale_bits) and zeros [NB][GS][BN] (uint8)},
/// then the BM gathered row indices. A holds T, B the codec's storage type W (quant/codec.hpp),
/// kPack values per element; a stage covers kBK values of K in both, and GS = max(1, kBK / G)
/// groups. Rows are padded by 16 bytes (see the file comment).
template <class T, class Tile, int NB, class Codec = quant::None>
struct GemmSmem {
  using A = typename GroupedGemmArgs<T, Codec>::A;  // T, or int8 activations (W8A8)
  using S = std::conditional_t<std::is_same_v<A, T>, smem_t<T>, A>;
  using W = typename Codec::template storage<T>;
  using SB = std::conditional_t<std::is_same_v<W, T>, S, W>;
  static constexpr int kPack = quant::pack_v<Codec>;
  static constexpr int kGroup = quant::group_v<Codec>;
  static constexpr int kBK = Tile::kKBytes / static_cast<int>(sizeof(A));
  static constexpr int kLD = kBK + 16 / static_cast<int>(sizeof(S));
  static constexpr int kLDB = kBK / kPack + 16 / static_cast<int>(sizeof(SB));
  static constexpr int kGS = kGroup == 0 ? 0 : (kBK > kGroup ? kBK / kGroup : 1);  ///< groups per stage
  static constexpr bool kZeros = [] {
    if constexpr (kGroup > 0) return Codec::kZeros;
    else return false;
  }();
  /// A stored scale: the codec's scale_bits (16-bit Int4Group, 8-bit FP4 codecs).
  using Scale = typename ScaleOf<Codec, (kGroup > 0)>::type;
  static constexpr std::size_t round16(std::size_t b) { return (b + 15) / 16 * 16; }
  static constexpr std::size_t kABytes = static_cast<std::size_t>(Tile::kBM) * kLD * sizeof(S);
  static constexpr std::size_t kBBytes = static_cast<std::size_t>(NB) * Tile::kBN * kLDB * sizeof(SB);
  static constexpr std::size_t kScaleBytes = round16(static_cast<std::size_t>(NB) * kGS * Tile::kBN * sizeof(Scale));
  static constexpr std::size_t kZeroBytes = kZeros ? round16(static_cast<std::size_t>(NB) * kGS * Tile::kBN) : 0;
  /// FP8 activations: the k-tile's scale of each gathered row (one 128-group per k-tile).
  static constexpr bool kActFp8 = quant::act_fp8_v<Codec>;
  static constexpr std::size_t kAScaleBytes = kActFp8 ? round16(static_cast<std::size_t>(Tile::kBM) * sizeof(float)) : 0;
  static_assert(!kActFp8 || kBK == 128, "GemmSmem: FP8 activations take k-tiles of one 128-value group (128-byte k-tiles).");
  static constexpr std::size_t kStageBytes = kABytes + kBBytes + kScaleBytes + kZeroBytes + kAScaleBytes;
  static constexpr std::size_t kRowsOffset = static_cast<std::size_t>(Tile::kStages) * kStageBytes;
  static constexpr std::size_t kBytes = kRowsOffset + Tile::kBM * sizeof(int);
  static_assert(kABytes % 16 == 0 && kBBytes % 16 == 0, "GemmSmem: stages must stay 16-byte aligned.");
  static constexpr int kGroupOr1 = kGroup > 0 ? kGroup : 1;  // no division by zero in the check below
  static_assert(kGroup == 0 || kGroupOr1 % kBK == 0 || kBK % kGroupOr1 == 0, "GemmSmem: a group must cover whole k-tiles or divide one.");
  DEEPSHOCK_HOST_DEVICE static S* a(unsigned char* base, int stage) { return reinterpret_cast<S*>(base + stage * kStageBytes); }
  DEEPSHOCK_HOST_DEVICE static SB* b(unsigned char* base, int stage, int m) {
    return reinterpret_cast<SB*>(base + stage * kStageBytes + kABytes) + m * Tile::kBN * kLDB;
  }
  /// Group j's scales of matrix m in the stage, one per output channel of the tile.
  DEEPSHOCK_HOST_DEVICE static Scale* scales(unsigned char* base, int stage, int m, int j) {
    return reinterpret_cast<Scale*>(base + stage * kStageBytes + kABytes + kBBytes) + (m * kGS + j) * Tile::kBN;
  }
  DEEPSHOCK_HOST_DEVICE static std::uint8_t* zeros(unsigned char* base, int stage, int m, int j) {
    return base + stage * kStageBytes + kABytes + kBBytes + kScaleBytes + (m * kGS + j) * Tile::kBN;
  }
  DEEPSHOCK_HOST_DEVICE static float* a_scales(unsigned char* base, int stage) {
    return reinterpret_cast<float*>(base + stage * kStageBytes + kABytes + kBBytes + kScaleBytes + kZeroBytes);
  }
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

/// Adds the optional biases of output column n of the job's group (GroupedGemmArgs::bias) to
/// the fp32 values of its one or two operands. A null bias adds nothing (not even +0, which
/// would turn a -0 sum into +0).
template <int NB, class T, class Epi, class Codec>
DEEPSHOCK_DEVICE void add_bias(const TileJob<T, Epi, Codec>& job, int n, float& g, float& u) {
  const long long at = static_cast<long long>(job.g) * job.args.n + n;
  if (job.args.bias[0] != nullptr) g += job.args.bias[0][at];
  if (NB == 2 && job.args.bias[1] != nullptr) u += job.args.bias[1][at];
}

/// Stores the tile's accumulators in the mma.sync warp-tile layout: frag(m, mi * NI + ni) are
/// the 4 C-fragment floats of matrix m, m16 tile mi, n8 tile ni of this thread's warp. c0, c1 (and
/// c2, c3) are columns n, n + 1 of one row with n even; N is a multiple of 8, so both are in
/// range or neither, and they go out as one paired store. An epilogue-scaled codec's per-channel
/// scales multiply the accumulators here (identity and group-wise codecs: nothing is multiplied),
/// then the optional biases are added.
template <class Tile, int NB, class T, class Epi, class Codec, class Frag>
DEEPSHOCK_DEVICE void store_mma_tile(const TileJob<T, Epi, Codec>& job, const int* rows, int tid, Frag&& frag) {
  constexpr int MI = Tile::kWM / 16, NI = Tile::kWN / 8;
  const int warp_id = tid / 32, lane = tid % 32;
  const int warp_m = warp_id % Tile::kWarpsM, warp_n = warp_id / Tile::kWarpsM;
  const int fg = lane / 4, ft = lane % 4;
  const int rows_here = job.row_end - job.m0;
  DEEPSHOCK_UNROLL
  for (int mi = 0; mi < MI; ++mi) {
    DEEPSHOCK_UNROLL
    for (int ni = 0; ni < NI; ++ni) {
      DEEPSHOCK_UNROLL
      for (int half = 0; half < 2; ++half) {
        const int r = warp_m * Tile::kWM + mi * 16 + fg + 8 * half;
        const int n = job.n0 + warp_n * Tile::kWN + ni * 8 + 2 * ft;
        if (r < rows_here && n < job.args.n) {
          const float* c0 = frag(0, mi * NI + ni);
          const float* c1 = frag(NB - 1, mi * NI + ni);
          float g0 = c0[2 * half], g1 = c0[2 * half + 1];
          float u0 = NB == 2 ? c1[2 * half] : 0.0f, u1 = NB == 2 ? c1[2 * half + 1] : 0.0f;
          if constexpr (quant::epilogue_scaled_v<Codec>) {
            // W8A8: the A row's token scale too (the tile's row list names the A row).
            float t = 1.0f;
            if constexpr (quant::act_int8_v<Codec>) t = job.args.a_scale[rows[r]];
            g0 = g0 * t * Codec::scale(job.args.bq[0], job.g, n);
            g1 = g1 * t * Codec::scale(job.args.bq[0], job.g, n + 1);
            if (NB == 2) {
              u0 = u0 * t * Codec::scale(job.args.bq[1], job.g, n);
              u1 = u1 * t * Codec::scale(job.args.bq[1], job.g, n + 1);
            }
          }
          add_bias<NB>(job, n, g0, u0);
          add_bias<NB>(job, n + 1, g1, u1);
          job.epi.store2(job.m0 + r, n, g0, u0, g1, u1);
        }
      }
    }
  }
}

/// One m16n8k32 step of 8-bit operands: int32 accumulators take int8 (s8), fp32 ones E4M3.
DEEPSHOCK_DEVICE void mma8(std::int32_t (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
  arch::mma_m16n8k32_s8(d, a, b, d);
}
DEEPSHOCK_DEVICE void mma8(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) { arch::mma_m16n8k32_e4m3(d, a, b, d); }

/// One k-tile of 8-bit activations and weights (int8 or E4M3: the same m16n8k32 fragment
/// layout) from `stage` into the warp's partial sums `part` of weight matrices m0 .. m0 + NB - 1.
/// Fragments: A by ldmatrix of 16-byte rows (lane l: row l % 16 of the m16 tile at byte kk + 16
/// (l / 16)); B as 4-byte words of the n row l / 4 at k = kk + 4 (l % 4) and + 16.
template <class Tile, int NB, class Smem, int MI, int NI, class P>
DEEPSHOCK_DEVICE void mma8_ktile(unsigned char* smem, int stage, int warp_m, int warp_n, int lane, P (&part)[NB][MI * NI][4], int m0 = 0) {
  const auto* sa = Smem::a(smem, stage);
  // Not unrolled (int8 and FP8 alike): each k32 step is already NB x MI x NI MMAs, and
  // unrolled, sm_90a's register allocation spilled the gated FP8 prefill tile (255 registers,
  // 84 bytes of spills). bench_moe's quant/ rows are to confirm that W8A8 lost nothing by it.
  DEEPSHOCK_NO_UNROLL
  for (int kk = 0; kk < Smem::kBK; kk += 32) {
    std::uint32_t af[MI][4];
    DEEPSHOCK_UNROLL
    for (int mi = 0; mi < MI; ++mi)
      arch::ldmatrix<4>(af[mi], sa + (warp_m * Tile::kWM + mi * 16 + lane % 16) * Smem::kLD + kk + 16 * (lane / 16));
    DEEPSHOCK_UNROLL
    for (int m = 0; m < NB; ++m) {
      const auto* sb = Smem::b(smem, stage, m0 + m) + (warp_n * Tile::kWN + lane / 4) * Smem::kLDB + kk + 4 * (lane % 4);
      DEEPSHOCK_UNROLL
      for (int ni = 0; ni < NI; ++ni) {
        const auto* row = sb + ni * 8 * Smem::kLDB;
        const std::uint32_t bf[2] = {mem::lds32(reinterpret_cast<const std::uint16_t*>(row)),
                                     mem::lds32(reinterpret_cast<const std::uint16_t*>(row + 16))};
        DEEPSHOCK_UNROLL
        for (int mi = 0; mi < MI; ++mi) mma8(part[m][mi * NI + ni], af[mi], bf);
      }
    }
  }
}

/// The k-loop of grouped_gemm_kernel over k-tiles [kt_begin, kt_end) of the tile `job` (row
/// indices in `rows`), adding into `acc`. Multi-stage cp.async pipeline: k-tile kt lives in stage
/// kt % kStages; kStages - 1 k-tiles are in flight while one is multiplied. Each thread owns
/// fixed 16-byte chunks of the tiles and commits one group per k-tile (empty past the end, so
/// that the group count stays uniform). Ends with copies still in flight only as empty groups;
/// a caller that reuses the stages waits for them and synchronises first.
template <class T, class Tile, int NB, class Epi, class Codec>
DEEPSHOCK_DEVICE void gemm_mainloop(unsigned char* smem, const int* rows, const TileJob<T, Epi, Codec>& job, int kt_begin, int kt_end,
                                    int tid, float (&acc)[NB][GemmAccShape<T, Tile, NB>::kFrags][4]) {
  using W = typename Codec::template storage<T>;
  using Smem = GemmSmem<T, Tile, NB, Codec>;
  using Acc = GemmAccShape<T, Tile, NB>;
  constexpr int BM = Tile::kBM, BN = Tile::kBN, BK = Smem::kBK, LD = Smem::kLD, LDB = Smem::kLDB;
  constexpr int VEC = 16 / static_cast<int>(sizeof(typename Smem::A));  // activations per 16-byte copy
  constexpr int PACK = Smem::kPack, GROUP = Smem::kGroup, GS = Smem::kGS;
  constexpr int kShare = quant::scale_share_v<Codec>;  // channels per stored scale
  static_assert(kShare == 1 || kShare % BN == 0, "gemm_mainloop: a tile's channels must lie in one block of a block-scaled codec.");
  constexpr int VECB = 16 / static_cast<int>(sizeof(W));  // stored elements per 16-byte copy (VECB x PACK values)
  constexpr int kThreads = Tile::kThreads, kStages = Tile::kStages;
  constexpr int kChunksPerRow = BK / VEC, kBChunksPerRow = BK / (VECB * PACK);
  constexpr int MI = Acc::kMI, NI = Acc::kNI, kOut = Acc::kOut;
  static_assert(GROUP == 0 || Acc::kMma, "gemm_mainloop: group-wise codecs decode to bf16 / fp16 fragments (16-bit activations only).");
  static_assert(!quant::act_int8_v<Codec> || Acc::kMma, "gemm_mainloop: int8 activations (W8A8) come from bf16 / fp16 layers.");
  static_assert(!quant::act_fp8_v<Codec> || Acc::kMma, "gemm_mainloop: FP8 activations come from bf16 / fp16 layers.");
  const GroupedGemmArgs<T, Codec>& args = job.args;
  const int n0 = job.n0;
  const W* const* b = job.b;
  const long long ldb = (args.ldb != 0 ? args.ldb : args.k) / PACK;  // weight row stride in stored elements
  const int warp_id = tid / 32, lane = tid % 32;
  const int warp_m = warp_id % Tile::kWarpsM, warp_n = warp_id / Tile::kWarpsM;

  auto issue = [&](int kt) {
    if (kt < kt_end) {
      const int k0 = kt * BK, stage = kt % kStages;
      // A: the tile's gathered rows (rows[r] < 0: a padding row), k0 .. k0 + BK.
      load_tile_async<PaddedRows<LD* static_cast<int>(sizeof(typename Smem::S))>, BM, kChunksPerRow, kThreads>(
          reinterpret_cast<unsigned char*>(Smem::a(smem, stage)), tid, args.a, [&](int r, int ch) -> const void* {
            const int row = rows[r], kc = ch * VEC;
            return row >= 0 && k0 + kc < args.k ? args.a + static_cast<long long>(row) * args.lda + k0 + kc : nullptr;
          });
      // B: output channels n0 .. n0 + BN of each matrix, stored elements (PACK values each).
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) {
        load_tile_async<PaddedRows<LDB* static_cast<int>(sizeof(typename Smem::SB))>, BN, kBChunksPerRow, kThreads>(
            reinterpret_cast<unsigned char*>(Smem::b(smem, stage, m)), tid, b[m], [&](int r, int ch) -> const void* {
              const int kc = ch * VECB;
              return n0 + r < args.n && k0 + kc * PACK < args.k ? b[m] + static_cast<long long>(n0 + r) * ldb + k0 / PACK + kc : nullptr;
            });
      }
      if constexpr (Smem::kActFp8) {
        // The k-tile's activation scales, one per gathered row (group k0 / 128 of its row): a
        // plain load and store, published with the stage's copies by the consuming barrier.
        const int groups_a = (args.k + 127) / 128;
        for (int r = tid; r < BM; r += kThreads) {
          const int row = rows[r];
          Smem::a_scales(smem, stage)[r] = row >= 0 ? args.a_scale[static_cast<long long>(row) * groups_a + k0 / 128] : 0.0f;
        }
      }
      if constexpr (GROUP > 0) {
        // The k-tile's scales (and zeros) for the tile's output channels: GS groups x BN, in
        // chunks of 8 channels (16 bytes of 16-bit scales or 8 of 8-bit ones; 8 bytes of zeros).
        // N is a multiple of 8, so a chunk is wholly inside or wholly past the last channel.
        const int groups_k = (args.k + GROUP - 1) / GROUP;  // whole groups, except Fp8Block's partial last block
        constexpr int kChunks = GS * (BN / 8);
        DEEPSHOCK_UNROLL
        for (int m = 0; m < NB; ++m) {  // unrolled: a run-time index into the kernel parameter would copy it to local memory
          const auto& op = args.bq[m];
          if constexpr (kShare > 1) {
            // One scale per (matrix, group) for the whole tile: its BN channels lie in one block
            // (BN divides the block, tiles start at multiples of BN). A plain load and store: the
            // barrier that publishes this stage's copies publishes it too.
            if (tid < GS) {
              const int kg = k0 / GROUP + tid;
              Smem::scales(smem, stage, m, tid)[0] = kg < groups_k ? Codec::block_scale(op, job.g, n0, kg, args.k) : 0.0f;
            }
          } else {
            for (int c = tid; c < kChunks; c += kThreads) {
              const int j = c / (BN / 8), n = (c % (BN / 8)) * 8;
              const int kg = k0 / GROUP + j;
              const bool ok = kg < groups_k && n0 + n < args.n;
              const long long at = (static_cast<long long>(job.g) * groups_k + kg) * op.rows + n0 + n;
              if constexpr (sizeof(typename Smem::Scale) == 2)
                mem::cp_async16(Smem::scales(smem, stage, m, j) + n, ok ? op.scale + at : op.scale, ok);
              else mem::cp_async8(Smem::scales(smem, stage, m, j) + n, ok ? op.scale + at : op.scale, ok);
              if constexpr (Smem::kZeros) mem::cp_async8(Smem::zeros(smem, stage, m, j) + n, ok ? op.zero + at : op.zero, ok);
            }
          }
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
    if constexpr (quant::act_int8_v<Codec>) {
      // W8A8: int8 x int8 on the tensor cores, exact int32 sums over the k-tile (at most 128 x 127
      // x 127 < 2^24 in magnitude, so exact in fp32 too), added to the fp32 accumulators once per
      // k-tile.
      std::int32_t part[NB][MI * NI][4] = {};
      mma8_ktile<Tile, NB, Smem, MI, NI>(smem, stage, warp_m, warp_n, lane, part);
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) {
        DEEPSHOCK_UNROLL
        for (int f = 0; f < MI * NI; ++f) {
          DEEPSHOCK_UNROLL
          for (int i = 0; i < 4; ++i) acc[m][f][i] += static_cast<float>(part[m][f][i]);
        }
      }
    } else if constexpr (Smem::kActFp8) {
      // FP8 (DeepSeek-V3's recipe): E4M3 x E4M3 on the tensor cores into partial sums that start
      // at zero for the k-tile (one 128-group of both operands), then promoted into the fp32
      // accumulators times s_weight(block) x s_act(row, group). One weight matrix at a time: the
      // partial sums of both (gated GEMM 1) beside the accumulators would spill registers.
      const float* sas = Smem::a_scales(smem, stage);
      DEEPSHOCK_UNROLL
      for (int m = 0; m < NB; ++m) {
        float part[1][MI * NI][4] = {};
        mma8_ktile<Tile, 1, Smem, MI, NI>(smem, stage, warp_m, warp_n, lane, part, m);
        const float sw = Smem::scales(smem, stage, m, 0)[0];
        DEEPSHOCK_UNROLL
        for (int mi = 0; mi < MI; ++mi) {
          const float s0 = sw * sas[warp_m * Tile::kWM + mi * 16 + lane / 4], s1 = sw * sas[warp_m * Tile::kWM + mi * 16 + lane / 4 + 8];
          DEEPSHOCK_UNROLL
          for (int ni = 0; ni < NI; ++ni) {
            float* a = acc[m][mi * NI + ni];
            const float* p = part[0][mi * NI + ni];
            a[0] += p[0] * s0;  // C fragment: elements 0, 1 in row g, 2, 3 in row g + 8
            a[1] += p[1] * s0;
            a[2] += p[2] * s1;
            a[3] += p[3] * s1;
          }
        }
      }
    } else if constexpr (Acc::kMma) {
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
        if constexpr (!Codec::kIdentity) {
          // Quantized weights: each thread reads its B fragment's stored values — column (n
          // row) l / 4 of the n8 tile, k = kk + 2 (l % 4) + {0, 1} and + 8 — and the codec turns
          // each pair into two T in one register; group-wise codecs with the (channel, group)
          // factors of the stage's scale tile (a k16 step lies inside one group: G >= 16).
          DEEPSHOCK_UNROLL
          for (int m = 0; m < NB; ++m) {
            const int col = warp_n * Tile::kWN + lane / 4;  // the thread's channel in n8 tile 0
            const W* sb = Smem::b(smem, stage, m) + col * LDB;
            DEEPSHOCK_UNROLL
            for (int ni = 0; ni < NI; ++ni) {
              typename Codec::Factors f{};
              if constexpr (GROUP > 0) {
                const int j = GS > 1 ? kk / GROUP : 0;
                const int n = col + ni * 8;
                f = Codec::factors(Smem::scales(smem, stage, m, j)[kShare > 1 ? 0 : n],
                                   Smem::kZeros ? Smem::zeros(smem, stage, m, j)[n] : std::uint8_t{8});
              }
              const W* row = sb + ni * 8 * LDB;
              const std::uint32_t bf[2] = {Codec::template pair<T>(row, kk + 2 * (lane % 4), f),
                                           Codec::template pair<T>(row, kk + 2 * (lane % 4) + 8, f)};
              DEEPSHOCK_UNROLL
              for (int mi = 0; mi < MI; ++mi) arch::mma_m16n8k16<T>(acc[m][mi * NI + ni], af[mi], bf, acc[m][mi * NI + ni]);
            }
          }
        } else {
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
                for (int mi = 0; mi < MI; ++mi) arch::mma_m16n8k16<T>(acc[m][mi * NI + ni + h], af[mi], bf, acc[m][mi * NI + ni + h]);
              }
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
          if constexpr (Codec::kIdentity) {
            for (int kk = 0; kk < BK; ++kk) s = fmaf(sa[r * LD + kk], sb[col * LD + kk], s);
          } else {
            for (int kk = 0; kk < BK; ++kk) s = fmaf(sa[r * LD + kk], Codec::value(sb[col * LDB + kk]), s);  // PACK 1: kGroup 0
          }
          acc[m][o / 4][o % 4] = s;
        }
      }
    }
  }
}

/// grouped_gemm_kernel's epilogue: each accumulator of the tile to its (row, column), scaled per
/// output channel by a quantized codec, plus the optional biases.
template <class T, class Tile, int NB, class Epi, class Codec>
DEEPSHOCK_DEVICE void store_tile(const TileJob<T, Epi, Codec>& job, const int* rows, int tid,
                                 const float (&acc)[NB][GemmAccShape<T, Tile, NB>::kFrags][4]) {
  using Acc = GemmAccShape<T, Tile, NB>;
  if constexpr (Acc::kMma) {
    store_mma_tile<Tile, NB>(job, rows, tid, [&](int m, int f) -> const float* { return acc[m][f]; });
  } else {
    const int rows_here = job.row_end - job.m0;
    DEEPSHOCK_UNROLL
    for (int o = 0; o < Acc::kOut; ++o) {
      const int idx = tid + o * Tile::kThreads, r = idx / Tile::kBN, n = job.n0 + idx % Tile::kBN;
      if (r < rows_here && n < job.args.n) {
        float g = acc[0][o / 4][o % 4], u = NB == 2 ? acc[NB - 1][o / 4][o % 4] : 0.0f;
        if constexpr (quant::epilogue_scaled_v<Codec>) {
          g *= Codec::scale(job.args.bq[0], job.g, n);
          if (NB == 2) u *= Codec::scale(job.args.bq[1], job.g, n);
        }
        add_bias<NB>(job, n, g, u);
        job.epi.store(job.m0 + r, n, g, u);
      }
    }
  }
}

}  // namespace deepshock::moe::detail
#endif  // DEEPSHOCK_HAS_KERNELS
