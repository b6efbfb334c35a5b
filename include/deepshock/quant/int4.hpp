// deepshock/quant/int4.hpp — quant::Int4Group: 4-bit weights with 16-bit scales (and zero
// points) per group of G values along K (W4A16, the GPTQ / AWQ / compressed-tensors family),
// its quantizer and its reference decoding.
//
// Layout of one [N, K] matrix (an expert stack [E, N, K] is E of them back to back, and the
// scales and zeros of expert e follow those of expert e - 1):
//   q      uint8 [N][K / 2]   row-major; byte j of a row holds value 2j in its low nibble and
//                             value 2j + 1 in its high nibble; codes u are unsigned, 0..15
//   scale  16-bit [K / G][N]  group-major (N contiguous, as GPTQ and AWQ store them), the bits of
//                             an fp16 or bf16 number (the codec's S)
//   zero   uint8 [K / G][N]   Int4Zero::asymmetric only: one code 0..15 per (group, row);
//                             Int4Zero::symmetric ("uint4b8") has no zeros: the zero is 8
// Dequantized weight (the codec's definition, used by the GEMM, the host executor and the
// reference alike):
//   w[n, k] = T( (u - z) * s )     s = scale[k / G][n] as float, z = zero[k / G][n] or 8;
// the product is exact in fp32 (|u - z| <= 15, s has at most 11 significant bits) and rounds
// once to the activation type T, nearest even — as the reference implementations of these
// formats compute `scales * (q - zeros)` in fp16. Group-major scales let the GEMM stage a k-tile's
// scales for a block's BN output channels with 16-byte copies (sm80_mainloop.hpp).
//
// Quantizer rules (quantize_int4_group; importers of existing checkpoints, quant/import.hpp,
// take the stored codes and scales as they are):
//   symmetric:  s = S(amax / 7), u = clamp(rne(w / s), -8, 7) + 8     (amax over the group)
//   asymmetric: lo = min(min w, 0), hi = max(max w, 0); s = S((hi - lo) / 15),
//               z = clamp(rne(-lo / s), 0, 15), u = clamp(rne(w / s) + z, 0, 15)
// (fp32 arithmetic, divisions by the scale already rounded to S, so decoding reproduces the
// grid the codes were chosen on). A group of zeros gets s = 0 and decodes to exact zeros.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::quant {

/// Where the zero point of an int4 group comes from.
enum class Int4Zero {
  symmetric,   ///< "uint4b8": codes u - 8, no zero tensor
  asymmetric,  ///< a zero code per (group, output channel)
};

/// 4-bit group-wise weights (see the file comment). G: group size along K (32, 64 or 128);
/// S: the scales' type (fp16 or bf16), independent of the activation type.
template <int G, Int4Zero Z = Int4Zero::symmetric, class S = fp16>
struct Int4Group : detail::RowDecoders<Int4Group<G, Z, S>> {
  static_assert(G == 32 || G == 64 || G == 128, "quant::Int4Group: the group size must be 32, 64 or 128.");
  static_assert(std::is_same_v<S, fp16> || std::is_same_v<S, bf16>, "quant::Int4Group: scales are fp16 or bf16.");
  template <class T>
  using storage = std::uint8_t;
  using scale_type = S;
  using scale_bits = std::uint16_t;  ///< the bits of S
  static constexpr bool kIdentity = false;
  static constexpr bool kZeros = Z == Int4Zero::asymmetric;
  static constexpr int kPack = 2;
  static constexpr int kGroup = G;
  static constexpr const char* kName = Z == Int4Zero::asymmetric ? (G == 32   ? "int4_g32_zp"
                                                                    : G == 64 ? "int4_g64_zp"
                                                                              : "int4_g128_zp")
                                                                 : (G == 32   ? "uint4b8_g32"
                                                                    : G == 64 ? "uint4b8_g64"
                                                                              : "uint4b8_g128");

  /// One matrix's scales and zeros (host or device pointers).
  struct MatrixData {
    const std::uint16_t* scale = nullptr;  ///< [E][K / G][rows] bits of S
    const std::uint8_t* zero = nullptr;    ///< [E][K / G][rows] codes; asymmetric only
  };
  /// A layer's matrices; a fused gate/up w1 [E, 2I, H] has its scales for all 2I rows in w1.
  using Params = PerMatrix<MatrixData>;
  /// One matrix in the GEMM: output channel n of expert g, group j at
  /// scale[(g * (K / G) + j) * rows + n] (the pointers already at the first channel); step must
  /// be 1 (check()).
  struct Operand {
    const std::uint16_t* scale = nullptr;
    const std::uint8_t* zero = nullptr;
    long long rows = 0;
    int step = 1;
  };
  /// The decoding data of one (output channel, group): scale and zero as floats.
  struct Factors {
    float scale = 0.0f;
    float zero = 8.0f;
  };

  static Operand operand(const Params& p, Matrix m, long long rows, long long first, int step) {
    const MatrixData& d = p.of(m);
    return {d.scale == nullptr ? nullptr : d.scale + first, d.zero == nullptr ? nullptr : d.zero + first, rows, step};
  }

