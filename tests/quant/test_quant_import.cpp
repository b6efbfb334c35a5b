// Checkpoint importers (quant/import.hpp) against golden files written by the packages that define
// the formats (tools/quant_golden.py: gptqmodel 7.7.0 for GPTQ v1/v2 and AWQ GEMM, compressed-tensors
// 0.20.1 for pack-quantized). Every import must reproduce (a) the package's dequantized weight bit
// for bit and (b) the package's own unpacking of the codes and zeros; then rejection (act-order
// g_idx, bad shapes, null pointers, zeros that are not 8 for a symmetric import), and random round
// trips through packers written from the format descriptions.
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "deepshock/quant/import.hpp"
#include "golden_file.hpp"
#include "test_support.hpp"

namespace ds = deepshock;
namespace quant = deepshock::quant;

namespace {

constexpr std::uint8_t kPoisonQ = 0xA5;
constexpr std::uint16_t kPoisonScale = 0x7E01;  // a NaN in fp16 and bf16 alike
constexpr std::uint8_t kPoisonZero = 0xEE;      // not a 4-bit code

// ---- golden files (format: tools/quant_golden.py; reader: golden_file.hpp) ---------------------
struct Golden : golden::File {
  quant::Int4Layout layout() const {
    return {meta_int("n"), meta_int("k"), meta_int("group"),
            meta.at("scale_dtype") == "bf16" ? quant::Int4ScaleType::bf16 : quant::Int4ScaleType::fp16};
  }
  bool symmetric() const { return meta.at("sym") == "1"; }
};

Golden load(const std::string& file) { return Golden{golden::load(file)}; }

// ---- destination buffers, poisoned -------------------------------------------------------------
struct Imported {
  std::vector<std::uint8_t> q, zero;
  std::vector<std::uint16_t> scale;
  bool with_zero = false;
  Imported(const quant::Int4Layout& l, bool zeros)
      : q(static_cast<std::size_t>(l.n * l.k / 2), kPoisonQ),
        zero(zeros ? static_cast<std::size_t>(l.k / l.group * l.n) : 0, kPoisonZero),
        scale(static_cast<std::size_t>(l.k / l.group * l.n), kPoisonScale),
        with_zero(zeros) {}
  quant::Int4Target target() { return {q.data(), scale.data(), with_zero ? zero.data() : nullptr}; }
  quant::Int4View view() const { return {q.data(), scale.data(), with_zero ? zero.data() : nullptr}; }
  bool untouched() const {
    for (auto b : q)
      if (b != kPoisonQ) return false;
    for (auto s : scale)
      if (s != kPoisonScale) return false;
    for (auto z : zero)
      if (z != kPoisonZero) return false;
    return true;
  }
  unsigned code(const quant::Int4Layout& l, long long r, long long c) const {
    const unsigned b = q[static_cast<std::size_t>(r * (l.k / 2) + c / 2)];
    return c % 2 == 0 ? b & 15u : b >> 4;
  }
};

std::vector<std::uint16_t> dequant_bits(const quant::Int4View& v, const quant::Int4Layout& l) {
  std::vector<std::uint16_t> bits(static_cast<std::size_t>(l.n * l.k));
  if (l.scale_type == quant::Int4ScaleType::fp16) {
    std::vector<ds::fp16> out(bits.size());
    REQUIRE(quant::dequantize_int4_ref(v, l, out.data()).ok());
    for (std::size_t i = 0; i < out.size(); ++i) bits[i] = out[i].bits;
  } else {
    std::vector<ds::bf16> out(bits.size());
    REQUIRE(quant::dequantize_int4_ref(v, l, out.data()).ok());
    for (std::size_t i = 0; i < out.size(); ++i) bits[i] = out[i].bits;
  }
  return bits;
}

// First index where two vectors differ, or -1.
template <class A, class B>
long long first_mismatch(const std::vector<A>& a, const std::vector<B>& b) {
  if (a.size() != b.size()) return 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (static_cast<long long>(a[i]) != static_cast<long long>(b[i])) return static_cast<long long>(i);
  return -1;
}

// (a) our dequantization of the import equals the package's, bit for bit; (b) the codes, zeros and
// scales equal the package's own unpacking; and the golden codes/zeros/scales, decoded by the
// canonical rule, give the package's weight (the rule itself matches the package).
void check_import(const Golden& g, const Imported& im, const std::vector<std::uint16_t>& scale_gn) {
  const quant::Int4Layout l = g.layout();
  INFO(g.file << (im.with_zero ? " (asymmetric layout)" : " (symmetric layout)"));
  const auto want = g.get<std::uint16_t>("dequant");
  CHECK(first_mismatch(dequant_bits(im.view(), l), want) == -1);

  std::vector<unsigned> codes(static_cast<std::size_t>(l.n * l.k));
  for (long long r = 0; r < l.n; ++r)
    for (long long c = 0; c < l.k; ++c) codes[static_cast<std::size_t>(r * l.k + c)] = im.code(l, r, c);
  CHECK(first_mismatch(codes, g.get<long long>("codes")) == -1);
  const std::vector<long long> zeros = g.has("zeros") ? g.get<long long>("zeros") : std::vector<long long>(scale_gn.size(), 8);
  if (im.with_zero) CHECK(first_mismatch(im.zero, zeros) == -1);
  CHECK(first_mismatch(im.scale, scale_gn) == -1);

  Imported from_golden(l, true);
  const std::vector<long long>& golden_codes = g.at("codes").v;
  for (std::size_t i = 0; i < codes.size(); i += 2)
    from_golden.q[i / 2] = static_cast<std::uint8_t>(golden_codes[i] | (golden_codes[i + 1] << 4));
  from_golden.zero.assign(zeros.begin(), zeros.end());
  from_golden.scale = scale_gn;
  CHECK(first_mismatch(dequant_bits(from_golden.view(), l), want) == -1);
}

// Scales [k/G][n] from a channel-major [n][k/G] tensor.
std::vector<std::uint16_t> transpose_scales(const std::vector<std::uint16_t>& s, const quant::Int4Layout& l) {
  const long long groups = l.k / l.group;
  std::vector<std::uint16_t> t(s.size());
  for (long long r = 0; r < l.n; ++r)
    for (long long j = 0; j < groups; ++j) t[static_cast<std::size_t>(j * l.n + r)] = s[static_cast<std::size_t>(r * groups + j)];
  return t;
}

bool mentions(const ds::Status& st, const std::string& what) { return st.message().find(what) != std::string::npos; }

const char* const kGptqFiles[] = {"gptq_asym_g32.txt", "gptq_asym_g64.txt", "gptq_sym_g128.txt"};
const char* const kAwqFiles[] = {"awq_g128_f16.txt", "awq_g32_bf16.txt"};
const char* const kCtFiles[] = {"ct_sym_g128_f16.txt", "ct_sym_g64_bf16.txt", "ct_asym_g32_bf16.txt", "ct_asym_g128_f16.txt"};

}  // namespace

