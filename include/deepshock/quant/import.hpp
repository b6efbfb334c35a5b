// deepshock/quant/import.hpp — importers of 4-bit group-quantized checkpoints (GPTQ v1 / v2,
// AWQ GEMM, compressed-tensors pack-quantized) into deepshock's canonical int4 layout, and the
// reference dequantization of that layout. Host only, plain C++ (no CUDA).
//
// Canonical layout of one [n, k] weight (n output channels, k input features, groups of G
// along k, G in {32, 64, 128}; quant/int4.hpp's Int4Group reads it):
//   q      uint8  [n][k/2]  byte j of row r: value k = 2j in the low nibble, 2j + 1 in the high
//                           one; codes u are unsigned, 0..15
//   scale  uint16 [k/G][n]  group-major; the bits of an fp16 or bf16 number
//   zero   uint8  [k/G][n]  asymmetric only, codes 0..15; symmetric ("uint4b8") has none and
//                           its zero is 8
//   w[r][c] = T((u - z) * s): the product is exact in fp32 and rounds once to T, nearest even.
//
// The source formats, in words (int32 words are read as unsigned 32-bit patterns; "slot i" of a
// word is bits 4i..4i+3):
//
// GPTQ (AutoGPTQ, GPTQModel, optimum; tensors qweight, qzeros, scales, g_idx):
//   qweight int32 [k/8][n]    packed along k: slot i of word (r, c) is the code of input k = 8r + i
//                             of output channel c. Codes are unsigned 0..15.
//   qzeros  int32 [k/G][n/8]  packed along n: slot i of word (g, j) is the zero of channel 8j + i
//   scales  16-bit [k/G][n]   fp16 as GPTQModel writes them (bf16 accepted as well)
//   g_idx   int32 [k]         the group of each input k. Only g_idx[k] == k / G is accepted:
//                             act-order ("desc_act") checkpoints permute groups, and are refused.
//   w = (u - z) * s. Two zero conventions exist:
//     v2 ("gptq_v2"): the slots hold z itself.
//     v1 ("gptq", the common one): the writer subtracted 1 from every zero before saving. GPTQModel
//        does it as one 32-bit subtraction of 0x11111111 per word (a zero of 0 borrows from the
//        slot above it) and loads by adding 0x11111111 back; this importer does the same, so
//        it inverts every word GPTQModel writes. Kernels that add 1 to each slot separately agree
//        whenever no zero is 0. Symmetric checkpoints hold z = 8 (v1 slots: 7).
//
// AWQ, GEMM flavour (llm-awq, AutoAWQ, GPTQModel; tensors qweight, qzeros, scales):
//   qweight int32 [k][n/8]    packed along n, interleaved: slot i of word (r, j) holds output
//                             channel 8j + kAwqOrder[i], kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7}
//   qzeros  int32 [k/G][n/8]  the same interleave; the slots hold z itself
//   scales  16-bit [k/G][n]   fp16 or bf16 (the model's dtype)
//   w = (u - z) * s.
//
// compressed-tensors "pack-quantized" (vLLM / llm-compressor; weight_packed, weight_scale,
// weight_zero_point, strategy "group", num_bits 4):
//   The package quantizes to signed values x in [-8, 7] and stores x + 8 (so slots are unsigned).
//   weight_packed     int32 [n][k/8]  packed along k: slot i of word (r, j) holds input 8j + i
//                                     of row r (little-endian bytes of a row are exactly q's row)
//   weight_scale      16-bit [n][k/G] channel-major (transposed on import)
//   weight_zero_point int32 [n/8][k/G] asymmetric schemes only: packed along n (slot i of word
//                                     (j, g) is channel 8j + i), signed zero + 8 as well
//   w = (x - x_zero) * s = (u - z) * s with the stored unsigned values; symmetric: z = 8.
//
// Every importer checks all its arguments and all values before it writes anything: on error the
// destination is untouched. Destination dst.zero == nullptr asks for the symmetric layout: the
// source's zeros must then all be 8 (a symmetric checkpoint), else the import is refused; with
// dst.zero set, the zeros are written (8 where the source has none).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock::quant {

