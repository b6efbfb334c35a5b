// deepshock/core/numeric.hpp — portable low-precision floating-point storage types.
//
// Four types hold the raw bits of a narrow float and convert to and from `float` with
// pure integer arithmetic, so every conversion gives bitwise identical results on the
// host compiler and in CUDA device code (no cuda_fp16.h / cuda_bf16.h, no FPU modes).
//
//   type       layout         bias  inf  NaN encodings           max finite
//   bf16       1.8.7  (16 b)  127   yes  exp=0xFF, mant!=0       0x7F7F = 3.3895314e38
//   fp16       1.5.10 (16 b)   15   yes  exp=0x1F, mant!=0       0x7BFF = 65504
//   fp8_e4m3   1.4.3  (8 b)     7   no   S.1111.111 only         0x7E   = 448   (OCP E4M3FN)
//   fp8_e5m2   1.5.2  (8 b)    15   yes  exp=0x1F, mant!=0       0x7B   = 57344
//   fp4_e2m1   1.2.1  (4 b)     1   no   none (16 finite values)  0x7    = 6     (OCP E2M1)
//   fp8_e8m0   0.8.0  (8 b)   127   no   0xFF                     0xFE   = 2^127 (OCP E8M0)
//
// fp4_e2m1 holds a code in the low 4 bits of a byte; its values are ±{0, 0.5, 1, 1.5, 2, 3,
// 4, 6}. fp8_e8m0 is an unsigned power of two, 2^(bits - 127), the scale of the OCP MX formats;
// it has no zero and no sign. Both convert to float exactly; the quantizers that produce their
// bits state their own rules (quant/fp4.hpp).
//
// Conversion rules, float -> T (`from_float`, `explicit T(float)`):
//   * Rounding is round-to-nearest, ties-to-even, subnormals of T are produced exactly
//     (no flush to zero); the sign of zero is kept.
//   * NaN becomes the canonical quiet NaN of T with the input's sign (bf16 0x7FC0,
//     fp16 0x7E00, fp8_e4m3 0x7F, fp8_e5m2 0x7E, each | sign bit).
//   * bf16, fp16: IEEE 754 overflow — a value whose rounded magnitude exceeds the max
//     finite value becomes ±inf, and ±inf stays ±inf.
//   * fp8_e4m3, fp8_e5m2: saturating — a value beyond ±max finite, and ±inf, becomes
//     ±max finite (as the FP8 training recipes do). Hence fp8_e5m2's ±inf encodings
//     decode to ±inf but never come out of a conversion.
//   * `from_float_sat` (every type): as above, but anything beyond ±max finite, ±inf
//     included, becomes ±max finite; NaN stays NaN. For the fp8 types it equals
//     `from_float`.
// Conversion T -> float (`to_float`, `explicit operator float`) is exact. NaN maps to a
// quiet float NaN with the same sign; fp8_e4m3 has no infinities to map.
//
// Results do not depend on the floating-point environment: fast-math or flush-to-zero
// flags do not change them (the only float arithmetic is one exact scaling).
#pragma once

#include <cstdint>
#include <type_traits>

#include "deepshock/core/config.hpp"

