// deepshock/core/philox.hpp — Philox4x32-10 counter-based random numbers.
//
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
// 1, 2, 3", SC 2011; the Random123 library) maps a 128-bit counter and a 64-bit key to
// 128 random bits with ten rounds of multiply/xor. It is a pure function of integers,
// so `Philox4x32::generate` gives identical output on host and device and is constexpr.
//
// PhiloxStream lays out (seed, subsequence, offset) like cuRAND's Philox4_32_10 state:
//   key     = { lo32(seed), hi32(seed) }
//   counter = { lo32(block), hi32(block), lo32(subsequence), hi32(subsequence) }
// where draw number n of a subsequence is word n % 4 of block n / 4. (Only the raw
// layout is modelled on cuRAND; no bitwise compatibility with cuRAND is claimed.)
//
// Floating-point helpers:
//   * u32_to_unit_float      [0, 1): top 24 bits * 2^-24 (exact, 2^24 equally spaced values)
//   * u32_to_unit_float_pos  (0, 1]: (top 24 bits + 1) * 2^-24
//   * u64_to_unit_double     [0, 1): top 53 of 64 bits * 2^-53
//   * box_muller             two standard normal floats from two words
// The uniform helpers are exact integer-to-float conversions. box_muller uses its own
// log / sin / cos polynomials built from fmaf (exactly rounded everywhere), exact
// integer range reduction, and one sqrtf, so it too is bitwise identical on host and
// device — provided the build keeps IEEE sqrt (no --use_fast_math / -prec-sqrt=false on
// nvcc, no -ffast-math on the host). Its accuracy is a few float ulps. Its final
// products use __fmul_rn on the device, so nvcc cannot fuse them into a caller's add; a
// host build with FMA contraction (-ffp-contract=fast and -mfma / -march=native) could
// still fuse them into the caller's expression, so keep contraction off there when
// host/device identity of such expressions matters.
#pragma once

#include <cmath>
#include <cstdint>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"

namespace deepshock {

/// Four 32-bit words (a Philox counter or output block). Trivial POD, device-usable.
struct u32x4 {
  std::uint32_t v[4];
  /// Word i (0..3).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t& operator[](int i) noexcept { return v[i]; }
  /// Word i (0..3).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t operator[](int i) const noexcept { return v[i]; }
  /// Word-wise equality.
  DEEPSHOCK_HOST_DEVICE friend constexpr bool operator==(const u32x4& a, const u32x4& b) noexcept {
    return a.v[0] == b.v[0] && a.v[1] == b.v[1] && a.v[2] == b.v[2] && a.v[3] == b.v[3];
  }
};

/// Two 32-bit words (a Philox key). Trivial POD, device-usable.
struct u32x2 {
  std::uint32_t v[2];
  /// Word i (0..1).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t& operator[](int i) noexcept { return v[i]; }
  /// Word i (0..1).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t operator[](int i) const noexcept { return v[i]; }
  /// Word-wise equality.
  DEEPSHOCK_HOST_DEVICE friend constexpr bool operator==(const u32x2& a, const u32x2& b) noexcept {
    return a.v[0] == b.v[0] && a.v[1] == b.v[1];
  }
};

/// A pair of floats (the two outputs of one Box–Muller transform).
struct f32x2 {
  float x;
  float y;
};

/// The Philox4x32-10 block function.
struct Philox4x32 {
  using Counter = u32x4;  ///< 128-bit counter, word 0 least significant
  using Key = u32x2;      ///< 64-bit key

  static constexpr std::uint32_t kMul0 = 0xD2511F53u;   ///< multiplier for words 0/1
  static constexpr std::uint32_t kMul1 = 0xCD9E8D57u;   ///< multiplier for words 2/3
  static constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;  ///< key[0] increment per round
  static constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;  ///< key[1] increment per round
  static constexpr int kRounds = 10;

  /// One Philox S-box round with round key `key`.
  DEEPSHOCK_HOST_DEVICE static constexpr Counter round(Counter c, Key key) noexcept {
    const std::uint64_t p0 = std::uint64_t(kMul0) * c.v[0];
    const std::uint64_t p1 = std::uint64_t(kMul1) * c.v[2];
    const std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
    const std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
    return Counter{{hi1 ^ c.v[1] ^ key.v[0], lo1, hi0 ^ c.v[3] ^ key.v[1], lo0}};
  }

