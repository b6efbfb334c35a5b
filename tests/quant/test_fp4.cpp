// 4-bit floating-point formats on the host: the E2M1 / E8M0 scalar types (core/numeric.hpp), the
// MXFP4 / NVFP4 quantizers and decoders (quant/fp4.hpp) and the checkpoint importers
// (quant/fp4_import.hpp), bit-exact against golden files written by the packages that define the
// formats (tools/fp4_golden.py: ml_dtypes, compressed-tensors, transformers' gpt-oss loader).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "deepshock/quant/fp4.hpp"
#include "deepshock/quant/fp4_import.hpp"
#include "golden_file.hpp"
#include "status_checks.hpp"
#include "test_support.hpp"

namespace ds = deepshock;
namespace quant = deepshock::quant;

namespace {

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

/// Codes of a packed [n][k/2] row-major matrix, value 2j in the low nibble.
unsigned code_at(const std::vector<std::uint8_t>& packed, long long k, long long r, long long c) {
  const unsigned b = packed[static_cast<std::size_t>(r * (k / 2) + c / 2)];
  return c % 2 == 0 ? b & 15u : b >> 4;
}

/// The codec's host decoding of every row of an [experts][n][k] stack (the reference values).
template <class Codec>
std::vector<double> decode_all(const typename Codec::Params& p, const std::vector<std::uint8_t>& q, long long experts, long long n,
                               long long k) {
  std::vector<double> out(static_cast<std::size_t>(experts * n * k));
  for (long long e = 0; e < experts; ++e)
    for (long long r = 0; r < n; ++r)
      Codec::template decode_row_ref<ds::bf16>(p, quant::Matrix::w1, q.data(), quant::RowRef{e, n, r, k},
                                               out.data() + static_cast<std::size_t>((e * n + r) * k));
  return out;
}

}  // namespace

TEST_CASE("fp4_e2m1 and fp8_e8m0: every encoding and the float -> E2M1 casts match ml_dtypes", "[quant][fp4]") {
  const golden::File g = golden::load("fp4_scalars.txt");
  const std::vector<float> e2m1 = g.floats("e2m1_values");
  REQUIRE(e2m1.size() == 16);
  for (unsigned c = 0; c < 16; ++c) {
    INFO("e2m1 code " << c);
    CHECK(bits_of(ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(c)).to_float()) == bits_of(e2m1[c]));
  }
  const std::vector<float> e8m0 = g.floats("e8m0_values");
  REQUIRE(e8m0.size() == 255);
  for (unsigned s = 0; s < 255; ++s) {
    INFO("e8m0 bits " << s);
    CHECK(bits_of(ds::fp8_e8m0::from_bits(static_cast<std::uint8_t>(s)).to_float()) == bits_of(e8m0[s]));
  }
  CHECK(std::isnan(ds::fp8_e8m0::from_bits(0xFF).to_float()));
  const std::vector<float> in = g.floats("cast_inputs");
  const auto codes = g.get<unsigned>("cast_codes");
  for (std::size_t i = 0; i < in.size(); ++i) {
    INFO("cast of " << in[i]);
    CHECK(ds::fp4_e2m1(in[i]).bits == codes[i]);
  }
  // Round trip of every encoding, and nearest-even against a brute-force search on a fine grid.
  for (unsigned c = 0; c < 16; ++c) CHECK(ds::fp4_e2m1(ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(c)).to_float()).bits == c);
  for (int i = -8000; i <= 8000; ++i) {
    const float x = static_cast<float>(i) / 1000.0f;
    unsigned best = 0;
    for (unsigned c = 0; c < 16; ++c) {
      const float v = ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(c)).to_float(),
                  b = ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(best)).to_float();
      const float dv = std::fabs(v - std::fmin(std::fmax(x, -6.0f), 6.0f)), db = std::fabs(b - std::fmin(std::fmax(x, -6.0f), 6.0f));
      if (dv < db || (dv == db && (c & 1u) == 0 && (best & 1u) == 1)) best = c;
    }
    INFO("x = " << x);
    CHECK(ds::fp4_e2m1(x).to_float() == ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(best)).to_float());
  }
}

