// deepshock/quant/fp4.hpp — 4-bit floating-point block codecs, weight-only (W4A16 on bf16 / fp16
// tensor cores): quant::Mxfp4 (OCP MX: E2M1 codes, one E8M0 scale per 32 values along K; the
// gpt-oss expert format) and quant::Nvfp4 (E2M1 codes, one E4M3 scale per 16 values, and one fp32
// factor per expert matrix); their quantizers and their reference decoding.
//
// Layout of one [N, K] matrix (an expert stack [E, N, K] is E of them back to back; the scales of
// expert e follow those of expert e - 1):
//   q       uint8 [N][K / 2]  row-major; byte j of a row holds value 2j in its low nibble and
//                             2j + 1 in its high nibble; a nibble is an E2M1 code: bit 3 the
//                             sign, bits 0-2 the magnitude index of {0, .5, 1, 1.5, 2, 3, 4, 6}
//                             (byte for byte what gpt-oss's `.blocks` [E, N, K/32, 16] and
//                             compressed-tensors' `weight_packed` [N, K/2] hold)
//   scale   uint8 [K / G][N]  group-major (N contiguous, like Int4Group's scales, so the GEMM
//                             stages a k-tile's scales for 8 channels with one 8-byte copy):
//                             E8M0 bits (Mxfp4, G = 32) or E4M3 bits (Nvfp4, G = 16). The
//                             checkpoints store them row-major [N][K / G]; the importers
//                             (quant/fp4_import.hpp) transpose them.
//   global  fp32 [E]          Nvfp4 only: the factor of each expert's matrix (ModelOpt's
//                             `weight_scale_2`; the reciprocal of compressed-tensors'
//                             `weight_global_scale`).
// Dequantized weight (the codec's definition, shared by the GEMM, the host executor and the
// reference):
//   Mxfp4:  w = T( e2m1(c) * 2^(s - 127) )   the product is exact in fp32 (subnormals included)
//           and rounds once to T: exact in bf16 for every scale up to 2^125, in fp16 for scales
//           2^-23 .. 2^13 (fp16 rounds smaller values and overflows to inf above; checkpoints
//           with such scales need bf16 activations).
//   Nvfp4:  w = T( e2m1(c) * e4m3(s) ) * global   the first product has at most 6 significant
//           bits between 2^-10 and 2688, so it is exact in both bf16 and fp16; the global factor
//           multiplies the GEMM's fp32 sums in the epilogue (one multiply per output, not per
//           weight). Decoding by value — never by splicing exponent bits — keeps every scale's
//           exponent bias right on the way to bf16 (the bug class of an engine whose bf16 path
//           produced scales 2^112 too small).
//
// Quantizers (quantize_mxfp4, quantize_nvfp4; importers take stored codes and scales as they are):
//   Mxfp4, per block of 32 with amax = max |w| (an all-zero block gets scale 2^-127):
//     MxScaleRule::ocp         s = floor(log2 amax) - 2   (OCP MX v1.0; amax/2^s in [4, 8), values
//                              beyond 6 * 2^s saturate to ±6)
//     MxScaleRule::round_up    the OCP rule after rounding amax's significand to E2M1's one bit,
//                              ties up (1.75 and above bump the exponent): compressed-tensors' rule
//     MxScaleRule::no_clip     s = ceil(log2(amax / 6))   (the smallest scale that clips nothing)
//     codes c = e2m1(w / 2^s), nearest even, saturating at ±6 (the division is exact).
//   Nvfp4 (compressed-tensors' rule): gs = 2688 * (1 / amax(matrix)) (fp32, two roundings; 1 for an
//     all-zero matrix),
//     s = e4m3(gs * (amax(block) / 6)), saturating; a zero s becomes 0.125 (E4M3's epsilon);
//     c = e2m1(w / (s / gs)), nearest even, saturating; global = 1 / gs (fp32).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::quant {

