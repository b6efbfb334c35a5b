// deepshock/moe/host_rows.hpp — the host executor's inner loops (moe/host_layer.hpp): fp32 dot
// products in one fixed order (independent of the vector width and of the thread count) and the
// conversion of a weight row to fp32 — exactly for bf16 / fp16, dequantized for a quantized
// codec. Plain C++, no CUDA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::moe {

// `#pragma GCC unroll n` on the host executor's short fixed-count loops, so that they unroll
// (and their vectors stay in registers) at -O2 too; GCC and Clang take it, nvcc's front end not.
#if defined(__GNUC__) && !DEEPSHOCK_CUDA
#define DEEPSHOCK_HOST_PRAGMA_(x) _Pragma(#x)
#define DEEPSHOCK_HOST_UNROLL(n) DEEPSHOCK_HOST_PRAGMA_(GCC unroll n)
#else
#define DEEPSHOCK_HOST_UNROLL(n)
#endif

namespace host {

namespace detail {
/// Lanes (independent partial sums) of every fp32 dot product of the host executor (dots_fp32).
inline constexpr int kDotLanes = 16;

/// out[t] = w . x[t] over n floats for t < N, each in the executor's fixed order: element c is
/// added to lane c % kDotLanes (c ascending; each product rounded to fp32, then added), then the
/// lanes are folded in halves (for s = 8, 4, 2, 1: lane l += lane l + s, l < s). Independent lanes
/// vectorise without reassociation (no fast-math needed), and the order depends neither on the
/// vector width nor on N (N rows share the loads of w). Also prefetches
/// [prefetch, prefetch + prefetch_bytes), where given.
template <int N>
inline void dots_fp32(const float* __restrict w, const float* const* __restrict x, int n, float* __restrict out,
                      const void* prefetch = nullptr, std::size_t prefetch_bytes = 0) {
  float acc[N][kDotLanes] = {};
  int c = 0;
  std::size_t pf = 0;
#if defined(__GNUC__)
  // GNU vector extensions, at the target's register width: lane l of the order above is element
  // l % W of vector l / W, so the order is that of the scalar loop whatever W is. The prefetches
  // (into L2) are spread over the loop, one cache line every `every` steps.
  {
    const int steps = n / kDotLanes, lines = static_cast<int>((prefetch_bytes + 63) / 64);
    const int every = lines > 0 && steps > lines ? steps / lines : 1;
    int countdown = every;
#if defined(__AVX512F__)
    constexpr int W = 16;
#elif defined(__AVX__)
    constexpr int W = 8;
#else
    constexpr int W = 4;
#endif
    constexpr int S = kDotLanes / W;
    typedef float Vec __attribute__((vector_size(W * sizeof(float))));
    Vec v[N][S];
    DEEPSHOCK_HOST_UNROLL(8)
    for (int t = 0; t < N; ++t) DEEPSHOCK_HOST_UNROLL(4)
    for (int q = 0; q < S; ++q) v[t][q] = Vec{};
    for (; c + kDotLanes <= n; c += kDotLanes) {
      if (--countdown == 0) {
        countdown = every;
        if (pf < prefetch_bytes) {
          __builtin_prefetch(static_cast<const char*>(prefetch) + pf, 0, 1);
          pf += 64;
        }
      }
      Vec wv[S];
      DEEPSHOCK_HOST_UNROLL(4)
      for (int q = 0; q < S; ++q) __builtin_memcpy(&wv[q], w + c + q * W, sizeof(Vec));
      DEEPSHOCK_HOST_UNROLL(8)
      for (int t = 0; t < N; ++t) DEEPSHOCK_HOST_UNROLL(4)
      for (int q = 0; q < S; ++q) {
        Vec xv;
        __builtin_memcpy(&xv, x[t] + c + q * W, sizeof(Vec));
        v[t][q] += wv[q] * xv;
      }
    }
    for (int t = 0; t < N; ++t) __builtin_memcpy(acc[t], v[t], sizeof v[t]);
  }
#else
  for (; c + kDotLanes <= n; c += kDotLanes)
    for (int t = 0; t < N; ++t)
      for (int l = 0; l < kDotLanes; ++l) acc[t][l] += w[c + l] * x[t][c + l];
#endif
#if defined(__GNUC__)
  for (; pf < prefetch_bytes; pf += 64) __builtin_prefetch(static_cast<const char*>(prefetch) + pf, 0, 1);
#else
  (void)prefetch;
  (void)pf;
#endif
  for (int t = 0; t < N; ++t) {
    for (int l = 0; c + l < n; ++l) acc[t][l] += w[c + l] * x[t][c + l];
    for (int s = kDotLanes / 2; s > 0; s /= 2)
      for (int l = 0; l < s; ++l) acc[t][l] += acc[t][l + s];
    out[t] = acc[t][0];
  }
}

/// a . b over n floats, in dots_fp32's order.
inline float dot_fp32(const float* a, const float* b, int n) {
  float r;
  dots_fp32<1>(a, &b, n, &r);
  return r;
}

/// out[q] = w . x[q] for q < m: dots_fp32 on two rows at a time (the same bits as one at a time).
/// [prefetch, prefetch + prefetch_bytes) (the caller's next weight row) is prefetched, spread
/// over the calls, so that memory traffic overlaps with the arithmetic.
inline void dot_rows(const float* w, const float* const* x, long long m, int n, float* out, const void* prefetch,
                     std::size_t prefetch_bytes) {
  const long long calls = (m + 1) / 2;
  const std::size_t lines = (prefetch_bytes + 63) / 64;
  const std::size_t per_call = calls > 0 ? 64 * ((lines + static_cast<std::size_t>(calls) - 1) / static_cast<std::size_t>(calls)) : 0;
  const char* pf = static_cast<const char*>(prefetch);
  std::size_t pf_left = prefetch_bytes;
  for (long long q = 0; q < m; q += 2) {
    const std::size_t bytes = pf_left < per_call ? pf_left : per_call;
    if (q + 1 < m) dots_fp32<2>(w, x + q, n, out + q, pf, bytes);
    else dots_fp32<1>(w, x + q, n, out + q, pf, bytes);
    pf += bytes;
    pf_left -= bytes;
  }
}

/// fp16 bits -> float, exactly as fp16::to_float (NaN -> quiet NaN keeping sign and payload),
/// in integer steps and masks (no branches, so a loop over it vectorises, and no denormal
/// arithmetic, so flush-to-zero modes do not change it).
inline float fp16_bits_to_float(std::uint32_t h) {
  using deepshock::detail::bits_to_float;
  using deepshock::detail::float_to_bits;
  const std::uint32_t em = h & 0x7FFFu;
  std::uint32_t r = (em << 13) + 0x38000000u;                           // normal: exponent 15 -> 127 bias
  r += (0u - static_cast<std::uint32_t>(em >= 0x7C00u)) & 0x38000000u;  // inf, NaN: exponent 255
  r |= (0u - static_cast<std::uint32_t>(em > 0x7C00u)) & 0x00400000u;   // NaN: quiet
  // Subnormal or zero, m * 2^-24 = 2^-14 (1 + m / 1024) - 2^-14: exact, and normal or zero.
  const std::uint32_t sub = float_to_bits(bits_to_float(r + 0x00800000u) - 0x1p-14f);
  const std::uint32_t is_sub = 0u - static_cast<std::uint32_t>(em < 0x0400u);
  return bits_to_float(((r & ~is_sub) | (sub & is_sub)) | ((h & 0x8000u) << 16));
}

/// One weight as float, exactly (T::to_float), in a form that vectorises.
template <class T>
inline float weight_to_float(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, bf16>) return deepshock::detail::bits_to_float(static_cast<std::uint32_t>(v.bits) << 16);
  else if constexpr (std::is_same_v<T, fp16>) return fp16_bits_to_float(v.bits);
  else return v.to_float();
}

/// Row `src` [n] as floats: `src` itself for float, else converted (exactly) into `scratch`.
template <class T>
inline const float* row_as_float(const T* __restrict src, int n, float* __restrict scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return src;
  } else {
    // Fixed-size chunks, which the compiler vectorises at -O2 as well (no epilogue to cost).
    constexpr int C = 16;
    int c = 0;
    for (; c + C <= n; c += C)
      for (int l = 0; l < C; ++l) scratch[c + l] = weight_to_float(src[c + l]);
    for (; c < n; ++c) scratch[c] = weight_to_float(src[c]);
    return scratch;
  }
}

/// Stored row r of matrix m (RowRef: expert, rows per expert, row, cols) as floats: unquantized
/// rows as row_as_float does, quantized ones decoded by the codec into `scratch` (the values the
/// GEMM multiplies).
template <class T, class Codec, class W>
inline const float* weight_row(const typename Codec::Params& p, quant::Matrix m, const W* base, const quant::RowRef& r,
                               float* __restrict scratch) {
  if constexpr (Codec::kIdentity) {
    (void)p;
    (void)m;
    return row_as_float(base + r.flat() * r.cols, static_cast<int>(r.cols), scratch);
  } else {
    Codec::template decode_row<T>(p, m, base, r, scratch);
    return scratch;
  }
}

/// The first stored element of row `flat_row` (among all experts' rows) of a [.., cols] matrix.
template <class Codec, class W>
inline const W* stored_row(const W* base, long long flat_row, long long cols) {
  return base + flat_row * cols / quant::pack_v<Codec>;
}

}  // namespace detail
}  // namespace host
}  // namespace deepshock::moe