TEST_CASE("GPTQ v1 and v2 checkpoints import bit-exactly (gptqmodel golden files)", "[host][quant][import]") {
  for (const char* file : kGptqFiles) {
    const Golden g = load(file);
    REQUIRE(g.meta.at("source") == "gptq");
    const quant::Int4Layout l = g.layout();
    const auto qweight = g.get<std::int32_t>("qweight");
    const auto scales = g.get<std::uint16_t>("scales");
    const auto g_idx = g.get<std::int32_t>("g_idx");
    for (const auto zeros : {quant::GptqZeros::v1, quant::GptqZeros::v2}) {
      const auto qzeros = g.get<std::int32_t>(zeros == quant::GptqZeros::v1 ? "qzeros_v1" : "qzeros_v2");
      INFO(file << (zeros == quant::GptqZeros::v1 ? " v1" : " v2"));
      const quant::GptqTensors src{qweight.data(), qzeros.data(), scales.data(), g_idx.data()};
      Imported asym(l, true);
      REQUIRE(quant::import_gptq(src, zeros, l, asym.target()).ok());
      check_import(g, asym, scales);

      Imported no_gidx(l, true);  // g_idx is optional: the same import without it
      REQUIRE(quant::import_gptq({qweight.data(), qzeros.data(), scales.data(), nullptr}, zeros, l, no_gidx.target()).ok());
      CHECK((no_gidx.q == asym.q && no_gidx.zero == asym.zero && no_gidx.scale == asym.scale));

      Imported sym(l, false);
      const ds::Status st = quant::import_gptq(src, zeros, l, sym.target());
      if (g.symmetric()) {
        REQUIRE(st.ok());
        check_import(g, sym, scales);
      } else {
        CHECK(st.code() == ds::StatusCode::invalid_argument);
        CHECK(mentions(st, "src.qzeros"));
        CHECK(mentions(st, "not 8"));
        CHECK(sym.untouched());
      }
    }
  }
}

