// The decode kernels of the fast CPU executor (cpu/gemv_int8.hpp, cpu/gemv.hpp): W8A8's exact int32 dot
// products on every instruction set this CPU has, against int64 sums, and W8A16's fp32 rows times
// scaled int8 weights against double sums; odd lengths (the masked tails), strided rows, the
// extreme codes, and the activation quantizer against quant::fake_quant_int8_row; and the fp16
// decode GEMV (cpu/gemv.hpp) against double sums.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "deepshock/cpu/gemv_int8.hpp"
#include "deepshock/quant/int8.hpp"
#include "test_support.hpp"

namespace {
namespace cpu = deepshock::cpu;

std::vector<cpu::Isa> isas(cpu::Isa best) {
  std::vector<cpu::Isa> v{cpu::Isa::portable};
  if (best != cpu::Isa::portable) v.push_back(best);
  return v;
}

const int kLengths[] = {1, 3, 63, 64, 65, 255, 256, 257, 1000};
}  // namespace

TEST_CASE("W8A8 GEMV: exact int32 dot products on every instruction set, odd lengths", "[cpu][gemv]") {
  auto rng = ds_test::make_rng(0x58A8);
  std::uniform_int_distribution<int> code(-127, 127), pick(0, 9);
  for (const int k : kLengths)
    for (int m = 1; m <= cpu::kGemvMaxRows; ++m) {
      constexpr int n = 5;
      const long long lda = k + 3, ldb = k + 1, ldc = n + 2;
      // A tenth of the codes at the extremes: the offset trick's largest products.
      auto draw = [&] { return static_cast<std::int8_t>(pick(rng) == 0 ? (code(rng) < 0 ? -127 : 127) : code(rng)); };
      std::vector<std::int8_t> a(static_cast<std::size_t>(m * lda)), b(static_cast<std::size_t>(n * ldb));
      for (auto& v : a) v = draw();
      for (auto& v : b) v = draw();
      for (const cpu::Isa isa : isas(cpu::best_isa_s8())) {
        INFO("k " << k << " m " << m << " isa " << static_cast<int>(isa));
        std::vector<std::int32_t> c(static_cast<std::size_t>(m * ldc), std::numeric_limits<std::int32_t>::min());
        cpu::gemv_rows_s8(isa, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc);
        for (int q = 0; q < m; ++q)
          for (int j = 0; j < n; ++j) {
            long long s = 0;
            for (int i = 0; i < k; ++i) s += static_cast<long long>(a[q * lda + i]) * b[j * ldb + i];
            REQUIRE(c[static_cast<std::size_t>(q * ldc + j)] == s);
          }
        for (int q = 0; q < m; ++q)  // the gaps between the rows of c are left alone
          for (long long j = n; j < ldc; ++j) REQUIRE(c[static_cast<std::size_t>(q * ldc + j)] == std::numeric_limits<std::int32_t>::min());
      }
    }
}

