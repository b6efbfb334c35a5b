// deepshock/privacy/calibration.hpp — noise scales for the Gaussian and Laplace mechanisms.
//
// Host-only double-precision math (no kernels). Given a privacy target (ε, δ) and an L2 (Gaussian)
// or L1 (Laplace) sensitivity Δ, these return the noise scale a mechanism must add:
//
//   * classic Gaussian (Dwork & Roth, Thm A.1): σ = Δ·sqrt(2 ln(1.25/δ))/ε, proven only for
//     0 < ε < 1; outside that range the function refuses (it does not extrapolate).
//   * analytic Gaussian (Balle & Wang 2018, Thm 8): the smallest σ with
//         δ(σ) = Φ(Δ/(2σ) − εσ/Δ) − e^ε·Φ(−Δ/(2σ) − εσ/Δ) ≤ δ,
//     exact for every ε > 0 and never larger than the classic σ. δ(σ) is strictly decreasing in
//     σ, so σ is found by bisection (in log σ, to the last representable bit). δ(σ) is evaluated
//     in log space, ln δ(σ) = ln Φ(a) + ln(1 − exp(ε + ln Φ(b) − ln Φ(a))), with an erfc-based
//     ln Φ that keeps full relative accuracy deep in the lower tail, and the near-cancelling
//     ε + ln Φ(b) − ln Φ(a) of large σ integrated directly (detail::analytic_gaussian_log_delta),
//     so δ down to 1e-300 and ε down to 1e-300 stay accurate.
//   * Laplace: b = Δ/ε.
//
// Reference (Balle & Wang 2018's analytic Gaussian): Δ = 1, ε = 1, δ = 1e-5 → analytic σ = 3.730632, classic 4.844805.
//
// Every function validates its inputs and returns a Status naming the argument, e.g.
// `invalid_argument: delta: must be in (0, 1)`; outputs are written only on success.
// The detail:: helpers (ln erfc, ln Φ, log-sum-exp) are shared with privacy/accountant.hpp.
#pragma once

#include <cmath>
#include <limits>

#include "deepshock/core/status.hpp"

namespace deepshock::privacy {

namespace detail {

/// ln erfc(x) for every real x, accurate to a few ulps also where erfc(x) underflows (x ≳ 26.5):
/// there the asymptotic series erfc(x) = e^{−x²}/(x√π)·Σ (−1)^n (2n−1)!!/(2x²)^n is used
/// (eight terms; truncation error < 1e-16 relative for x ≥ 25).
inline double log_erfc(double x) {
  if (std::isnan(x)) return x;
  if (x < 25.0) return std::log(std::erfc(x));
  if (std::isinf(x)) return -std::numeric_limits<double>::infinity();
  const double inv = 1.0 / (2.0 * x * x);
  double term = 1.0, series = 1.0;
  for (int n = 1; n <= 8; ++n) {
    term *= -(2.0 * n - 1.0) * inv;
    series += term;
  }
  constexpr double log_sqrt_pi = 0.57236494292470008707;  // ln √π
  return -x * x - std::log(x) - log_sqrt_pi + std::log(series);
}

/// ln Φ(x), Φ the standard normal CDF, Φ(x) = erfc(−x/√2)/2; accurate in both tails.
inline double log_ndtr(double x) {
  constexpr double inv_sqrt2 = 0.70710678118654752440;
  constexpr double ln2 = 0.69314718055994530942;
  if (x < -1.0) return log_erfc(-x * inv_sqrt2) - ln2;
  return std::log1p(-0.5 * std::erfc(x * inv_sqrt2));  // Φ(x) ≥ 0.16: no tail to lose
}

/// ln(e^a + e^b), safe for −∞ arguments.
inline double log_add(double a, double b) {
  if (a < b) {
    const double t = a;
    a = b;
    b = t;
  }
  if (b == -std::numeric_limits<double>::infinity()) return a;
  return a + std::log1p(std::exp(b - a));
}

inline bool positive_finite(double x) { return std::isfinite(x) && x > 0.0; }
inline bool open_unit(double x) { return x > 0.0 && x < 1.0; }  // false for NaN

inline Status check_epsilon(const char* name, double epsilon) {
  if (!positive_finite(epsilon)) return Status::invalid_argument(name, "must be finite and > 0");
  return Status::success();
}
inline Status check_delta(double delta) {
  if (!open_unit(delta)) return Status::invalid_argument("delta", "must be in (0, 1)");
  return Status::success();
}
inline Status check_sensitivity(double sensitivity) {
  if (!positive_finite(sensitivity)) return Status::invalid_argument("sensitivity", "must be finite and > 0");
  return Status::success();
}

/// ln δ(σ) of the analytic Gaussian condition (Balle & Wang 2018, Thm 8), without cancellation.
/// With u = Δ/(2σ), v = εσ/Δ: δ(σ) = Φ(u−v)·(1 − e^r), r = ε − I, I = ln Φ(u−v) − ln Φ(−u−v).
/// At large σ, I ≈ ε and r is a small difference; there (u ≤ 1/2) I is integrated directly,
/// I = ∫_{−u}^{u} λ(t − v) dt with λ = φ/Φ (the inverse Mills ratio, analytic within ~2.8 of the
/// real axis), by 10-point Gauss–Legendre (error ≪ 1e-16), so r keeps its relative accuracy
/// even for tiny ε; for u > 1/2 the two ln Φ values are subtracted (no severe cancellation there).
inline double analytic_gaussian_log_delta(double sigma, double epsilon, double sensitivity) {
  const double u = sensitivity / (2.0 * sigma), v = epsilon * sigma / sensitivity;
  const double la = log_ndtr(u - v);
  double r = 0.0;
  if (u <= 0.5) {
    constexpr double node[5] = {0.148874338981631210885, 0.433395394129247190799, 0.679409568299024406234, 0.865063366688984510732,
                                0.973906528517171720078};
    constexpr double weight[5] = {0.295524224714752870174, 0.269266719309996355091, 0.219086362515982043996, 0.149451349150580593146,
                                  0.0666713443086881375936};
    constexpr double log_sqrt_2pi = 0.91893853320467274178;
    auto mills = [](double x) { return std::exp(-0.5 * x * x - log_sqrt_2pi - log_ndtr(x)); };  // φ(x)/Φ(x)
    double integral = 0.0;
    for (int k = 0; k < 5; ++k) integral += weight[k] * (mills(u * node[k] - v) + mills(-u * node[k] - v));
    r = epsilon - u * integral;
  } else {
    r = epsilon + log_ndtr(-u - v) - la;  // ln(e^ε Φ(b) / Φ(a))
  }
  if (!(r < 0.0)) return -std::numeric_limits<double>::infinity();  // δ below rounding: σ → ∞
  return la + std::log(-std::expm1(r));
}

}  // namespace detail

/// Classic Gaussian mechanism: σ = Δ·sqrt(2 ln(1.25/δ))/ε. Valid only for 0 < ε < 1 (the bound's
/// proof needs it); ε ≥ 1 returns invalid_argument pointing to analytic_gaussian_sigma.
inline Status classic_gaussian_sigma(double epsilon, double delta, double sensitivity, double& sigma) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_epsilon("epsilon", epsilon));
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_delta(delta));
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_sensitivity(sensitivity));
  if (!(epsilon < 1.0)) {
    return Status::invalid_argument("epsilon", "must be < 1 for the classic Gaussian bound (use analytic_gaussian_sigma)");
  }
  sigma = sensitivity * std::sqrt(2.0 * std::log(1.25 / delta)) / epsilon;
  return Status::success();
}