/// The two 4-bit floating-point block formats.
enum class Fp4Kind {
  mx,  ///< OCP MXFP4: E8M0 scale per 32 values
  nv,  ///< NVFP4: E4M3 scale per 16 values and an fp32 factor per expert matrix
};

/// 4-bit floating-point weights with a scale per block of values along K (see the file comment).
template <Fp4Kind Kind>
struct Fp4Block : detail::RowDecoders<Fp4Block<Kind>> {
  template <class T>
  using storage = std::uint8_t;
  using scale_bits = std::uint8_t;  ///< E8M0 or E4M3 bits
  static constexpr bool kIdentity = false;
  static constexpr bool kZeros = false;
  static constexpr bool kGlobal = Kind == Fp4Kind::nv;  ///< an fp32 factor per expert matrix
  static constexpr bool kEpilogueScale = kGlobal;       ///< the factor multiplies the fp32 sums
  static constexpr int kPack = 2;
  static constexpr int kGroup = Kind == Fp4Kind::mx ? 32 : 16;
  static constexpr const char* kName = Kind == Fp4Kind::mx ? "mxfp4" : "nvfp4";

  /// One matrix's scales (and global factors), host or device pointers.
  struct MatrixData {
    const std::uint8_t* scale = nullptr;  ///< [E][K / G][rows] E8M0 / E4M3 bits
    const float* global = nullptr;        ///< [E] (Nvfp4 only; null for Mxfp4)
  };
  /// A layer's matrices; a fused gate/up w1 [E, 2I, H] has the scales of all 2I rows in w1 (and
  /// one global factor per expert for both halves).
  using Params = PerMatrix<MatrixData>;
  /// One matrix in the GEMM: output channel n of expert g, group j at
  /// scale[(g * (K / G) + j) * rows + n] (the pointer already at the first channel); step 1.
  struct Operand {
    const std::uint8_t* scale = nullptr;
    const float* global = nullptr;
    long long rows = 0;
    int step = 1;
  };
  /// The decoding data of one (output channel, group): the block scale as a float.
  struct Factors {
    float scale = 0.0f;
  };

  static Operand operand(const Params& p, Matrix m, long long rows, long long first, int step) {
    const MatrixData& d = p.of(m);
    return {d.scale == nullptr ? nullptr : d.scale + first, d.global, rows, step};
  }

  /// A stored scale as a float (exact).
  DEEPSHOCK_HOST_DEVICE static float scale_value(std::uint8_t bits) {
    if constexpr (Kind == Fp4Kind::mx) return fp8_e8m0::from_bits(bits).to_float();
    else return fp8_e4m3::from_bits(bits).to_float();
  }
  DEEPSHOCK_HOST_DEVICE static Factors factors(std::uint8_t scale_bits_, std::uint8_t /*zero*/) { return {scale_value(scale_bits_)}; }
  /// Code c as T: e2m1(c) * scale rounded once (exact for Nvfp4; see the file comment).
  template <class T>
  DEEPSHOCK_HOST_DEVICE static T decode(unsigned c, const Factors& f) {
    return T(fp4_e2m1::from_bits(static_cast<std::uint8_t>(c)).to_float() * f.scale);
  }
  /// Values k, k + 1 (k even: one byte) of a stored row as two T in one register.
  template <class T>
  DEEPSHOCK_HOST_DEVICE static std::uint32_t pair(const std::uint8_t* row, int k, const Factors& f) {
    const unsigned b = row[k / 2];
    return static_cast<std::uint32_t>(decode<T>(b & 15u, f).bits) | (static_cast<std::uint32_t>(decode<T>(b >> 4, f).bits) << 16);
  }
  /// The epilogue factor of expert g's outputs (Nvfp4: the matrix's global factor).
  DEEPSHOCK_HOST_DEVICE static float scale(const Operand& o, int g, int /*n*/) { return o.global[g]; }

