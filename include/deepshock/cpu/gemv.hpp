// deepshock/cpu/gemv.hpp — the decode path of the fast CPU executor: a few rows times a block of
// weight rows, bound by the memory bandwidth of the weights.
//
//   gemv_rows(isa, m, n, k, a, lda, b, ldb, c, ldc):
//     c[q * ldc + j] = sum_i a[q * lda + i] * b[j * ldb + i]   for q < m <= kGemvMaxRows, j < n
//   with a and b both float or both bf16 and fp32 sums; gemv_rows_f16: a in fp32, b in fp16.
//
// Why not oneDNN here: with one or two rows per expert, oneDNN 2.6's matmul on weights in their
// stored [out, in] layout read them at 10–17 GB/s on the project's build machine (one thread),
// against about 20–28 GB/s that a plain sum reaches. Here each weight row is read once, as it
// streams past, and used for all m rows at once: four weight rows at a time (four independent
// sequential streams), every element of a converted with AVX512-BF16's dot instruction (pairs of
// bf16 products summed in fp32) or AVX-512 FMAs where the CPU has them, chosen at run time
// (Isa); a portable loop elsewhere.
//
// Numerics: fp32 sums in a fixed order for a given Isa and k (the same bits for any m, n, thread
// or batch); the avx512 orders differ from the portable one and from oneDNN's. The AVX512-BF16
// instruction treats bf16 subnormal inputs as zero and flushes subnormal results.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DEEPSHOCK_CPU_X86_KERNELS 1
#else
#define DEEPSHOCK_CPU_X86_KERNELS 0
#endif

#include "deepshock/core/numeric.hpp"

