// deepshock/quant/fp4_import.hpp — MXFP4 and NVFP4 checkpoint tensors into the layout of
// quant::Mxfp4 / quant::Nvfp4 (quant/fp4.hpp), without a detour through bf16.
//
// What checkpoints store, per expert matrix [N, K] (all row-major):
//   gpt-oss (MXFP4)          `<name>_blocks` uint8 [E, N, K/32, 16] and `<name>_scales` uint8
//                            [E, N, K/32] (E8M0). The blocks are byte for byte the codec's q.
//   compressed-tensors       `weight_packed` uint8 [N, K/2], `weight_scale` [N, K/G] (uint8 E8M0
//   (mxfp4- / nvfp4-pack-     for MXFP4, float8_e4m3fn for NVFP4) and, NVFP4, the 1-element
//   quantized)               `weight_global_scale` = 2688 / amax: a divisor of the block scales.
//   ModelOpt (NVFP4)         `weight` uint8 [N, K/2], `weight_scale` float8_e4m3fn [N, K/16] and
//                            the 0-d `weight_scale_2` = amax / 2688: a multiplier.
// The packed codes need no change (value 2j in the low nibble everywhere); the scales are
// transposed to the codec's group-major [K/G][N]; the global factor becomes the codec's
// multiplier (compressed-tensors: 1 / weight_global_scale, rounded once in fp32). The producers
// dequantize in their own order — compressed-tensors computes bf16(c * fp32(s / gs)) — so a GEMM on
// the imported weights equals the producer's dequantized GEMM up to fp32 rounding, not bitwise;
// dequantize_nvfp4_ct() reproduces compressed-tensors' own dequantization bit for bit for tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/quant/fp4.hpp"

namespace deepshock::quant {

/// Which stored rows make up the imported matrices: row r of expert e is stored row
/// first + r * step of that expert's `rows` rows (0: the matrix's own n rows). The default takes
/// every row; {2I, 0, 2} and {2I, 1, 2} pick gpt-oss's interleaved gate and up rows.
struct RowPick {
  long long rows = 0;
  long long first = 0;
  long long step = 1;
};

/// Copies a stack of `experts` FP4 matrices [n, k] stored row-major — packed bytes [E][n][k/2] and
/// scales [E][n][k/G] (gpt-oss blocks/scales, compressed-tensors weight_packed/weight_scale) — into
/// Codec's layout: q [E][n][k/2] (the same bytes) and scale [E][k/G][n]. `pick` selects the rows
/// of a larger stored stack (a fused gate/up tensor). Rejects sizes that are not whole blocks and
/// scales that are NaN (E8M0 0xFF; E4M3 0x7F / 0xFF) or negative (E4M3), naming the first bad one.
template <class Codec>
Status import_fp4_rows(const std::uint8_t* packed, const std::uint8_t* scales, long long experts, long long n, long long k, std::uint8_t* q,
                       std::uint8_t* scale, RowPick pick = {}) {
  constexpr int G = Codec::kGroup;
  if (experts < 0 || n < 0 || k < 0) return Status::invalid_argument("experts/n/k", "must be >= 0");
  const long long src_rows = pick.rows == 0 ? n : pick.rows;
  if (pick.first < 0 || pick.step < 1 || (n > 0 && pick.first + (n - 1) * pick.step >= src_rows))
    return Status::invalid_argument("pick", "rows first + r * step (r < " + std::to_string(n) + ") must lie in [0, " +
                                                std::to_string(src_rows) + ")");
  if (k % G != 0)
    return Status::invalid_argument("k", std::string("must be a multiple of ") + Codec::kName + "'s block size " + std::to_string(G) +
                                             ", got " + std::to_string(k));
  if (experts == 0 || n == 0 || k == 0) return Status::success();
  if (packed == nullptr) return Status::invalid_argument("packed", "must not be null");
  if (scales == nullptr) return Status::invalid_argument("scales", "must not be null");
  if (q == nullptr) return Status::invalid_argument("q", "must not be null");
  if (scale == nullptr) return Status::invalid_argument("scale", "must not be null");
  const long long groups = k / G, bytes = k / 2;
  for (long long e = 0; e < experts; ++e)
    for (long long r = 0; r < n; ++r) {
      const long long src = e * src_rows + pick.first + r * pick.step;  // the stored row
      for (long long j = 0; j < groups; ++j) {
        const std::uint8_t s = scales[src * groups + j];
        const bool bad = Codec::kGlobal ? (s & 0x7Fu) == 0x7Fu || (s & 0x80u) != 0 : s == 0xFFu;
        if (bad)
          return Status::invalid_argument("scales", "scale [" + std::to_string(e) + ", " + std::to_string(src - e * src_rows) + ", " +
                                                        std::to_string(j) + "] is " +
                                                        (Codec::kGlobal ? "NaN or negative (E4M3)" : "NaN (E8M0 0xFF)"));
        scale[(e * groups + j) * n + r] = s;
      }
      for (long long b = 0; b < bytes; ++b) q[(e * n + r) * bytes + b] = packed[src * bytes + b];
    }
  return Status::success();
}

/// How a checkpoint states NVFP4's per-matrix fp32 factor.
enum class NvGlobal {
  multiplier,  ///< ModelOpt `weight_scale_2` (amax / 2688): w = c * s * g
  divisor,     ///< compressed-tensors `weight_global_scale` (2688 / amax): w = c * s / g
};

/// The codec's global factors (multipliers) of `experts` matrices from a checkpoint's values.
inline Status import_nvfp4_global(const float* in, long long experts, NvGlobal convention, float* out) {
  if (experts < 0) return Status::invalid_argument("experts", "must be >= 0");
  if (experts == 0) return Status::success();
  if (in == nullptr) return Status::invalid_argument("global", "must not be null");
  if (out == nullptr) return Status::invalid_argument("out", "must not be null");
  for (long long e = 0; e < experts; ++e) {
    if (!(in[e] > 0.0f) || !std::isfinite(in[e]))
      return Status::invalid_argument("global", "global scale [" + std::to_string(e) + "] must be finite and > 0");
    out[e] = convention == NvGlobal::multiplier ? in[e] : 1.0f / in[e];
  }
  return Status::success();
}

/// compressed-tensors' own NVFP4 dequantization of one value (bf16(c * fp32(s / gs)), for tests).
inline bf16 dequantize_nvfp4_ct(unsigned code, std::uint8_t scale_bits, float global_scale) {
  const float step = fp8_e4m3::from_bits(scale_bits).to_float() / global_scale;
  return bf16(fp4_e2m1::from_bits(static_cast<std::uint8_t>(code)).to_float() * step);
}

}  // namespace deepshock::quant
