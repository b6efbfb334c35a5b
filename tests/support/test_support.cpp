#include "test_support.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

namespace ds_test {

std::uint64_t run_seed() { return Catch::rngSeed(); }

std::mt19937_64 make_rng(std::uint64_t salt) {
  std::seed_seq seq{static_cast<std::uint32_t>(run_seed()), static_cast<std::uint32_t>(run_seed() >> 32), static_cast<std::uint32_t>(salt),
                    static_cast<std::uint32_t>(salt >> 32)};
  return std::mt19937_64(seq);
}

std::vector<float> uniform(std::size_t n, std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> tie_free_scores(std::size_t n, std::mt19937_64& rng) {
  // Magnitudes m * 2^e with an 8-bit significand m in [128, 255] (exact in bf16, and in fp16
  // while 2^e stays normal, i.e. n <= 1024); block b of 128 values uses exponent e = b - blocks - 5,
  // so the largest lie in [2, 4). Odd positions are negated. All values differ.
  const int blocks = static_cast<int>((n + 127) / 128);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int b = static_cast<int>(i / 128);
    const float mag = std::ldexp(static_cast<float>(128 + i % 128), b - blocks - 5);
    out[i] = (i % 2) ? -mag : mag;
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

float poison_float() { return std::numeric_limits<float>::quiet_NaN(); }

void poison(std::vector<float>& v) { std::fill(v.begin(), v.end(), poison_float()); }

std::string compare(const std::vector<float>& actual, const std::vector<double>& expected, Tolerance tol) {
  if (actual.size() != expected.size()) return "size mismatch: " + std::to_string(actual.size()) + " vs " + std::to_string(expected.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    const bool ok = !std::isnan(a) && std::abs(a - e) <= tol.atol + tol.rtol * std::abs(e);
    if (!ok && bad++ == 0) first = i;
  }
  if (!bad) return {};
  std::ostringstream s;
  s << bad << " of " << actual.size() << " elements out of tolerance (atol " << tol.atol << ", rtol " << tol.rtol << "); first at index "
    << first << ": got " << actual[first] << ", expected " << expected[first];
  return s.str();
}

int binomial_upper_critical(int n, double p, double alpha) {
  // pmf(j) = C(n, j) p^j (1 - p)^(n - j), from lgamma; the tail P(X > m) is summed from the top.
  auto pmf = [&](int j) {
    return std::exp(std::lgamma(n + 1.0) - std::lgamma(j + 1.0) - std::lgamma(n - j + 1.0) + j * std::log(p) + (n - j) * std::log1p(-p));
  };
  double tail = 0.0;  // P(X > m) for the current m
  for (int m = n; m > 0; --m) {
    if (tail + pmf(m) > alpha) return m;
    tail += pmf(m);
  }
  return 0;
}

}  // namespace ds_test
