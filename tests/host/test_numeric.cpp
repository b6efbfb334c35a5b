// Host tests for deepshock/core/numeric.hpp: exhaustive round trips, conversion against
// an independent double-precision reference, and known encodings.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "deepshock/core/numeric.hpp"

using namespace deepshock;

namespace {

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Format description written out independently of the header.
struct Spec {
  int exp_bits;
  int man_bits;
  bool ieee;          // all-ones exponent = inf/NaN; otherwise only S.1..1.1..1 is NaN
  bool saturate;      // float -> T saturates (fp8) rather than overflowing to inf
  std::uint32_t max;  // expected max finite encoding
};

int bias(const Spec& s) { return (1 << (s.exp_bits - 1)) - 1; }
std::uint32_t total_bits(const Spec& s) { return 1u + s.exp_bits + s.man_bits; }

bool ref_is_nan(const Spec& s, std::uint32_t b) {
  const std::uint32_t ef = (b >> s.man_bits) & ((1u << s.exp_bits) - 1);
  const std::uint32_t m = b & ((1u << s.man_bits) - 1);
  if (s.ieee) return ef == (1u << s.exp_bits) - 1 && m != 0;
  return ef == (1u << s.exp_bits) - 1 && m == (1u << s.man_bits) - 1;
}

bool ref_is_inf(const Spec& s, std::uint32_t b) {
  const std::uint32_t ef = (b >> s.man_bits) & ((1u << s.exp_bits) - 1);
  return s.ieee && ef == (1u << s.exp_bits) - 1 && (b & ((1u << s.man_bits) - 1)) == 0;
}

// Value of a non-NaN encoding, from the textbook formula.
double ref_decode(const Spec& s, std::uint32_t b) {
  const double sign = (b >> (s.exp_bits + s.man_bits)) & 1u ? -1.0 : 1.0;
  if (ref_is_inf(s, b)) return sign * std::numeric_limits<double>::infinity();
  const int ef = int((b >> s.man_bits) & ((1u << s.exp_bits) - 1));
  const double m = double(b & ((1u << s.man_bits) - 1));
  if (ef == 0) return sign * std::ldexp(m, 1 - bias(s) - s.man_bits);
  return sign * std::ldexp(1.0 + std::ldexp(m, -s.man_bits), ef - bias(s));
}

// Slow reference rounding: nearest representable magnitude, ties to even encoding.
struct Reference {
  Spec spec;
  std::vector<double> vals;        // all finite non-negative values, ascending
  std::vector<std::uint32_t> enc;  // their encodings

  explicit Reference(const Spec& s) : spec(s) {
    const std::uint32_t sign_bit = 1u << (s.exp_bits + s.man_bits);
    for (std::uint32_t b = 0; b < sign_bit; ++b) {
      if (ref_is_nan(s, b) || ref_is_inf(s, b)) continue;
      vals.push_back(ref_decode(s, b));
      enc.push_back(b);
    }
  }

