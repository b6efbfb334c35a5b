// deepshock/privacy/accountant.hpp — Rényi-DP accountant for the Poisson-subsampled Gaussian (DP-SGD).
//
// One DP-SGD step samples each example with probability q and adds N(0, σ²C²) to the clipped sum.
// Its Rényi DP at order α is RDP(α) = ln(A_α)/(α − 1) with A_α = E_{z∼μ0}[(μ(z)/μ0(z))^α],
// μ0 = N(0, σ²), μ1 = N(1, σ²), μ = (1 − q)μ0 + qμ1 (Mironov, Talwar & Zhang 2019, "Rényi
// Differential Privacy of the Sampled Gaussian Mechanism"). Steps compose by adding RDP per order;
// (ε, δ) follows by minimising a conversion over the orders. Host-only double math; no kernels.
//
//   * integer α: the exact binomial sum A = Σ_{k=0..α} C(α,k)(1−q)^{α−k} q^k e^{(k²−k)/(2σ²)},
//     evaluated as A − 1 = Σ_{k≥2} C(α,k)(1−q)^{α−k} q^k expm1((k²−k)/(2σ²)) (the k = 0, 1 terms
//     sum with the rest of (1 − q + q)^α = 1), all terms positive, log-sum-exp, ln A = log1p(A−1):
//     full relative accuracy even for tiny RDP. Cost O(α).
//   * fractional α: the two-series formula of MTZ 2019 §3.3 (their Theorem 11 split at
//     z0 = σ² ln(1/q − 1) + 1/2), with generalized binomials C(α,i) by the product recursion:
//       A = Σ_i C(α,i) [ q^i (1−q)^{α−i} e^{(i²−i)/(2σ²)} Φ((z0 − i)/σ)
//                      + q^{α−i} (1−q)^i e^{(j²−j)/(2σ²)} Φ((j − z0)/σ) ],  j = α − i.
//     For accuracy near A = 1, the identity 1 = E_{μ0}[1 + αq(r − 1)] (r = μ1/μ0), split at z0 the
//     same way, is subtracted: the i = 0, 1 terms of the first series cancel analytically and the
//     sum yields A − 1. Past i = α + 1 the terms alternate and shrink (like i^{−α−2} when q ≈ 1/2
//     and σ is large); the sum stops once a term is below e^{−38} of the sum, or, in a smooth
//     alternating tail (10 term ratios in (0.9, 1)), below e^{−12} of it, estimating the rest by
//     averaging the last 11 partial sums 10 times (Euler's transformation). Accuracy (checked
//     against 50-digit quadrature, tools/dp_golden.py): relative ~1e-16·max(1, σ²) for small q (the
//     leading terms still cancel by ~σ²: 1e-11 at σ = 100, 1.5e-7 at σ = 1e4 where RDP ~ 1e-12);
//     near q = 1/2, ~1e-16·Σ|terms|/(A−1) (α = 1.1: 1e-11 at σ = 20, 1e-8 at σ = 1000) — in
//     absolute terms below ~1e-15 per step for 1.1 ≤ α ≤ 11 (wider: see the supported orders
//     below). Cost: tens to a few thousand terms.
//   * q = 0: RDP = 0 exactly; q = 1: RDP = α/(2σ²) exactly.
//   * Near-noiseless steps, (α + 2)²/(2σ²) ≥ 1e300, where both series' exponents would overflow:
//     RDP = α/(2σ²) (or +∞), the unsampled Gaussian's RDP. It bounds the subsampled one from above
//     for every q, and from below A ≥ q^α e^{α(α−1)/(2σ²)} puts the exact value within
//     |α ln q/(α − 1)| of it — below rounding once α/(2σ²) exceeds ~1e288.
//   * Near-noise-only steps, α/(2σ²) < 1e-290, where σ²·ln(1/q − 1) would overflow: RDP = α/(2σ²)
//     as well, off by less than 1e-290 (it bounds a value in [0, α/(2σ²)]).
//   * Supported orders: integers 2..kMaxOrder = 1e6 (the integer sum costs O(α)), fractional α in
//     [kMinFractionalOrder, kMaxFractionalOrder] = [1.01, 32]. Outside that range the fractional
//     series' rounding error, which may understate the loss, grows: like 2^α·1e-16 above (the
//     alternating terms cancel) and like 1e-16/(α − 1) towards 1 (ln A is divided by α − 1).
//     Measured against the same series in 80-bit arithmetic: ≤ ~6e-14 absolute per step inside the
//     range, 1e-8 (10% relative) at α ≈ 64, 5e-10 (40%) at α = 1 + 1e-7. Other orders are rejected.
//
// Conversions (δ in (0,1)), both minimised over the orders:
//   classic   ε = RDP(α) − ln δ/(α − 1)                                   (Mironov 2017)
//   improved  ε = RDP(α) + ln((α − 1)/α) − (ln δ + ln α)/(α − 1), ≥ 0     (Balle et al. 2020,
//             Canonne, Kamath & Steinke 2020; clamped at 0, which any (ε, δ) statement allows)
// Reference (TensorFlow Privacy's MNIST DP-SGD setting): q = 256/60000, σ = 1.1, 60 epochs (14063 steps), δ = 1e-5 →
// improved ε = 2.5967 (order 8.1), classic ε = 3.0084 (order 8.8).
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/privacy/calibration.hpp"  // detail::log_ndtr, log_add, input checks