namespace deepshock {
namespace detail {

/// The IEEE binary32 bits of `f` (constexpr on host and device).
DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t float_to_bits(float f) noexcept { return __builtin_bit_cast(std::uint32_t, f); }

/// The float whose IEEE binary32 bits are `u` (constexpr on host and device).
DEEPSHOCK_HOST_DEVICE constexpr float bits_to_float(std::uint32_t u) noexcept { return __builtin_bit_cast(float, u); }

/// How a format uses its all-ones exponent field.
enum class special_encoding {
  ieee,         ///< all-ones exponent: mantissa 0 = inf, otherwise NaN (IEEE 754)
  finite_only,  ///< all-ones exponent holds finite values; only all-ones mantissa is NaN (FN)
  all_finite    ///< every encoding is a finite value: no NaN, no inf (E2M1)
};

/// Compile-time description of a sign/exponent/mantissa format narrower than float.
template <int ExpBits, int ManBits, special_encoding Special>
struct minifloat_format {
  static constexpr int exp_bits = ExpBits;
  static constexpr int man_bits = ManBits;
  static constexpr special_encoding special = Special;
  static constexpr int bias = (1 << (ExpBits - 1)) - 1;
  static constexpr int emin = 1 - bias;  ///< exponent of the smallest normal
  static constexpr std::uint32_t man_mask = (1u << ManBits) - 1u;
  static constexpr std::uint32_t exp_all_ones = (1u << ExpBits) - 1u;
  static constexpr std::uint32_t sign_bit = 1u << (ExpBits + ManBits);
  static constexpr std::uint32_t inf_bits = exp_all_ones << ManBits;  // ieee only
  static constexpr std::uint32_t max_bits = Special == special_encoding::ieee          ? inf_bits - 1u
                                            : Special == special_encoding::finite_only ? (inf_bits | man_mask) - 1u
                                                                                       : inf_bits | man_mask;
  /// The canonical NaN; all_finite formats have none (float NaN converts to a signed zero there).
  static constexpr std::uint32_t nan_bits = Special == special_encoding::ieee          ? inf_bits | (1u << (ManBits - 1))
                                            : Special == special_encoding::finite_only ? inf_bits | man_mask
                                                                                       : 0u;
  static constexpr int emax = Special == special_encoding::ieee ? int(exp_all_ones) - 1 - bias : int(exp_all_ones) - bias;

  static_assert(ExpBits >= 2 && ManBits >= 1 && ExpBits + ManBits <= 15, "unsupported format");
  static_assert(ManBits <= 22 && ExpBits <= 8, "format must be narrower than float");
};

/// True when `b` (sign bit included or not) encodes a NaN in format F.
template <class F>
DEEPSHOCK_HOST_DEVICE constexpr bool minifloat_is_nan(std::uint32_t b) noexcept {
  const std::uint32_t mag = b & (F::sign_bit - 1u);
  if constexpr (F::special == special_encoding::ieee) {
    return mag > F::inf_bits;
  } else if constexpr (F::special == special_encoding::finite_only) {
    return mag == (F::inf_bits | F::man_mask);
  } else {
    return false;
  }
}

/// float -> format F bits with round-to-nearest-even. Overflow goes to inf for IEEE
/// formats unless `saturate`; finite-only formats always saturate. NaN -> canonical NaN.
template <class F>
DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t float_to_minifloat(float f, bool saturate) noexcept {
  const std::uint32_t u = float_to_bits(f);
  const std::uint32_t sign = (u >> 31) * F::sign_bit;
  const std::uint32_t a = u & 0x7FFFFFFFu;
  const bool to_inf = F::special == special_encoding::ieee && !saturate;
  if (a > 0x7F800000u) return sign | F::nan_bits;
  if (a == 0x7F800000u) return sign | (to_inf ? F::inf_bits : F::max_bits);

  // |f| = sig * 2^(e - 23), with the implicit bit in sig for normal floats.
  const int biased = int(a >> 23);
  std::uint32_t sig = a & 0x7FFFFFu;
  int e = -126;
  if (biased != 0) {
    sig |= 0x800000u;
    e = biased - 127;
  }
  // Count |f| in quanta of the target binade (the subnormal binade below emin).
  const int eq = e < F::emin ? F::emin : e;
  int shift = 23 - F::man_bits + (eq - e);  // >= 1 because man_bits <= 22
  if (shift > 31) shift = 31;               // sig < 2^24, so the result is 0 anyway
  std::uint32_t q = sig >> shift;
  const std::uint32_t rem = sig & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // ties to even
  // Binade offset plus quanta: a carry out of the mantissa bumps the exponent, and the
  // subnormal binade (q < 2^man_bits) lands on exponent field 0.
  std::uint32_t mag = (std::uint32_t(eq - F::emin) << F::man_bits) + q;
  if (mag > F::max_bits) mag = to_inf ? F::inf_bits : F::max_bits;
  return sign | mag;
}

/// Format F bits -> float, exact. Requires every value of F to be a normal float or 0.
template <class F>
DEEPSHOCK_HOST_DEVICE constexpr float minifloat_to_float(std::uint32_t b) noexcept {
  static_assert(F::emin - F::man_bits >= -126, "subnormals of F must be normal floats");
  const std::uint32_t sign = ((b >> (F::exp_bits + F::man_bits)) & 1u) << 31;
  const std::uint32_t ef = (b >> F::man_bits) & F::exp_all_ones;
  const std::uint32_t m = b & F::man_mask;
  if (minifloat_is_nan<F>(b)) {
    return bits_to_float(sign | 0x7FC00000u | (m << (23 - F::man_bits)));
  }
  if (F::special == special_encoding::ieee && ef == F::exp_all_ones) {
    return bits_to_float(sign | 0x7F800000u);  // inf
  }
  if (ef == 0) {
    // m * 2^(emin - man_bits): an integer times a power of two, exact and normal.
    const float scale = bits_to_float(std::uint32_t(F::emin - F::man_bits + 127) << 23);
    return bits_to_float(sign | float_to_bits(float(m) * scale));
  }
  const std::uint32_t fe = std::uint32_t(int(ef) - F::bias + 127);
  return bits_to_float(sign | (fe << 23) | (m << (23 - F::man_bits)));
}

using bf16_format = minifloat_format<8, 7, special_encoding::ieee>;
using fp16_format = minifloat_format<5, 10, special_encoding::ieee>;
using fp8_e4m3_format = minifloat_format<4, 3, special_encoding::finite_only>;
using fp8_e5m2_format = minifloat_format<5, 2, special_encoding::ieee>;
using fp4_e2m1_format = minifloat_format<2, 1, special_encoding::all_finite>;

}  // namespace detail

/// bfloat16: the upper half of an IEEE binary32. float -> bf16 is IEEE (overflow -> inf).
struct bf16 {
  using format = detail::bf16_format;  ///< bit layout description
  std::uint16_t bits;                  ///< raw encoding

