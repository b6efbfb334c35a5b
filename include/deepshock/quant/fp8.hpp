// deepshock/quant/fp8.hpp — quant::Fp8Block: FP8 E4M3 weights with one fp32 scale per 128 x 128
// block (the DeepSeek-V3 / R1 checkpoint format), decoded to the activation type inside the
// grouped GEMM (weight-only, W8A16: the path every architecture runs; FP8 tensor-core GEMMs with
// per-token activation scales build on the same layout), its quantizer and reference decoding.
//
// Layout of one [N, K] matrix (an expert stack [E, N, K] is E of them back to back, and so are
// their scales), exactly as DeepSeek's checkpoints store `weight` and `weight_scale_inv`:
//   q      uint8 [N][K]                      E4M3 bits (float8_e4m3fn)
//   scale  fp32  [ceil(N/128)][ceil(K/128)]  row-major; block (i, j) covers rows 128i .. 128i+127
//                                            and columns 128j .. 128j+127 (the last ones partial)
// Dequantized weight (the codec's definition, used by the GEMM, the host executor and the
// reference alike):   w[n, k] = T( e4m3(q) * scale[n / 128][k / 128] )
// the fp32 product rounded once to the activation type T, nearest even — as DeepSeek's
// reference dequantization computes `x.float() * s` and stores the result in bf16. All 128 x 128
// channels of a block share one scale, so the GEMM stages one float per (matrix, k-group) of a
// tile (a tile's BN channels lie in one block: BN divides 128 and tiles start at multiples of BN).
//
// Quantizer (quantize_fp8_block): per block, s = amax / 448 (fp32; 0 for an all-zero block),
// q = e4m3(w / s) rounded to nearest even, saturating at ±448 (q = 0 where s = 0).
// Activations (quantize_fp8_rows, and on the device moe::quantize_rows_fp8): the same rule per
// token in 1 x 128 groups along K — the A operand of DeepSeek-V3's FP8 GEMMs, whose 128-wide
// groups line up with the weights' 128 x 128 blocks, so one k-block's partial sum takes the
// product of one activation scale and one weight scale.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::quant {

/// FP8 E4M3 weights with fp32 scales per 128 x 128 block (see the file comment).
struct Fp8Block : detail::RowDecoders<Fp8Block> {
  template <class T>
  using storage = std::uint8_t;
  using scale_bits = float;
  static constexpr bool kIdentity = false;
  static constexpr bool kZeros = false;
  static constexpr int kPack = 1;
  static constexpr int kGroup = 128;       ///< values along K per scale
  static constexpr int kScaleShare = 128;  ///< output channels per scale
  static constexpr const char* kName = "fp8_block128";

  /// One matrix's scales: [E][ceil(rows / 128)][ceil(K / 128)] fp32 (host or device pointer).
  struct MatrixData {
    const float* scale = nullptr;
  };
  /// A layer's matrices; a fused gate/up w1 [E, 2I, H] has the blocks of all 2I rows in w1.
  using Params = PerMatrix<MatrixData>;
  /// One matrix in the GEMM: output channel n is stored row first + n of its expert; `rows`
  /// stored rows per expert (the scales' block rows are counted over them).
  struct Operand {
    const float* scale = nullptr;
    long long rows = 0;
    long long first = 0;
    int step = 1;
  };
  struct Factors {
    float scale = 0.0f;
  };

  static Operand operand(const Params& p, Matrix m, long long rows, long long first, int step) {
    return {p.of(m).scale, rows, first, step};
  }

