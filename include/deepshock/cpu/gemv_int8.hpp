// deepshock/cpu/gemv_int8.hpp — the decode path of the fast CPU executor for int8 weights
// (quant::Int8Channel, quant::Int8ChannelA8), read as stored: one byte per weight instead of the
// two or four of a decoded row, so decode streams half the bytes of bf16.
//
//   gemv_rows_s8(isa, m, n, k, a, lda, b, ldb, c, ldc)      W8A8: int8 codes times int8 codes,
//     c[q * ldc + j] = sum_i a[q * lda + i] * b[j * ldb + i]  as an exact int32 sum
//   gemv_rows_w8(isa, m, n, k, a, lda, b, ldb, scale, c, ldc)  W8A16: fp32 rows times int8 codes,
//     c[q * ldc + j] = scale[j] * sum_i a[q * lda + i] * b[j * ldb + i]  (fp32 sums)
//
// The int32 sums are exact for k <= kGemvS8MaxK (|a|, |b| <= 127 and, inside the VNNI kernel,
// b + 128 <= 255), so every Isa gives the same bits. AVX512-VNNI's dot instruction multiplies
// unsigned by signed bytes: each weight vector is offset by 128 as it is loaded (b ^ 0x80, once
// for all rows of a), and 128 times each a row's sum, taken once per call, is subtracted at the
// end.
//
// quantize_row_s8 is the per-row activation rule of W8A8 (scale = amax(|v|) / 127 in fp32, codes
// rne(v / scale) clamped to [-127, 127], a row of zeros scale 0), the rule of the device layer's
// quantizer and of quant::fake_quant_int8_row, so q * scale is the value the other executors use.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "deepshock/cpu/gemv.hpp"

namespace deepshock::cpu {

/// The longest row whose int32 sums gemv_rows_s8 (and the executor's W8A8 GEMMs) keep exact.
inline constexpr int kGemvS8MaxK = 65536;

/// The best Isa for the int8 kernels: avx512 needs AVX-512 F, BW, DQ and VNNI.
inline Isa best_isa_s8() {
#if DEEPSHOCK_CPU_X86_KERNELS
  static const bool ok = best_isa<float>() == Isa::avx512 && __builtin_cpu_supports("avx512vnni");
  return ok ? Isa::avx512 : Isa::portable;
#else
  return Isa::portable;
#endif
}

/// Row v [n] as int8 codes q [n]; returns the row's scale (see the file comment). Written with
/// comparisons and the 1.5 * 2^23 rounding constant instead of fmax / nearbyint, which are
/// library calls at the baseline x86-64 level, so that the loops vectorise; the same codes
/// (tested against quant::fake_quant_int8_row): NaN is skipped by the amax as by fmax and clamps
/// to -127 as fmax(NaN, -127) does, and clamping before rounding to even gives what rounding
/// before clamping gives at the integer bounds +-127.
inline float quantize_row_s8(const float* v, int n, std::int8_t* q) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(v[i]);
    amax = a > amax ? a : amax;
  }
  const float s = amax / 127.0f;
  if (!(s > 0.0f)) {
    std::memset(q, 0, static_cast<std::size_t>(n));
    return s;
  }
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: (x + kRound) - kRound rounds |x| < 2^22 to even
  for (int i = 0; i < n; ++i) {
    float c = v[i] / s;
    c = c >= -127.0f ? c : -127.0f;  // NaN -> -127
    c = c <= 127.0f ? c : 127.0f;
    q[i] = static_cast<std::int8_t>((c + kRound) - kRound);
  }
  return s;
}

namespace detail {

/// The results are stored with memcpy: the executor keeps them in fp32 buffers before scaling.
inline void store_s32(std::int32_t* c, std::int32_t v) { std::memcpy(static_cast<void*>(c), &v, sizeof v); }

inline void gemv_s8_portable(int m, int n, int k, const std::int8_t* a, long long lda, const std::int8_t* b, long long ldb, std::int32_t* c,
                             long long ldc) {
  for (int j = 0; j < n; ++j)
    for (int q = 0; q < m; ++q) {
      std::int32_t acc = 0;
      for (int i = 0; i < k; ++i) acc += static_cast<std::int32_t>(a[q * lda + i]) * static_cast<std::int32_t>(b[j * ldb + i]);
      store_s32(c + q * ldc + j, acc);
    }
}

/// The lane order of gemv_portable (16 lanes folded in halves), on int8 weights.
inline void gemv_w8_portable(int m, int n, int k, const float* a, long long lda, const std::int8_t* b, long long ldb, const float* scale,
                             float* c, long long ldc) {
  for (int j = 0; j < n; ++j) {
    const std::int8_t* w = b + j * ldb;
    for (int q = 0; q < m; ++q) {
      const float* x = a + q * lda;
      float lane[16] = {};
      for (int i = 0; i < k; ++i) lane[i % 16] += static_cast<float>(w[i]) * x[i];
      for (int s = 8; s > 0; s /= 2)
        for (int l = 0; l < s; ++l) lane[l] += lane[l + s];
      c[q * ldc + j] = scale != nullptr ? lane[0] * scale[j] : lane[0];
    }
  }
}

#if DEEPSHOCK_CPU_X86_KERNELS
/// The 16 lanes' sum (exact in any order). Through memory, and the widenings below through their
/// zero-masked forms: GCC 12 warns falsely inside the unmasked forms' intrinsics.
__attribute__((target("avx512f"), always_inline)) inline std::int32_t lane_sum_s32(__m512i v) {
  alignas(64) std::int32_t lane[16];
  _mm512_store_si512(static_cast<void*>(lane), v);
  std::int32_t s = 0;
  for (const std::int32_t x : lane) s += x;
  return s;
}
__attribute__((target("avx512f"), always_inline)) inline __m512 widen_s8(__m128i codes) {
  return _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepi8_epi32(0xFFFF, codes));
}