TEST_CASE("W8A16 GEMV: fp32 rows times scaled int8 weights against double sums", "[cpu][gemv]") {
  auto rng = ds_test::make_rng(0x58A16);
  std::uniform_int_distribution<int> code(-127, 127);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f), sc(0.001f, 0.02f);
  for (const int k : kLengths)
    for (int m = 1; m <= cpu::kGemvMaxRows; ++m)
      for (const bool scaled : {true, false}) {
        constexpr int n = 5;
        const long long lda = k + 2, ldb = k + 5, ldc = n + 1;
        std::vector<float> a(static_cast<std::size_t>(m * lda)), scale(n);
        std::vector<std::int8_t> b(static_cast<std::size_t>(n * ldb));
        for (auto& v : a) v = val(rng);
        for (auto& v : b) v = static_cast<std::int8_t>(code(rng));
        for (auto& v : scale) v = sc(rng);
        for (const cpu::Isa isa : isas(cpu::best_isa<float>())) {
          INFO("k " << k << " m " << m << " scaled " << scaled << " isa " << static_cast<int>(isa));
          std::vector<float> c(static_cast<std::size_t>(m * ldc), std::numeric_limits<float>::quiet_NaN());
          cpu::gemv_rows_w8(isa, m, n, k, a.data(), lda, b.data(), ldb, scaled ? scale.data() : nullptr, c.data(), ldc);
          for (int q = 0; q < m; ++q)
            for (int j = 0; j < n; ++j) {
              double s = 0, mag = 0;
              for (int i = 0; i < k; ++i) {
                s += static_cast<double>(a[q * lda + i]) * b[j * ldb + i];
                mag += std::abs(static_cast<double>(a[q * lda + i]) * b[j * ldb + i]);
              }
              const double f = scaled ? scale[static_cast<std::size_t>(j)] : 1.0;
              // fp32 sums: a bound of k ulps of the sum of magnitudes, plus the scaling's rounding.
              const double tol = (k + 1) * std::ldexp(mag * f, -23) + 1e-30;
              REQUIRE(std::abs(c[static_cast<std::size_t>(q * ldc + j)] - s * f) <= tol);
            }
        }
      }
}

TEST_CASE("fp16 GEMV: fp32 rows times fp16 weights against double sums", "[cpu][gemv]") {
  auto rng = ds_test::make_rng(0xF16);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  for (const int k : kLengths)
    for (int m = 1; m <= cpu::kGemvMaxRows; ++m) {
      constexpr int n = 5;
      const long long lda = k + 1, ldb = k + 3, ldc = n + 2;
      std::vector<float> a(static_cast<std::size_t>(m * lda));
      std::vector<deepshock::fp16> b(static_cast<std::size_t>(n * ldb));
      for (auto& v : a) v = val(rng);
      for (auto& v : b) v = deepshock::value_from_float<deepshock::fp16>(val(rng));
      for (const cpu::Isa isa : isas(cpu::best_isa<float>())) {
        INFO("k " << k << " m " << m << " isa " << static_cast<int>(isa));
        std::vector<float> c(static_cast<std::size_t>(m * ldc), std::numeric_limits<float>::quiet_NaN());
        cpu::gemv_rows_f16(isa, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc);
        for (int q = 0; q < m; ++q)
          for (int j = 0; j < n; ++j) {
            double s = 0, mag = 0;
            for (int i = 0; i < k; ++i) {
              const double p = static_cast<double>(a[q * lda + i]) * deepshock::value_to_float(b[j * ldb + i]);
              s += p;
              mag += std::abs(p);
            }
            REQUIRE(std::abs(c[static_cast<std::size_t>(q * ldc + j)] - s) <= k * std::ldexp(mag, -23) + 1e-30);
          }
      }
    }
}

TEST_CASE("W8A8 activation quantizer: the codes and scale of quant::fake_quant_int8_row", "[cpu][gemv]") {
  auto rng = ds_test::make_rng(0xAC78);
  std::uniform_real_distribution<float> val(-3.0f, 3.0f);
  for (const int n : {1, 7, 128, 1000}) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = val(rng);
    if (n > 1) v[1] = -0.0f;
    if (n > 2) v[2] = std::numeric_limits<float>::quiet_NaN();  // a row without data: skipped by amax, code -127
    std::vector<std::int8_t> q(static_cast<std::size_t>(n));
    const float s = cpu::quantize_row_s8(v.data(), n, q.data());
    std::vector<float> expect = v;
    deepshock::quant::fake_quant_int8_row(expect.data(), n);
    for (int i = 0; i < n; ++i) REQUIRE(static_cast<float>(q[static_cast<std::size_t>(i)]) * s == expect[static_cast<std::size_t>(i)]);
  }
  // A row of zeros: scale 0 and codes 0.
  std::vector<float> z(9, 0.0f);
  std::vector<std::int8_t> q(9, 5);
  CHECK(cpu::quantize_row_s8(z.data(), 9, q.data()) == 0.0f);
  for (const std::int8_t c : q) CHECK(c == 0);
}