  DEEPSHOCK_HOST_DEVICE static constexpr long long blocks(long long v) { return (v + 127) / 128; }
  /// The scale of expert g's output channel n (of the operand) in k-group kg, for a K of k.
  DEEPSHOCK_HOST_DEVICE static float block_scale(const Operand& o, int g, long long n, long long kg, long long k) {
    return o.scale[(static_cast<long long>(g) * blocks(o.rows) + (o.first + n) / 128) * blocks(k) + kg];
  }
  DEEPSHOCK_HOST_DEVICE static Factors factors(float scale, std::uint8_t /*zero*/) { return {scale}; }
  /// Stored value q as T: e4m3(q) * scale rounded once.
  template <class T>
  DEEPSHOCK_HOST_DEVICE static T decode(std::uint8_t q, const Factors& f) {
    return T(fp8_e4m3::from_bits(q).to_float() * f.scale);
  }
  /// Values k, k + 1 of a stored row as two T in one register (k in the low half).
  template <class T>
  DEEPSHOCK_HOST_DEVICE static std::uint32_t pair(const std::uint8_t* row, int k, const Factors& f) {
    return static_cast<std::uint32_t>(decode<T>(row[k], f).bits) | (static_cast<std::uint32_t>(decode<T>(row[k + 1], f).bits) << 16);
  }

  /// Row r decoded into `out` (float or double: the same values, T(e4m3 * s)); decode_row and
  /// decode_row_ref (detail::RowDecoders) call it.
  template <class T, class Out>
  static void decode_into(const Params& p, Matrix m, const std::uint8_t* base, const RowRef& r, Out* out) {
    const std::uint8_t* q = base + r.flat() * r.cols;
    const float* s = p.of(m).scale + (r.expert * blocks(r.rows) + r.row / 128) * blocks(r.cols);
    for (long long c = 0; c < r.cols; ++c) out[c] = static_cast<Out>(static_cast<float>(decode<T>(q[c], Factors{s[c / 128]})));
  }

  static Status validate(const Params& p, bool gated, bool shared) {
    return for_each_matrix(p, gated, shared, [](const MatrixData& d, const std::string& name) {
      if (d.scale == nullptr)
        return Status::invalid_argument(name + ".scale", "must not be null (fp8_block128 weights need their block scales)");
      return Status::success();
    });
  }

  /// The GEMM's check of one operand of an N x K problem: scales present, as many stored rows
  /// per expert as output channels at least, step 1.
  static Status check(const Operand& o, long long n, long long k) {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_group_operand(kName, 1, k, o.step, o.scale, o.rows, n, 0));  // partial last blocks: any K
    if (o.rows < o.first + n)
      return Status::invalid_argument("codec.rows", "the stored rows per expert (" + std::to_string(o.rows) + ") must cover rows " +
                                                        std::to_string(o.first) + " .. " + std::to_string(o.first + n - 1));
    return Status::success();
  }
};

/// W8A8 in FP8 (DeepSeek-V3's recipe): Fp8Block's weights and scales, with the activations
/// quantized per token in 1 x 128 groups (quantize_fp8_rows; moe::quantize_rows_fp8 on the
/// device) and both operands multiplied as E4M3 on the FP8 tensor cores (mma.sync m16n8k32 e4m3,
/// sm_89+). The k-tile is one 128-group: its partial sums, kept apart from the running fp32
/// accumulators, are promoted into them times s_act(row, group) x s_weight(block) once per 128
/// of K (the hardware's FP8 accumulation keeps fewer bits than fp32). The weight a row of this
/// codec stands for is e4m3(q) * s exactly (not rounded to T: the codes go to the tensor cores
/// as they are), which is what decode_row / decode_row_ref give.
struct Fp8BlockA8 : Fp8Block {
  static constexpr const char* kName = "fp8_block128_a8";
  static constexpr bool kActFp8 = true;

  template <class T, class Out>
  static void decode_into(const Params& p, Matrix m, const std::uint8_t* base, const RowRef& r, Out* out) {
    const std::uint8_t* q = base + r.flat() * r.cols;
    const float* s = p.of(m).scale + (r.expert * blocks(r.rows) + r.row / 128) * blocks(r.cols);
    for (long long c = 0; c < r.cols; ++c)
      out[c] = static_cast<Out>(static_cast<double>(fp8_e4m3::from_bits(q[c]).to_float()) * s[c / 128]);
  }
  template <class T, class P, class W>
  static void decode_row(const P& p, Matrix m, const W* base, const RowRef& r, float* out) {
    decode_into<T>(p, m, base, r, out);
  }
  template <class T, class P, class W>
  static void decode_row_ref(const P& p, Matrix m, const W* base, const RowRef& r, double* out) {
    decode_into<T>(p, m, base, r, out);
  }
};

