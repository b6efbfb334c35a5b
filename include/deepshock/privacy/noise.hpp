// deepshock/privacy/noise.hpp — exact discrete noise samplers for differential privacy, shared by
// host and device (Mironov 2012; Canonne, Kamath & Steinke 2020).
//
// Why discrete: adding float Laplace/Gaussian noise to a float leaks through the float grid
// (Mironov 2012). These samplers draw integers in exact integer arithmetic from uniform random
// words — no floating point anywhere — so their distributions are exactly the stated ones, and
// continuous values are released on a power-of-two grid (`release_on_grid`).
//
// Randomness: every draw is a pure function of its identity (seed, stream, index [, domain]).
// A draw owns a private Philox4x32-10 sub-stream (DrawRng):
//   key     = { lo32(seed), hi32(seed) }
//   counter = { lo32(index), hi32(index), domain << 24 | block, stream }
// where block (24 bits) counts the 4-word blocks this draw has consumed. Rejection loops use as
// many words as they need without touching any other draw, so results are identical on CPU and
// GPU and independent of how threads map to indices. `domain` keeps the library's own uses
// (DP-SGD noise, Poisson sampling) apart from user streams under one seed. A draw wraps onto its
// own words after 2^26 words; every loop here ends long before that except with probability
// below 2^-1000000. Never reuse a (seed, stream) for two releases.
//
// Production seeds must come from a cryptographic source (e.g. getrandom(2)) and stay secret:
// the library only takes a caller-supplied key; Philox is not a CSPRNG, and anyone who knows the
// seed can subtract the noise.
//
// Algorithms (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy"):
//   uniform_below(m)        bitmask rejection (acceptance >= 1/2), no modulo bias
//   bernoulli_exp(N / D)    CKS Algorithm 1: Bernoulli(exp(-gamma)), gamma rational
//   DiscreteLaplace         CKS Algorithm 2: P(x) ∝ exp(-|x| / t), t = num / den
//   DiscreteGaussian        CKS Algorithm 3: P(x) ∝ exp(-x^2 / (2 sigma^2)), sigma^2 = num / den
//   standard_normal         Box–Muller on two words (philox.hpp), float; for DP-SGD
// Integer limits (checked by make_discrete_laplace / make_discrete_gaussian, which reduce the
// fraction first; parameters beyond them are rejected with out_of_range):
//   * Laplace: 1 <= num <= 2^40, 1 <= den <= 2^62. The geometric count V of CKS Algorithm 2 is
//     capped at 2^20 (X = U + num V < 2^61); a draw reaching the cap restarts, which conditions
//     on an event of probability 1 - exp(-2^20).
//   * Gaussian: with t = floor(sigma) + 1, need 64 den t^2 < 2^64 and 2 num den t^2 < 2^64
//     (about num < 2^31 for den = 1, sigma up to ~46000). The acceptance exponent
//     (|Y| den t - num)^2 / (2 num den t^2) is formed exactly as a 128-bit numerator over a
//     64-bit denominator. Proposals with |Y| > 64 t are rejected, so the output is the discrete
//     Gaussian conditioned on |Y| <= 64 t (> 64 sigma): the removed mass is below exp(-2000).
//     An exponent >= 2^64 is treated as acceptance probability 0 (exact value < exp(-2^64)).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/philox.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock::privacy {

/// Who draws: keeps the library's own streams apart from the caller's under one seed.
enum class Domain : std::uint32_t { user = 0, dp_sgd_noise = 1, poisson_sampling = 2 };