/// The bit format of the 16-bit scales.
enum class Int4ScaleType { fp16, bf16 };

/// The canonical layout's parameters: an [n, k] weight in groups of `group` along k.
struct Int4Layout {
  long long n = 0;                                 ///< output channels; a multiple of 8
  long long k = 0;                                 ///< input features; a multiple of group
  long long group = 0;                             ///< 32, 64 or 128
  Int4ScaleType scale_type = Int4ScaleType::fp16;  ///< what the scale bits mean
};

/// Caller-owned destination in the canonical layout (sizes: see the file comment).
struct Int4Target {
  std::uint8_t* q = nullptr;       ///< [n][k/2]
  std::uint16_t* scale = nullptr;  ///< [k/group][n]
  std::uint8_t* zero = nullptr;    ///< [k/group][n]; nullptr: symmetric layout (zero 8)
};

/// Read-only view of the canonical layout (dequantize_int4_ref).
struct Int4View {
  const std::uint8_t* q = nullptr;
  const std::uint16_t* scale = nullptr;
  const std::uint8_t* zero = nullptr;  ///< nullptr: symmetric (zero 8)
};

/// GPTQ checkpoint tensors of one linear layer (shapes in the file comment).
struct GptqTensors {
  const std::int32_t* qweight = nullptr;
  const std::int32_t* qzeros = nullptr;
  const std::uint16_t* scales = nullptr;
  const std::int32_t* g_idx = nullptr;  ///< optional: nullptr means k / group
};
/// GPTQ's two conventions for the stored zeros.
enum class GptqZeros {
  v1,  ///< checkpoint format "gptq": stored zero = z - 1 (see the file comment)
  v2,  ///< checkpoint format "gptq_v2": stored zero = z
};

/// AWQ GEMM-format tensors of one linear layer.
struct AwqTensors {
  const std::int32_t* qweight = nullptr;
  const std::int32_t* qzeros = nullptr;
  const std::uint16_t* scales = nullptr;
};

/// compressed-tensors pack-quantized tensors of one linear layer.
struct PackQuantizedTensors {
  const std::int32_t* weight_packed = nullptr;
  const std::uint16_t* weight_scale = nullptr;
  const std::int32_t* weight_zero_point = nullptr;  ///< nullptr for a symmetric scheme
};

/// Slot of an AWQ word holding channel 8j + c is kAwqSlot[c] (the inverse of {0,2,4,6,1,3,5,7}).
inline constexpr int kAwqSlot[8] = {0, 4, 1, 5, 2, 6, 3, 7};

