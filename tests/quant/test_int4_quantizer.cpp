// quant::Int4Group on the host: the quantizer's rules (symmetric amax / 7 and asymmetric
// (max - min) / 15 with a zero code, scales rounded to their 16-bit type first, round half to
// even), the packed layout (low nibble first), zero groups, rejected input, and the decoding
// that the GEMM, the host executor and the reference share.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "deepshock/quant/int4.hpp"
#include "status_checks.hpp"
#include "test_support.hpp"

namespace ds = deepshock;
namespace quant = deepshock::quant;

using U4g32 = quant::Int4Group<32>;
using I4g32 = quant::Int4Group<32, quant::Int4Zero::asymmetric>;
using I4g64bf = quant::Int4Group<64, quant::Int4Zero::asymmetric, ds::bf16>;
static_assert(quant::WeightCodec<U4g32> && quant::WeightCodec<I4g32> && quant::WeightCodec<I4g64bf>);
static_assert(quant::pack_v<U4g32> == 2 && quant::group_v<U4g32> == 32 && !quant::epilogue_scaled_v<U4g32>);

namespace {
using ds_test::check_rejects;

/// Decoded row r of a one-expert [rows, cols] matrix through the codec's host decoder.
template <class Codec, class T = ds::bf16>
std::vector<double> decode(const std::vector<std::uint8_t>& q, const std::vector<std::uint16_t>& s, const std::vector<std::uint8_t>& z,
                           long long rows, long long cols, long long r) {
  typename Codec::Params p;
  p.w1 = {s.data(), Codec::kZeros ? z.data() : nullptr};
  std::vector<double> out(static_cast<std::size_t>(cols));
  Codec::template decode_row_ref<T>(p, quant::Matrix::w1, q.data(), quant::RowRef{0, rows, r, cols}, out.data());
  return out;
}
}  // namespace

TEST_CASE("int4 symmetric quantizer: scale amax / 7 in fp16, codes u = q + 8, low nibble first, ties to even", "[host][quant]") {
  // Group 0 of row 0: amax 7 gives scale 1 exactly, so the codes are visible; ties 2.5 -> 2,
  // -0.5 -> 0, 1.5 -> 2. Group 1 of row 0: zeros (scale 0, codes 8).
  std::vector<float> w(64, 0.0f);
  const float head[8] = {7.0f, 2.5f, -0.5f, 1.5f, -7.0f, -3.5f, 0.4f, 6.6f};
  for (int c = 0; c < 8; ++c) w[std::size_t(c)] = head[c];
  std::vector<std::uint8_t> q(32, 0xAA);
  std::vector<std::uint16_t> s(2, 0xFFFF);
  REQUIRE(quant::quantize_int4_group<U4g32>(w.data(), 1, 64, 64, q.data(), 32, s.data(), nullptr).ok());
  CHECK(s[0] == ds::fp16(1.0f).bits);
  CHECK(s[1] == 0);
  // codes: 7+8=15, 2+8=10, 0+8=8, 2+8=10, -7+8=1, -4+8=4, 0+8=8, 7+8=15
  CHECK(q[0] == ((10u << 4) | 15u));
  CHECK(q[1] == ((10u << 4) | 8u));
  CHECK(q[2] == ((4u << 4) | 1u));
  CHECK(q[3] == ((15u << 4) | 8u));
  for (int b = 16; b < 32; ++b) CHECK(q[std::size_t(b)] == 0x88);
  const std::vector<double> d = decode<U4g32>(q, s, {}, 1, 64, 0);
  const double expect[8] = {7, 2, 0, 2, -7, -4, 0, 7};
  for (int c = 0; c < 8; ++c) CHECK(d[std::size_t(c)] == expect[c]);
  for (int c = 32; c < 64; ++c) CHECK(d[std::size_t(c)] == 0.0);
}

TEST_CASE("int4 asymmetric quantizer: scale (max - min) / 15, zero code rne(-min / s), group-major scales", "[host][quant]") {
  // Row 0 group 0 spans [-3, 12]: scale 1, zero 3; row 1 is all positive, so its range starts at 0
  // (zero code 0) and 0 stays exactly representable.
  const long long rows = 2, cols = 64;
  std::vector<float> w(std::size_t(rows * cols), 1.0f);
  w[0] = -3.0f;
  w[1] = 12.0f;
  w[2] = 0.5f;  // tie: 0.5 / 1 -> 0, code 3
  for (long long c = 0; c < cols; ++c) w[std::size_t(cols + c)] = 0.5f + 0.1f * float(c % 16);
  std::vector<std::uint8_t> q(std::size_t(rows * cols / 2), 0), z(std::size_t(rows * 2), 99);
  std::vector<std::uint16_t> s(std::size_t(rows * 2), 0);
  REQUIRE(quant::quantize_int4_group<I4g32>(w.data(), rows, cols, cols, q.data(), cols / 2, s.data(), z.data()).ok());
  // [group][row]: s[0] = row 0 group 0, s[1] = row 1 group 0, s[2] = row 0 group 1.
  CHECK(s[0] == ds::fp16(1.0f).bits);
  CHECK(z[0] == 3);
  CHECK(z[1] == 0);
  CHECK((q[0] & 15u) == 0u);  // -3 -> code 0
  CHECK((q[0] >> 4) == 15u);  // 12 -> code 15
  CHECK((q[1] & 15u) == 3u);  // 0.5 ties to 0 -> code 3
  // Every decoded weight lies within half a step of the input (no clipping: 0 is in the range).
  for (long long r = 0; r < rows; ++r) {
    const std::vector<double> d = decode<I4g32>(q, s, z, rows, cols, r);
    for (long long c = 0; c < cols; ++c) {
      const double step = ds::fp16::from_bits(s[std::size_t((c / 32) * rows + r)]).to_float();
      CHECK(std::fabs(d[std::size_t(c)] - w[std::size_t(r * cols + c)]) <= 0.5 * step * (1 + 1e-6) + 0x1p-8 * std::fabs(d[std::size_t(c)]));
    }
  }
}