/// The Philox key of the noise streams: the caller's seed passed through the splitmix64
/// finaliser with a purpose tag, so no draw here shares key and counter with a plain
/// PhiloxStream(seed) or with the selection noise of policy/select.hpp under the same seed.
DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t noise_key(std::uint64_t seed) noexcept {
  std::uint64_t z = seed ^ 0x4E6F697365ULL;  // "Noise"
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// The private Philox sub-stream of one draw (layout in the file comment).
class DrawRng {
 public:
  static constexpr int kBlockBits = 24;  ///< bits of counter word 2 that count blocks
  static constexpr std::uint32_t kBlockMask = (1u << kBlockBits) - 1u;

  DEEPSHOCK_HOST_DEVICE constexpr DrawRng(std::uint64_t seed, std::uint32_t stream, std::uint64_t index,
                                          Domain domain = Domain::user) noexcept
      : key_{{std::uint32_t(noise_key(seed)), std::uint32_t(noise_key(seed) >> 32)}},
        ctr_{{std::uint32_t(index), std::uint32_t(index >> 32), std::uint32_t(domain) << kBlockBits, stream}},
        buf_{},
        idx_(4),
        words_(0) {}

  /// The next 32-bit word of this draw.
  DEEPSHOCK_HOST_DEVICE constexpr std::uint32_t next_u32() noexcept {
    if (idx_ == 4) {
      buf_ = Philox4x32::generate(ctr_, key_);
      ctr_.v[2] = (ctr_.v[2] & ~kBlockMask) | ((ctr_.v[2] + 1u) & kBlockMask);
      idx_ = 0;
    }
    ++words_;
    ++idx_;
    // Take word 0 and shift the rest down: constant indices only. Reading buf_.v[idx_] would
    // index the buffer dynamically, which puts the whole generator in local memory on a GPU.
    const std::uint32_t w = buf_.v[0];
    buf_.v[0] = buf_.v[1];
    buf_.v[1] = buf_.v[2];
    buf_.v[2] = buf_.v[3];
    return w;
  }
  /// 64 bits: the first word is the high half.
  DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t next_u64() noexcept {
    const std::uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  /// Words consumed so far (for tests and cost accounting).
  DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t words_used() const noexcept { return words_; }

 private:
  Philox4x32::Key key_;
  Philox4x32::Counter ctr_;
  u32x4 buf_;
  std::uint32_t idx_;
  std::uint64_t words_;
};

namespace detail {
/// A 128-bit unsigned value, or a quotient/remainder pair.
struct U64Pair {
  std::uint64_t hi;
  std::uint64_t lo;
};

/// The full product a * b as {hi, lo}, from 32-bit halves (identical on every compiler).
DEEPSHOCK_HOST_DEVICE constexpr U64Pair mul_wide(std::uint64_t a, std::uint64_t b) noexcept {
  const std::uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
  const std::uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const std::uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
  return {p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32), (mid << 32) | (p00 & 0xFFFFFFFFu)};
}

/// {quotient, remainder} of (hi * 2^64 + lo) / d for d >= 1 and hi < d (so the quotient fits):
/// restoring shift-subtract division.
DEEPSHOCK_HOST_DEVICE constexpr U64Pair divmod_wide(std::uint64_t hi, std::uint64_t lo, std::uint64_t d) noexcept {
  if (hi == 0) return {lo / d, lo % d};
  std::uint64_t r = hi, q = 0;
  for (int i = 63; i >= 0; --i) {
    const bool carry = (r >> 63) != 0;  // the shifted remainder is >= 2^64 > d
    r = (r << 1) | ((lo >> i) & 1u);
    q <<= 1;
    if (carry || r >= d) {
      r -= d;  // wraps to the true difference when carry is set
      q |= 1u;
    }
  }
  return {q, r};
}

/// floor(sqrt(x)), digit by digit.
DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t isqrt(std::uint64_t x) noexcept {
  std::uint64_t r = 0;
  for (std::uint64_t bit = std::uint64_t(1) << 62; bit != 0; bit >>= 2) {
    if (x >= r + bit) {
      x -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
  }
  return r;
}

constexpr std::uint64_t gcd(std::uint64_t a, std::uint64_t b) noexcept {
  while (b != 0) {
    const std::uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/// a * b when it does not exceed `limit`; false otherwise.
constexpr bool mul_within(std::uint64_t a, std::uint64_t b, std::uint64_t limit, std::uint64_t& out) noexcept {
  if (a != 0 && b > limit / a) return false;
  out = a * b;
  return true;
}

/// 2^k as a float for -126 <= k <= 127 (exact).
DEEPSHOCK_HOST_DEVICE constexpr float pow2f(int k) noexcept { return deepshock::detail::bits_to_float(std::uint32_t(k + 127) << 23); }
}  // namespace detail

/// Uniform integer in [0, m), m >= 1: draw ceil(log2 m) bits, reject values >= m (no modulo
/// bias). One word per attempt when m <= 2^32, else two; m = 1 returns 0 and draws nothing.
DEEPSHOCK_HOST_DEVICE constexpr std::uint64_t uniform_below(DrawRng& rng, std::uint64_t m) noexcept {
  if (m <= 1) return 0;
  std::uint64_t mask = m - 1;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  const bool wide = ((m - 1) >> 32) != 0;
  for (;;) {
    const std::uint64_t x = (wide ? rng.next_u64() : std::uint64_t(rng.next_u32())) & mask;
    if (x < m) return x;
  }
}

/// Bernoulli(num / den) exactly, 0 <= num, den >= 1 (num >= den is always true; num = 0 draws nothing).
DEEPSHOCK_HOST_DEVICE constexpr bool bernoulli_ratio(DrawRng& rng, std::uint64_t num, std::uint64_t den) noexcept {
  if (num == 0) return false;
  if (num >= den) return true;
  return uniform_below(rng, den) < num;
}

/// Bernoulli(exp(-r / d)) for 0 <= r <= d, d >= 1 — CKS Algorithm 1, case gamma <= 1: count K
/// up while Bernoulli(gamma / K) succeeds; return whether the final K is odd. Bernoulli(r / (d K))
/// is drawn as Bernoulli(r / d) AND Bernoulli(1 / K), so no product can overflow.
DEEPSHOCK_HOST_DEVICE constexpr bool bernoulli_exp_le1(DrawRng& rng, std::uint64_t r, std::uint64_t d) noexcept {
  std::uint64_t k = 1;
  while (bernoulli_ratio(rng, r, d) && bernoulli_ratio(rng, 1, k)) ++k;
  return (k & 1u) != 0;
}

/// Bernoulli(exp(-gamma)) for gamma = (hi * 2^64 + lo) / d, d >= 1 — CKS Algorithm 1: floor(gamma)
/// Bernoulli(exp(-1)) trials must all succeed, then Bernoulli(exp(-frac(gamma))). A gamma of
/// 2^64 or more (hi >= d) returns false: its true probability is below exp(-2^64).
DEEPSHOCK_HOST_DEVICE constexpr bool bernoulli_exp_wide(DrawRng& rng, std::uint64_t hi, std::uint64_t lo, std::uint64_t d) noexcept {
  if (hi >= d) return false;
  const detail::U64Pair qr = detail::divmod_wide(hi, lo, d);
  for (std::uint64_t i = 0; i < qr.hi; ++i)
    if (!bernoulli_exp_le1(rng, 1, 1)) return false;
  return bernoulli_exp_le1(rng, qr.lo, d);
}

/// Bernoulli(exp(-num / den)) exactly, num >= 0, den >= 1.
DEEPSHOCK_HOST_DEVICE constexpr bool bernoulli_exp(DrawRng& rng, std::uint64_t num, std::uint64_t den) noexcept {
  return bernoulli_exp_wide(rng, 0, num, den);
}

/// A rational parameter num / den (signed so that negative inputs get a clear error).
struct Rational {
  std::int64_t num = 0;
  std::int64_t den = 1;
};

/// Discrete Laplace (two-sided geometric): P(x) ∝ exp(-|x| / t), t = num / den (reduced).
/// Build with make_discrete_laplace, which enforces the limits below.
struct DiscreteLaplace {
  static constexpr std::uint64_t kMaxNum = std::uint64_t(1) << 40;
  static constexpr std::uint64_t kMaxDen = std::uint64_t(1) << 62;
  static constexpr std::uint64_t kMaxGeometric = std::uint64_t(1) << 20;  ///< cap on V (restart)
  std::uint64_t num = 1;
  std::uint64_t den = 1;

  /// One draw — CKS Algorithm 2 with U uniform in [0, num), V ~ Geometric(1 - 1/e),
  /// X = U + num V, Y = floor(X / den) and a sign, rejecting (-, 0).
  DEEPSHOCK_HOST_DEVICE constexpr std::int64_t sample(DrawRng& rng) const noexcept {
    for (;;) {
      const std::uint64_t u = uniform_below(rng, num);
      if (!bernoulli_exp_le1(rng, u, num)) continue;
      std::uint64_t v = 0;
      while (v < kMaxGeometric && bernoulli_exp_le1(rng, 1, 1)) ++v;
      if (v == kMaxGeometric) continue;  // probability exp(-2^20): restart
      const std::uint64_t y = (u + num * v) / den;
      const bool negative = uniform_below(rng, 2) == 1;
      if (negative && y == 0) continue;
      return negative ? -std::int64_t(y) : std::int64_t(y);
    }
  }
  /// The draw identified by (seed, stream, index) in the user domain.
  DEEPSHOCK_HOST_DEVICE constexpr std::int64_t sample(std::uint64_t seed, std::uint32_t stream, std::uint64_t index) const noexcept {
    DrawRng rng(seed, stream, index);
    return sample(rng);
  }
};

/// Discrete Gaussian: P(x) ∝ exp(-x^2 / (2 sigma^2)), sigma^2 = num / den (reduced), with the
/// precomputed t = floor(sigma) + 1, y_cap = 64 t and gamma_den = 2 num den t^2. Build with
/// make_discrete_gaussian, which enforces the limits in the file comment.
struct DiscreteGaussian {
  std::uint64_t num = 1;
  std::uint64_t den = 1;
  std::uint64_t t = 2;
  std::uint64_t y_cap = 128;
  std::uint64_t gamma_den = 8;

  /// One draw — CKS Algorithm 3: Y ~ DiscreteLaplace(t), accept with probability
  /// exp(-(|Y| - sigma^2 / t)^2 / (2 sigma^2)) = exp(-(|Y| den t - num)^2 / gamma_den).
  DEEPSHOCK_HOST_DEVICE constexpr std::int64_t sample(DrawRng& rng) const noexcept {
    const DiscreteLaplace proposal{t, 1};
    for (;;) {
      const std::int64_t y = proposal.sample(rng);
      const std::uint64_t ay = y < 0 ? std::uint64_t(-y) : std::uint64_t(y);
      if (ay > y_cap) continue;              // truncation at 64 t (mass < exp(-2000))
      const std::uint64_t p = ay * den * t;  // < 2^64 by the limits
      const std::uint64_t a = p >= num ? p - num : num - p;
      const detail::U64Pair sq = detail::mul_wide(a, a);
      if (bernoulli_exp_wide(rng, sq.hi, sq.lo, gamma_den)) return y;
    }
  }
  /// The draw identified by (seed, stream, index) in the user domain.
  DEEPSHOCK_HOST_DEVICE constexpr std::int64_t sample(std::uint64_t seed, std::uint32_t stream, std::uint64_t index) const noexcept {
    DrawRng rng(seed, stream, index);
    return sample(rng);
  }
};

namespace detail {
/// Checks num, den >= 1 and reduces the fraction.
inline Status reduce_rational(const Rational& r, const char* name, std::uint64_t& num, std::uint64_t& den) {
  if (r.num < 1 || r.den < 1)
    return Status::invalid_argument(name,
                                    "numerator and denominator must be >= 1, got " + std::to_string(r.num) + "/" + std::to_string(r.den));
  const std::uint64_t g = gcd(std::uint64_t(r.num), std::uint64_t(r.den));
  num = std::uint64_t(r.num) / g;
  den = std::uint64_t(r.den) / g;
  return Status::success();
}
}  // namespace detail

/// Validates the scale t = scale.num / scale.den (name: the argument name for messages).
inline Status make_discrete_laplace(const Rational& scale, const char* name, DiscreteLaplace& out) {
  std::uint64_t num = 0, den = 0;
  DEEPSHOCK_RETURN_IF_ERROR(detail::reduce_rational(scale, name, num, den));
  if (num > DiscreteLaplace::kMaxNum || den > DiscreteLaplace::kMaxDen)
    return Status::out_of_range(name, "reduced numerator must be <= 2^40 and denominator <= 2^62");
  out = DiscreteLaplace{num, den};
  return Status::success();
}

/// Validates sigma^2 = sigma2.num / sigma2.den and precomputes the sampler's constants.
inline Status make_discrete_gaussian(const Rational& sigma2, const char* name, DiscreteGaussian& out) {
  std::uint64_t num = 0, den = 0;
  DEEPSHOCK_RETURN_IF_ERROR(detail::reduce_rational(sigma2, name, num, den));
  const std::uint64_t t = detail::isqrt(num / den) + 1;  // floor(sigma) + 1
  const std::uint64_t max = ~std::uint64_t(0);
  std::uint64_t dt = 0, dt2 = 0, ndt2 = 0;
  const bool fits =
      detail::mul_within(den, t, max, dt) && detail::mul_within(dt, t, max / 64, dt2) && detail::mul_within(num, dt2, max / 2, ndt2);
  if (!fits)
    return Status::out_of_range(name, "too large for exact 64-bit sampling: need 64 d t^2 < 2^64 and 2 n d t^2 < 2^64 "
                                      "with t = floor(sigma) + 1 (about n < 2^31 for d = 1)");
  out = DiscreteGaussian{num, den, t, 64 * t, 2 * ndt2};
  return Status::success();
}

/// A standard normal from two 64-bit words, Box-Muller in double: u1 is a 53-bit uniform in (0, 1],
/// so the radius reaches sqrt(-2 ln 2^-53) = 8.57 and the tail that a bounded sampler cuts off
/// has probability below 1e-17 (a 24-bit uniform would stop at 5.77, which breaks the delta of
/// DP-SGD: an output beyond the edge could only come from the neighbouring dataset). The result
/// agrees between host and device to double rounding, then rounds to float.
DEEPSHOCK_HOST_DEVICE float normal_from_words(std::uint64_t a, std::uint64_t b) noexcept {
  const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1p-53;  // (0, 1]
  const double u2 = static_cast<double>(b >> 11) * 0x1p-53;          // [0, 1)
  return static_cast<float>(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
/// One standard normal from the next four words of `rng` (normal_from_words).
DEEPSHOCK_HOST_DEVICE float standard_normal(DrawRng& rng) noexcept {
  const std::uint64_t a = rng.next_u64();
  return normal_from_words(a, rng.next_u64());
}

/// The N(0, 1) float DP-SGD adds to parameter `param` at `step` (domain dp_sgd_noise). `param`
/// must be unique across every tensor released at that step (see DpSgdParams::param_offset).
DEEPSHOCK_HOST_DEVICE float dp_sgd_noise(std::uint64_t seed, std::uint32_t step, std::uint64_t param) noexcept {
  DrawRng rng(seed, step, param, Domain::dp_sgd_noise);
  return standard_normal(rng);
}

/// Whether Poisson sampling with rate q takes `example` at `step`: u < q with u a uniform
/// 53-bit double (domain poisson_sampling), so P = ceil(q 2^53) / 2^53 (exactly q when q is a
/// multiple of 2^-53). q <= 0 never samples, q >= 1 always does.
DEEPSHOCK_HOST_DEVICE bool poisson_sampled(std::uint64_t seed, std::uint32_t step, std::uint64_t example, double q) noexcept {
  DrawRng rng(seed, step, example, Domain::poisson_sampling);
  return u64_to_unit_double(rng.next_u64()) < q;
}

/// int64 addition that saturates at the type's limits instead of overflowing.
DEEPSHOCK_HOST_DEVICE constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  constexpr std::int64_t kMax = 0x7FFFFFFFFFFFFFFFll, kMin = -kMax - 1;
  if (b > 0 && a > kMax - b) return kMax;
  if (b < 0 && a < kMin - b) return kMin;
  return a + b;
}

// ---- release on a power-of-two grid ----------------------------------------------------------
//
// release_on_grid(x) = Λ * clamp(round(clamp(x, ±B') / Λ) + Z, ±M), with Λ = 2^lambda_exp,
// M = floor(B / Λ) grid steps, B' = M Λ, round-half-to-even, Z a discrete noise draw in grid
// units. NaN inputs count as 0, ±inf clamp. Every value is computed exactly (integers, and a
// float product by a power of two that cannot round), so the output is an exact function of the
// integer m = round(...) and Z: the float representation of x cannot leak past the grid
// (Mironov's attack needs float noise). Privacy: if the query x has sensitivity Δ, m has
// sensitivity floor(Δ / Λ) + 1 grid steps (the +1 covers rounding); calibrate Z to that integer
// sensitivity (e.g. discrete Gaussian with sigma^2 in grid units^2). Clamping the input lowers
// the sensitivity to at most 2M; clamping the output is post-processing.

/// A grid: spacing 2^lambda_exp, outputs within ±clamp_bound (rounded down to the grid).
struct Grid {
  int lambda_exp = 0;
  float clamp_bound = 1.0f;
};

/// A validated grid: exponent in [-100, 100], bound in grid steps in [1, 2^24] (exact in float).
struct GridParams {
  static constexpr int kMinExp = -100;
  static constexpr int kMaxExp = 100;
  static constexpr std::int64_t kMaxSteps = std::int64_t(1) << 24;
  int lambda_exp = 0;
  std::int64_t bound_steps = 1;
};

/// Validates `grid`; messages name "grid.lambda_exp" / "grid.clamp_bound".
inline Status make_grid(const Grid& grid, GridParams& out) {
  if (grid.lambda_exp < GridParams::kMinExp || grid.lambda_exp > GridParams::kMaxExp)
    return Status::invalid_argument("grid.lambda_exp", "must be in [-100, 100], got " + std::to_string(grid.lambda_exp));
  const float b = grid.clamp_bound;
  if (!(b > 0.0f) || !std::isfinite(b)) return Status::invalid_argument("grid.clamp_bound", "must be finite and > 0");
  // b * 2^-k is exact in double (|k| <= 100); floor of a value below 2^25 is exact too.
  double steps = double(b);
  for (int k = grid.lambda_exp; k > 0; --k) steps *= 0.5;
  for (int k = grid.lambda_exp; k < 0; ++k) steps *= 2.0;
  if (steps < 1.0 || steps > double(GridParams::kMaxSteps))
    return Status::out_of_range("grid.clamp_bound", "must span 1 to 2^24 grid steps of 2^lambda_exp");
  out = GridParams{grid.lambda_exp, std::int64_t(steps)};
  return Status::success();
}

/// round(clamp(value / Λ, ±M)) with ties to even; NaN counts as 0. Exact.
DEEPSHOCK_HOST_DEVICE std::int64_t snap_to_grid(float value, const GridParams& g) noexcept {
  float x = deepshock::detail::philox_mul_rn(value, detail::pow2f(-g.lambda_exp));  // exact, or clamped below
  const float m = float(g.bound_steps);
  if (!(x == x)) x = 0.0f;
  x = x < -m ? -m : (x > m ? m : x);
  std::int64_t i = std::int64_t(x);  // truncation
  const float frac = x - float(i);   // exact for |x| <= 2^24
  const bool odd = (i & 1) != 0;
  if (frac > 0.5f || (frac == 0.5f && odd)) ++i;
  if (frac < -0.5f || (frac == -0.5f && odd)) --i;
  return i;
}

/// Releases `value` on the grid with noise drawn from `rng` (Noise: DiscreteGaussian or
/// DiscreteLaplace in grid units). See the section comment for the exact definition.
template <class Noise>
DEEPSHOCK_HOST_DEVICE float release_on_grid(float value, const GridParams& g, const Noise& noise, DrawRng& rng) noexcept {
  const std::int64_t m = snap_to_grid(value, g);
  const std::int64_t y = saturating_add(m, noise.sample(rng));
  const std::int64_t c = y < -g.bound_steps ? -g.bound_steps : (y > g.bound_steps ? g.bound_steps : y);
  return deepshock::detail::philox_mul_rn(float(c), detail::pow2f(g.lambda_exp));  // exact
}

/// release_on_grid with the draw identified by (seed, stream, index) in the user domain.
template <class Noise>
DEEPSHOCK_HOST_DEVICE float release_on_grid(float value, const GridParams& g, const Noise& noise, std::uint64_t seed, std::uint32_t stream,
                                            std::uint64_t index) noexcept {
  DrawRng rng(seed, stream, index);
  return release_on_grid(value, g, noise, rng);
}

}  // namespace deepshock::privacy