  // Expected encoding of x; `nan` is set instead when x is NaN.
  std::uint32_t round(float x, bool saturate, bool& nan) const {
    nan = std::isnan(x);
    if (nan) return 0;
    const std::uint32_t sign = std::signbit(x) ? 1u << (spec.exp_bits + spec.man_bits) : 0u;
    const double a = std::fabs(double(x));
    const std::uint32_t inf = ((1u << spec.exp_bits) - 1) << spec.man_bits;
    const bool overflow_to_inf = spec.ieee && !saturate;
    const double max = vals.back();
    if (a > max) {
      if (!overflow_to_inf) return sign | enc.back();
      // IEEE: the value above max would be 2^(emax+1) with an even (zero) mantissa.
      const double ulp = max - vals[vals.size() - 2];
      return sign | (a < max + ulp / 2 ? enc.back() : inf);
    }
    const auto it = std::upper_bound(vals.begin(), vals.end(), a);
    const std::size_t hi = std::size_t(it - vals.begin());  // first value > a
    const std::size_t lo = hi - 1;                          // vals[lo] <= a
    if (vals[lo] == a || hi == vals.size()) return sign | enc[lo];
    const double mid = (vals[lo] + vals[hi]) / 2;  // exact: adjacent narrow values
    if (a < mid) return sign | enc[lo];
    if (a > mid) return sign | enc[hi];
    return sign | ((enc[lo] & 1u) == 0 ? enc[lo] : enc[hi]);
  }
};

template <class T>
Spec spec_of();
template <>
Spec spec_of<bf16>() {
  return {8, 7, true, false, 0x7F7F};
}
template <>
Spec spec_of<fp16>() {
  return {5, 10, true, false, 0x7BFF};
}
template <>
Spec spec_of<fp8_e4m3>() {
  return {4, 3, false, true, 0x7E};
}
template <>
Spec spec_of<fp8_e5m2>() {
  return {5, 2, true, true, 0x7B};
}

std::string hex(std::uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

// Converts every input with from_float and from_float_sat and compares with the
// reference; reports the first mismatch.
template <class T>
void check_against_reference(const std::vector<float>& inputs) {
  const Spec s = spec_of<T>();
  const Reference ref(s);
  std::size_t mismatches = 0;
  std::string first;
  for (const float x : inputs) {
    for (const bool sat : {false, true}) {
      bool nan = false;
      const std::uint32_t want = ref.round(x, sat || s.saturate, nan);
      const T got = sat ? T::from_float_sat(x) : T::from_float(x);
      const bool ok = nan ? (got.is_nan() && ref_is_nan(s, got.bits)) : got.bits == want;
      if (!ok && mismatches++ == 0) {
        first = "x=" + hex(bits_of(x)) + " sat=" + std::to_string(sat) + " got=" + hex(got.bits) +
                " want=" + (nan ? std::string("NaN") : hex(want));
      }
    }
  }
  INFO("inputs: " << inputs.size() << ", first mismatch: " << first);
  CHECK(mismatches == 0);
}

// Random and targeted float inputs for type T (fixed seed).
template <class T>
std::vector<float> make_inputs(std::uint32_t seed) {
  const Spec s = spec_of<T>();
  std::mt19937 rng(seed);
  std::vector<float> in;
  // 1. Uniform random bit patterns: every exponent, float subnormals, inf and NaN.
  for (int i = 0; i < 100000; ++i) in.push_back(float_of(rng()));
  // 2. Exponents uniform over T's range and a few binades beyond, random mantissas.
  const int lo_e = 1 - bias(s) - s.man_bits - 3;
  const int hi_e = (s.ieee ? (1 << s.exp_bits) - 2 : (1 << s.exp_bits) - 1) - bias(s) + 3;
  std::uniform_int_distribution<int> ed(lo_e, hi_e);
  for (int i = 0; i < 200000; ++i) {
    const float m = 1.0f + float(rng() >> 9) * 0x1p-23f;
    const float v = std::ldexp(m, ed(rng));
    in.push_back(rng() & 1u ? -v : v);
  }
  // 3. Every halfway point between adjacent values (and up to max + half ulp), with its
  //    float neighbours, in both signs.
  const Reference ref(s);
  std::vector<double> vals = ref.vals;
  vals.push_back(2 * vals.back() - vals[vals.size() - 2]);  // one ulp past max
  std::size_t inexact_mids = 0;
  for (std::size_t i = 0; i + 1 < vals.size(); ++i) {
    const float mid = float((vals[i] + vals[i + 1]) / 2);
    if (double(mid) != (vals[i] + vals[i + 1]) / 2) ++inexact_mids;
    for (const float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), float(vals[i])}) {
      in.push_back(v);
      in.push_back(-v);
    }
  }
  CHECK(inexact_mids == 0);  // every halfway point is itself a float
  // 4. Specials.
  for (const float v : {0.0f, INFINITY, NAN, FLT_MAX, FLT_MIN, FLT_TRUE_MIN, 1.0f, 2 * float(vals.back())}) {
    in.push_back(v);
    in.push_back(-v);
  }
  return in;
}