  bf16() = default;  ///< trivial: leaves `bits` uninitialized (usable in shared memory)
  /// Rounds `f` to nearest even; see `from_float`.
  DEEPSHOCK_HOST_DEVICE constexpr explicit bf16(float f) noexcept : bits(from_float(f).bits) {}

  /// The value whose encoding is `raw`.
  DEEPSHOCK_HOST_DEVICE static constexpr bf16 from_bits(std::uint16_t raw) noexcept {
    bf16 r{};
    r.bits = raw;
    return r;
  }
  /// Round to nearest even; overflow -> ±inf; NaN -> ±0x7FC0.
  DEEPSHOCK_HOST_DEVICE static constexpr bf16 from_float(float f) noexcept {
    const std::uint32_t u = detail::float_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return from_bits(std::uint16_t((u >> 16) & 0x8000u) | 0x7FC0u);
    // Adding 0x7FFF (+1 when the kept LSB is odd) carries exactly when the dropped half
    // rounds up; a carry out of the mantissa moves into the exponent, up to inf.
    return from_bits(std::uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16));
  }
  /// As `from_float`, but ±inf and overflow give ±max finite (0x7F7F).
  DEEPSHOCK_HOST_DEVICE static constexpr bf16 from_float_sat(float f) noexcept {
    bf16 r = from_float(f);
    if ((r.bits & 0x7FFFu) == 0x7F80u) r.bits = std::uint16_t((r.bits & 0x8000u) | 0x7F7Fu);
    return r;
  }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr float to_float() const noexcept { return detail::bits_to_float(std::uint32_t(bits) << 16); }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr explicit operator float() const noexcept { return to_float(); }
  /// True for any NaN encoding.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_nan() const noexcept { return detail::minifloat_is_nan<format>(bits); }
  /// True for ±inf.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_inf() const noexcept { return (bits & 0x7FFFu) == 0x7F80u; }
};

/// IEEE 754 binary16. float -> fp16 is IEEE (overflow -> inf).
struct fp16 {
  using format = detail::fp16_format;  ///< bit layout description
  std::uint16_t bits;                  ///< raw encoding

  fp16() = default;  ///< trivial: leaves `bits` uninitialized (usable in shared memory)
  /// Rounds `f` to nearest even; see `from_float`.
  DEEPSHOCK_HOST_DEVICE constexpr explicit fp16(float f) noexcept : bits(from_float(f).bits) {}