namespace deepshock::cpu {

/// The largest m the GEMVs take. The kernels hold the accumulators of up to kGemvChunk rows;
/// more rows run in chunks of kGemvChunk, each chunk after the first reading the weight rows again,
/// from cache when the caller's block of weight rows fits (the executor's items: 128 rows).
inline constexpr int kGemvMaxRows = 8;
inline constexpr int kGemvChunk = 4;

/// Instruction sets of the gemv kernels.
enum class Isa : unsigned char { portable, avx512 };

/// The best Isa this CPU runs for element type T: avx512 needs AVX-512 F, BW and DQ, and for
/// bf16 AVX512-BF16 too.
template <class T>
Isa best_isa() {
#if DEEPSHOCK_CPU_X86_KERNELS
  static const bool f32 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  static const bool bf = f32 && __builtin_cpu_supports("avx512bf16");
  return (std::is_same_v<T, bf16> ? bf : f32) ? Isa::avx512 : Isa::portable;
#else
  return Isa::portable;
#endif
}

namespace detail {

/// Runs `run(std::integral_constant<int, M>, q0)` for rows [q0, q0 + M) of m rows, in chunks of
/// kGemvChunk (M the chunk's size), where the AVX-512 kernels apply (isa avx512, k > 0); false
/// otherwise (the caller runs its portable loop). The one row dispatch of every GEMV here.
template <class Run>
bool for_row_chunks(Isa isa, int m, int k, Run&& run) {
  if (isa != Isa::avx512 || k <= 0) return false;
  for (int q0 = 0; q0 < m; q0 += kGemvChunk) {
    switch (m - q0 < kGemvChunk ? m - q0 : kGemvChunk) {
      case 1: run(std::integral_constant<int, 1>{}, q0); break;
      case 2: run(std::integral_constant<int, 2>{}, q0); break;
      case 3: run(std::integral_constant<int, 3>{}, q0); break;
      default: run(std::integral_constant<int, 4>{}, q0); break;
    }
  }
  return true;
}

/// Portable: 16 partial sums per (row, weight row), element i into lane i % 16, lanes folded in
/// halves; vectorised by the compiler at the width it is allowed.
template <class TA, class TB>
void gemv_portable(int m, int n, int k, const TA* a, long long lda, const TB* b, long long ldb, float* c, long long ldc) {
  for (int j = 0; j < n; ++j) {
    const TB* w = b + j * ldb;
    for (int q = 0; q < m; ++q) {
      const TA* x = a + q * lda;
      float lane[16] = {};
      int i = 0;
      for (; i + 16 <= k; i += 16)
        for (int l = 0; l < 16; ++l) lane[l] += value_to_float(w[i + l]) * value_to_float(x[i + l]);
      for (; i < k; ++i) lane[i % 16] += value_to_float(w[i]) * value_to_float(x[i]);
      for (int s = 8; s > 0; s /= 2)
        for (int l = 0; l < s; ++l) lane[l] += lane[l + s];
      c[q * ldc + j] = lane[0];
    }
  }
}

#if DEEPSHOCK_CPU_X86_KERNELS
/// The 16 lanes' sum, folded in halves (lane l += lane l + s for s = 8, 4, 2, 1): a fixed order,
/// in vector registers (a store and scalar adds would cost as much as a row's dot products).
__attribute__((target("avx512f,avx512dq"), always_inline)) inline float lane_sum(__m512 v) {
  // (extractf32x8 of half 0, not _mm512_castps512_ps256: GCC 12 warns falsely inside that cast.)
  const __m256 s8 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/// One weight row against the M rows of a: four accumulators per row of a, each taking every
/// fourth 32-element (bf16) or 16-element (fp32) step, so that four dot instructions are in
/// flight; the weight row is read once, sequentially (the rows of a tile are adjacent, so a
/// tile is one sequential stream, which the hardware prefetchers follow best). The steps after
/// the last whole group of four go into accumulator 0, the last of them masked. The result: the four accumulators added (0 + 1) + (2 + 3), then lane_sum.
template <int M>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512bf16"))) void gemv_avx512_bf16(int n, int k, const bf16* a, long long lda,
                                                                                      const bf16* b, long long ldb, float* c,
                                                                                      long long ldc) {
  constexpr int V = 32, U = 4;
  const int full = k / V * V, body = k / (V * U) * (V * U);
  const __mmask32 tail = static_cast<__mmask32>((1ull << (k - full)) - 1);
  for (int j = 0; j < n; ++j) {
    const bf16* w = b + j * ldb;
    __m512 acc[M][U];
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) acc[q][u] = _mm512_setzero_ps();
    }
    for (int i = 0; i < body; i += V * U) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) {
        const __m512i wv = _mm512_loadu_si512(static_cast<const void*>(w + i + u * V));
        _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
          const __m512i xv = _mm512_loadu_si512(static_cast<const void*>(a + q * lda + i + u * V));
          acc[q][u] = _mm512_dpbf16_ps(acc[q][u], (__m512bh)wv, (__m512bh)xv);
        }
      }
    }
    for (int i = body; i < k; i += V) {  // the remaining steps (into accumulator 0), the last one masked
      const __mmask32 mask = i < full ? ~__mmask32{0} : tail;
      const __m512i wv = _mm512_maskz_loadu_epi16(mask, w + i);
      _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
        const __m512i xv = _mm512_maskz_loadu_epi16(mask, a + q * lda + i);
        acc[q][0] = _mm512_dpbf16_ps(acc[q][0], (__m512bh)wv, (__m512bh)xv);
      }
    }
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      c[q * ldc + j] = lane_sum(_mm512_add_ps(_mm512_add_ps(acc[q][0], acc[q][1]), _mm512_add_ps(acc[q][2], acc[q][3])));
    }
  }
}

template <int M>
__attribute__((target("avx512f,avx512bw,avx512dq"))) void gemv_avx512_f32(int n, int k, const float* a, long long lda, const float* b,
                                                                          long long ldb, float* c, long long ldc) {
  constexpr int V = 16, U = 4;
  const int full = k / V * V, body = k / (V * U) * (V * U);
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1);
  for (int j = 0; j < n; ++j) {
    const float* w = b + j * ldb;
    __m512 acc[M][U];
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) acc[q][u] = _mm512_setzero_ps();
    }
    for (int i = 0; i < body; i += V * U) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) {
        const __m512 wv = _mm512_loadu_ps(w + i + u * V);
        _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
          acc[q][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(a + q * lda + i + u * V), acc[q][u]);
        }
      }
    }
    for (int i = body; i < k; i += V) {
      const __mmask16 mask = i < full ? static_cast<__mmask16>(0xFFFF) : tail;
      const __m512 wv = _mm512_maskz_loadu_ps(mask, w + i);
      _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
        acc[q][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, a + q * lda + i), acc[q][0]);
      }
    }
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      c[q * ldc + j] = lane_sum(_mm512_add_ps(_mm512_add_ps(acc[q][0], acc[q][1]), _mm512_add_ps(acc[q][2], acc[q][3])));
    }
  }
}

