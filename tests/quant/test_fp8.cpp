// FP8 E4M3 weights with 128 x 128 block scales (quant/fp8.hpp) on the host, bit-exact against the
// golden file tools/fp4_golden.py wrote: every E4M3 encoding (ml_dtypes), the DeepSeek-V3 block
// recipe (scales and codes) and DeepSeek's bf16 dequantization x.float() * s.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "deepshock/quant/fp8.hpp"
#include "golden_file.hpp"
#include "status_checks.hpp"

namespace ds = deepshock;
namespace quant = deepshock::quant;

TEST_CASE("FP8 block quantizer and decoding reproduce ml_dtypes and DeepSeek's dequantization bit for bit", "[quant][fp8]") {
  const golden::File g = golden::load("fp8_block.txt");
  const std::vector<float> e4m3 = g.floats("e4m3_values");
  REQUIRE(e4m3.size() == 256);
  for (unsigned b = 0; b < 256; ++b) {
    const float v = ds::fp8_e4m3::from_bits(static_cast<std::uint8_t>(b)).to_float();
    INFO("e4m3 bits " << b);
    if (std::isnan(e4m3[b])) CHECK(std::isnan(v));
    else CHECK(std::memcmp(&v, &e4m3[b], sizeof v) == 0);
  }
  const long long n = g.meta_int("n"), k = g.meta_int("k");
  const auto wb = g.get<std::uint16_t>("weight");
  std::vector<float> w(wb.size());
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = ds::bf16::from_bits(wb[i]).to_float();
  const long long nb = quant::Fp8Block::blocks(n), kb = quant::Fp8Block::blocks(k);
  std::vector<std::uint8_t> q(w.size(), 0xA5);
  std::vector<float> scale(static_cast<std::size_t>(nb * kb), NAN);
  DS_REQUIRE_OK(quant::quantize_fp8_block(w.data(), n, k, k, q.data(), k, scale.data()));
  CHECK(q == g.get<std::uint8_t>("codes"));
  const std::vector<float> gs = g.floats("scale");
  REQUIRE(gs.size() == scale.size());
  for (std::size_t i = 0; i < gs.size(); ++i) CHECK(std::memcmp(&gs[i], &scale[i], sizeof(float)) == 0);
  CHECK(scale.back() == 0.0f);  // the all-zero partial block
  quant::Fp8Block::Params p;
  p.w1 = {scale.data()};
  const auto ref = g.get<std::uint16_t>("dequant");
  std::vector<double> row(static_cast<std::size_t>(k));
  for (long long r = 0; r < n; ++r) {
    quant::Fp8Block::decode_row_ref<ds::bf16>(p, quant::Matrix::w1, q.data(), quant::RowRef{0, n, r, k}, row.data());
    for (long long c = 0; c < k; ++c) {
      INFO("row " << r << " col " << c);
      CHECK(ds::bf16(static_cast<float>(row[static_cast<std::size_t>(c)])).bits == ref[static_cast<std::size_t>(r * k + c)]);
    }
  }
}

TEST_CASE("FP8 block quantizer rejects bad arguments with a Status naming them", "[quant][fp8]") {
  std::vector<float> w(4 * 16, 1.0f);
  std::vector<std::uint8_t> q(64);
  float s = 0.0f;
  ds_test::check_rejects(quant::quantize_fp8_block(w.data(), 4, 16, 8, q.data(), 16, &s), "ld");
  ds_test::check_rejects(quant::quantize_fp8_block(w.data(), 4, 16, 16, q.data(), 8, &s), "ldq");
  ds_test::check_rejects(quant::quantize_fp8_block(w.data(), 4, 16, 16, q.data(), 16, nullptr), "scale");
  w[5] = INFINITY;
  ds_test::check_rejects(quant::quantize_fp8_block(w.data(), 4, 16, 16, q.data(), 16, &s), "w");
}