/// Analytic Gaussian mechanism (Balle & Wang 2018): the smallest σ with δ(σ) ≤ δ (see the file
/// comment). Any ε > 0. The result is the upper end of the final bracket, so it satisfies the
/// condition as evaluated in double; against 400-digit arithmetic it is within ~1e-13 relative of
/// the exact root (2e-12 for δ within 1e-6 of 1), from ε, δ = 1e-300 to ε = 1e6. Fails with
/// out_of_range only when σ would overflow or underflow a double.
inline Status analytic_gaussian_sigma(double epsilon, double delta, double sensitivity, double& sigma) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_epsilon("epsilon", epsilon));
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_delta(delta));
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_sensitivity(sensitivity));
  const double target = std::log(delta);
  auto too_big = [&](double s) { return detail::analytic_gaussian_log_delta(s, epsilon, sensitivity) > target; };
  // Bracket: δ(σ) → 1 as σ → 0 and → 0 as σ → ∞, so both loops end (or leave the double range).
  double hi = sensitivity, lo = sensitivity;
  for (int i = 0; i < 2100 && too_big(hi); ++i) hi *= 2.0;
  for (int i = 0; i < 2100 && !too_big(lo); ++i) lo *= 0.5;
  if (!std::isfinite(hi) || too_big(hi)) return Status::out_of_range("epsilon", "too small: sigma overflows a double");
  if (!(lo > 0.0)) return Status::out_of_range("epsilon", "too large: sigma underflows a double");
  lo = hi == sensitivity ? lo : hi * 0.5;  // tighten to one octave
  for (int i = 0; i < 200; ++i) {          // geometric bisection; ~60 steps reach adjacent doubles
    double mid = std::sqrt(lo) * std::sqrt(hi);
    if (!(mid > lo && mid < hi)) mid = lo + 0.5 * (hi - lo);
    if (!(mid > lo && mid < hi)) break;
    (too_big(mid) ? lo : hi) = mid;
  }
  sigma = hi;
  return Status::success();
}

/// Laplace mechanism for L1 sensitivity Δ: scale b = Δ/ε (pure ε-DP).
inline Status laplace_scale(double epsilon, double sensitivity, double& scale) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_epsilon("epsilon", epsilon));
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_sensitivity(sensitivity));
  scale = sensitivity / epsilon;
  return Status::success();
}

}  // namespace deepshock::privacy