/// W8A8 on VNNI: 64 codes per step, four accumulators per row of a, the weight row read once
/// and offset once for all M rows; the tail masked (masked bytes load as 0 in a, so they add
/// nothing whatever the offset makes of b's).
template <int M>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vnni"))) void gemv_s8_vnni(int n, int k, const std::int8_t* a, long long lda,
                                                                                  const std::int8_t* b, long long ldb, std::int32_t* c,
                                                                                  long long ldc) {
  constexpr int V = 64, U = 4;
  const int full = k / V * V, body = k / (V * U) * (V * U);
  const __mmask64 tail = k - full == 0 ? 0 : (~__mmask64{0} >> (V - (k - full)));
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  std::int32_t offset[M];  // 128 * sum(a row): what the weights' offset adds to each dot product
  for (int q = 0; q < M; ++q) {
    std::int32_t s = 0;
    for (int i = 0; i < k; ++i) s += a[q * lda + i];
    offset[q] = 128 * s;
  }
  for (int j = 0; j < n; ++j) {
    const std::int8_t* w = b + j * ldb;
    __m512i acc[M][U];
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) acc[q][u] = _mm512_setzero_si512();
    }
    for (int i = 0; i < body; i += V * U) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) {
        const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(static_cast<const void*>(w + i + u * V)), flip);  // w + 128, unsigned
        _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
          acc[q][u] = _mm512_dpbusd_epi32(acc[q][u], wv, _mm512_loadu_si512(static_cast<const void*>(a + q * lda + i + u * V)));
        }
      }
    }
    for (int i = body; i < k; i += V) {
      const __mmask64 mask = i < full ? ~__mmask64{0} : tail;
      const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, w + i), flip);
      _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
        acc[q][0] = _mm512_dpbusd_epi32(acc[q][0], wv, _mm512_maskz_loadu_epi8(mask, a + q * lda + i));
      }
    }
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      const __m512i s = _mm512_add_epi32(_mm512_add_epi32(acc[q][0], acc[q][1]), _mm512_add_epi32(acc[q][2], acc[q][3]));
      store_s32(c + q * ldc + j, lane_sum_s32(s) - offset[q]);
    }
  }
}

/// W8A16: 16 codes per step widened to fp32 once and used for all M rows; the accumulators and
/// the lane sum as gemv_avx512_f32.
template <int M>
__attribute__((target("avx512f,avx512bw,avx512dq"))) void gemv_w8_avx512(int n, int k, const float* a, long long lda, const std::int8_t* b,
                                                                         long long ldb, const float* scale, float* c, long long ldc) {
  constexpr int V = 16, U = 4;
  const int full = k / V * V, body = k / (V * U) * (V * U);
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1);
  for (int j = 0; j < n; ++j) {
    const std::int8_t* w = b + j * ldb;
    __m512 acc[M][U];
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) acc[q][u] = _mm512_setzero_ps();
    }
    for (int i = 0; i < body; i += V * U) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) {
        const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + u * V));
        const __m512 wv = widen_s8(codes);
        _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
          acc[q][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(a + q * lda + i + u * V), acc[q][u]);
        }
      }
    }
    for (int i = body; i < k; i += V) {
      const __mmask16 mask = i < full ? static_cast<__mmask16>(0xFFFF) : tail;
      const __m128i codes = _mm512_maskz_extracti32x4_epi32(0xF, _mm512_maskz_loadu_epi8(static_cast<__mmask64>(mask), w + i), 0);
      const __m512 wv = widen_s8(codes);
      _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
        acc[q][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, a + q * lda + i), acc[q][0]);
      }
    }
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      const float s = lane_sum(_mm512_add_ps(_mm512_add_ps(acc[q][0], acc[q][1]), _mm512_add_ps(acc[q][2], acc[q][3])));
      c[q * ldc + j] = scale != nullptr ? s * scale[j] : s;
    }
  }
}
#endif

}  // namespace detail

/// W8A8 decode: exact int32 dot products of m <= kGemvMaxRows code rows with n weight rows
/// (k <= kGemvS8MaxK). `isa` must be one best_isa_s8() allows (or portable).
inline void gemv_rows_s8(Isa isa, int m, int n, int k, const std::int8_t* a, long long lda, const std::int8_t* b, long long ldb,
                         std::int32_t* c, long long ldc) {
#if DEEPSHOCK_CPU_X86_KERNELS
  if (detail::for_row_chunks(isa, m, k, [&](auto rows, int q0) {
        detail::gemv_s8_vnni<decltype(rows)::value>(n, k, a + q0 * lda, lda, b, ldb, c + q0 * ldc, ldc);
      }))
    return;
#else
  (void)isa;
#endif
  detail::gemv_s8_portable(m, n, k, a, lda, b, ldb, c, ldc);
}

/// W8A16 decode: fp32 rows times int8 weight rows, each result times scale[j] (scale may be
/// null). `isa` must be one best_isa<float>() allows (or portable).
inline void gemv_rows_w8(Isa isa, int m, int n, int k, const float* a, long long lda, const std::int8_t* b, long long ldb,
                         const float* scale, float* c, long long ldc) {
#if DEEPSHOCK_CPU_X86_KERNELS
  if (detail::for_row_chunks(isa, m, k, [&](auto rows, int q0) {
        detail::gemv_w8_avx512<decltype(rows)::value>(n, k, a + q0 * lda, lda, b, ldb, scale, c + q0 * ldc, ldc);
      }))
    return;
#else
  (void)isa;
#endif
  detail::gemv_w8_portable(m, n, k, a, lda, b, ldb, scale, c, ldc);
}

}  // namespace deepshock::cpu
