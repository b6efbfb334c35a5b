// deepshock/privacy/reference_noise.hpp — host reference for the privacy noise: the samplers'
// exact probability mass functions, noise addition and the DP-SGD aggregation step.
//
// Plain C++ (double), compiles in every mode and needs no CUDA. It is the test oracle and the
// CPU fallback of privacy/add_noise.hpp and privacy/dp_sgd.hpp: it validates with the same checks
// and messages and draws noise through the very same sampler functions (noise.hpp), so for a
// given (seed, stream, index) it produces the same draws as the kernels.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/privacy/noise.hpp"

namespace deepshock::privacy {

/// Hyperparameters of one DP-SGD step (Abadi et al. 2016).
struct DpSgdParams {
  float clip_norm = 1.0f;            ///< C > 0: each example's gradient is scaled to L2 norm <= C
  float noise_multiplier = 1.0f;     ///< sigma >= 0: the noise added to the sum is N(0, sigma^2 C^2)
  float expected_batch_size = 1.0f;  ///< q N > 0: the sum is divided by this, not the realised size
  std::uint64_t seed = 0;            ///< secret key of the noise (from a cryptographic source)
  std::uint32_t step = 0;            ///< training step: a fresh noise stream per step
  /// Index of this tensor's first parameter in the model: parameter p draws noise number
  /// param_offset + p. Give every tensor of a step its own range (e.g. the running sum of the
  /// previous tensors' sizes); two tensors with the same range would get the same noise, and
  /// subtracting their outputs would cancel it.
  std::uint64_t param_offset = 0;
};

namespace detail {
inline Status check_count(std::int64_t n, const char* name) {
  if (n < 0) return Status::invalid_argument(name, "must be >= 0, got " + std::to_string(n));
  return Status::success();
}
inline Status check_values(const void* values, std::int64_t n) {
  DEEPSHOCK_RETURN_IF_ERROR(check_count(n, "n"));
  if (n > 0 && values == nullptr) return Status::invalid_argument("values", "must not be null");
  return Status::success();
}

/// Checks of dp_sgd_aggregate (device and reference). The mask may be null (all sampled);
/// inputs may be null when empty.
inline Status check_dp_sgd_args(const float* per_example_grads, int B, std::int64_t P, const DpSgdParams& p, const float* out) {
  if (B < 0) return Status::invalid_argument("B", "must be >= 0, got " + std::to_string(B));
  DEEPSHOCK_RETURN_IF_ERROR(check_count(P, "P"));
  if (!(p.clip_norm > 0.0f) || !std::isfinite(p.clip_norm)) return Status::invalid_argument("clip_norm", "must be finite and > 0");
  if (!(p.noise_multiplier >= 0.0f) || !std::isfinite(p.noise_multiplier))
    return Status::invalid_argument("noise_multiplier", "must be finite and >= 0");
  if (!(p.expected_batch_size > 0.0f) || !std::isfinite(p.expected_batch_size))
    return Status::invalid_argument("expected_batch_size", "must be finite and > 0");
  if (B > 0 && P > 0 && per_example_grads == nullptr) return Status::invalid_argument("per_example_grads", "must not be null");
  if (P > 0 && out == nullptr) return Status::invalid_argument("out", "must not be null");
  return Status::success();
}

/// The clip factor min(1, C / norm), and 0 for a non-finite norm: such an example is left out
/// entirely, so a NaN or inf gradient can neither poison the sum nor reveal itself.
DEEPSHOCK_HOST_DEVICE double clip_factor(double norm, double clip_norm) {
  if (!(norm <= 1.7976931348623157e308)) return 0.0;  // NaN or inf
  return norm > clip_norm ? clip_norm / norm : 1.0;
}
}  // namespace detail

namespace reference {

/// Exact pmf of the discrete Laplace with scale t: P(x) = tanh(1 / (2t)) exp(-|x| / t).
struct DiscreteLaplacePmf {
  double t = 1.0;
  explicit DiscreteLaplacePmf(double scale) : t(scale) {}
  double operator()(std::int64_t x) const { return std::tanh(0.5 / t) * std::exp(-std::fabs(double(x)) / t); }
  /// Var = 2 e^(-1/t) / (1 - e^(-1/t))^2 (closed form).
  double variance() const {
    const double r = std::exp(-1.0 / t);
    return 2.0 * r / ((1.0 - r) * (1.0 - r));
  }
  /// Beyond this |x| the remaining mass is below 1e-300.
  std::int64_t radius() const { return std::int64_t(std::ceil(700.0 * t)) + 1; }
};

/// Exact pmf of the discrete Gaussian: P(x) = exp(-x^2 / (2 sigma^2)) / Z with
/// Z = sum_x exp(-x^2 / (2 sigma^2)) summed over |x| <= radius().
struct DiscreteGaussianPmf {
  double sigma2 = 1.0;
  double norm = 1.0;
  explicit DiscreteGaussianPmf(double s2) : sigma2(s2) {
    double z = 0.0;
    for (std::int64_t x = radius(); x >= 1; --x) z += 2.0 * std::exp(-double(x) * double(x) / (2.0 * sigma2));
    norm = z + 1.0;
  }
  double operator()(std::int64_t x) const { return std::exp(-double(x) * double(x) / (2.0 * sigma2)) / norm; }
  /// Beyond this |x| the remaining mass is below exp(-800).
  std::int64_t radius() const { return std::int64_t(std::ceil(40.0 * std::sqrt(sigma2))) + 2; }
};

/// E[X^k] of a pmf symmetric about 0 (k even), summed from the tails inwards.
template <class Pmf>
double even_moment(const Pmf& pmf, int k) {
  double s = 0.0;
  for (std::int64_t x = pmf.radius(); x >= 1; --x) s += 2.0 * std::pow(double(x), k) * pmf(x);
  return s;
}

/// values[i] += Z_i with Z_i = DiscreteLaplace(scale).sample(seed, stream_id, i), saturating.
inline Status add_discrete_laplace_noise(std::int64_t* values, std::int64_t n, Rational scale, std::uint64_t seed,
                                         std::uint32_t stream_id) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  DiscreteLaplace noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_laplace(scale, "scale", noise));
  for (std::int64_t i = 0; i < n; ++i) values[i] = saturating_add(values[i], noise.sample(seed, stream_id, std::uint64_t(i)));
  return Status::success();
}

