// deepshock/moe/gemm/arguments.hpp — the grouped GEMM's operands (device pointers): one
// problem (GroupedGemmArgs), the one or two problems of a launch with their epilogues
// (GemmBatch), the stream-K scratch, and the m-tile bound a launch is planned with. The weights
// (B) have their own storage type and per-matrix codec data (quant/codec.hpp); A and the
// outputs stay in T.
#pragma once

#include <cstdint>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::moe {

/// The operands of one grouped GEMM (device pointers). Weights in the codec's storage type.
template <class T, quant::WeightCodec Codec = quant::None>
struct GroupedGemmArgs {
  using W = typename Codec::template storage<T>;
  /// Element type of the activations: T, or int8 / E4M3 bytes for codecs that quantize them
  /// (W8A8 int8, FP8).
  using A = std::conditional_t<quant::act_int8_v<Codec>, std::int8_t, std::conditional_t<quant::act_fp8_v<Codec>, std::uint8_t, T>>;
  const A* a = nullptr;  ///< activations; row r at a + r * lda
  long long lda = 0;
  const int* a_rows = nullptr;         ///< [rows] A row of sorted row p; null: p itself
  const W* b0 = nullptr;               ///< group g's [N, K] weights at b0 + g * b_stride / kPack (quant/codec.hpp)
  const W* b1 = nullptr;               ///< second weights (gated up projection); gated epilogues only
  long long b_stride = 0;              ///< in values of the weights (kPack per stored element)
  int n = 0;                           ///< N
  int k = 0;                           ///< K (a multiple of 16 / sizeof(T))
  const int* group_offsets = nullptr;  ///< [groups + 1] row ranges; null: one group [0, rows)
  const int* tile_offsets = nullptr;   ///< [groups + 1] m-tile offsets (dispatch's tile_offsets); null with group_offsets
  int groups = 1;
  int rows = 0;                        ///< rows of the single group when group_offsets is null
  typename Codec::Operand bq[2] = {};  ///< codec data of b0 and b1 (scales; empty for quant::None)
  long long ldb = 0;                   ///< row stride of the weights in values; 0: k (dense rows)
  /// Quantized activations: int8 (W8A8) the scale of A row r at a_scale[r]; FP8 the scale of A
  /// row r's group j of 128 values at a_scale[r * ceil(k / 128) + j] (indexed like a).
  const float* a_scale = nullptr;
  /// Optional fp32 biases of b0 and b1, [groups][n]: added to output column n of group g after
  /// the codec's scale, before the epilogue (gpt-oss's expert biases). Null: none.
  const float* bias[2] = {nullptr, nullptr};
};

/// One launch of grouped_gemm_kernel: one or two independent grouped GEMMs with the same tile
/// and epilogue type. The MoE layer runs its routed experts and its shared expert together, so
/// that at decode every SM streams weights at once instead of two half-empty launches. Blocks
/// [0, blocks(0)) compute problem 0 and the next blocks(1) problem 1; inside a problem the
/// m-tile varies fastest (neighbouring blocks share a weight tile).
template <class T, class Epi, quant::WeightCodec Codec = quant::None>
struct GemmBatch {
  using codec = Codec;
  /// Weight matrices each problem multiplies (b0, and b1 for two): one per value the epilogue
  /// combines. The one place that ties the two together; the kernels, the shared-memory plan and
  /// the checks read this count, never the epilogue's.
  static constexpr int kOperands = Epi::kInputs;
  static_assert(kOperands == 1 || kOperands == 2, "GemmBatch: one or two weight operands per problem.");
  GroupedGemmArgs<T, Codec> args[2];
  Epi epi[2];
  int m_tiles[2] = {0, 0};  ///< m-tile slots of each problem (max_m_tiles: an upper bound)
  int n_tiles[2] = {0, 0};
  int count = 0;
  DEEPSHOCK_HOST_DEVICE long long blocks(int i) const { return i < count ? static_cast<long long>(m_tiles[i]) * n_tiles[i] : 0; }
  DEEPSHOCK_HOST_DEVICE long long total_blocks() const { return blocks(0) + blocks(1); }
  /// Appends a problem of `m_tile_slots` m-tiles and `bn`-wide n-tiles; empty ones are skipped.
  void add(const GroupedGemmArgs<T, Codec>& a, const Epi& e, long long m_tile_slots, int bn) {
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

/// Upper bound of the m-tiles of `rows` rows split into `groups` groups of any sizes.
inline long long max_m_tiles(long long rows, int bm, int groups) {
  if (rows <= 0) return 0;
  return (rows + bm - 1) / bm + (groups < rows ? groups : rows);
}

}  // namespace deepshock::moe