// Every encoding: to_float matches the reference decode, and T -> float -> T keeps the
// bits (NaN stays NaN; fp8_e5m2's saturating conversion sends ±inf to ±max).
template <class T>
void check_all_encodings() {
  const Spec s = spec_of<T>();
  const std::uint32_t n = 1u << total_bits(s);
  std::size_t bad_decode = 0, bad_round_trip = 0;
  std::string first;
  for (std::uint32_t b = 0; b < n; ++b) {
    const T t = T::from_bits(static_cast<decltype(T::bits)>(b));
    const float f = t.to_float();
    if (bits_of(static_cast<float>(t)) != bits_of(f)) ++bad_decode;
    if (ref_is_nan(s, b)) {
      if (!std::isnan(f) || !t.is_nan() || !T::from_float(f).is_nan() || !T::from_float_sat(f).is_nan() ||
          std::signbit(f) != bool(b >> (total_bits(s) - 1))) {
        ++bad_round_trip;
      }
      continue;
    }
    if (t.is_nan() || t.is_inf() != ref_is_inf(s, b)) ++bad_decode;
    if (double(f) != ref_decode(s, b) || std::signbit(f) != bool(b >> (total_bits(s) - 1))) ++bad_decode;
    const std::uint32_t signed_max = (b & (1u << (total_bits(s) - 1))) | s.max;
    const std::uint32_t want = ref_is_inf(s, b) && s.saturate ? signed_max : b;
    const std::uint32_t want_sat = ref_is_inf(s, b) ? signed_max : b;
    if (T::from_float(f).bits != want || T(f).bits != want || T::from_float_sat(f).bits != want_sat) {
      if (bad_round_trip++ == 0) first = hex(b);
    }
  }
  INFO("first round-trip failure at " << first);
  CHECK(bad_decode == 0);
  CHECK(bad_round_trip == 0);
}

}  // namespace

TEST_CASE("numeric: types are trivial storage", "[host][numeric]") {
  STATIC_REQUIRE(std::is_trivially_copyable_v<bf16>);
  STATIC_REQUIRE(std::is_trivially_default_constructible_v<fp8_e4m3>);
  STATIC_REQUIRE(sizeof(fp16) == 2);
  STATIC_REQUIRE(sizeof(fp8_e5m2) == 1);
  STATIC_REQUIRE(alignof(bf16) == 2);
  // constexpr conversions
  STATIC_REQUIRE(bf16(1.0f).bits == 0x3F80);
  STATIC_REQUIRE(fp8_e4m3::from_bits(0x7E).to_float() == 448.0f);
  STATIC_REQUIRE(static_cast<float>(fp16::from_bits(0x3C00)) == 1.0f);
}

TEST_CASE("numeric: every bf16 encoding round-trips", "[host][numeric]") { check_all_encodings<bf16>(); }
TEST_CASE("numeric: every fp16 encoding round-trips", "[host][numeric]") { check_all_encodings<fp16>(); }
TEST_CASE("numeric: every fp8_e4m3 encoding round-trips", "[host][numeric]") { check_all_encodings<fp8_e4m3>(); }
TEST_CASE("numeric: every fp8_e5m2 encoding round-trips", "[host][numeric]") { check_all_encodings<fp8_e5m2>(); }

TEST_CASE("numeric: float -> bf16 matches the reference", "[host][numeric]") { check_against_reference<bf16>(make_inputs<bf16>(1)); }
TEST_CASE("numeric: float -> fp16 matches the reference", "[host][numeric]") { check_against_reference<fp16>(make_inputs<fp16>(2)); }
TEST_CASE("numeric: float -> fp8_e4m3 matches the reference", "[host][numeric]") {
  check_against_reference<fp8_e4m3>(make_inputs<fp8_e4m3>(3));
}
TEST_CASE("numeric: float -> fp8_e5m2 matches the reference", "[host][numeric]") {
  check_against_reference<fp8_e5m2>(make_inputs<fp8_e5m2>(4));
}