namespace deepshock::privacy {

/// How accumulated RDP becomes (ε, δ); see the file comment.
enum class Conversion { improved, classic };

/// ε and the RDP order that attains it.
struct EpsilonResult {
  double epsilon = 0.0;
  double order = 0.0;
};

/// Largest RDP order rdp_subsampled_gaussian (and so RdpAccountant) evaluates: the integer sum
/// costs O(α) terms.
inline constexpr double kMaxOrder = 1e6;
/// The range of fractional (non-integer) orders it evaluates; outside it the fractional series'
/// rounding error grows (see the file comment). Integer orders go from 2 up to kMaxOrder.
inline constexpr double kMinFractionalOrder = 1.01;
inline constexpr double kMaxFractionalOrder = 32.0;

namespace detail {

inline constexpr double kNegInf = -std::numeric_limits<double>::infinity();

inline double safe_log(double x) { return x > 0.0 ? std::log(x) : kNegInf; }  // rounding below 0 → −∞
inline double softplus(double x) { return x > 0.0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

/// Neumaier-compensated sum of signed values given as (sign, ln|value|), scaled by e^{−log_scale}.
struct ScaledSum {
  double log_scale = 0.0, sum = 0.0, comp = 0.0;
  void add_linear(double x) {
    const double t = sum + x;
    comp += std::fabs(sum) >= std::fabs(x) ? (sum - t) + x : (x - t) + sum;
    sum = t;
  }
  double add(double sign, double log_mag) {  // returns the scaled term
    if (log_mag == kNegInf || sign == 0.0) return 0.0;
    const double x = sign * std::exp(log_mag - log_scale);
    add_linear(x);
    return x;
  }
  double value() const { return sum + comp; }
};

/// ln A for integer n ≥ 2, 0 < q < 1 (see the file comment).
inline double log_a_integer(double q, double sigma, std::int64_t n) {
  const double lq = std::log(q), l1q = std::log1p(-q), inv = 1.0 / (2.0 * sigma * sigma);
  double lc = std::log(0.5 * static_cast<double>(n) * static_cast<double>(n - 1));  // ln C(n, 2)
  double m = kNegInf, s = 0.0;                                                      // running log-sum-exp: Σ = s·e^m
  for (std::int64_t k = 2; k <= n; ++k) {
    const double kd = static_cast<double>(k), x = (kd * kd - kd) * inv;
    const double log_em1 = x > 30.0 ? x + std::log1p(-std::exp(-x)) : std::log(std::expm1(x));
    const double t = lc + static_cast<double>(n - k) * l1q + kd * lq + log_em1;
    if (t != kNegInf) {
      if (t > m) {
        s = s * std::exp(m - t) + 1.0;
        m = t;
      } else s += std::exp(t - m);
    }
    lc += std::log(static_cast<double>(n - k) / (kd + 1.0));
  }
  return m == kNegInf ? 0.0 : softplus(m + std::log(s));
}

/// (1 − q)^α − 1 + αq ≥ 0 without cancellation: Σ_{k≥2} C(α,k)(−q)^k for q ≤ 1/2.
inline double pow1m_minus_linear(double q, double alpha) {
  if (q > 0.5) return std::expm1(alpha * std::log1p(-q)) + alpha * q;
  ScaledSum acc;
  double c = 0.5 * alpha * (alpha - 1.0) * q * q;
  const double first = std::fabs(c);
  for (int k = 2; k < 400 && std::fabs(c) > 1e-18 * first; ++k) {
    acc.add_linear(c);
    c *= -(alpha - k) / (k + 1.0) * q;
  }
  return acc.value();
}

/// ln A for non-integer α > 1, 0 < q < 1 (see the file comment).
inline double log_a_fractional(double q, double sigma, double alpha) {
  const double lq = std::log(q), l1q = std::log1p(-q), inv = 1.0 / (2.0 * sigma * sigma);
  const double z0 = sigma * sigma * (l1q - lq) + 0.5;
  // ln|C(α,i)|·(T1_i + T2_i) with T1_0 = T1_1 = 0 (those two live in the corrections below).
  auto log_term = [&](double i, double log_binom) {
    const double j = alpha - i;
    const double t1 = i < 2.0 ? kNegInf : i * lq + j * l1q + (i * i - i) * inv + log_ndtr((z0 - i) / sigma);
    const double t2 = j * lq + i * l1q + (j * j - j) * inv + log_ndtr((j - z0) / sigma);
    return log_binom + log_add(t1, t2);
  };
  const double aq = alpha * q;
  const double fix_sign[4] = {1.0, -1.0, aq < 1.0 ? -1.0 : 1.0, -1.0};
  const double fix_log[4] = {safe_log(pow1m_minus_linear(q, alpha)) + log_ndtr(z0 / sigma),  // T1_0 − (1−αq)Φ(z0/σ)
                             std::log(aq) + std::log(-std::expm1((alpha - 1.0) * l1q)) +
                                 log_ndtr((z0 - 1.0) / sigma),                                             // αT1_1 − αqΦ((z0−1)/σ)
                             aq == 1.0 ? kNegInf : std::log(std::fabs(1.0 - aq)) + log_ndtr(-z0 / sigma),  // −(1−αq)Φ(−z0/σ)
                             std::log(aq) + log_ndtr((1.0 - z0) / sigma)};                                 // −αqΦ((1−z0)/σ)
  // Head: i < ⌈α⌉ + 2, where terms may still grow; its largest term fixes the scale.
  const auto head = static_cast<int>(std::ceil(alpha)) + 2;
  std::vector<double> head_log(static_cast<std::size_t>(head)), head_sign(static_cast<std::size_t>(head));
  double log_binom = 0.0, sign = 1.0, scale = kNegInf;
  for (int i = 0; i < head; ++i) {
    head_log[static_cast<std::size_t>(i)] = log_term(i, log_binom);
    head_sign[static_cast<std::size_t>(i)] = sign;
    scale = std::fmax(scale, head_log[static_cast<std::size_t>(i)]);
    log_binom += std::log(std::fabs(alpha - i) / (i + 1.0));
    if (alpha - i < 0.0) sign = -sign;
  }
  for (double l : fix_log) scale = std::fmax(scale, l);
  ScaledSum acc{scale};
  for (int f = 0; f < 4; ++f) (void)acc.add(fix_sign[f], fix_log[f]);
  for (std::size_t i = 0; i < head_log.size(); ++i) (void)acc.add(head_sign[i], head_log[i]);
  // Tail: alternating, shrinking terms; stop rules and Euler averaging as in the file comment.
  constexpr int K = 10;
  double partial[K + 1] = {};  // ring of the last K+1 partial sums
  double prev = 0.0, am1 = acc.value();
  int smooth = 0;
  for (int i = head;; ++i) {
    const double x = acc.add(sign, log_term(i, log_binom));
    log_binom += std::log(std::fabs(alpha - i) / (i + 1.0));
    sign = -sign;  // i > α from here on
    const double s = acc.value(), b = std::fabs(x);
    partial[i % (K + 1)] = s;
    const double r = prev != 0.0 ? b / std::fabs(prev) : 0.0;
    smooth = (r > 0.9 && r < 1.0 && x * prev < 0.0) ? smooth + 1 : 0;
    prev = x;
    am1 = s;
    if (b <= 3.1e-17 * std::fabs(s)) break;                          // e^{−38}: the tail is below rounding
    const bool settled = smooth >= K && b <= 6.1e-6 * std::fabs(s);  // e^{−12}
    if (settled || i >= head + 4'000'000) {
      const int n0 = i - K;  // average S_{n0}..S_i K times: binomial weights C(K,k)/2^K
      double w = 1.0, acc_delta = 0.0;
      for (int k = 0; k <= K; ++k) {
        acc_delta += w * (partial[(n0 + k) % (K + 1)] - partial[n0 % (K + 1)]);
        w = w * (K - k) / (k + 1.0);
      }
      am1 = partial[n0 % (K + 1)] + acc_delta / 1024.0;  // 2^K
      break;
    }
  }
  if (std::isnan(am1)) return am1;  // never read NaN as "no loss": the caller reports it
  if (!(am1 > 0.0)) return 0.0;     // A ≥ 1; a non-positive sum is rounding at RDP ≈ 0
  return softplus(scale + std::log(am1));
}

inline Status check_mechanism(double q, double sigma) {
  if (!(q >= 0.0 && q <= 1.0)) return Status::invalid_argument("q", "must be in [0, 1]");
  if (!positive_finite(sigma)) return Status::invalid_argument("sigma", "must be finite and > 0");
  return Status::success();
}

/// Shortest text that reads back as x ("0.5", "1e+06", "-inf", "nan"), for error messages.
inline std::string format_number(double x) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

/// "name[i] = value", naming one bad element of an array argument.
inline std::string element(const char* name, std::size_t i, double value) {
  return std::string(name) + "[" + std::to_string(i) + "] = " + format_number(value);
}

inline bool valid_order(double alpha) { return std::isfinite(alpha) && alpha > 1.0; }  // false for NaN

/// Why rdp_subsampled_gaussian cannot evaluate order α ("" if it can): see the file comment.
inline std::string unsupported_order(double alpha) {
  if (!valid_order(alpha)) return "is not a finite number > 1";
  if (alpha > kMaxOrder) return "is above the largest supported order, " + format_number(kMaxOrder);
  if (alpha != std::floor(alpha) && !(alpha >= kMinFractionalOrder && alpha <= kMaxFractionalOrder)) {
    return "is a fractional order outside [" + format_number(kMinFractionalOrder) + ", " + format_number(kMaxFractionalOrder) +
           "], where the series for fractional orders loses accuracy";
  }
  return {};
}

/// Orders an accountant can compose with: at least one, each one rdp_subsampled_gaussian accepts.
inline Status check_accountant_orders(const std::vector<double>& orders) {
  if (orders.empty()) return Status::invalid_argument("orders", "must not be empty");
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const std::string why = unsupported_order(orders[i]);
    if (!why.empty()) return Status::invalid_argument("orders", element("orders", i, orders[i]) + " " + why);
  }
  return Status::success();
}

}  // namespace detail

/// RDP at order α of one step of the Poisson-subsampled Gaussian mechanism with sampling rate q and
/// noise multiplier σ (noise std / L2 sensitivity), written to `rdp` on success only. Integer α in
/// [2, kMaxOrder] and fractional α in [kMinFractionalOrder, kMaxFractionalOrder] (method, accuracy
/// and these limits in the file comment). The result is ≥ 0, and +∞ where α/(2σ²) overflows.
/// invalid_argument names q (not in [0, 1]), sigma (not finite and > 0) or alpha (not finite and
/// > 1, or outside the supported orders), e.g. "alpha: 0.5 is not a finite number > 1"; internal
/// means the series gave no number for valid arguments (a bug), reported rather than read as 0.
inline Status rdp_subsampled_gaussian(double q, double sigma, double alpha, double& rdp) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_mechanism(q, sigma));
  const std::string why = detail::unsupported_order(alpha);
  if (!why.empty()) return Status::invalid_argument("alpha", detail::format_number(alpha) + " " + why);
  // The unsampled Gaussian's RDP bounds every q from above; it is the answer, exact or to
  // rounding, where the series' exponents or σ²·ln(1/q − 1) would overflow (see the file comment).
  const double two_var = 2.0 * sigma * sigma;
  const double unsampled = alpha / two_var;
  const bool near_noiseless = !((alpha + 2.0) * (alpha + 2.0) / two_var < 1e300);  // also when 2σ² underflows
  const bool near_noise_only = unsampled < 1e-290;
  double value = 0.0;
  if (q == 0.0) {
    value = 0.0;
  } else if (q == 1.0 || near_noiseless || near_noise_only) {
    value = unsampled;
  } else {
    const double log_a = alpha == std::floor(alpha) ? detail::log_a_integer(q, sigma, static_cast<std::int64_t>(alpha))
                                                    : detail::log_a_fractional(q, sigma, alpha);
    value = log_a / (alpha - 1.0);
  }
  if (!(value >= 0.0)) {
    return Status::internal("rdp_subsampled_gaussian: no valid RDP for q = " + detail::format_number(q) +
                            ", sigma = " + detail::format_number(sigma) + ", alpha = " + detail::format_number(alpha));
  }
  rdp = value;
  return Status::success();
}