TEST_CASE("GPTQ v1 zeros are stored with one 32-bit subtraction per word (the borrow case)", "[host][quant][import]") {
  // gptqmodel writes v1 as v2 - 0x11111111 per word: a zero of 0 borrows from the slot above it,
  // so adding 1 to each slot on its own would misread those words. The golden file has such words.
  const Golden g = load("gptq_asym_g32.txt");
  const auto v1 = g.get<std::int32_t>("qzeros_v1");
  const auto v2 = g.get<std::int32_t>("qzeros_v2");
  int borrowed = 0;
  for (std::size_t i = 0; i < v1.size(); ++i) {
    const auto a = static_cast<std::uint32_t>(v1[i]), b = static_cast<std::uint32_t>(v2[i]);
    CHECK(a + 0x11111111u == b);
    std::uint32_t per_slot = 0;
    for (int s = 0; s < 8; ++s) per_slot |= (((a >> (4 * s)) + 1u) & 15u) << (4 * s);
    borrowed += per_slot != b;
  }
  CHECK(borrowed > 0);
}

TEST_CASE("AWQ GEMM checkpoints import bit-exactly (gptqmodel golden files)", "[host][quant][import]") {
  for (const char* file : kAwqFiles) {
    const Golden g = load(file);
    REQUIRE(g.meta.at("source") == "awq");
    INFO(file);
    const quant::Int4Layout l = g.layout();
    const auto qweight = g.get<std::int32_t>("qweight");
    const auto qzeros = g.get<std::int32_t>("qzeros");
    const auto scales = g.get<std::uint16_t>("scales");
    const quant::AwqTensors src{qweight.data(), qzeros.data(), scales.data()};
    Imported asym(l, true);
    REQUIRE(quant::import_awq_gemm(src, l, asym.target()).ok());
    check_import(g, asym, scales);

    Imported sym(l, false);  // the zeros span 0..15: a symmetric import is refused
    const ds::Status st = quant::import_awq_gemm(src, l, sym.target());
    CHECK(st.code() == ds::StatusCode::invalid_argument);
    CHECK(mentions(st, "src.qzeros"));
    CHECK(sym.untouched());
  }
}

TEST_CASE("compressed-tensors pack-quantized checkpoints import bit-exactly (golden files)", "[host][quant][import]") {
  for (const char* file : kCtFiles) {
    const Golden g = load(file);
    REQUIRE(g.meta.at("source") == "compressed_tensors");
    INFO(file);
    const quant::Int4Layout l = g.layout();
    const auto packed = g.get<std::int32_t>("weight_packed");
    const auto scale_ng = g.get<std::uint16_t>("weight_scale");
    const auto scale_gn = transpose_scales(scale_ng, l);
    const std::vector<std::int32_t> zp = g.symmetric() ? std::vector<std::int32_t>{} : g.get<std::int32_t>("weight_zero_point");
    REQUIRE(g.has("weight_zero_point") == !g.symmetric());
    const quant::PackQuantizedTensors src{packed.data(), scale_ng.data(), g.symmetric() ? nullptr : zp.data()};

    Imported asym(l, true);  // a symmetric scheme's zeros are written as 8
    REQUIRE(quant::import_pack_quantized(src, l, asym.target()).ok());
    check_import(g, asym, scale_gn);

    Imported sym(l, false);
    const ds::Status st = quant::import_pack_quantized(src, l, sym.target());
    if (g.symmetric()) {
      REQUIRE(st.ok());
      check_import(g, sym, scale_gn);
    } else {
      CHECK(st.code() == ds::StatusCode::invalid_argument);
      CHECK(mentions(st, "src.weight_zero_point"));
      CHECK(sym.untouched());
    }
  }
}