TEST_CASE("MXFP4 quantizer: the OCP rule and compressed-tensors' rule reproduce their golden codes and scales", "[quant][fp4]") {
  for (const auto& [file, rule] : {std::pair<const char*, quant::MxScaleRule>{"fp4_mxfp4_ocp.txt", quant::MxScaleRule::ocp},
                                   {"fp4_mxfp4_ct.txt", quant::MxScaleRule::round_up}}) {
    const golden::File g = golden::load(file);
    const long long n = g.meta_int("n"), k = g.meta_int("k");
    const std::vector<float> w = g.floats("weight");
    std::vector<std::uint8_t> q(static_cast<std::size_t>(n * k / 2), 0xA5), scale(static_cast<std::size_t>(n * k / 32), 0xA5);
    DS_REQUIRE_OK(quant::quantize_mxfp4(w.data(), n, k, k, q.data(), k / 2, scale.data(), rule));
    INFO(file);
    CHECK(q == g.get<std::uint8_t>("packed"));
    const auto gs = g.get<std::uint8_t>("scale");  // [n][k/32]
    for (long long r = 0; r < n; ++r)
      for (long long j = 0; j < k / 32; ++j)
        CHECK(scale[static_cast<std::size_t>(j * n + r)] == gs[static_cast<std::size_t>(r * (k / 32) + j)]);
    if (g.has("dequant")) {
      // compressed-tensors' own dequantization equals the codec's decoding to bf16, bit for bit.
      quant::Mxfp4::Params p;
      p.w1 = {scale.data(), nullptr};
      const std::vector<double> deq = decode_all<quant::Mxfp4>(p, q, 1, n, k);
      const auto ref = g.get<std::uint16_t>("dequant");
      for (std::size_t i = 0; i < deq.size(); ++i) CHECK(ds::bf16(static_cast<float>(deq[i])).bits == ref[i]);
    }
  }
  // The third rule clips nothing: every |w| <= 6 * 2^s.
  std::mt19937_64 rng(7);
  std::vector<float> w = ds_test::uniform(4 * 64, rng);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] *= std::ldexp(1.0f, static_cast<int>(i % 23) - 11);
  std::vector<std::uint8_t> q(4 * 32), s(4 * 2);
  DS_REQUIRE_OK(quant::quantize_mxfp4(w.data(), 4, 64, 64, q.data(), 32, s.data(), quant::MxScaleRule::no_clip));
  for (int r = 0; r < 4; ++r)
    for (int j = 0; j < 2; ++j) {
      // The smallest power of two that clips nothing: amax <= 6 * 2^s, and half of it would clip.
      float amax = 0.0f;
      for (int c = 32 * j; c < 32 * j + 32; ++c) amax = std::fmax(amax, std::fabs(w[static_cast<std::size_t>(r * 64 + c)]));
      const float step = ds::fp8_e8m0::from_bits(s[static_cast<std::size_t>(j * 4 + r)]).to_float();
      INFO("row " << r << " block " << j << " amax " << amax << " scale " << step);
      CHECK(amax <= 6.0f * step);
      CHECK(amax > 3.0f * step);
    }
  CHECK(quant::mx_block_exponent(0.0f, quant::MxScaleRule::ocp) == -127);
  CHECK(quant::mx_block_exponent(6.0f, quant::MxScaleRule::ocp) == 0);       // 6 = 1.5 * 2^2
  CHECK(quant::mx_block_exponent(7.0f, quant::MxScaleRule::round_up) == 1);  // 1.75 * 2^2 rounds up
  CHECK(quant::mx_block_exponent(6.5f, quant::MxScaleRule::no_clip) == 1);   // 6.5 > 6 * 2^0
  CHECK(quant::mx_block_exponent(6.0f, quant::MxScaleRule::no_clip) == 0);
}