/// The same as a plain value, for quick evaluation: NaN for anything the Status form rejects
/// (invalid arguments or an internal failure), so check with std::isnan before using it.
inline double rdp_subsampled_gaussian(double q, double sigma, double alpha) {
  double rdp = 0.0;
  return rdp_subsampled_gaussian(q, sigma, alpha, rdp).ok() ? rdp : std::numeric_limits<double>::quiet_NaN();
}

/// ε for accumulated RDP values `rdp[i]` at `orders[i]`, minimised over the orders; `out` is
/// written on success only. Every input is checked, naming the argument (and the element):
/// delta in (0, 1); conversion a Conversion value; `orders` non-empty, each finite and > 1 (any
/// such order converts; the accountant's limits on orders are for computing RDP); `rdp` one value
/// per order, each ≥ 0 or +∞ — an RDP of +∞ is legal (an order that bounds nothing, e.g. after an
/// overflow) and is skipped, as is any order whose ε overflows. If no order gives a finite ε, the
/// call succeeds with ε = +∞ and order = NaN: no finite guarantee, never an understated one.
inline Status epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta, Conversion conversion,
                               EpsilonResult& out) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_delta(delta));
  if (conversion != Conversion::improved && conversion != Conversion::classic) {
    return Status::invalid_argument("conversion", "is not a Conversion value (" + std::to_string(static_cast<int>(conversion)) + ")");
  }
  if (orders.empty()) return Status::invalid_argument("orders", "must not be empty");
  if (orders.size() != rdp.size()) {
    return Status::invalid_argument("rdp", "must have one value per order (orders has " + std::to_string(orders.size()) + ", rdp has " +
                                               std::to_string(rdp.size()) + ")");
  }
  for (std::size_t i = 0; i < orders.size(); ++i) {
    if (!detail::valid_order(orders[i])) {
      return Status::invalid_argument("orders", detail::element("orders", i, orders[i]) + " is not a finite number > 1");
    }
  }
  for (std::size_t i = 0; i < rdp.size(); ++i) {
    if (!(rdp[i] >= 0.0)) {  // false for NaN too
      return Status::invalid_argument("rdp", detail::element("rdp", i, rdp[i]) + " is not a number >= 0 (+inf is allowed)");
    }
  }
  const double log_delta = std::log(delta);
  EpsilonResult best{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()};
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i];
    const double e = conversion == Conversion::classic ? rdp[i] - log_delta / (a - 1.0)
                                                       : rdp[i] + std::log((a - 1.0) / a) - (log_delta + std::log(a)) / (a - 1.0);
    if (std::isfinite(e) && e < best.epsilon) best = {e, a};
  }
  if (best.epsilon < 0.0) best.epsilon = 0.0;  // improved conversion only; classic is ≥ 0 anyway
  out = best;
  return Status::success();
}