TEST_CASE("act-order GPTQ checkpoints (any other g_idx) are refused", "[host][quant][import]") {
  const Golden g = load("gptq_asym_g64.txt");
  const quant::Int4Layout l = g.layout();
  const auto qweight = g.get<std::int32_t>("qweight");
  const auto qzeros = g.get<std::int32_t>("qzeros_v1");
  const auto scales = g.get<std::uint16_t>("scales");
  const auto natural = g.get<std::int32_t>("g_idx");
  std::vector<std::vector<std::int32_t>> bad;
  auto swapped = natural;  // two inputs of different groups trade places (desc_act permutation)
  std::swap(swapped[3], swapped[200]);
  bad.push_back(swapped);
  bad.emplace_back(natural.size(), 0);  // everything in group 0
  auto shifted = natural;
  shifted.back() = static_cast<std::int32_t>(l.k / l.group);  // out of range
  bad.push_back(shifted);
  auto negative = natural;
  negative[0] = -1;
  bad.push_back(negative);
  for (const auto& g_idx : bad) {
    Imported im(l, true);
    const ds::Status st =
        quant::import_gptq({qweight.data(), qzeros.data(), scales.data(), g_idx.data()}, quant::GptqZeros::v1, l, im.target());
    INFO(st.to_string());
    CHECK(st.code() == ds::StatusCode::invalid_argument);
    CHECK(mentions(st, "g_idx"));
    CHECK(mentions(st, "act-order"));
    CHECK(im.untouched());
  }
}

TEST_CASE("importers validate shapes, pointers and scales, and write nothing on error", "[host][quant][import]") {
  const quant::Int4Layout l{16, 256, 64, quant::Int4ScaleType::fp16};
  const long long groups = l.k / l.group;
  const std::vector<std::int32_t> words(static_cast<std::size_t>(l.n * l.k / 8), 0x76543210);
  const std::vector<std::int32_t> zwords(static_cast<std::size_t>(groups * l.n / 8), static_cast<std::int32_t>(0x88888888u));
  const std::vector<std::uint16_t> scales(static_cast<std::size_t>(groups * l.n), 0x3C00);  // 1.0
  const quant::GptqTensors gptq{words.data(), zwords.data(), scales.data(), nullptr};
  const quant::AwqTensors awq{words.data(), zwords.data(), scales.data()};
  const quant::PackQuantizedTensors ct{words.data(), scales.data(), zwords.data()};

  auto expect = [](const ds::Status& st, const std::string& name) {
    INFO(st.to_string() << " (expected to name " << name << ")");
    CHECK(st.code() == ds::StatusCode::invalid_argument);
    CHECK(st.message().rfind(name + ":", 0) == 0);
  };
  auto all_three = [&](const quant::Int4Layout& layout, quant::Int4Target dst, const std::string& name) {
    expect(quant::import_gptq(gptq, quant::GptqZeros::v2, layout, dst), name);
    expect(quant::import_awq_gemm(awq, layout, dst), name);
    expect(quant::import_pack_quantized(ct, layout, dst), name);
  };
  Imported im(l, true);
  {
    Imported ok(l, true);
    REQUIRE(quant::import_gptq(gptq, quant::GptqZeros::v2, l, ok.target()).ok());
    REQUIRE(quant::import_awq_gemm(awq, l, ok.target()).ok());
    REQUIRE(quant::import_pack_quantized(ct, l, ok.target()).ok());
  }
  // The group must divide k (k % 8 == 0 but k % 64 != 0), and be 32, 64 or 128.
  all_three({16, 96, 64, quant::Int4ScaleType::fp16}, im.target(), "layout.group");
  all_three({16, 256, 16, quant::Int4ScaleType::fp16}, im.target(), "layout.group");
  all_three({16, 256, 0, quant::Int4ScaleType::fp16}, im.target(), "layout.group");
  all_three({12, 256, 64, quant::Int4ScaleType::fp16}, im.target(), "layout.n");
  all_three({0, 256, 64, quant::Int4ScaleType::fp16}, im.target(), "layout.n");
  all_three({16, 260, 64, quant::Int4ScaleType::fp16}, im.target(), "layout.k");
  all_three({16, -256, 64, quant::Int4ScaleType::fp16}, im.target(), "layout.k");
  all_three({16, 256, 64, static_cast<quant::Int4ScaleType>(7)}, im.target(), "layout.scale_type");
  all_three(l, {nullptr, im.scale.data(), im.zero.data()}, "dst.q");
  all_three(l, {im.q.data(), nullptr, im.zero.data()}, "dst.scale");

  expect(quant::import_gptq({nullptr, zwords.data(), scales.data(), nullptr}, quant::GptqZeros::v1, l, im.target()), "src.qweight");
  expect(quant::import_gptq({words.data(), nullptr, scales.data(), nullptr}, quant::GptqZeros::v1, l, im.target()), "src.qzeros");
  expect(quant::import_gptq({words.data(), zwords.data(), nullptr, nullptr}, quant::GptqZeros::v1, l, im.target()), "src.scales");
  expect(quant::import_gptq(gptq, static_cast<quant::GptqZeros>(3), l, im.target()), "zeros");
  expect(quant::import_awq_gemm({nullptr, zwords.data(), scales.data()}, l, im.target()), "src.qweight");
  expect(quant::import_awq_gemm({words.data(), nullptr, scales.data()}, l, im.target()), "src.qzeros");
  expect(quant::import_awq_gemm({words.data(), zwords.data(), nullptr}, l, im.target()), "src.scales");
  expect(quant::import_pack_quantized({nullptr, scales.data(), nullptr}, l, im.target()), "src.weight_packed");
  expect(quant::import_pack_quantized({words.data(), nullptr, nullptr}, l, im.target()), "src.weight_scale");

  // Non-finite scales (fp16 inf; a bf16 NaN read as bf16).
  auto bad_scales = scales;
  bad_scales[5] = 0x7C00;
  expect(quant::import_gptq({words.data(), zwords.data(), bad_scales.data(), nullptr}, quant::GptqZeros::v2, l, im.target()), "src.scales");
  expect(quant::import_awq_gemm({words.data(), zwords.data(), bad_scales.data()}, l, im.target()), "src.scales");
  bad_scales[5] = 0x7FC0;
  quant::Int4Layout lb = l;
  lb.scale_type = quant::Int4ScaleType::bf16;
  expect(quant::import_pack_quantized({words.data(), bad_scales.data(), nullptr}, lb, im.target()), "src.weight_scale");

  // A symmetric import needs every zero to be 8: v2 zeros 8 pass, the same words read as v1 are 9.
  Imported sym(l, false);
  CHECK(quant::import_gptq(gptq, quant::GptqZeros::v2, l, sym.target()).ok());
  expect(quant::import_gptq(gptq, quant::GptqZeros::v1, l, sym.target()), "src.qzeros");
  CHECK(im.untouched());

  // The reference dequantization checks its arguments too.
  std::vector<float> out(static_cast<std::size_t>(l.n * l.k));
  expect(quant::dequantize_int4_ref<float>({nullptr, im.scale.data(), nullptr}, l, out.data()), "src.q");
  expect(quant::dequantize_int4_ref<float>({im.q.data(), nullptr, nullptr}, l, out.data()), "src.scale");
  expect(quant::dequantize_int4_ref<float>({im.q.data(), im.scale.data(), nullptr}, l, nullptr), "out");
  expect(quant::dequantize_int4_ref<float>(im.view(), l, out.data()), "src.zero");  // poison 0xEE
  expect(quant::dequantize_int4_ref<float>(im.view(), {16, 96, 64, quant::Int4ScaleType::fp16}, out.data()), "layout.group");
}