/// values[i] += Z_i with Z_i = DiscreteGaussian(sigma2).sample(seed, stream_id, i), saturating.
inline Status add_discrete_gaussian_noise(std::int64_t* values, std::int64_t n, Rational sigma2, std::uint64_t seed,
                                          std::uint32_t stream_id) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  DiscreteGaussian noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_gaussian(sigma2, "sigma2", noise));
  for (std::int64_t i = 0; i < n; ++i) values[i] = saturating_add(values[i], noise.sample(seed, stream_id, std::uint64_t(i)));
  return Status::success();
}

/// values[i] = release_on_grid(values[i], grid, DiscreteLaplace(scale in grid steps), draw i).
inline Status add_discrete_laplace_noise(float* values, std::int64_t n, Grid grid, Rational scale, std::uint64_t seed,
                                         std::uint32_t stream_id) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  GridParams g;
  DEEPSHOCK_RETURN_IF_ERROR(make_grid(grid, g));
  DiscreteLaplace noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_laplace(scale, "scale", noise));
  for (std::int64_t i = 0; i < n; ++i) values[i] = release_on_grid(values[i], g, noise, seed, stream_id, std::uint64_t(i));
  return Status::success();
}

/// values[i] = release_on_grid(values[i], grid, DiscreteGaussian(sigma2 in grid steps^2), draw i).
inline Status add_discrete_gaussian_noise(float* values, std::int64_t n, Grid grid, Rational sigma2, std::uint64_t seed,
                                          std::uint32_t stream_id) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  GridParams g;
  DEEPSHOCK_RETURN_IF_ERROR(make_grid(grid, g));
  DiscreteGaussian noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_gaussian(sigma2, "sigma2", noise));
  for (std::int64_t i = 0; i < n; ++i) values[i] = release_on_grid(values[i], g, noise, seed, stream_id, std::uint64_t(i));
  return Status::success();
}

/// One DP-SGD aggregation in double: for each sampled example b (sampled_mask[b] != 0, or every
/// b when the mask is null) the clip factor f_b = min(1, C / ||g_b||) (0 for a non-finite norm);
/// out[p] = (sum_b f_b g_b[p] + sigma C z_p) / expected_batch_size, z_p = dp_sgd_noise(seed,
/// step, p), examples in index order. B = 0 or no sampled example gives the noise alone.
inline Status dp_sgd_aggregate(const float* per_example_grads, const std::uint8_t* sampled_mask, int B, std::int64_t P,
                               const DpSgdParams& params, float* out) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_dp_sgd_args(per_example_grads, B, P, params, out));
  if (P == 0) return Status::success();
  std::vector<double> factor(static_cast<std::size_t>(B), 0.0);
  for (int b = 0; b < B; ++b) {
    if (sampled_mask != nullptr && sampled_mask[b] == 0) continue;
    const float* row = per_example_grads + static_cast<std::int64_t>(b) * P;
    double ss = 0.0;
    for (std::int64_t p = 0; p < P; ++p) ss += double(row[p]) * double(row[p]);
    factor[static_cast<std::size_t>(b)] = detail::clip_factor(std::sqrt(ss), params.clip_norm);
  }
  const double noise_std = double(params.noise_multiplier) * double(params.clip_norm);
  for (std::int64_t p = 0; p < P; ++p) {
    double acc = 0.0;
    for (int b = 0; b < B; ++b) {
      const double f = factor[static_cast<std::size_t>(b)];
      if (f != 0.0) acc += f * double(per_example_grads[static_cast<std::int64_t>(b) * P + p]);
    }
    acc += noise_std * double(dp_sgd_noise(params.seed, params.step, params.param_offset + std::uint64_t(p)));
    out[p] = float(acc / double(params.expected_batch_size));
  }
  return Status::success();
}

}  // namespace reference
}  // namespace deepshock::privacy