namespace import_detail {

inline std::uint32_t word_bits(std::int32_t w) { return static_cast<std::uint32_t>(w); }
inline unsigned slot(std::uint32_t w, int i) { return (w >> (4 * i)) & 15u; }

inline Status check_layout(const Int4Layout& l) {
  constexpr long long kMax = 1LL << 31;
  if (l.n <= 0 || l.n >= kMax) return Status::invalid_argument("layout.n", "must be in [1, 2^31), got " + std::to_string(l.n));
  if (l.k <= 0 || l.k >= kMax) return Status::invalid_argument("layout.k", "must be in [1, 2^31), got " + std::to_string(l.k));
  if (l.n % 8 != 0)
    return Status::invalid_argument("layout.n", "must be a multiple of 8 (eight 4-bit values per int32), got " + std::to_string(l.n));
  if (l.k % 8 != 0)
    return Status::invalid_argument("layout.k", "must be a multiple of 8 (eight 4-bit values per int32), got " + std::to_string(l.k));
  if (l.group != 32 && l.group != 64 && l.group != 128)
    return Status::invalid_argument("layout.group", "must be 32, 64 or 128, got " + std::to_string(l.group));
  if (l.k % l.group != 0)
    return Status::invalid_argument("layout.group", "must divide layout.k: k = " + std::to_string(l.k) + " is not a multiple of " +
                                                        std::to_string(l.group));
  if (l.scale_type != Int4ScaleType::fp16 && l.scale_type != Int4ScaleType::bf16)
    return Status::invalid_argument("layout.scale_type", "must be fp16 or bf16");
  return Status::success();
}

inline Status check_target(const Int4Target& d) {
  if (d.q == nullptr) return Status::invalid_argument("dst.q", "must not be null");
  if (d.scale == nullptr) return Status::invalid_argument("dst.scale", "must not be null");
  return Status::success();
}

inline bool scale_finite(std::uint16_t bits, Int4ScaleType t) {
  return t == Int4ScaleType::fp16 ? (bits & 0x7C00u) != 0x7C00u : (bits & 0x7F80u) != 0x7F80u;
}

/// Scales at src[g * gs + n * ns] for group g, channel n: all finite.
inline Status check_scales(const std::uint16_t* src, long long gs, long long ns, const Int4Layout& l, const char* name) {
  for (long long g = 0; g < l.k / l.group; ++g)
    for (long long n = 0; n < l.n; ++n)
      if (!scale_finite(src[g * gs + n * ns], l.scale_type))
        return Status::invalid_argument(name, "scale of group " + std::to_string(g) + ", channel " + std::to_string(n) +
                                                  " is not finite (inf or NaN)");
  return Status::success();
}

/// Zero of group g, channel n: `zero_of(g, n)`. A symmetric import needs every zero to be 8.
template <class ZeroOf>
Status check_symmetric(ZeroOf zero_of, const Int4Layout& l, const char* name) {
  for (long long g = 0; g < l.k / l.group; ++g)
    for (long long n = 0; n < l.n; ++n)
      if (const unsigned z = zero_of(g, n); z != 8)
        return Status::invalid_argument(
            name, "the zero of group " + std::to_string(g) + ", channel " + std::to_string(n) + " is " + std::to_string(z) +
                      ", not 8: a symmetric import (dst.zero null) needs every zero to be 8; pass dst.zero for the asymmetric layout");
  return Status::success();
}

/// Writes scales and (when dst.zero is set) zeros; `scale_of(g, n)`, `zero_of(g, n)`.
template <class ScaleOf, class ZeroOf>
void write_factors(const Int4Target& d, const Int4Layout& l, ScaleOf scale_of, ZeroOf zero_of) {
  for (long long g = 0; g < l.k / l.group; ++g)
    for (long long n = 0; n < l.n; ++n) {
      d.scale[g * l.n + n] = scale_of(g, n);
      if (d.zero != nullptr) d.zero[g * l.n + n] = static_cast<std::uint8_t>(zero_of(g, n));
    }
}

}  // namespace import_detail