  /// The value whose encoding is `raw`.
  DEEPSHOCK_HOST_DEVICE static constexpr fp16 from_bits(std::uint16_t raw) noexcept {
    fp16 r{};
    r.bits = raw;
    return r;
  }
  /// Round to nearest even (subnormals exact); overflow -> ±inf; NaN -> ±0x7E00.
  DEEPSHOCK_HOST_DEVICE static constexpr fp16 from_float(float f) noexcept {
    return from_bits(std::uint16_t(detail::float_to_minifloat<format>(f, false)));
  }
  /// As `from_float`, but ±inf and overflow give ±max finite (0x7BFF = 65504).
  DEEPSHOCK_HOST_DEVICE static constexpr fp16 from_float_sat(float f) noexcept {
    return from_bits(std::uint16_t(detail::float_to_minifloat<format>(f, true)));
  }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr float to_float() const noexcept { return detail::minifloat_to_float<format>(bits); }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr explicit operator float() const noexcept { return to_float(); }
  /// True for any NaN encoding.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_nan() const noexcept { return detail::minifloat_is_nan<format>(bits); }
  /// True for ±inf.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_inf() const noexcept { return (bits & 0x7FFFu) == 0x7C00u; }
};

/// OCP FP8 E4M3 ("E4M3FN"): no infinities, NaN = S.1111.111. float -> fp8_e4m3 saturates.
struct fp8_e4m3 {
  using format = detail::fp8_e4m3_format;  ///< bit layout description
  std::uint8_t bits;                       ///< raw encoding

  fp8_e4m3() = default;  ///< trivial: leaves `bits` uninitialized (usable in shared memory)
  /// Rounds `f` to nearest even, saturating; see `from_float`.
  DEEPSHOCK_HOST_DEVICE constexpr explicit fp8_e4m3(float f) noexcept : bits(from_float(f).bits) {}

  /// The value whose encoding is `raw`.
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e4m3 from_bits(std::uint8_t raw) noexcept {
    fp8_e4m3 r{};
    r.bits = raw;
    return r;
  }
  /// Round to nearest even; beyond ±448 and ±inf -> ±448 (0x7E); NaN -> ±0x7F.
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e4m3 from_float(float f) noexcept {
    return from_bits(std::uint8_t(detail::float_to_minifloat<format>(f, true)));
  }
  /// Same as `from_float` (already saturating).
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e4m3 from_float_sat(float f) noexcept { return from_float(f); }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr float to_float() const noexcept { return detail::minifloat_to_float<format>(bits); }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr explicit operator float() const noexcept { return to_float(); }
  /// True for the NaN encodings 0x7F and 0xFF.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_nan() const noexcept { return detail::minifloat_is_nan<format>(bits); }
  /// Always false: the format has no infinities.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_inf() const noexcept { return false; }
};

/// FP8 E5M2 (IEEE-like, has ±inf). float -> fp8_e5m2 saturates to ±57344.
struct fp8_e5m2 {
  using format = detail::fp8_e5m2_format;  ///< bit layout description
  std::uint8_t bits;                       ///< raw encoding

  fp8_e5m2() = default;  ///< trivial: leaves `bits` uninitialized (usable in shared memory)
  /// Rounds `f` to nearest even, saturating; see `from_float`.
  DEEPSHOCK_HOST_DEVICE constexpr explicit fp8_e5m2(float f) noexcept : bits(from_float(f).bits) {}

  /// The value whose encoding is `raw`.
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e5m2 from_bits(std::uint8_t raw) noexcept {
    fp8_e5m2 r{};
    r.bits = raw;
    return r;
  }
  /// Round to nearest even; beyond ±57344 and ±inf -> ±57344 (0x7B); NaN -> ±0x7E.
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e5m2 from_float(float f) noexcept {
    return from_bits(std::uint8_t(detail::float_to_minifloat<format>(f, true)));
  }
  /// Same as `from_float` (already saturating).
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e5m2 from_float_sat(float f) noexcept { return from_float(f); }
  /// Exact widening to float (0x7C / 0xFC -> ±inf).
  DEEPSHOCK_HOST_DEVICE constexpr float to_float() const noexcept { return detail::minifloat_to_float<format>(bits); }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr explicit operator float() const noexcept { return to_float(); }
  /// True for any NaN encoding.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_nan() const noexcept { return detail::minifloat_is_nan<format>(bits); }
  /// True for ±inf.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_inf() const noexcept { return (bits & 0x7Fu) == 0x7Cu; }
};

