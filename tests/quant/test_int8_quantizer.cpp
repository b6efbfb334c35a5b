// quant::Int8Channel on the host: the quantizer's rounding rule (amax / 127, fp32 division,
// round half to even), zero rows, rejected input, reference decoding, and the codec concept.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "deepshock/quant/int8.hpp"
#include "test_support.hpp"

namespace ds = deepshock;
namespace quant = deepshock::quant;

static_assert(quant::WeightCodec<quant::None>);
static_assert(quant::WeightCodec<quant::Int8Channel>);
static_assert(!quant::WeightCodec<int>);
struct NoHooks {  // not an identity codec, but without the GEMM's hooks
  template <class T>
  using storage = std::int8_t;
  struct Operand {};
  struct Params {};
  static constexpr bool kIdentity = false;
  static constexpr const char* kName = "no_hooks";
  static Operand operand(const Params&, quant::Matrix, long long, long long, int) { return {}; }
  static ds::Status validate(const Params&, bool, bool) { return ds::Status::success(); }
};
static_assert(!quant::WeightCodec<NoHooks>);

TEST_CASE("int8 quantizer: scale amax/127, ties to even, zero rows", "[host][quant]") {
  // Row 0: amax 127, so the scale is exactly 1 and the ties are visible; row 1: zeros.
  const std::vector<float> w = {127.0f, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 1.5f, -127.0f,  //
                                0.0f,   0.0f, 0.0f, 0.0f,  0.0f,  0.0f, 0.0f, 0.0f};
  std::vector<std::int8_t> q(16, 99);
  std::vector<float> s(2, -1.0f);
  REQUIRE(quant::quantize_int8_channel(w.data(), 2, 8, 8, q.data(), 8, s.data()).ok());
  CHECK(s[0] == 1.0f);
  CHECK(s[1] == 0.0f);
  const std::vector<std::int8_t> expect = {127, 2, 4, -2, 0, 0, 2, -127, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(q == expect);
  CHECK(quant::decode_ref(quant::Int8Channel{}, q[2], s[0]) == 4.0);
}

TEST_CASE("int8 quantizer: every element within half a step, the largest at +-127", "[host][quant]") {
  auto rng = ds_test::make_rng(1701);
  const long long rows = 37, cols = 91, ld = 96, ldq = 100;
  std::vector<float> w(static_cast<std::size_t>(rows * ld), std::nanf(""));  // padding: never read
  const std::vector<float> u = ds_test::uniform(static_cast<std::size_t>(rows * cols), rng, -3.0f, 3.0f);
  for (long long r = 0; r < rows; ++r)
    for (long long c = 0; c < cols; ++c) w[r * ld + c] = u[r * cols + c] * static_cast<float>(r + 1);
  std::vector<std::int8_t> q(static_cast<std::size_t>(rows * ldq), 0);
  std::vector<float> s(rows);
  REQUIRE(quant::quantize_int8_channel(w.data(), rows, cols, ld, q.data(), ldq, s.data()).ok());
  for (long long r = 0; r < rows; ++r) {
    int peak = 0;
    for (long long c = 0; c < cols; ++c) {
      const int v = q[r * ldq + c];
      CHECK(std::abs(v) <= 127);
      peak = std::max(peak, std::abs(v));
      const double err = std::fabs(static_cast<double>(w[r * ld + c]) - quant::decode_ref(quant::Int8Channel{}, q[r * ldq + c], s[r]));
      CHECK(err <= 0.5 * s[r] * (1.0 + 1e-6));
    }
    CHECK(peak == 127);
  }
}

TEST_CASE("int8 quantizer rejects non-finite weights and bad strides, naming them", "[host][quant]") {
  std::vector<float> w = {1.0f, 2.0f, std::numeric_limits<float>::infinity(), 4.0f};
  std::vector<std::int8_t> q(4);
  std::vector<float> s(2);
  const ds::Status st = quant::quantize_int8_channel(w.data(), 2, 2, 2, q.data(), 2, s.data());
  CHECK(st.code() == ds::StatusCode::invalid_argument);
  CHECK_THAT(st.message(), Catch::Contains("w[1, 0] is not finite"));
  CHECK(quant::quantize_int8_channel(w.data(), 2, 2, 1, q.data(), 2, s.data()).message().rfind("ld:", 0) == 0);
  CHECK(quant::quantize_int8_channel(w.data(), 2, 2, 2, q.data(), 1, s.data()).message().rfind("ldq:", 0) == 0);
  CHECK(quant::quantize_int8_channel(nullptr, 2, 2, 2, q.data(), 2, s.data()).message().rfind("w:", 0) == 0);
  CHECK(quant::quantize_int8_channel(w.data(), 0, 2, 2, nullptr, 2, nullptr).ok());  // nothing to do
}

TEST_CASE("int8 codec: the layer's check names each missing scale", "[host][quant]") {
  const float one = 1.0f;
  quant::Int8Channel::Params p{&one, &one, &one, nullptr, nullptr, nullptr};
  CHECK(quant::Int8Channel::validate(p, true, false).ok());
  CHECK(quant::Int8Channel::validate(p, true, true).message().rfind("codec.shared_w1_scale:", 0) == 0);
  p.w3_scale = nullptr;
  CHECK(quant::Int8Channel::validate(p, false, false).ok());  // not gated: no w3
  CHECK(quant::Int8Channel::validate(p, true, false).message().rfind("codec.w3_scale:", 0) == 0);
  const quant::Int8Channel::Operand o = quant::Int8Channel::operand(p, quant::Matrix::w2, 7, 0, 1);
  CHECK(o.stride == 7);
  CHECK(o.scale == &one);
  const float rows[6] = {1, 2, 3, 4, 5, 6};  // a fused [2 x 3] w1: interleaved up rows 1, 3, 5
  p.w1_scale = rows;
  const quant::Int8Channel::Operand up = quant::Int8Channel::operand(p, quant::Matrix::w1, 6, 1, 2);
  CHECK(quant::Int8Channel::scale(up, 0, 2) == 6.0f);
}