/// GPTQ (qweight [k/8][n], qzeros [k/G][n/8], scales [k/G][n], optional g_idx [k]) into the
/// canonical layout. `zeros` says how the qzeros were stored (v1: checkpoint format "gptq").
/// dst.zero == nullptr imports a symmetric checkpoint (every zero 8, v2 sense) as uint4b8.
inline Status import_gptq(const GptqTensors& src, GptqZeros zeros, const Int4Layout& layout, const Int4Target& dst) {
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_layout(layout));
  if (src.qweight == nullptr) return Status::invalid_argument("src.qweight", "must not be null");
  if (src.qzeros == nullptr) return Status::invalid_argument("src.qzeros", "must not be null");
  if (src.scales == nullptr) return Status::invalid_argument("src.scales", "must not be null");
  if (zeros != GptqZeros::v1 && zeros != GptqZeros::v2) return Status::invalid_argument("zeros", "must be GptqZeros::v1 or GptqZeros::v2");
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_target(dst));
  const long long n = layout.n, k = layout.k, G = layout.group;
  if (src.g_idx != nullptr)
    for (long long c = 0; c < k; ++c)
      if (src.g_idx[c] != c / G)
        return Status::invalid_argument("src.g_idx", "g_idx[" + std::to_string(c) + "] is " + std::to_string(src.g_idx[c]) +
                                                         ", not k / group = " + std::to_string(c / G) +
                                                         ": act-order (desc_act) checkpoints are not supported");
  const std::uint32_t add = zeros == GptqZeros::v1 ? 0x11111111u : 0u;  // v1 -> v2, modulo 2^32
  auto zero_of = [&](long long g, long long c) {
    return import_detail::slot(import_detail::word_bits(src.qzeros[g * (n / 8) + c / 8]) + add, int(c % 8));
  };
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_scales(src.scales, n, 1, layout, "src.scales"));
  if (dst.zero == nullptr) DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_symmetric(zero_of, layout, "src.qzeros"));

  // Word (r, c) holds inputs 8r..8r+7 of channel c; its byte b is q's byte 4r + b of row c.
  for (long long r = 0; r < k / 8; ++r)
    for (long long c = 0; c < n; ++c) {
      const std::uint32_t w = import_detail::word_bits(src.qweight[r * n + c]);
      for (int b = 0; b < 4; ++b) dst.q[c * (k / 2) + 4 * r + b] = static_cast<std::uint8_t>(w >> (8 * b));
    }
  auto scale_of = [&](long long g, long long c) { return src.scales[g * n + c]; };
  import_detail::write_factors(dst, layout, scale_of, zero_of);
  return Status::success();
}

/// AWQ GEMM format (qweight [k][n/8], qzeros [k/G][n/8], scales [k/G][n]; interleaved slots)
/// into the canonical layout. dst.zero == nullptr: symmetric, every zero must be 8.
inline Status import_awq_gemm(const AwqTensors& src, const Int4Layout& layout, const Int4Target& dst) {
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_layout(layout));
  if (src.qweight == nullptr) return Status::invalid_argument("src.qweight", "must not be null");
  if (src.qzeros == nullptr) return Status::invalid_argument("src.qzeros", "must not be null");
  if (src.scales == nullptr) return Status::invalid_argument("src.scales", "must not be null");
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_target(dst));
  const long long n = layout.n, k = layout.k;
  auto zero_of = [&](long long g, long long c) {
    return import_detail::slot(import_detail::word_bits(src.qzeros[g * (n / 8) + c / 8]), kAwqSlot[c % 8]);
  };
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_scales(src.scales, n, 1, layout, "src.scales"));
  if (dst.zero == nullptr) DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_symmetric(zero_of, layout, "src.qzeros"));

  // Rows 2b and 2b + 1 of qweight give byte b of every q row (low and high nibble).
  for (long long b = 0; b < k / 2; ++b)
    for (long long j = 0; j < n / 8; ++j) {
      const std::uint32_t lo = import_detail::word_bits(src.qweight[(2 * b) * (n / 8) + j]);
      const std::uint32_t hi = import_detail::word_bits(src.qweight[(2 * b + 1) * (n / 8) + j]);
      for (int c = 0; c < 8; ++c)
        dst.q[(8 * j + c) * (k / 2) + b] =
            static_cast<std::uint8_t>(import_detail::slot(lo, kAwqSlot[c]) | (import_detail::slot(hi, kAwqSlot[c]) << 4));
    }
  auto scale_of = [&](long long g, long long c) { return src.scales[g * n + c]; };
  import_detail::write_factors(dst, layout, scale_of, zero_of);
  return Status::success();
}