/// fp16 weight rows against fp32 rows: 16 halves per step widened to fp32 once (F16C's
/// conversion, exact) and used for all M rows; the accumulators and the lane sum as
/// gemv_avx512_f32. (The zero-masked conversions: GCC 12 warns falsely inside the unmasked ones.)
template <int M>
__attribute__((target("avx512f,avx512bw,avx512dq"))) void gemv_f16_avx512(int n, int k, const float* a, long long lda, const fp16* b,
                                                                          long long ldb, float* c, long long ldc) {
  constexpr int V = 16, U = 4;
  const int full = k / V * V, body = k / (V * U) * (V * U);
  const __mmask32 tail = static_cast<__mmask32>((1u << (k - full)) - 1);
  for (int j = 0; j < n; ++j) {
    const fp16* w = b + j * ldb;
    __m512 acc[M][U];
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) acc[q][u] = _mm512_setzero_ps();
    }
    for (int i = 0; i < body; i += V * U) {
      _Pragma("GCC unroll 4") for (int u = 0; u < U; ++u) {
        const __m256i halves = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i + u * V));
        const __m512 wv = _mm512_maskz_cvtph_ps(0xFFFF, halves);
        _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
          acc[q][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(a + q * lda + i + u * V), acc[q][u]);
        }
      }
    }
    for (int i = body; i < k; i += V) {
      const __mmask32 mask = i < full ? static_cast<__mmask32>(0xFFFF) : tail;
      const __m256i halves = _mm512_maskz_extracti64x4_epi64(0xF, _mm512_maskz_loadu_epi16(mask, w + i), 0);
      const __m512 wv = _mm512_maskz_cvtph_ps(0xFFFF, halves);
      _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
        acc[q][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), a + q * lda + i), acc[q][0]);
      }
    }
    _Pragma("GCC unroll 4") for (int q = 0; q < M; ++q) {
      c[q * ldc + j] = lane_sum(_mm512_add_ps(_mm512_add_ps(acc[q][0], acc[q][1]), _mm512_add_ps(acc[q][2], acc[q][3])));
    }
  }
}

template <class T, int M>
void gemv_avx512(int n, int k, const T* a, long long lda, const T* b, long long ldb, float* c, long long ldc) {
  if constexpr (std::is_same_v<T, bf16>) gemv_avx512_bf16<M>(n, k, a, lda, b, ldb, c, ldc);
  else gemv_avx512_f32<M>(n, k, a, lda, b, ldb, c, ldc);
}
#endif

}  // namespace detail

/// fp16 weights (the fast executor's fp16 decode): c[q * ldc + j] = sum_i a[q * lda + i] *
/// b[j * ldb + i] with a in fp32, b in fp16 (1 <= m <= kGemvMaxRows). `isa` must be one
/// best_isa<float>() allows (or portable: gemv_portable's lane order).
inline void gemv_rows_f16(Isa isa, int m, int n, int k, const float* a, long long lda, const fp16* b, long long ldb, float* c,
                          long long ldc) {
#if DEEPSHOCK_CPU_X86_KERNELS
  if (detail::for_row_chunks(isa, m, k, [&](auto rows, int q0) {
        detail::gemv_f16_avx512<decltype(rows)::value>(n, k, a + q0 * lda, lda, b, ldb, c + q0 * ldc, ldc);
      }))
    return;
#else
  (void)isa;
#endif
  detail::gemv_portable(m, n, k, a, lda, b, ldb, c, ldc);
}

/// c[q * ldc + j] = sum_i a[q * lda + i] * b[j * ldb + i] for q < m, j < n (T = float or bf16;
/// 1 <= m <= kGemvMaxRows). `isa` must be one best_isa<T>() allows (or portable).
template <class T>
void gemv_rows(Isa isa, int m, int n, int k, const T* a, long long lda, const T* b, long long ldb, float* c, long long ldc) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "deepshock::cpu::gemv_rows: T must be float or bf16");
#if DEEPSHOCK_CPU_X86_KERNELS
  if (detail::for_row_chunks(isa, m, k, [&](auto rows, int q0) {
        detail::gemv_avx512<T, decltype(rows)::value>(n, k, a + q0 * lda, lda, b, ldb, c + q0 * ldc, ldc);
      }))
    return;
#else
  (void)isa;
#endif
  detail::gemv_portable(m, n, k, a, lda, b, ldb, c, ldc);
}

}  // namespace deepshock::cpu