TEST_CASE("numeric: known encodings", "[host][numeric]") {
  SECTION("bf16") {
    CHECK(bf16(1.0f).bits == 0x3F80);
    CHECK(bf16(-2.0f).bits == 0xC000);
    CHECK(bf16(1.0f + 0x1p-8f).bits == 0x3F80);      // tie, even stays
    CHECK(bf16(1.0f + 3 * 0x1p-8f).bits == 0x3F82);  // tie, odd rounds up
    CHECK(bf16(1.0f + 0x1p-8f + 0x1p-23f).bits == 0x3F81);
    CHECK(bf16(FLT_MAX).bits == 0x7F80);  // IEEE overflow
    CHECK(bf16::from_float_sat(FLT_MAX).bits == 0x7F7F);
    CHECK(bf16::from_float_sat(-INFINITY).bits == 0xFF7F);
    CHECK(bf16(INFINITY).bits == 0x7F80);
    CHECK(bf16(NAN).is_nan());
    CHECK(bf16(FLT_TRUE_MIN).bits == 0x0000);  // 2^-149 < half of 2^-133
    CHECK(bf16(0x1p-133f).bits == 0x0001);     // bf16 min subnormal
    CHECK(bf16(-0.0f).bits == 0x8000);
    CHECK(bf16::from_bits(0x7F7F).to_float() == 0x1.FEp127f);
  }
  SECTION("fp16") {
    CHECK(fp16(1.0f).bits == 0x3C00);
    CHECK(fp16(-2.0f).bits == 0xC000);
    CHECK(fp16(0.1f).bits == 0x2E66);
    CHECK(fp16(65504.0f).bits == 0x7BFF);
    CHECK(fp16(65519.99f).bits == 0x7BFF);
    CHECK(fp16(65520.0f).bits == 0x7C00);  // tie above max -> inf
    CHECK(fp16::from_float_sat(65520.0f).bits == 0x7BFF);
    CHECK(fp16::from_float_sat(-1e10f).bits == 0xFBFF);
    CHECK(fp16(0x1p-24f).bits == 0x0001);  // min subnormal
    CHECK(fp16(0x1p-25f).bits == 0x0000);  // tie to even -> 0
    CHECK(fp16(0x1.000002p-25f).bits == 0x0001);
    CHECK(fp16(0x1.8p-24f).bits == 0x0002);       // tie between 1 and 2 -> 2
    CHECK(fp16(0x1p-14f).bits == 0x0400);         // min normal
    CHECK(fp16(0x1.FF8p-15f).bits == 0x03FF);     // max subnormal
    CHECK(fp16(0x1.FFCp-15f).bits == 0x0400);     // tie, odd -> up into the normals
    CHECK(fp16(0x1.FFBFFEp-15f).bits == 0x03FF);  // just below that tie
    CHECK(fp16::from_bits(0x7C00).to_float() == INFINITY);
    CHECK(fp16::from_bits(0xFC00).is_inf());
    CHECK(fp16(-NAN).bits == 0xFE00);
  }
  SECTION("fp8_e4m3") {
    CHECK(fp8_e4m3(448.0f).bits == 0x7E);
    CHECK(fp8_e4m3(464.0f).bits == 0x7E);  // saturates (would be 480)
    CHECK(fp8_e4m3(1e6f).bits == 0x7E);
    CHECK(fp8_e4m3(INFINITY).bits == 0x7E);
    CHECK(fp8_e4m3(-INFINITY).bits == 0xFE);
    CHECK(fp8_e4m3::from_bits(0x7F).is_nan());
    CHECK(fp8_e4m3::from_bits(0xFF).is_nan());
    CHECK(std::isnan(fp8_e4m3::from_bits(0x7F).to_float()));
    CHECK(fp8_e4m3(NAN).bits == 0x7F);
    CHECK(fp8_e4m3(1.0f).bits == 0x38);
    CHECK(fp8_e4m3(0x1p-9f).bits == 0x01);   // min subnormal
    CHECK(fp8_e4m3(0x1p-10f).bits == 0x00);  // tie to even -> 0
    CHECK(fp8_e4m3(0x1p-6f).bits == 0x08);   // min normal
    CHECK(fp8_e4m3::from_bits(0x77).to_float() == 240.0f);
    CHECK(fp8_e4m3(-0.0f).bits == 0x80);
  }
  SECTION("fp8_e5m2") {
    CHECK(fp8_e5m2(57344.0f).bits == 0x7B);
    CHECK(fp8_e5m2(1e9f).bits == 0x7B);
    CHECK(fp8_e5m2(INFINITY).bits == 0x7B);
    CHECK(fp8_e5m2(-INFINITY).bits == 0xFB);
    CHECK(fp8_e5m2::from_bits(0x7C).to_float() == INFINITY);
    CHECK(fp8_e5m2::from_bits(0x7D).is_nan());
    CHECK(fp8_e5m2(NAN).bits == 0x7E);
    CHECK(fp8_e5m2(1.0f).bits == 0x3C);
    CHECK(fp8_e5m2(0x1p-16f).bits == 0x01);  // min subnormal
    CHECK(fp8_e5m2(0x1p-14f).bits == 0x04);  // min normal
    CHECK(fp8_e5m2(1.125f).bits == 0x3C);    // tie to even (1.0)
    CHECK(fp8_e5m2(1.375f).bits == 0x3E);    // tie to even (1.5)
  }
}