TEST_CASE("random canonical weights survive packing into each format and importing back", "[host][quant][import]") {
  // Packers written from the format descriptions in import.hpp (independent of the importers),
  // for shapes the golden files do not cover (n = 8, 40; k = 128).
  auto rng = ds_test::make_rng(4242);
  std::uniform_int_distribution<int> nibble(0, 15);
  std::uniform_int_distribution<int> scale_bits(0x2000, 0x3BFF);  // positive normal fp16 / bf16
  const struct {
    long long n, k, group;
    quant::Int4ScaleType type;
  } shapes[] = {{8, 128, 32, quant::Int4ScaleType::fp16},
                {40, 256, 128, quant::Int4ScaleType::bf16},
                {24, 128, 64, quant::Int4ScaleType::fp16}};
  for (const auto& s : shapes) {
    const quant::Int4Layout l{s.n, s.k, s.group, s.type};
    const long long n = l.n, k = l.k, groups = k / l.group;
    INFO("n " << n << " k " << k << " group " << l.group);
    std::vector<int> u(static_cast<std::size_t>(n * k)), z(static_cast<std::size_t>(groups * n));
    std::vector<std::uint16_t> scale(z.size());
    for (auto& v : u) v = nibble(rng);
    for (auto& v : z) v = nibble(rng);
    for (auto& v : scale) v = static_cast<std::uint16_t>(scale_bits(rng));
    auto U = [&](long long r, long long c) { return static_cast<std::uint32_t>(u[static_cast<std::size_t>(r * k + c)]); };
    auto Z = [&](long long g, long long r) { return static_cast<std::uint32_t>(z[static_cast<std::size_t>(g * n + r)]); };
    std::vector<std::int32_t> gq(static_cast<std::size_t>(k / 8 * n)), gz1(static_cast<std::size_t>(groups * n / 8)), gz2(gz1.size());
    std::vector<std::int32_t> aq(static_cast<std::size_t>(k * n / 8)), az(gz1.size()), cq(gq.size()), cz(gz1.size());
    std::vector<std::uint16_t> cs(scale.size());
    constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    for (long long r8 = 0; r8 < k / 8; ++r8)
      for (long long c = 0; c < n; ++c) {
        std::uint32_t w = 0;
        for (int i = 0; i < 8; ++i) w |= U(c, 8 * r8 + i) << (4 * i);
        gq[static_cast<std::size_t>(r8 * n + c)] = static_cast<std::int32_t>(w);        // GPTQ [k/8][n]
        cq[static_cast<std::size_t>(c * (k / 8) + r8)] = static_cast<std::int32_t>(w);  // CT [n][k/8]
      }
    for (long long r = 0; r < k; ++r)
      for (long long j = 0; j < n / 8; ++j) {
        std::uint32_t w = 0;
        for (int i = 0; i < 8; ++i) w |= U(8 * j + kOrder[i], r) << (4 * i);
        aq[static_cast<std::size_t>(r * (n / 8) + j)] = static_cast<std::int32_t>(w);
      }
    for (long long g = 0; g < groups; ++g)
      for (long long j = 0; j < n / 8; ++j) {
        std::uint32_t w = 0, wa = 0;
        for (int i = 0; i < 8; ++i) {
          w |= Z(g, 8 * j + i) << (4 * i);
          wa |= Z(g, 8 * j + kOrder[i]) << (4 * i);
        }
        gz2[static_cast<std::size_t>(g * (n / 8) + j)] = static_cast<std::int32_t>(w);
        gz1[static_cast<std::size_t>(g * (n / 8) + j)] = static_cast<std::int32_t>(w - 0x11111111u);
        az[static_cast<std::size_t>(g * (n / 8) + j)] = static_cast<std::int32_t>(wa);
        cz[static_cast<std::size_t>(j * groups + g)] = static_cast<std::int32_t>(w);  // CT [n/8][k/G]
      }
    for (long long g = 0; g < groups; ++g)
      for (long long c = 0; c < n; ++c) cs[static_cast<std::size_t>(c * groups + g)] = scale[static_cast<std::size_t>(g * n + c)];

    Imported a(l, true), b(l, true), c(l, true), d(l, true);
    REQUIRE(quant::import_gptq({gq.data(), gz1.data(), scale.data(), nullptr}, quant::GptqZeros::v1, l, a.target()).ok());
    REQUIRE(quant::import_gptq({gq.data(), gz2.data(), scale.data(), nullptr}, quant::GptqZeros::v2, l, b.target()).ok());
    REQUIRE(quant::import_awq_gemm({aq.data(), az.data(), scale.data()}, l, c.target()).ok());
    REQUIRE(quant::import_pack_quantized({cq.data(), cs.data(), cz.data()}, l, d.target()).ok());
    for (const Imported* im : {&a, &b, &c, &d}) {
      bool codes_ok = true, zeros_ok = im->zero == std::vector<std::uint8_t>(z.begin(), z.end());
      for (long long r = 0; r < n; ++r)
        for (long long col = 0; col < k; ++col) codes_ok = codes_ok && im->code(l, r, col) == U(r, col);
      CHECK(codes_ok);
      CHECK(zeros_ok);
      CHECK(im->scale == scale);
    }
    // The float reference is the exact product (u - z) * s.
    std::vector<float> exact(static_cast<std::size_t>(n * k));
    REQUIRE(quant::dequantize_int4_ref(a.view(), l, exact.data()).ok());
    long long bad = 0;
    for (long long r = 0; r < n; ++r)
      for (long long col = 0; col < k; ++col) {
        const std::uint16_t sb = scale[static_cast<std::size_t>((col / l.group) * n + r)];
        const double sv = s.type == quant::Int4ScaleType::fp16 ? ds::fp16::from_bits(sb).to_float() : ds::bf16::from_bits(sb).to_float();
        bad += static_cast<double>(exact[static_cast<std::size_t>(r * k + col)]) != (double(U(r, col)) - double(Z(col / l.group, r))) * sv;
      }
    CHECK(bad == 0);
  }
}
