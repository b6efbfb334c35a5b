// deepshock/quant/int8.hpp — host side of quant::Int8Channel: the quantizer and the reference
// decoding that the host executor and the double-precision reference use.
//
// Quantizer rule (symmetric, per output channel, the "amax / 127" convention of most LLM
// serving stacks; PyTorch's observers and compressed-tensors divide by 127.5 instead, and an
// importer takes stored scales as they are):
//   scale[r] = amax(|w[r, :]|) / 127          (fp32)
//   q[r, c]  = clamp(rne(w[r, c] / scale[r]), -127, 127)   (fp32 division, round half to even)
// A row of zeros gets scale 0 and q = 0, so it decodes to exact zeros. Non-finite weights are
// rejected (a Status naming the element), never quantized into garbage.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "deepshock/core/status.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::quant {

/// Quantizes `rows` x `cols` weights w (row-major, row stride `ld` >= cols) into q (row stride
/// `ldq` >= cols) and one scale per row. Rounding uses the current rounding mode, which must be
/// the default round-to-nearest-even.
inline Status quantize_int8_channel(const float* w, long long rows, long long cols, long long ld, std::int8_t* q, long long ldq,
                                    float* scale) {
  bool empty = true;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_quantizer_args(w, rows, cols, ld, q, ldq, 1, scale, 1, empty));
  if (empty) return Status::success();
  for (long long r = 0; r < rows; ++r) {
    const float* row = w + r * ld;
    float amax = 0.0f;
    for (long long c = 0; c < cols; ++c) amax = std::fmax(amax, std::fabs(row[c]));
    const float s = amax / 127.0f;
    scale[r] = s;
    for (long long c = 0; c < cols; ++c) {
      float v = s > 0.0f ? std::nearbyint(row[c] / s) : 0.0f;
      v = std::fmin(std::fmax(v, -127.0f), 127.0f);
      q[r * ldq + c] = static_cast<std::int8_t>(v);
    }
  }
  return Status::success();
}

/// W8A8 activations on the host: row v [n] replaced by its per-row int8 quantization, dequantized
/// (q * scale), in V's precision. V = float follows moe/act_quant.hpp's kernel rule bit for bit
/// (scale = amax / 127, codes rne(v / scale) clamped to [-127, 127]); V = double is the
/// reference's version of the same rule.
template <class V>
inline void fake_quant_int8_row(V* v, long long n) {
  V amax = 0;
  for (long long c = 0; c < n; ++c) amax = std::fmax(amax, std::fabs(v[c]));
  const V s = amax / V(127);
  for (long long c = 0; c < n; ++c) {
    const V q = s > V(0) ? std::fmin(std::fmax(std::nearbyint(v[c] / s), V(-127)), V(127)) : V(0);
    v[c] = q * s;
  }
}

/// The dequantized weight q * scale (the reference's view of a stored element).
inline double decode_ref(Int8Channel, std::int8_t q, float scale) { return static_cast<double>(q) * static_cast<double>(scale); }

}  // namespace deepshock::quant