TEST_CASE("numeric: numeric_traits", "[host][numeric]") {
  STATIC_REQUIRE(numeric_traits<bf16>::digits == 8);
  STATIC_REQUIRE(numeric_traits<fp16>::digits == 11);
  STATIC_REQUIRE(numeric_traits<fp8_e4m3>::digits == 4);
  STATIC_REQUIRE(numeric_traits<fp8_e5m2>::digits == 3);
  STATIC_REQUIRE(!numeric_traits<fp8_e4m3>::has_infinity);
  STATIC_REQUIRE(numeric_traits<fp8_e5m2>::has_infinity);

  CHECK(numeric_traits<bf16>::max_finite() == 0x1.FEp127f);
  CHECK(numeric_traits<bf16>::lowest() == -0x1.FEp127f);
  CHECK(numeric_traits<bf16>::min_normal() == FLT_MIN);
  CHECK(numeric_traits<bf16>::min_subnormal() == 0x1p-133f);
  CHECK(numeric_traits<bf16>::epsilon() == 0x1p-7f);

  CHECK(numeric_traits<fp16>::max_finite() == 65504.0f);
  CHECK(numeric_traits<fp16>::lowest() == -65504.0f);
  CHECK(numeric_traits<fp16>::min_normal() == 0x1p-14f);
  CHECK(numeric_traits<fp16>::min_subnormal() == 0x1p-24f);
  CHECK(numeric_traits<fp16>::epsilon() == 0x1p-10f);

  CHECK(numeric_traits<fp8_e4m3>::max_finite() == 448.0f);
  CHECK(numeric_traits<fp8_e4m3>::lowest() == -448.0f);
  CHECK(numeric_traits<fp8_e4m3>::min_normal() == 0x1p-6f);
  CHECK(numeric_traits<fp8_e4m3>::min_subnormal() == 0x1p-9f);
  CHECK(numeric_traits<fp8_e4m3>::epsilon() == 0.125f);

  CHECK(numeric_traits<fp8_e5m2>::max_finite() == 57344.0f);
  CHECK(numeric_traits<fp8_e5m2>::lowest() == -57344.0f);
  CHECK(numeric_traits<fp8_e5m2>::min_normal() == 0x1p-14f);
  CHECK(numeric_traits<fp8_e5m2>::min_subnormal() == 0x1p-16f);
  CHECK(numeric_traits<fp8_e5m2>::epsilon() == 0.25f);

  // epsilon is the gap above 1.
  CHECK(fp16::from_bits(0x3C01).to_float() - 1.0f == numeric_traits<fp16>::epsilon());
  CHECK(fp8_e4m3::from_bits(0x39).to_float() - 1.0f == numeric_traits<fp8_e4m3>::epsilon());
}