  DEEPSHOCK_HOST_DEVICE static float scale_value(std::uint16_t bits) { return S::from_bits(bits).to_float(); }
  DEEPSHOCK_HOST_DEVICE static Factors factors(std::uint16_t scale_bits, std::uint8_t zero) {
    return {scale_value(scale_bits), kZeros ? static_cast<float>(zero) : 8.0f};
  }
  /// Code u as T: (u - z) * s rounded once (see the file comment).
  template <class T>
  DEEPSHOCK_HOST_DEVICE static T decode(unsigned u, const Factors& f) {
    return T((static_cast<float>(u) - f.zero) * f.scale);
  }
  /// Values k, k + 1 (k even: one byte) of a stored row as two T in one register.
  template <class T>
  DEEPSHOCK_HOST_DEVICE static std::uint32_t pair(const std::uint8_t* row, int k, const Factors& f) {
    const unsigned b = row[k / 2];
    return static_cast<std::uint32_t>(decode<T>(b & 15u, f).bits) | (static_cast<std::uint32_t>(decode<T>(b >> 4, f).bits) << 16);
  }

  static Status validate(const Params& p, bool gated, bool shared) {
    return for_each_matrix(p, gated, shared, [](const MatrixData& d, const std::string& name) {
      if (d.scale == nullptr)
        return Status::invalid_argument(name + ".scale", std::string("must not be null (") + kName + " weights need their scales)");
      if (kZeros && d.zero == nullptr)
        return Status::invalid_argument(name + ".zero", std::string("must not be null (") + kName + " has zero points)");
      if (!kZeros && d.zero != nullptr)
        return Status::invalid_argument(name + ".zero",
                                        std::string("must be null: ") + kName + " is symmetric (its zero is 8); use Int4Zero::asymmetric");
      return Status::success();
    });
  }

  /// Row r decoded into `out` (float or double: the same values, T((u - z) * s)); decode_row and
  /// decode_row_ref (detail::RowDecoders) call it.
  template <class T, class Out>
  static void decode_into(const Params& p, Matrix m, const std::uint8_t* base, const RowRef& r, Out* out) {
    const MatrixData& d = p.of(m);
    const std::uint8_t* q = base + r.flat() * (r.cols / 2);
    const long long groups = r.cols / G;
    for (long long j = 0; j < groups; ++j) {
      const long long at = (r.expert * groups + j) * r.rows + r.row;
      const Factors f = factors(d.scale[at], kZeros ? d.zero[at] : std::uint8_t{8});
      for (long long c = j * G; c < (j + 1) * G; ++c) {
        const unsigned b = q[c / 2];
        out[c] = static_cast<Out>(static_cast<float>(decode<T>(c % 2 == 0 ? b & 15u : b >> 4, f)));
      }
    }
  }

  /// The GEMM's check of one operand of an N x K problem: whole groups, as many stored rows per
  /// expert as output channels at least, 16-byte aligned scale / zero rows (the mainloop stages
  /// them with 16- and 8-byte copies), step 1.
  static Status check(const Operand& o, long long n, long long k) {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_group_operand(kName, G, k, o.step, o.scale, o.rows, n, 16));
    if (kZeros && (o.zero == nullptr || reinterpret_cast<std::uintptr_t>(o.zero) % 8 != 0))
      return Status::invalid_argument("codec.zero", "must be non-null and 8-byte aligned");
    return Status::success();
  }
};

/// Quantizes one [rows, cols] matrix w (row stride ld) into the Int4Group layout of Codec:
/// q [rows][cols / 2] (row stride ldq bytes), scale [cols / G][rows] (bits of Codec::scale_type)
/// and, for asymmetric codecs, zero [cols / G][rows]. Rounding: see the file comment; the current
/// rounding mode must be the default (nearest even).
template <class Codec>
Status quantize_int4_group(const float* w, long long rows, long long cols, long long ld, std::uint8_t* q, long long ldq,
                           std::uint16_t* scale, std::uint8_t* zero) {
  constexpr int G = Codec::kGroup;
  using S = typename Codec::scale_type;
  bool empty = true;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_quantizer_args(w, rows, cols, ld, q, ldq, 2, scale, G, empty));
  if (empty) return Status::success();
  if (Codec::kZeros && zero == nullptr) return Status::invalid_argument("zero", "must not be null (asymmetric codec)");
  const long long groups = cols / G;
  for (long long r = 0; r < rows; ++r) {
    const float* row = w + r * ld;
    for (long long j = 0; j < groups; ++j) {
      float lo = 0.0f, hi = 0.0f;
      for (long long c = j * G; c < (j + 1) * G; ++c) {
        lo = std::fmin(lo, row[c]);
        hi = std::fmax(hi, row[c]);
      }
      const float range = Codec::kZeros ? (hi - lo) / 15.0f : std::fmax(std::fabs(hi), std::fabs(lo)) / 7.0f;  // +0 for a zero group
      const S s(range);
      if (s.is_inf())
        return Status::invalid_argument("w", "row " + std::to_string(r) + " group " + std::to_string(j) +
                                                 ": the scale overflows the scale type");
      const float sf = s.to_float();
      float z = 8.0f;
      if constexpr (Codec::kZeros) z = sf > 0.0f ? std::fmin(std::fmax(std::nearbyint(-lo / sf), 0.0f), 15.0f) : 0.0f;
      scale[j * rows + r] = s.bits;
      if constexpr (Codec::kZeros) zero[j * rows + r] = static_cast<std::uint8_t>(z);
      for (long long c = j * G; c < (j + 1) * G; ++c) {
        float u = sf > 0.0f ? std::nearbyint(row[c] / sf) + z : z;
        u = std::fmin(std::fmax(u, 0.0f), 15.0f);  // symmetric: rne(w / s) in [-8, 7], plus 8
        std::uint8_t& byte = q[r * ldq + c / 2];
        const auto code = static_cast<std::uint8_t>(u);
        byte = c % 2 == 0 ? static_cast<std::uint8_t>((byte & 0xF0u) | code) : static_cast<std::uint8_t>((byte & 0x0Fu) | (code << 4));
      }
    }
  }
  return Status::success();
}

}  // namespace deepshock::quant