  /// The 128 random bits for counter `ctr` under `key` (10 rounds, Weyl key schedule).
  DEEPSHOCK_HOST_DEVICE static constexpr Counter generate(Counter ctr, Key key) noexcept {
    ctr = round(ctr, key);
    for (int r = 1; r < kRounds; ++r) {
      key.v[0] += kWeyl0;
      key.v[1] += kWeyl1;
      ctr = round(ctr, key);
    }
    return ctr;
  }
};

/// A uniform float in [0, 1): the top 24 bits of `x` times 2^-24 (max 1 - 2^-24).
DEEPSHOCK_HOST_DEVICE constexpr float u32_to_unit_float(std::uint32_t x) noexcept { return float(x >> 8) * 0x1p-24f; }

/// A uniform float in (0, 1]: (top 24 bits of `x` + 1) times 2^-24 (min 2^-24).
DEEPSHOCK_HOST_DEVICE constexpr float u32_to_unit_float_pos(std::uint32_t x) noexcept { return float((x >> 8) + 1u) * 0x1p-24f; }

/// A uniform double in [0, 1): the top 53 bits of `x` times 2^-53.
DEEPSHOCK_HOST_DEVICE constexpr double u64_to_unit_double(std::uint64_t x) noexcept { return double(x >> 11) * 0x1p-53; }

namespace detail {

/// a * b rounded once. In device code this is __fmul_rn, which nvcc never contracts
/// into an FMA with a later add, so results stay rounded as on the host.
DEEPSHOCK_HOST_DEVICE float philox_mul_rn(float a, float b) noexcept {
#if DEEPSHOCK_DEVICE_PASS
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

/// Natural log of a positive normal float, |error| of a few ulps; only fmaf and exact ops.
/// Used by box_muller for arguments in [2^-24, 1].
DEEPSHOCK_HOST_DEVICE float philox_log(float u) noexcept {
  const std::uint32_t b = float_to_bits(u);
  int e = int(b >> 23) - 127;
  std::uint32_t mb = (b & 0x7FFFFFu) | 0x3F800000u;  // mantissa in [1, 2)
  if (mb > 0x3FB504F3u) {                            // above sqrt(2): use m / 2
    mb -= 0x00800000u;
    ++e;
  }
  const float f = bits_to_float(mb) - 1.0f;  // exact, in [sqrt(1/2) - 1, sqrt(2) - 1]
  // log1p(f) / f on that interval: Chebyshev fit, relative error 5.6e-9 before rounding.
  float p = -7.461812347e-02f;
  p = fmaf(p, f, 1.282465309e-01f);
  p = fmaf(p, f, -1.327105612e-01f);
  p = fmaf(p, f, 1.419744790e-01f);
  p = fmaf(p, f, -1.660754234e-01f);
  p = fmaf(p, f, 2.000101209e-01f);
  p = fmaf(p, f, -2.500161231e-01f);
  p = fmaf(p, f, 3.333334625e-01f);
  p = fmaf(p, f, -4.999998808e-01f);
  p = fmaf(p, f, 1.0f);
  const float ef = float(e);
  const float ln2_hi = 6.931471825e-01f, ln2_lo = -1.904654212e-09f;
  return fmaf(ef, ln2_hi, fmaf(ef, ln2_lo, philox_mul_rn(f, p)));
}

/// cos and sin of 2*pi*k/2^24 for a 24-bit integer k, as {cos, sin}; exact range
/// reduction to |t| <= 1/8 turn, then Taylor polynomials (truncation < 2e-9).
DEEPSHOCK_HOST_DEVICE f32x2 philox_cossin_2pi(std::uint32_t k) noexcept {
  const std::uint32_t n = (k + (1u << 21)) >> 22;  // nearest quarter turn, 0..4
  const int j = int(k) - int(n << 22);             // in [-2^21, 2^21)
  const float t = float(j) * 0x1p-24f;             // turns, |t| <= 1/8, exact
  const float t2 = philox_mul_rn(t, t);
  // sin(2 pi t) = t * S(t^2), cos(2 pi t) = C(t^2), coefficients (2 pi)^n / n!.
  float s = 4.205869293e+01f;
  s = fmaf(s, t2, -7.670585632e+01f);
  s = fmaf(s, t2, 8.160524750e+01f);
  s = fmaf(s, t2, -4.134170151e+01f);
  s = fmaf(s, t2, 6.283185482e+00f);
  s = philox_mul_rn(s, t);
  float c = -2.642625618e+01f;
  c = fmaf(c, t2, 6.024464035e+01f);
  c = fmaf(c, t2, -8.545681763e+01f);
  c = fmaf(c, t2, 6.493939209e+01f);
  c = fmaf(c, t2, -1.973920822e+01f);
  c = fmaf(c, t2, 1.0f);
  switch (n & 3u) {
    case 0: return f32x2{c, s};
    case 1: return f32x2{-s, c};
    case 2: return f32x2{-c, -s};
    default: return f32x2{s, -c};
  }
}

}  // namespace detail

/// Box–Muller: two independent standard normal floats from two random words.
/// r = sqrt(-2 ln u1) with u1 = u32_to_unit_float_pos(a) in (0, 1], angle = 2 pi u2
/// with u2 = u32_to_unit_float(b); returns {r cos, r sin}. |values| <= 5.7683.
DEEPSHOCK_HOST_DEVICE f32x2 box_muller(std::uint32_t a, std::uint32_t b) noexcept {
  // fmaf(-2, ln, 0) is exactly -2 ln, but +0 rather than -0 when u1 = 1.
  const float r = std::sqrt(fmaf(-2.0f, detail::philox_log(u32_to_unit_float_pos(a)), 0.0f));
  const f32x2 cs = detail::philox_cossin_2pi(b >> 8);
  return f32x2{detail::philox_mul_rn(r, cs.x), detail::philox_mul_rn(r, cs.y)};
}

/// A sequential stream of Philox4x32-10 words for one (seed, subsequence), starting
/// `offset` words in. Trivially copyable; all draws are deterministic and identical on
/// host and device. Each method documents how many words it consumes.
class PhiloxStream {
 public:
  /// Stream `subsequence` of `seed`, positioned `offset` 32-bit words from its start.
  DEEPSHOCK_HOST_DEVICE constexpr PhiloxStream(std::uint64_t seed, std::uint64_t subsequence = 0, std::uint64_t offset = 0) noexcept
      : key_{{std::uint32_t(seed), std::uint32_t(seed >> 32)}},
        subsequence_(subsequence),
        block_(offset >> 2),
        buf_{},
        idx_(std::uint32_t(offset & 3u)) {
    refill();
  }

