// deepshock/privacy/add_noise.hpp — exact discrete noise added to device arrays.
//
// Two value types:
//   * std::int64_t — counts, histograms, sums of integers: values[i] += Z_i exactly (saturating
//     at the int64 limits, which a real count never approaches);
//   * float — continuous values, released on a power-of-two grid (noise.hpp, release_on_grid):
//     values[i] = 2^k * clamp(round(values[i] / 2^k) + Z_i, ±M), noise in grid units.
// Z_i is draw i of (seed, stream_id): DiscreteGaussian(sigma2).sample(seed, stream_id, i) or
// DiscreteLaplace(scale).sample(...), so the result is bitwise what the host reference
// (reference_noise.hpp) computes, on any GPU, in the simulator and for any thread mapping.
//
// Calibration is the caller's: for sensitivity Δ (in the integer or grid units), the discrete
// Laplace with scale Δ/ε is ε-DP; the discrete Gaussian with sigma^2 satisfies
// (Δ^2 / (2 sigma^2))-zCDP (CKS 2020). Use each (seed, stream_id) once; seeds must come from a
// cryptographic source.
//
// Entry points validate every argument (Status names it), take a stream, never allocate and
// never synchronise the host. Rational parameters beyond the 64-bit limits documented in
// noise.hpp are rejected with out_of_range.
#pragma once

#include <cstdint>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"
#include "deepshock/privacy/noise.hpp"
#include "deepshock/privacy/reference_noise.hpp"

namespace deepshock::privacy {

#if DEEPSHOCK_HAS_KERNELS
namespace detail {
inline constexpr int kNoiseThreads = 256;
inline constexpr std::int64_t kNoiseMaxBlocks = 4096;

/// A grid-stride launch over n elements (n >= 1).
inline LaunchConfig noise_launch(std::int64_t n, rt::stream_t stream) {
  const std::int64_t want = (n + kNoiseThreads - 1) / kNoiseThreads;
  const unsigned blocks = static_cast<unsigned>(want < kNoiseMaxBlocks ? want : kNoiseMaxBlocks);
  return LaunchConfig{dim3(blocks), dim3(kNoiseThreads), 0, stream};
}
}  // namespace detail

namespace kernels {

/// values[i] = saturating values[i] + noise draw (seed, stream_id, i), grid-stride.
template <class Noise>
DEEPSHOCK_KERNEL void add_integer_noise_kernel(std::int64_t* values, std::int64_t n, Noise noise, std::uint64_t seed,
                                               std::uint32_t stream_id) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    values[i] = saturating_add(values[i], noise.sample(seed, stream_id, static_cast<std::uint64_t>(i)));
}

/// values[i] = release_on_grid(values[i], grid, noise, draw (seed, stream_id, i)), grid-stride.
template <class Noise>
DEEPSHOCK_KERNEL void release_on_grid_kernel(float* values, std::int64_t n, GridParams grid, Noise noise, std::uint64_t seed,
                                             std::uint32_t stream_id) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    values[i] = release_on_grid(values[i], grid, noise, seed, stream_id, static_cast<std::uint64_t>(i));
}

}  // namespace kernels

namespace detail {
/// Adds draw i of `noise` to values[i] (int64, saturating). `noise` is already validated.
template <class Noise>
Status add_integer_noise(std::int64_t* values, std::int64_t n, const Noise& noise, std::uint64_t seed, std::uint32_t stream_id,
                         rt::stream_t stream) {
  if (n == 0) return Status::success();
  return launch(kernels::add_integer_noise_kernel<Noise>, noise_launch(n, stream), values, n, noise, seed, stream_id);
}
/// Releases values[i] on `grid` with draw i of `noise`. `noise` is already validated.
template <class Noise>
Status release_noise_on_grid(float* values, std::int64_t n, Grid grid, const Noise& noise, std::uint64_t seed, std::uint32_t stream_id,
                             rt::stream_t stream) {
  GridParams g;
  DEEPSHOCK_RETURN_IF_ERROR(make_grid(grid, g));
  if (n == 0) return Status::success();
  return launch(kernels::release_on_grid_kernel<Noise>, noise_launch(n, stream), values, n, g, noise, seed, stream_id);
}
}  // namespace detail

/// In place on the device array values [n]: values[i] += Z_i, Z_i ~ discrete Laplace with scale
/// t = scale.num / scale.den (P(z) ∝ exp(-|z| / t)), draw i of (seed, stream_id). n = 0 is a no-op.
inline Status add_discrete_laplace_noise(std::int64_t* values, std::int64_t n, Rational scale, std::uint64_t seed, std::uint32_t stream_id,
                                         rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  DiscreteLaplace noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_laplace(scale, "scale", noise));
  return detail::add_integer_noise(values, n, noise, seed, stream_id, stream);
}

/// In place on the device array values [n]: values[i] += Z_i, Z_i ~ discrete Gaussian with
/// variance parameter sigma^2 = sigma2.num / sigma2.den (P(z) ∝ exp(-z^2 / (2 sigma^2))).
inline Status add_discrete_gaussian_noise(std::int64_t* values, std::int64_t n, Rational sigma2, std::uint64_t seed,
                                          std::uint32_t stream_id, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  DiscreteGaussian noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_gaussian(sigma2, "sigma2", noise));
  return detail::add_integer_noise(values, n, noise, seed, stream_id, stream);
}

/// In place on the device array values [n] of floats: release on `grid` with discrete Laplace
/// noise of scale `scale` grid steps (see release_on_grid in noise.hpp).
inline Status add_discrete_laplace_noise(float* values, std::int64_t n, Grid grid, Rational scale, std::uint64_t seed,
                                         std::uint32_t stream_id, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  DiscreteLaplace noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_laplace(scale, "scale", noise));
  return detail::release_noise_on_grid(values, n, grid, noise, seed, stream_id, stream);
}

/// In place on the device array values [n] of floats: release on `grid` with discrete Gaussian
/// noise, sigma^2 = sigma2 in grid steps squared (see release_on_grid in noise.hpp).
inline Status add_discrete_gaussian_noise(float* values, std::int64_t n, Grid grid, Rational sigma2, std::uint64_t seed,
                                          std::uint32_t stream_id, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_values(values, n));
  DiscreteGaussian noise;
  DEEPSHOCK_RETURN_IF_ERROR(make_discrete_gaussian(sigma2, "sigma2", noise));
  return detail::release_noise_on_grid(values, n, grid, noise, seed, stream_id, stream);
}

#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::privacy