TEST_CASE("int4 quantizers on random weights: error within half a step plus the T rounding, bf16 scales", "[host][quant]") {
  auto rng = ds_test::make_rng(1610);
  const long long rows = 24, cols = 192;
  std::vector<float> w = ds_test::uniform(std::size_t(rows * cols), rng, -2.0f, 3.0f);
  std::vector<std::uint8_t> q(std::size_t(rows * cols / 2), 0xAA), z(std::size_t(rows * cols / 64), 0xAA);
  std::vector<std::uint16_t> s(std::size_t(rows * cols / 64), 0xAAAA);
  REQUIRE(quant::quantize_int4_group<I4g64bf>(w.data(), rows, cols, cols, q.data(), cols / 2, s.data(), z.data()).ok());
  double worst = 0.0;
  for (long long r = 0; r < rows; ++r) {
    const std::vector<double> d = decode<I4g64bf, ds::bf16>(q, s, z, rows, cols, r);
    for (long long c = 0; c < cols; ++c) {
      const double step = ds::bf16::from_bits(s[std::size_t((c / 64) * rows + r)]).to_float();
      const double err = std::fabs(d[std::size_t(c)] - w[std::size_t(r * cols + c)]);
      worst = std::max(worst, err / step);
      // half a step, plus rounding the decoded value to bf16 (2^-8 relative) and a step that the
      // zero code's rounding can shift the grid by at the range's ends
      CHECK(err <= step * 1.0 + 0x1p-8 * std::fabs(d[std::size_t(c)]));
    }
  }
  INFO("worst error / step " << worst);
  CHECK(worst > 0.1);  // the test can see errors
}

TEST_CASE("int4 quantizer rejects partial groups, non-finite weights and null outputs", "[host][quant]") {
  std::vector<float> w(64, 1.0f);
  std::vector<std::uint8_t> q(32), z(2);
  std::vector<std::uint16_t> s(2);
  check_rejects(quant::quantize_int4_group<U4g32>(w.data(), 1, 48, 48, q.data(), 24, s.data(), nullptr), "cols");
  check_rejects(quant::quantize_int4_group<I4g32>(w.data(), 1, 64, 64, q.data(), 32, s.data(), nullptr), "zero");
  check_rejects(quant::quantize_int4_group<U4g32>(w.data(), 1, 64, 64, nullptr, 32, s.data(), nullptr), "q");
  check_rejects(quant::quantize_int4_group<U4g32>(w.data(), 1, 64, 64, q.data(), 16, s.data(), nullptr), "ldq");
  w[40] = std::numeric_limits<float>::quiet_NaN();
  check_rejects(quant::quantize_int4_group<U4g32>(w.data(), 1, 64, 64, q.data(), 32, s.data(), nullptr), "w");
}

TEST_CASE("Int4Group validates a layer's scales and zeros, and the GEMM's operands", "[host][quant]") {
  I4g32::Params p;
  std::vector<std::uint16_t> s(64);
  std::vector<std::uint8_t> z(64);
  p.w1 = p.w3 = p.w2 = {s.data(), z.data()};
  CHECK(I4g32::validate(p, true, false).ok());
  p.w3.zero = nullptr;
  check_rejects(I4g32::validate(p, true, false), "codec.w3.zero");
  U4g32::Params ps;
  ps.w1 = ps.w2 = {s.data(), nullptr};
  CHECK(U4g32::validate(ps, false, false).ok());
  check_rejects(U4g32::validate(ps, true, false), "codec.w3.scale");
  check_rejects(U4g32::check(U4g32::Operand{s.data(), nullptr, 8, 1}, 8, 48), "k");
  check_rejects(U4g32::check(U4g32::Operand{s.data(), nullptr, 8, 2}, 8, 64), "gate_up");
  check_rejects(U4g32::check(U4g32::Operand{s.data(), nullptr, 12, 1}, 8, 64), "codec.scale");
  check_rejects(U4g32::check(U4g32::Operand{s.data(), nullptr, 8, 1}, 16, 64), "codec.rows");
}