TEST_CASE("gpt-oss MXFP4 blocks and scales import without change of codes and decode as transformers does", "[quant][fp4]") {
  const golden::File g = golden::load("fp4_gpt_oss.txt");
  const long long E = g.meta_int("experts"), n = g.meta_int("n"), k = g.meta_int("k");
  const auto blocks = g.get<std::uint8_t>("blocks");
  const auto scales = g.get<std::uint8_t>("scales");
  std::vector<std::uint8_t> q(blocks.size(), 0xA5), scale(scales.size(), 0xA5);
  DS_REQUIRE_OK(quant::import_fp4_rows<quant::Mxfp4>(blocks.data(), scales.data(), E, n, k, q.data(), scale.data()));
  CHECK(q == blocks);
  quant::Mxfp4::Params p;
  p.w1 = {scale.data(), nullptr};
  const std::vector<double> deq = decode_all<quant::Mxfp4>(p, q, E, n, k);
  const auto ref = g.get<std::uint16_t>("dequant");
  int finite = 0;
  for (std::size_t i = 0; i < deq.size(); ++i) {
    INFO("value " << i);
    CHECK(ds::bf16(static_cast<float>(deq[i])).bits == ref[i]);
    finite += std::isfinite(deq[i]) ? 1 : 0;
  }
  CHECK(finite < static_cast<int>(deq.size()));  // the golden data reaches bf16's overflow (scale 253, 254)
  // Rejections: NaN scale, partial blocks, null pointers.
  std::vector<std::uint8_t> bad = scales;
  bad[3] = 0xFF;
  ds_test::check_rejects(quant::import_fp4_rows<quant::Mxfp4>(blocks.data(), bad.data(), E, n, k, q.data(), scale.data()), "scales");
  ds_test::check_rejects(quant::import_fp4_rows<quant::Mxfp4>(blocks.data(), scales.data(), E, n, 48, q.data(), scale.data()), "k");
  ds_test::check_rejects(quant::import_fp4_rows<quant::Mxfp4>(nullptr, scales.data(), E, n, k, q.data(), scale.data()), "packed");
}

TEST_CASE("NVFP4 quantizer and compressed-tensors import reproduce the package's codes, scales and dequantization", "[quant][fp4]") {
  const golden::File g = golden::load("fp4_nvfp4_ct.txt");
  const long long n = g.meta_int("n"), k = g.meta_int("k");
  const std::vector<float> w = g.floats("weight");
  const float gs = g.floats("global_scale")[0];
  const auto packed = g.get<std::uint8_t>("packed");
  const auto gscale = g.get<std::uint8_t>("scale");  // [n][k/16]
  // Our quantizer follows compressed-tensors' rule bit for bit (0.125 for the all-zero blocks).
  std::vector<std::uint8_t> q(packed.size(), 0xA5), scale(gscale.size(), 0xA5);
  float global = -1.0f;
  DS_REQUIRE_OK(quant::quantize_nvfp4(w.data(), n, k, k, q.data(), k / 2, scale.data(), &global));
  CHECK(q == packed);
  for (long long r = 0; r < n; ++r)
    for (long long j = 0; j < k / 16; ++j)
      CHECK(scale[static_cast<std::size_t>(j * n + r)] == gscale[static_cast<std::size_t>(r * (k / 16) + j)]);
  CHECK(gscale[0] == ds::fp8_e4m3(0.125f).bits);
  CHECK(bits_of(global) == bits_of(1.0f / gs));
  // The importer: same bytes, transposed scales, the divisor turned into a multiplier.
  std::vector<std::uint8_t> qi(packed.size(), 0xA5), si(gscale.size(), 0xA5);
  float gi = -1.0f;
  DS_REQUIRE_OK(quant::import_fp4_rows<quant::Nvfp4>(packed.data(), gscale.data(), 1, n, k, qi.data(), si.data()));
  DS_REQUIRE_OK(quant::import_nvfp4_global(&gs, 1, quant::NvGlobal::divisor, &gi));
  CHECK(qi == packed);
  CHECK(si == scale);
  CHECK(gi == global);
  // compressed-tensors' own dequantization, reproduced bit for bit; the codec's decoding (the
  // multiplier, exact product in double) within 2^-22 relative of it before the bf16 rounding.
  const auto ref = g.get<std::uint16_t>("dequant");
  quant::Nvfp4::Params p;
  p.w1 = {si.data(), &gi};
  const std::vector<double> deq = decode_all<quant::Nvfp4>(p, qi, 1, n, k);
  for (long long r = 0; r < n; ++r)
    for (long long c = 0; c < k; ++c) {
      const std::size_t i = static_cast<std::size_t>(r * k + c);
      const std::uint8_t sb = gscale[static_cast<std::size_t>(r * (k / 16) + c / 16)];
      INFO("row " << r << " col " << c);
      CHECK(quant::dequantize_nvfp4_ct(code_at(packed, k, r, c), sb, gs).bits == ref[i]);
      const double ct = static_cast<double>(ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(code_at(packed, k, r, c))).to_float()) *
                        static_cast<double>(ds::fp8_e4m3::from_bits(sb).to_float()) / static_cast<double>(gs);
      CHECK(std::fabs(deq[i] - ct) <= 0x1p-22 * std::fabs(ct));
    }
  // ModelOpt's multiplier is taken as it is; rejections name the bad input.
  float m = -1.0f;
  const float ws2 = 0.0125f;
  DS_REQUIRE_OK(quant::import_nvfp4_global(&ws2, 1, quant::NvGlobal::multiplier, &m));
  CHECK(m == ws2);
  const float zero = 0.0f;
  ds_test::check_rejects(quant::import_nvfp4_global(&zero, 1, quant::NvGlobal::divisor, &m), "global");
  std::vector<std::uint8_t> bad = gscale;
  bad[5] = 0x7F;  // E4M3 NaN
  ds_test::check_rejects(quant::import_fp4_rows<quant::Nvfp4>(packed.data(), bad.data(), 1, n, k, qi.data(), si.data()), "scales");
  bad[5] = 0xB8;  // -1.0
  ds_test::check_rejects(quant::import_fp4_rows<quant::Nvfp4>(packed.data(), bad.data(), 1, n, k, qi.data(), si.data()), "scales");
  ds_test::check_rejects(quant::quantize_nvfp4(w.data(), n, k, k, q.data(), k / 2, scale.data(), nullptr), "global");
}