/// compressed-tensors pack-quantized, group strategy, 4 bits (weight_packed [n][k/8],
/// weight_scale [n][k/G], weight_zero_point [n/8][k/G] or null for a symmetric scheme) into the
/// canonical layout. dst.zero == nullptr: symmetric, every zero must be 8 (a symmetric scheme's
/// are); with dst.zero set, a symmetric scheme's zeros are written as 8.
inline Status import_pack_quantized(const PackQuantizedTensors& src, const Int4Layout& layout, const Int4Target& dst) {
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_layout(layout));
  if (src.weight_packed == nullptr) return Status::invalid_argument("src.weight_packed", "must not be null");
  if (src.weight_scale == nullptr) return Status::invalid_argument("src.weight_scale", "must not be null");
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_target(dst));
  const long long n = layout.n, k = layout.k, groups = k / layout.group;
  auto zero_of = [&](long long g, long long c) -> unsigned {
    if (src.weight_zero_point == nullptr) return 8u;
    return import_detail::slot(import_detail::word_bits(src.weight_zero_point[(c / 8) * groups + g]), int(c % 8));
  };
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_scales(src.weight_scale, 1, groups, layout, "src.weight_scale"));
  if (dst.zero == nullptr) DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_symmetric(zero_of, layout, "src.weight_zero_point"));

  for (long long c = 0; c < n; ++c)
    for (long long j = 0; j < k / 8; ++j) {
      const std::uint32_t w = import_detail::word_bits(src.weight_packed[c * (k / 8) + j]);
      for (int b = 0; b < 4; ++b) dst.q[c * (k / 2) + 4 * j + b] = static_cast<std::uint8_t>(w >> (8 * b));
    }
  auto scale_of = [&](long long g, long long c) { return src.weight_scale[c * groups + g]; };
  import_detail::write_factors(dst, layout, scale_of, zero_of);
  return Status::success();
}

/// Reference dequantization of the canonical layout into out [n][k] (row-major):
///   Out = float:      the exact product (u - z) * s in fp32
///   Out = fp16, bf16: that product rounded once to Out, nearest even (the codec's weight)
/// s is read as layout.scale_type. Checks the layout, the pointers and that zeros are 0..15.
template <class Out>
Status dequantize_int4_ref(const Int4View& src, const Int4Layout& layout, Out* out) {
  static_assert(std::is_same_v<Out, float> || std::is_same_v<Out, fp16> || std::is_same_v<Out, bf16>,
                "quant::dequantize_int4_ref: the output is float, fp16 or bf16");
  DEEPSHOCK_RETURN_IF_ERROR(import_detail::check_layout(layout));
  if (src.q == nullptr) return Status::invalid_argument("src.q", "must not be null");
  if (src.scale == nullptr) return Status::invalid_argument("src.scale", "must not be null");
  if (out == nullptr) return Status::invalid_argument("out", "must not be null");
  const long long n = layout.n, k = layout.k, G = layout.group;
  if (src.zero != nullptr)
    for (long long i = 0; i < (k / G) * n; ++i)
      if (src.zero[i] > 15)
        return Status::invalid_argument("src.zero", "element " + std::to_string(i) + " is " + std::to_string(src.zero[i]) + ", not 0..15");
  for (long long r = 0; r < n; ++r)
    for (long long c = 0; c < k; ++c) {
      const long long at = (c / G) * n + r;
      const std::uint16_t sb = src.scale[at];
      const float s = layout.scale_type == Int4ScaleType::fp16 ? fp16::from_bits(sb).to_float() : bf16::from_bits(sb).to_float();
      const unsigned byte = src.q[r * (k / 2) + c / 2];
      const int u = static_cast<int>(c % 2 == 0 ? byte & 15u : byte >> 4);
      const int z = src.zero != nullptr ? static_cast<int>(src.zero[at]) : 8;
      const float w = static_cast<float>(u - z) * s;  // exact: |u - z| <= 15, s has <= 11 significant bits
      if constexpr (std::is_same_v<Out, float>) {
        out[r * k + c] = w;
      } else {
        out[r * k + c] = Out::from_float(w);
      }
    }
  return Status::success();
}

}  // namespace deepshock::quant