/// Accumulates RDP over a fixed set of orders. Not thread-safe for concurrent mutation.
///
/// A call that returns an error changes nothing: set_orders and compose validate their arguments
/// and compute every order's RDP before they touch the state, so after a rejected call orders()
/// and rdp() are bitwise what they were and epsilon() reports exactly the compositions that
/// succeeded. A rejected compose therefore accounts for no loss — so call compose before
/// releasing a step's output, and release it only if compose succeeded; then epsilon() never
/// understates what was released. RDP that overflows accumulates as +∞ (ε then comes from the
/// other orders, or is +∞), never as a smaller number.
class RdpAccountant {
 public:
  /// Default orders (the common DP-SGD grid, plus two large orders for very small ε):
  /// 1 + x/10 for x = 1..99 (1.1 … 10.9), the integers 12..63, and 128, 256 — 153 orders.
  static std::vector<double> default_orders() {
    std::vector<double> o;
    for (int x = 1; x <= 99; ++x) o.push_back(1.0 + x / 10.0);
    for (int a = 12; a <= 63; ++a) o.push_back(a);
    o.push_back(128.0);
    o.push_back(256.0);
    return o;
  }

  RdpAccountant() : orders_(default_orders()), rdp_(orders_.size(), 0.0) {}

  /// Replaces the orders and clears the accumulated RDP. Each order must be one
  /// rdp_subsampled_gaussian evaluates (an integer in [2, kMaxOrder] or a fraction in
  /// [kMinFractionalOrder, kMaxFractionalOrder]), at least one; the error names the first bad one, e.g.
  /// "orders: orders[1] = 0.5 is not a finite number > 1". On error nothing changes.
  Status set_orders(std::vector<double> orders) {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_accountant_orders(orders));
    std::vector<double> cleared(orders.size(), 0.0);  // allocate before changing anything
    orders_ = std::move(orders);
    rdp_ = std::move(cleared);
    return Status::success();
  }

  /// Adds `steps` steps of the subsampled Gaussian (rate q, noise multiplier σ). steps = 0 and
  /// q = 0 add nothing. On error nothing is added (see the class comment).
  Status compose(double q, double sigma, std::int64_t steps = 1) {
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_mechanism(q, sigma));
    if (steps < 0) return Status::invalid_argument("steps", "must be >= 0");
    if (steps == 0 || q == 0.0) return Status::success();
    std::vector<double> add(orders_.size());
    for (std::size_t i = 0; i < orders_.size(); ++i) {
      double per_step = 0.0;
      DEEPSHOCK_RETURN_IF_ERROR(rdp_subsampled_gaussian(q, sigma, orders_[i], per_step));
      add[i] = static_cast<double>(steps) * per_step;  // ≥ 0 or +∞: the sums below stay NaN-free
    }
    for (std::size_t i = 0; i < orders_.size(); ++i) rdp_[i] += add[i];
    return Status::success();
  }

  /// The smallest ε over the orders for the given δ ∈ (0, 1), and the order attaining it.
  Status epsilon(double delta, Conversion conversion, EpsilonResult& out) const {
    return epsilon_from_rdp(orders_, rdp_, delta, conversion, out);
  }

  void reset() { rdp_.assign(orders_.size(), 0.0); }
  const std::vector<double>& orders() const noexcept { return orders_; }
  /// Accumulated RDP, one value per order.
  const std::vector<double>& rdp() const noexcept { return rdp_; }

 private:
  std::vector<double> orders_;
  std::vector<double> rdp_;
};