TEST_CASE("NVFP4 decoding is exact in bf16 and fp16 for every code and every finite E4M3 scale", "[quant][fp4]") {
  // c * s has at most 6 significant bits between 2^-10 and 2688: both 16-bit types hold it, so
  // the decoded weight is the product itself, whatever the exponent (no re-biasing slip).
  for (unsigned s = 0; s < 256; ++s) {
    const auto sb = static_cast<std::uint8_t>(s);
    if (ds::fp8_e4m3::from_bits(sb).is_nan()) continue;
    const quant::Nvfp4::Factors f = quant::Nvfp4::factors(sb, 0);
    for (unsigned c = 0; c < 16; ++c) {
      const double exact = static_cast<double>(ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(c)).to_float()) *
                           static_cast<double>(ds::fp8_e4m3::from_bits(sb).to_float());
      INFO("scale bits " << s << " code " << c);
      CHECK(static_cast<double>(quant::Nvfp4::decode<ds::bf16>(c, f).to_float()) == exact);
      CHECK(static_cast<double>(quant::Nvfp4::decode<ds::fp16>(c, f).to_float()) == exact);
    }
  }
  // MXFP4 in bf16: exact for every scale up to 2^125 (6 * 2^125 < bf16 max).
  for (unsigned s = 0; s <= 252; ++s) {
    const quant::Mxfp4::Factors f = quant::Mxfp4::factors(static_cast<std::uint8_t>(s), 0);
    for (unsigned c = 0; c < 16; ++c) {
      const double exact =
          std::ldexp(static_cast<double>(ds::fp4_e2m1::from_bits(static_cast<std::uint8_t>(c)).to_float()), static_cast<int>(s) - 127);
      CHECK(static_cast<double>(quant::Mxfp4::decode<ds::bf16>(c, f).to_float()) == exact);
    }
  }
}

TEST_CASE("FP4 quantizers reject bad arguments with a Status naming them", "[quant][fp4]") {
  std::vector<float> w(2 * 32, 1.0f);
  std::vector<std::uint8_t> q(32), s(4);
  float g = 0.0f;
  ds_test::check_rejects(quant::quantize_mxfp4(w.data(), 2, 48, 48, q.data(), 24, s.data()), "cols");
  ds_test::check_rejects(quant::quantize_mxfp4(w.data(), 2, 32, 16, q.data(), 16, s.data()), "ld");
  ds_test::check_rejects(quant::quantize_mxfp4(w.data(), 2, 32, 32, q.data(), 8, s.data()), "ldq");
  ds_test::check_rejects(quant::quantize_nvfp4(w.data(), 2, 24, 24, q.data(), 12, s.data(), &g), "cols");
  w[7] = NAN;
  ds_test::check_rejects(quant::quantize_mxfp4(w.data(), 2, 32, 32, q.data(), 16, s.data()), "w");
  ds_test::check_rejects(quant::quantize_nvfp4(w.data(), 2, 32, 32, q.data(), 16, s.data(), &g), "w");
}