  /// Row r decoded into `out`: T(e2m1 * s) times the global factor, in float (decode_row: as the
  /// GEMM multiplies it, which scales its fp32 sums instead — rounding differs only) or double
  /// (decode_row_ref: the product exact); detail::RowDecoders calls it.
  template <class T, class Out>
  static void decode_into(const Params& p, Matrix m, const std::uint8_t* base, const RowRef& r, Out* out) {
    const MatrixData& d = p.of(m);
    const std::uint8_t* q = base + r.flat() * (r.cols / 2);
    const long long groups = r.cols / kGroup;
    const Out global = kGlobal ? static_cast<Out>(d.global[r.expert]) : Out(1);
    for (long long j = 0; j < groups; ++j) {
      const Factors f = factors(d.scale[(r.expert * groups + j) * r.rows + r.row], 0);
      for (long long c = j * kGroup; c < (j + 1) * kGroup; ++c) {
        const unsigned b = q[c / 2];
        out[c] = static_cast<Out>(static_cast<float>(decode<T>(c % 2 == 0 ? b & 15u : b >> 4, f))) * global;
      }
    }
  }

  static Status validate(const Params& p, bool gated, bool shared) {
    return for_each_matrix(p, gated, shared, [](const MatrixData& d, const std::string& name) {
      if (d.scale == nullptr)
        return Status::invalid_argument(name + ".scale", std::string("must not be null (") + kName + " weights need their block scales)");
      if (kGlobal && d.global == nullptr)
        return Status::invalid_argument(name + ".global", "must not be null (nvfp4 has an fp32 factor per expert matrix)");
      if (!kGlobal && d.global != nullptr)
        return Status::invalid_argument(name + ".global", "must be null: mxfp4 has no per-matrix factor");
      return Status::success();
    });
  }

  /// The GEMM's check of one operand of an N x K problem: whole groups, as many stored rows per
  /// expert as output channels at least, 8-byte aligned scale rows (the mainloop stages 8
  /// channels' scales with one 8-byte copy), step 1, the global factors of Nvfp4.
  static Status check(const Operand& o, long long n, long long k) {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_group_operand(kName, kGroup, k, o.step, o.scale, o.rows, n, 8));
    if (kGlobal && o.global == nullptr) return Status::invalid_argument("codec.global", "must not be null (nvfp4)");
    return Status::success();
  }
};

/// OCP MXFP4 weights (gpt-oss): E2M1 codes, an E8M0 scale per 32 values along K.
using Mxfp4 = Fp4Block<Fp4Kind::mx>;
/// NVFP4 weights (weight-only): E2M1 codes, an E4M3 scale per 16 values, an fp32 factor per
/// expert matrix.
using Nvfp4 = Fp4Block<Fp4Kind::nv>;

/// How an MXFP4 quantizer picks a block's E8M0 exponent from the block's amax (file comment).
enum class MxScaleRule { ocp, round_up, no_clip };

/// The E8M0 exponent (unbiased, -127 .. 127) of a block with largest magnitude `amax` (finite,
/// >= 0) under `rule`; 2^-127 for an all-zero block.
inline int mx_block_exponent(float amax, MxScaleRule rule) {
  if (!(amax > 0.0f)) return -127;
  int e = 0;
  const float sig = std::frexp(amax, &e);  // amax = sig * 2^e, sig in [0.5, 1): floor(log2 amax) = e - 1
  int s = e - 1 - 2;
  switch (rule) {
    case MxScaleRule::ocp: break;
    case MxScaleRule::round_up:
      if (sig >= 0.875f) ++s;  // significand (2 sig) >= 1.75 rounds to the next power of two
      break;
    case MxScaleRule::no_clip:
      // The smallest s with amax <= 6 * 2^s: amax / 2^s = 8 sig in [4, 8); above 6 take s + 1.
      if (sig > 0.75f) ++s;
      break;
  }
  return s < -127 ? -127 : s > 127 ? 127 : s;
}