namespace detail {
/// The FP8 rule over tiles of `tile_rows` x 128 (128: weight blocks; 1: activation groups):
/// per tile s = amax / 448, q = e4m3(w / s), scale [ceil(rows / tile_rows)][ceil(cols / 128)].
inline Status quantize_fp8_tiles(const float* w, long long rows, long long cols, long long ld, std::uint8_t* q, long long ldq, float* scale,
                                 long long tile_rows) {
  bool empty = true;
  DEEPSHOCK_RETURN_IF_ERROR(check_quantizer_args(w, rows, cols, ld, q, ldq, 1, scale, 1, empty));
  if (empty) return Status::success();
  const long long nb = (rows + tile_rows - 1) / tile_rows, kb = Fp8Block::blocks(cols);
  for (long long i = 0; i < nb; ++i)
    for (long long j = 0; j < kb; ++j) {
      const long long r0 = tile_rows * i, r1 = std::min(rows, r0 + tile_rows), c1 = std::min(cols, 128 * j + 128);
      float amax = 0.0f;
      for (long long r = r0; r < r1; ++r)
        for (long long c = 128 * j; c < c1; ++c) amax = std::fmax(amax, std::fabs(w[r * ld + c]));
      const float s = amax / 448.0f;
      scale[i * kb + j] = s;
      for (long long r = r0; r < r1; ++r)
        for (long long c = 128 * j; c < c1; ++c) q[r * ldq + c] = s > 0.0f ? fp8_e4m3(w[r * ld + c] / s).bits : std::uint8_t{0};
    }
  return Status::success();
}
}  // namespace detail

/// Quantizes one [rows, cols] matrix w (row stride ld) to Fp8Block: q [rows][cols] (row stride
/// ldq) and scale [ceil(rows / 128)][ceil(cols / 128)] (file comment). The current rounding mode
/// must be the default (nearest even).
inline Status quantize_fp8_block(const float* w, long long rows, long long cols, long long ld, std::uint8_t* q, long long ldq,
                                 float* scale) {
  return detail::quantize_fp8_tiles(w, rows, cols, ld, q, ldq, scale, 128);
}

/// Quantizes activations v [rows, cols] (row stride ld) per row in groups of 128 columns (the
/// last may be partial): q [rows][cols] (row stride ldq) and scale [rows][ceil(cols / 128)],
/// by the rule of the file comment. Finite values only (a Status names the first other one).
inline Status quantize_fp8_rows(const float* v, long long rows, long long cols, long long ld, std::uint8_t* q, long long ldq,
                                float* scale) {
  return detail::quantize_fp8_tiles(v, rows, cols, ld, q, ldq, scale, 1);
}

/// FP8 activations on the host: row v [n] (fp32) quantized per 128-group by quantize_fp8_rows's
/// rule (bit for bit the device's moe::quantize_rows_fp8), and what the FP8 GEMM multiplies,
/// e4m3(code) * scale, written to out [n] in V's precision: float for the host executor (out
/// may be v), double for the reference (exact).
template <class V>
inline void fake_quant_fp8_row(const float* v, long long n, V* out) {
  for (long long c0 = 0; c0 < n; c0 += 128) {
    const long long c1 = std::min(n, c0 + 128);
    float amax = 0.0f;
    for (long long c = c0; c < c1; ++c) amax = std::fmax(amax, std::fabs(v[c]));
    const float s = amax / 448.0f;
    for (long long c = c0; c < c1; ++c) out[c] = s > 0.0f ? static_cast<V>(fp8_e4m3(v[c] / s).to_float()) * static_cast<V>(s) : V(0);
  }
}

}  // namespace deepshock::quant
