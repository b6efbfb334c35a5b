// Host tests for deepshock/core/philox.hpp: Random123 known answers, stream layout and
// determinism, exact uniform mappings, accuracy of the Box–Muller pieces, and
// statistical sanity checks with fixed seeds.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "deepshock/core/philox.hpp"

using namespace deepshock;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kLn2 = 0.69314718055994530942;

constexpr u32x4 kat(u32x4 ctr, u32x2 key) { return Philox4x32::generate(ctr, key); }

}  // namespace

TEST_CASE("philox: Random123 known-answer vectors", "[host][philox]") {
  // philox4x32_10 lines of Random123's kat_vectors.
  const u32x4 zero = kat({{0, 0, 0, 0}}, {{0, 0}});
  const u32x4 ones = kat({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, {{0xffffffffu, 0xffffffffu}});
  const u32x4 pi = kat({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, {{0xa4093822u, 0x299f31d0u}});
  CHECK(zero == u32x4{{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}});
  CHECK(ones == u32x4{{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}});
  CHECK(pi == u32x4{{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}});
  // The same at compile time.
  STATIC_REQUIRE(kat({{0, 0, 0, 0}}, {{0, 0}}) == u32x4{{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}});
  STATIC_REQUIRE(kat({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, {{0xa4093822u, 0x299f31d0u}}) ==
                 u32x4{{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}});
}

TEST_CASE("philox: stream layout of seed, subsequence and offset", "[host][philox]") {
  const std::uint64_t seed = 0x0123456789ABCDEFull, sub = 0xFEDCBA9876543210ull;
  PhiloxStream s(seed, sub);
  CHECK(s.key() == u32x2{{0x89ABCDEFu, 0x01234567u}});
  for (std::uint32_t block = 0; block < 3; ++block) {
    const u32x4 want = Philox4x32::generate({{block, 0, 0x76543210u, 0xFEDCBA98u}}, {{0x89ABCDEFu, 0x01234567u}});
    for (int w = 0; w < 4; ++w) CHECK(s.next_u32() == want[w]);
  }
  CHECK(s.offset() == 12);

  // A far offset lands in the block whose 64-bit index spans counter words 0 and 1.
  const std::uint64_t far = (std::uint64_t(5) << 34) + 6;  // block 5 * 2^32 + 1, word 2
  PhiloxStream f(seed, sub, far);
  const u32x4 want = Philox4x32::generate({{1, 5, 0x76543210u, 0xFEDCBA98u}}, {{0x89ABCDEFu, 0x01234567u}});
  CHECK(f.offset() == far);
  CHECK(f.next_u32() == want[2]);
  CHECK(f.next_u32() == want[3]);
  CHECK(f.counter(7) == u32x4{{7, 0, 0x76543210u, 0xFEDCBA98u}});
}

TEST_CASE("philox: streams are deterministic and offsets/skips agree", "[host][philox]") {
  const std::uint64_t seed = 42;
  std::vector<std::uint32_t> ref;
  PhiloxStream base(seed, 3);
  for (int i = 0; i < 64; ++i) ref.push_back(base.next_u32());

  PhiloxStream again(seed, 3);
  bool same = true;
  for (int i = 0; i < 64; ++i) same = same && again.next_u32() == ref[i];
  CHECK(same);

  for (std::uint64_t k = 0; k < 24; ++k) {
    PhiloxStream at(seed, 3, k);
    PhiloxStream skipped(seed, 3);
    skipped.skip(k);
    CHECK(at.offset() == k);
    CHECK(skipped.offset() == k);
    bool ok = true;
    for (std::uint64_t i = k; i < 40; ++i) ok = ok && at.next_u32() == ref[i] && skipped.next_u32() == ref[i];
    CHECK(ok);
  }
  // skip from the middle of a block, including a skip of zero.
  PhiloxStream mid(seed, 3, 5);
  mid.skip(0);
  CHECK(mid.next_u32() == ref[5]);
  mid.skip(9);
  CHECK(mid.next_u32() == ref[15]);
  CHECK(mid.offset() == 16);

  // Copies continue identically (value semantics).
  PhiloxStream a(seed, 9, 2);
  a.next_u32();
  PhiloxStream b = a;
  CHECK(a.next_u64() == b.next_u64());

  // Different seeds or subsequences give different words.
  CHECK(PhiloxStream(seed, 3).next_u32() != PhiloxStream(seed, 4).next_u32());
  CHECK(PhiloxStream(seed, 3).next_u32() != PhiloxStream(seed + 1, 3).next_u32());
  CHECK(PhiloxStream(seed, 3).next_u32() != PhiloxStream(seed | (1ull << 40), 3).next_u32());

  // The stream is usable in constant expressions.
  constexpr std::uint32_t fifth = [] {
    PhiloxStream c(7, 1);
    for (int i = 0; i < 4; ++i) c.next_u32();
    return c.next_u32();
  }();
  STATIC_REQUIRE(fifth == Philox4x32::generate({{1, 0, 1, 0}}, {{7, 0}})[0]);
}

TEST_CASE("philox: uniform mappings are exact", "[host][philox]") {
  CHECK(u32_to_unit_float(0u) == 0.0f);
  CHECK(u32_to_unit_float(0xFFu) == 0.0f);  // only the top 24 bits count
  CHECK(u32_to_unit_float(0x100u) == 0x1p-24f);
  CHECK(u32_to_unit_float(0x80000000u) == 0.5f);
  CHECK(u32_to_unit_float(0xFFFFFFFFu) == 1.0f - 0x1p-24f);
  CHECK(u32_to_unit_float_pos(0u) == 0x1p-24f);
  CHECK(u32_to_unit_float_pos(0xFFFFFFFFu) == 1.0f);
  CHECK(u64_to_unit_double(0u) == 0.0);
  CHECK(u64_to_unit_double(~0ull) == 1.0 - 0x1p-53);
  CHECK(u64_to_unit_double(1ull << 11) == 0x1p-53);

  PhiloxStream s(5, 0);
  PhiloxStream t(5, 0);
  const std::uint32_t w0 = t.next_u32(), w1 = t.next_u32(), w2 = t.next_u32(), w3 = t.next_u32();
  CHECK(s.uniform_float() == u32_to_unit_float(w0));
  CHECK(s.uniform_float_pos() == u32_to_unit_float_pos(w1));
  CHECK(s.uniform_double() == u64_to_unit_double((std::uint64_t(w2) << 32) | w3));
  const std::uint32_t w4 = t.next_u32(), w5 = t.next_u32(), w6 = t.next_u32(), w7 = t.next_u32();
  const f32x2 z = s.normal2();
  CHECK(z.x == box_muller(w4, w5).x);
  CHECK(z.y == box_muller(w4, w5).y);
  CHECK(s.normal() == box_muller(w6, w7).x);
  CHECK(s.offset() == 8);
}

TEST_CASE("philox: Box-Muller building blocks are accurate", "[host][philox]") {
  // Every argument box_muller can pass to the log: (k + 1) * 2^-24, k < 2^24.
  double worst_log_ulps = 0;
  for (std::uint32_t k = 0; k < (1u << 24); ++k) {
    const float u = float(k + 1) * 0x1p-24f;
    const double ref = std::log(double(u));
    const float got = detail::philox_log(u);
    if (ref == 0) {
      CHECK(got == 0.0f);
      continue;
    }
    const double ulp = std::ldexp(1.0, std::ilogb(float(ref)) - 23);
    worst_log_ulps = std::fmax(worst_log_ulps, std::fabs(got - ref) / ulp);
  }
  CHECK(worst_log_ulps <= 2.0);  // measured 1.53

  // Every angle: cos/sin of 2 pi k / 2^24.
  double worst_trig = 0;
  for (std::uint32_t k = 0; k < (1u << 24); k += 7) {
    const double a = 2 * kPi * double(k) * 0x1p-24;
    const f32x2 cs = detail::philox_cossin_2pi(k);
    worst_trig = std::fmax(worst_trig, std::fmax(std::fabs(cs.x - std::cos(a)), std::fabs(cs.y - std::sin(a))));
  }
  CHECK(worst_trig <= 1.2e-7);  // measured 8.8e-8 (one float ulp just below 1 is 6e-8)

  // Whole transform against double precision.
  PhiloxStream s(2024, 1);
  double worst = 0, biggest = 0;
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t a = s.next_u32(), b = s.next_u32();
    const f32x2 z = box_muller(a, b);
    const double r = std::sqrt(-2 * std::log(((a >> 8) + 1) * 0x1p-24));
    const double th = 2 * kPi * (b >> 8) * 0x1p-24;
    worst = std::fmax(worst, std::fmax(std::fabs(z.x - r * std::cos(th)), std::fabs(z.y - r * std::sin(th))));
    biggest = std::fmax(biggest, std::fmax(std::fabs(z.x), std::fabs(z.y)));
  }
  CHECK(worst <= 2e-6);                                                   // measured 5.8e-7 over 4e6 draws; |z| < 5.77, ulp(4) = 4.8e-7
  CHECK(biggest <= 5.769f);                                               // sqrt(-2 ln 2^-24) = 5.76813
  CHECK(std::fabs(box_muller(0u, 0u).x - std::sqrt(48 * kLn2)) <= 1e-6);  // largest radius, angle 0
  CHECK(box_muller(0u, 0u).y == 0.0f);
  CHECK(box_muller(0xFFFFFFFFu, 0u).x == 0.0f);  // u1 = 1: radius 0
  CHECK(!std::signbit(box_muller(0xFFFFFFFFu, 0u).x));
}

TEST_CASE("philox: statistical sanity", "[host][philox]") {
  // Every bound is 5 standard errors of the statistic for n independent draws, so a
  // correct generator fails one check with probability below 1e-6 (fixed seeds make the
  // outcome deterministic anyway).
  constexpr int n = 1000000;
  const double sqrt_n = 1000.0;

  SECTION("uniform_float") {
    // k * 2^-24, k uniform in [0, 2^24): mean 1/2 - 2^-25, variance (1 - 2^-48) / 12,
    // fourth central moment ~ 1/80. SE(mean) = sqrt(1/12)/sqrt(n) = 2.89e-4;
    // SE(variance) = sqrt(1/80 - 1/144)/sqrt(n) = 7.45e-5.
    PhiloxStream s(12345, 0);
    double sum = 0, sum2 = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < n; ++i) {
      const float u = s.uniform_float();
      sum += u;
      sum2 += double(u) * u;
      lo = std::fmin(lo, u);
      hi = std::fmax(hi, u);
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK(lo >= 0.0f);
    CHECK(hi < 1.0f);
    CHECK(std::fabs(mean - (0.5 - 0x1p-25)) <= 5 * std::sqrt(1.0 / 12) / sqrt_n);
    CHECK(std::fabs(var - 1.0 / 12) <= 5 * std::sqrt(1.0 / 80 - 1.0 / 144) / sqrt_n);
  }

  SECTION("uniform_double") {
    PhiloxStream s(777, 5);
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += s.uniform_double();
    CHECK(std::fabs(sum / n - 0.5) <= 5 * std::sqrt(1.0 / 12) / sqrt_n);
  }

  SECTION("top byte is uniform (chi-square, 255 degrees of freedom)") {
    // mean 255, sd sqrt(2 * 255) = 22.6; bound = mean + 5 sd = 368.
    PhiloxStream s(99, 2);
    std::vector<double> bins(256, 0);
    const int draws = 256 * 4000;
    for (int i = 0; i < draws; ++i) bins[s.next_u32() >> 24] += 1;
    double chi2 = 0;
    for (const double c : bins) chi2 += (c - 4000) * (c - 4000) / 4000;
    CHECK(chi2 <= 255 + 5 * std::sqrt(2.0 * 255));
  }

  SECTION("normal") {
    // N(0,1): SE(mean) = 1/sqrt(n) = 1e-3, SE(variance) = sqrt(2/n) = 1.41e-3,
    // SE(P(|z| < 1) = 0.682689) = sqrt(p(1-p)/n) = 4.65e-4.
    PhiloxStream s(2718, 0);
    double sum = 0, sum2 = 0;
    int within1 = 0;
    for (int i = 0; i < n; ++i) {
      const double z = s.normal();
      sum += z;
      sum2 += z * z;
      within1 += std::fabs(z) < 1.0;
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    const double p = 0.6826894921370859;
    CHECK(std::fabs(mean) <= 5 / sqrt_n);
    CHECK(std::fabs(var - 1) <= 5 * std::sqrt(2.0) / sqrt_n);
    CHECK(std::fabs(double(within1) / n - p) <= 5 * std::sqrt(p * (1 - p)) / sqrt_n);
  }

  SECTION("normal2 pairs are uncorrelated") {
    // Correlation of independent N(0,1) pairs: SE = 1/sqrt(m), m = n/2 pairs.
    PhiloxStream s(31415, 7);
    const int m = n / 2;
    double sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < m; ++i) {
      const f32x2 z = s.normal2();
      sx += z.x;
      sy += z.y;
      sxx += double(z.x) * z.x;
      syy += double(z.y) * z.y;
      sxy += double(z.x) * z.y;
    }
    const double cov = sxy / m - (sx / m) * (sy / m);
    const double corr = cov / std::sqrt((sxx / m - (sx / m) * (sx / m)) * (syy / m - (sy / m) * (sy / m)));
    CHECK(std::fabs(corr) <= 5 / std::sqrt(double(m)));
    CHECK(std::fabs(syy / m - 1) <= 5 * std::sqrt(2.0 / m));  // E[y^2] = 1, Var[y^2] = 2
  }
}