namespace detail {
/// Writes 4-bit code `code` as value c of a packed row (low nibble first).
inline void put_nibble(std::uint8_t* row, long long c, unsigned code) {
  std::uint8_t& byte = row[c / 2];
  byte = c % 2 == 0 ? static_cast<std::uint8_t>((byte & 0xF0u) | code) : static_cast<std::uint8_t>((byte & 0x0Fu) | (code << 4));
}
/// The block loop both FP4 quantizers share: for each block of G values of a row, pick(amax)
/// gives the stored scale bits and the step the codes are counted in; codes e2m1(w / step)
/// (nearest even, saturating) go to q, the bits to scale[j][row].
template <int G, class Pick>
void quantize_fp4_blocks(const float* w, long long rows, long long cols, long long ld, std::uint8_t* q, long long ldq, std::uint8_t* scale,
                         Pick&& pick) {
  for (long long r = 0; r < rows; ++r) {
    const float* row = w + r * ld;
    for (long long j = 0; j < cols / G; ++j) {
      float amax = 0.0f;
      for (long long c = j * G; c < (j + 1) * G; ++c) amax = std::fmax(amax, std::fabs(row[c]));
      const auto [bits, step] = pick(amax);
      scale[j * rows + r] = bits;
      for (long long c = j * G; c < (j + 1) * G; ++c) put_nibble(q + r * ldq, c, fp4_e2m1(row[c] / step).bits);
    }
  }
}

}  // namespace detail

/// Quantizes one [rows, cols] matrix w (row stride ld) to Mxfp4: q [rows][cols / 2] (row stride
/// ldq bytes) and scale [cols / 32][rows] (E8M0 bits), by `rule` (file comment). The current
/// rounding mode must be the default (nearest even).
inline Status quantize_mxfp4(const float* w, long long rows, long long cols, long long ld, std::uint8_t* q, long long ldq,
                             std::uint8_t* scale, MxScaleRule rule = MxScaleRule::ocp) {
  bool empty = true;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_quantizer_args(w, rows, cols, ld, q, ldq, 2, scale, 32, empty));
  if (empty) return Status::success();
  detail::quantize_fp4_blocks<32>(w, rows, cols, ld, q, ldq, scale, [rule](float amax) {
    const fp8_e8m0 s = fp8_e8m0::from_exponent(mx_block_exponent(amax, rule));
    return std::pair<std::uint8_t, float>{s.bits, s.to_float()};
  });
  return Status::success();
}

/// Quantizes one [rows, cols] matrix w (row stride ld) to Nvfp4 by compressed-tensors' rule (file
/// comment): q [rows][cols / 2], scale [cols / 16][rows] (E4M3 bits) and *global (the matrix's
/// fp32 factor, 1 / gs). The current rounding mode must be the default (nearest even).
inline Status quantize_nvfp4(const float* w, long long rows, long long cols, long long ld, std::uint8_t* q, long long ldq,
                             std::uint8_t* scale, float* global) {
  bool empty = true;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_quantizer_args(w, rows, cols, ld, q, ldq, 2, scale, 16, empty));
  if (empty) return Status::success();
  if (global == nullptr) return Status::invalid_argument("global", "must not be null");
  float amax = 0.0f;
  for (long long r = 0; r < rows; ++r)
    for (long long c = 0; c < cols; ++c) amax = std::fmax(amax, std::fabs(w[r * ld + c]));
  // 2688 * fp32(1 / amax), as compressed-tensors computes it (PyTorch evaluates scalar / tensor as
  // the tensor's reciprocal times the scalar; 2688 / amax can differ in the last bit).
  const float gs = amax > 0.0f && std::isfinite(448.0f * 6.0f * (1.0f / amax)) ? 448.0f * 6.0f * (1.0f / amax) : 1.0f;
  *global = 1.0f / gs;
  detail::quantize_fp4_blocks<16>(w, rows, cols, ld, q, ldq, scale, [gs](float amax) {
    fp8_e4m3 s(gs * (amax / 6.0f));
    if (s.to_float() == 0.0f) s = fp8_e4m3(0.125f);
    return std::pair<std::uint8_t, float>{s.bits, s.to_float() / gs};
  });
  return Status::success();
}

}  // namespace deepshock::quant