  /// The key used for every block ({lo32(seed), hi32(seed)}).
  DEEPSHOCK_HOST_DEVICE constexpr Philox4x32::Key key() const noexcept { return key_; }
  /// The counter of output block `block` in this subsequence.
  DEEPSHOCK_HOST_DEVICE constexpr Philox4x32::Counter counter(std::uint64_t block) const noexcept {
    return Philox4x32::Counter{
        {std::uint32_t(block), std::uint32_t(block >> 32), std::uint32_t(subsequence_), std::uint32_t(subsequence_ >> 32)}};
  }
  /// Number of 32-bit words drawn from the start of the subsequence (mod 2^64).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t offset() const noexcept { return block_ * 4u + idx_; }

  /// Advances the stream by `n` words without producing them.
  DEEPSHOCK_HOST_DEVICE constexpr void skip(std::uint64_t n) noexcept {
    const std::uint64_t pos = offset() + n;
    block_ = pos >> 2;
    idx_ = std::uint32_t(pos & 3u);
    refill();
  }

  /// The next 32-bit word (consumes 1).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t next_u32() noexcept {
    if (idx_ == 4u) {
      ++block_;
      idx_ = 0;
      refill();
    }
    return buf_.v[idx_++];
  }
  /// The next 64 bits: first word in the high half, second in the low half (consumes 2).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t next_u64() noexcept {
    const std::uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  /// Uniform float in [0, 1) from the top 24 bits of one word (consumes 1).
  DEEPSHOCK_HOST_DEVICE constexpr float uniform_float() noexcept { return u32_to_unit_float(next_u32()); }
  /// Uniform float in (0, 1] from the top 24 bits of one word (consumes 1).
  DEEPSHOCK_HOST_DEVICE constexpr float uniform_float_pos() noexcept { return u32_to_unit_float_pos(next_u32()); }
  /// Uniform double in [0, 1) with 53 random bits, from next_u64() (consumes 2).
  DEEPSHOCK_HOST_DEVICE constexpr double uniform_double() noexcept { return u64_to_unit_double(next_u64()); }
  /// One standard normal float: box_muller(w0, w1).x (consumes 2; the sine half is dropped).
  DEEPSHOCK_HOST_DEVICE float normal() noexcept {
    const std::uint32_t a = next_u32();
    return box_muller(a, next_u32()).x;
  }
  /// Two independent standard normal floats: box_muller(w0, w1) (consumes 2).
  DEEPSHOCK_HOST_DEVICE f32x2 normal2() noexcept {
    const std::uint32_t a = next_u32();
    return box_muller(a, next_u32());
  }

 private:
  DEEPSHOCK_HOST_DEVICE constexpr void refill() noexcept { buf_ = Philox4x32::generate(counter(block_), key_); }

  Philox4x32::Key key_;
  std::uint64_t subsequence_;
  std::uint64_t block_;  ///< block held in buf_
  u32x4 buf_;
  std::uint32_t idx_;  ///< next word of buf_ to return; 4 = buf_ used up
};

}  // namespace deepshock
