// Shared test helpers: fresh random inputs, NaN poisoning, tie-free scores, tolerances per dtype.
// Compiled once into the deepshock_test_support library; header usable from .cpp and .cu tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "deepshock/core/numeric.hpp"

namespace ds_test {

/// Seed of this run: Catch's --rng-seed (CTest passes `time`, so each run draws fresh inputs;
/// Catch prints the seed, and `--rng-seed N` reproduces a failure).
std::uint64_t run_seed();

/// A generator for one test, decorrelated from the others by `salt`.
std::mt19937_64 make_rng(std::uint64_t salt);

/// Uniform values in [lo, hi), rounded to T (T = float, double, bf16, fp16).
std::vector<float> uniform(std::size_t n, std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f);

/// `n` distinct scores in random order, exactly representable in bf16 (hence in fp16 for
/// n <= 1024, and in float), spaced so that no two compare equal after conversion.
std::vector<float> tie_free_scores(std::size_t n, std::mt19937_64& rng);

/// A float NaN pattern, used to poison outputs before a kernel runs.
float poison_float();
/// Every element of `v` becomes NaN.
void poison(std::vector<float>& v);

/// Absolute and relative tolerance; |a - e| <= atol + rtol * |e| passes.
struct Tolerance {
  double atol;
  double rtol;
};
template <class T>
Tolerance tolerance_for();
template <>
inline Tolerance tolerance_for<double>() {
  return {1e-12, 1e-12};
}
template <>
inline Tolerance tolerance_for<float>() {
  return {1e-5, 1e-5};
}
template <>
inline Tolerance tolerance_for<deepshock::fp16>() {
  return {5e-3, 5e-3};
}
template <>
inline Tolerance tolerance_for<deepshock::bf16>() {
  return {2e-2, 2e-2};
}

/// Empty when every element is within tolerance (and no NaN is present); otherwise a message
/// naming the first failing index, both values and the number of failures.
std::string compare(const std::vector<float>& actual, const std::vector<double>& expected, Tolerance tol);

/// The exact critical value of the one-sample Kolmogorov-Smirnov statistic D_n for n = 1e6 at
/// alpha = 1e-3: scipy.stats.kstwo.isf(1e-3, 1000000) (scipy 1.17.1).
inline constexpr double kKsCritical1e6Alpha1e3 = 0.0019493073374210882;

/// The exact upper critical value of a binomial count: the smallest m with P(X > m) <= alpha
/// for X ~ Binomial(n, p) (the tail summed term by term in double).
int binomial_upper_critical(int n, double p, double alpha);

/// D_n = sup |F_n - F| of `sorted` (ascending) against the CDF `cdf`.
template <class Cdf>
double ks_distance(const std::vector<double>& sorted, Cdf cdf) {
  const double n = static_cast<double>(sorted.size());
  double d = 0.0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const double f = cdf(sorted[i]);
    d = std::max({d, double(i + 1) / n - f, f - double(i) / n});
  }
  return d;
}

}  // namespace ds_test