/// OCP FP4 E2M1: a 4-bit code (low nibble of `bits`) for ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}; every
/// encoding is finite. float -> fp4_e2m1 rounds to nearest even and saturates at ±6 (±inf too);
/// NaN has no encoding and becomes a zero of its sign.
struct fp4_e2m1 {
  using format = detail::fp4_e2m1_format;  ///< bit layout description
  std::uint8_t bits;                       ///< raw encoding, 0..15

  fp4_e2m1() = default;  ///< trivial: leaves `bits` uninitialized
  /// Rounds `f` to nearest even, saturating; see `from_float`.
  DEEPSHOCK_HOST_DEVICE constexpr explicit fp4_e2m1(float f) noexcept : bits(from_float(f).bits) {}

  /// The value whose encoding is `raw` (its low 4 bits).
  DEEPSHOCK_HOST_DEVICE static constexpr fp4_e2m1 from_bits(std::uint8_t raw) noexcept {
    fp4_e2m1 r{};
    r.bits = std::uint8_t(raw & 0xFu);
    return r;
  }
  /// Round to nearest even; beyond ±6 and ±inf -> ±6 (0x7 / 0xF); NaN -> ±0.
  DEEPSHOCK_HOST_DEVICE static constexpr fp4_e2m1 from_float(float f) noexcept {
    return from_bits(std::uint8_t(detail::float_to_minifloat<format>(f, true)));
  }
  /// Same as `from_float` (already saturating).
  DEEPSHOCK_HOST_DEVICE static constexpr fp4_e2m1 from_float_sat(float f) noexcept { return from_float(f); }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr float to_float() const noexcept { return detail::minifloat_to_float<format>(bits); }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr explicit operator float() const noexcept { return to_float(); }
  /// Always false: every encoding is finite.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_nan() const noexcept { return false; }
  /// Always false: every encoding is finite.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_inf() const noexcept { return false; }
};

/// OCP E8M0: an unsigned power of two 2^(bits - 127), bits 0..254 (2^-127 .. 2^127); 0xFF is
/// NaN. The block scale of the MX formats (MXFP4: one per 32 values). No rounding conversion
/// from float is offered: MX producers differ in how they pick the exponent, so each quantizer
/// states its rule and builds the bits with `from_exponent`.
struct fp8_e8m0 {
  std::uint8_t bits;  ///< raw encoding: the biased exponent

  fp8_e8m0() = default;  ///< trivial: leaves `bits` uninitialized
  /// The value whose encoding is `raw`.
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e8m0 from_bits(std::uint8_t raw) noexcept {
    fp8_e8m0 r{};
    r.bits = raw;
    return r;
  }
  /// 2^e for e in [-127, 127] (clamped to that range).
  DEEPSHOCK_HOST_DEVICE static constexpr fp8_e8m0 from_exponent(int e) noexcept {
    return from_bits(std::uint8_t((e < -127 ? -127 : e > 127 ? 127 : e) + 127));
  }
  /// Exact widening to float: 2^(bits - 127); 2^-127 is a float subnormal; 0xFF -> NaN.
  DEEPSHOCK_HOST_DEVICE constexpr float to_float() const noexcept {
    if (bits == 0xFFu) return detail::bits_to_float(0x7FC00000u);
    if (bits == 0u) return detail::bits_to_float(0x00400000u);
    return detail::bits_to_float(std::uint32_t(bits) << 23);
  }
  /// Exact widening to float.
  DEEPSHOCK_HOST_DEVICE constexpr explicit operator float() const noexcept { return to_float(); }
  /// True for 0xFF.
  DEEPSHOCK_HOST_DEVICE constexpr bool is_nan() const noexcept { return bits == 0xFFu; }
};

namespace detail {
/// numeric_traits implementation shared by the narrow types.
template <class T>
struct minifloat_traits {
  using format = typename T::format;
  using storage = decltype(T::bits);
  static constexpr int digits = format::man_bits + 1;  ///< significand bits incl. implicit
  static constexpr int exponent_bits = format::exp_bits;
  static constexpr int exponent_bias = format::bias;
  static constexpr int min_exponent = format::emin;  ///< unbiased exponent of min_normal
  static constexpr int max_exponent = format::emax;  ///< unbiased exponent of max_finite
  static constexpr bool has_infinity = format::special == special_encoding::ieee;
  static constexpr bool has_quiet_nan = true;