/// Relative width at which sigma_for_epsilon stops bisecting: the σ returned is within this
/// relative distance above the exact boundary σ* (ε(σ*) = target).
inline constexpr double kSigmaRelTolerance = 1e-10;

/// The noise multiplier σ that makes `steps` steps at rate q (ε, δ)-DP with ε ≤ target_epsilon
/// (default orders, the given conversion). ε(σ) is continuous and decreasing, so σ is bisected
/// geometrically to kSigmaRelTolerance; the upper end is returned, so ε(σ) ≤ target_epsilon always.
/// Degenerate cases: q = 0 or steps = 0 need no noise: σ = 0 if the δ term alone meets the target.
/// A target at or below that floor (ε as σ → ∞) is invalid_argument; one needing σ > 1e15 is
/// out_of_range.
inline Status sigma_for_epsilon(double q, int steps, double target_epsilon, double delta, double& sigma,
                                Conversion conversion = Conversion::improved) {
  if (!(q >= 0.0 && q <= 1.0)) return Status::invalid_argument("q", "must be in [0, 1]");
  if (steps < 0) return Status::invalid_argument("steps", "must be >= 0");
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_epsilon("target_epsilon", target_epsilon));
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_delta(delta));
  const std::vector<double> orders = RdpAccountant::default_orders();
  EpsilonResult floor;
  DEEPSHOCK_RETURN_IF_ERROR(epsilon_from_rdp(orders, std::vector<double>(orders.size(), 0.0), delta, conversion, floor));
  const bool trivial = q == 0.0 || steps == 0;
  if (trivial ? target_epsilon < floor.epsilon : target_epsilon <= floor.epsilon) {
    return Status::invalid_argument("target_epsilon", "must exceed " + std::to_string(floor.epsilon) +
                                                          ", the epsilon of the delta term alone at these orders");
  }
  if (trivial) {
    sigma = 0.0;
    return Status::success();
  }
  auto eps_at = [&](double s) {
    RdpAccountant acc;
    EpsilonResult r;
    if (!acc.compose(q, s, steps).ok() || !acc.epsilon(delta, conversion, r).ok()) return std::numeric_limits<double>::infinity();
    return r.epsilon;
  };
  double hi = 1.0;
  while (eps_at(hi) > target_epsilon) {
    if (hi > 1e15) return Status::out_of_range("target_epsilon", "too close to the floor: sigma would exceed 1e15");
    hi *= 2.0;
  }
  double lo = 0.5 * hi;
  while (eps_at(lo) <= target_epsilon) {  // ε → ∞ as σ → 0 for q > 0, so this ends
    if (lo < 1e-12) return Status::internal("sigma_for_epsilon: no lower bracket above 1e-12");
    hi = lo;
    lo *= 0.5;
  }
  while (hi / lo - 1.0 > kSigmaRelTolerance) {
    const double mid = std::sqrt(lo * hi);
    (eps_at(mid) <= target_epsilon ? hi : lo) = mid;
  }
  sigma = hi;
  return Status::success();
}

}  // namespace deepshock::privacy