  /// Largest finite value.
  DEEPSHOCK_HOST_DEVICE static constexpr float max_finite() noexcept {
    return T::from_bits(static_cast<storage>(format::max_bits)).to_float();
  }
  /// Most negative finite value (-max_finite()).
  DEEPSHOCK_HOST_DEVICE static constexpr float lowest() noexcept { return -max_finite(); }
  /// Smallest positive normal value, 2^min_exponent.
  DEEPSHOCK_HOST_DEVICE static constexpr float min_normal() noexcept {
    return T::from_bits(static_cast<storage>(1u << format::man_bits)).to_float();
  }
  /// Smallest positive subnormal value, 2^(min_exponent - digits + 1).
  DEEPSHOCK_HOST_DEVICE static constexpr float min_subnormal() noexcept { return T::from_bits(static_cast<storage>(1u)).to_float(); }
  /// Distance from 1 to the next larger value, 2^-(digits - 1).
  DEEPSHOCK_HOST_DEVICE static constexpr float epsilon() noexcept { return bits_to_float(std::uint32_t(127 - format::man_bits) << 23); }
};
}  // namespace detail

/// Limits of a narrow float type, as float values (cf. std::numeric_limits).
/// Members: digits, exponent_bits, exponent_bias, min_exponent, max_exponent,
/// has_infinity, has_quiet_nan, max_finite(), lowest(), min_normal(), min_subnormal(),
/// epsilon().
template <class T>
struct numeric_traits;

template <>
struct numeric_traits<bf16> : detail::minifloat_traits<bf16> {};
template <>
struct numeric_traits<fp16> : detail::minifloat_traits<fp16> {};
template <>
struct numeric_traits<fp8_e4m3> : detail::minifloat_traits<fp8_e4m3> {};
template <>
struct numeric_traits<fp8_e5m2> : detail::minifloat_traits<fp8_e5m2> {};

template <>
struct numeric_traits<fp4_e2m1> : detail::minifloat_traits<fp4_e2m1> {};

static_assert(sizeof(bf16) == 2 && sizeof(fp16) == 2 && sizeof(fp8_e4m3) == 1 && sizeof(fp8_e5m2) == 1);
static_assert(std::is_trivially_copyable_v<fp4_e2m1> && std::is_trivially_copyable_v<fp8_e8m0>);
static_assert(detail::float_to_bits(numeric_traits<fp4_e2m1>::max_finite()) == 0x40C00000u);  // 6
static_assert(std::is_trivially_copyable_v<bf16> && std::is_trivially_default_constructible_v<bf16>);
static_assert(std::is_trivially_copyable_v<fp16> && std::is_trivially_default_constructible_v<fp16>);
static_assert(std::is_trivially_copyable_v<fp8_e4m3> && std::is_trivially_default_constructible_v<fp8_e4m3>);
static_assert(std::is_trivially_copyable_v<fp8_e5m2> && std::is_trivially_default_constructible_v<fp8_e5m2>);
static_assert(detail::float_to_bits(numeric_traits<fp8_e4m3>::max_finite()) == 0x43E00000u);  // 448
static_assert(detail::float_to_bits(numeric_traits<fp8_e5m2>::max_finite()) == 0x47600000u);  // 57344
static_assert(detail::float_to_bits(numeric_traits<fp16>::max_finite()) == 0x477FE000u);      // 65504

/// An activation value (float, bf16 or fp16) as float: exact.
template <class T>
DEEPSHOCK_HOST_DEVICE constexpr float value_to_float(T v) noexcept {
  if constexpr (std::is_same_v<T, float>) return v;
  else return v.to_float();
}
/// float to an activation type, rounded to nearest even (float: unchanged).
template <class T>
DEEPSHOCK_HOST_DEVICE constexpr T value_from_float(float v) noexcept {
  if constexpr (std::is_same_v<T, float>) return v;
  else return T(v);
}

}  // namespace deepshock
