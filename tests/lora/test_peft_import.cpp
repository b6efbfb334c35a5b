// PEFT LoRA import (lora/peft_import.hpp, lora/safetensors.hpp) against golden files written by PEFT
// itself (tools/peft_lora_golden.py: peft 0.21.2, torch 2.15.0): the imported HostAdapter, run
// through a plain double loop here and through the library's layer (double reference and host
// executor), must reproduce the output of the PEFT-wrapped torch MoE block;
// then rejection of malformed adapters and configs, each error naming the tensor or field.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "deepshock/lora/peft_import.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/moe/reference_layer.hpp"
#include "peft_golden.hpp"

namespace ds = deepshock;
namespace lora = deepshock::lora;
using json = nlohmann::ordered_json;

namespace {

constexpr int E = 4, H = 32, I = 16, Is = 24, kTokens = 5, K = 2;

struct Case {
  lora::PeftConfig config;
  std::vector<unsigned char> adapter_bytes, io_bytes;
  lora::SafeTensors adapter, io;
};

void load_case(const std::string& name, Case& c) {
  const auto cs = lora::PeftConfig::parse(peft_golden::text(name + "/adapter_config.json"), c.config);
  INFO(cs.to_string());
  REQUIRE(cs.ok());
  c.adapter_bytes = peft_golden::bytes(name + "/adapter_model.safetensors");
  c.io_bytes = peft_golden::bytes(name + "/io.safetensors");
  const auto a = lora::SafeTensors::parse(c.adapter_bytes.data(), c.adapter_bytes.size(), c.adapter);
  INFO(a.to_string());
  REQUIRE(a.ok());
  const auto b = lora::SafeTensors::parse(c.io_bytes.data(), c.io_bytes.size(), c.io);
  INFO(b.to_string());
  REQUIRE(b.ok());
}

std::vector<double> f64(const lora::SafeTensors& st, const std::string& name) {
  const lora::TensorInfo* t = st.find(name);
  INFO(name);
  REQUIRE(t != nullptr);
  std::vector<double> v;
  REQUIRE(st.read_f64(*t, v).ok());
  return v;
}

lora::PeftExpertNames moe_names() {
  lora::PeftExpertNames n;
  n.block = "moe.";
  return n;
}

template <class T>
ds::Status import(const Case& c, lora::HostAdapter<T>& out, const lora::SafeTensors* file = nullptr,
                  const lora::PeftConfig* config = nullptr) {
  return lora::import_peft_experts(config ? *config : c.config, file ? *file : c.adapter, moe_names(), E, H, I, Is, out);
}

double to_d(float v) { return v; }
double to_d(ds::bf16 v) { return v.to_float(); }

/// out[o] = W x (W [out, in] row-major) + s * B (A x) of expert e of matrix m (when adapted).
template <class T>
std::vector<double> linear(const std::vector<double>& W, std::size_t w_off, int in, int out, const std::vector<double>& x,
                           const lora::HostAdapter<T>& ad, int m, int e) {
  std::vector<double> y(out, 0.0);
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) y[o] += W[w_off + static_cast<std::size_t>(o) * in + i] * x[i];
  if (!ad.adapts(m)) return y;
  const int R = ad.rank;
  const auto& A = ad.a_of(m);
  const auto& B = ad.b[m];
  std::vector<double> ax(R, 0.0);
  for (int k = 0; k < R; ++k)
    for (int i = 0; i < in; ++i) ax[k] += to_d(A[(static_cast<std::size_t>(e) * R + k) * in + i]) * x[i];
  for (int o = 0; o < out; ++o) {
    double d = 0;
    for (int k = 0; k < R; ++k) d += to_d(B[(static_cast<std::size_t>(e) * out + o) * R + k]) * ax[k];
    y[o] += static_cast<double>(ad.scaling) * d;
  }
  return y;
}

/// The MoE block's output from the base weights in io.safetensors and the imported adapter.
template <class T>
std::vector<double> block_output(const Case& c, const lora::HostAdapter<T>& ad) {
  const auto x = f64(c.io, "x"), w = f64(c.io, "topk_w");
  const auto w1 = f64(c.io, "w1"), w3 = f64(c.io, "w3"), w2 = f64(c.io, "w2");
  const auto s1 = f64(c.io, "shared_w1"), s3 = f64(c.io, "shared_w3"), s2 = f64(c.io, "shared_w2");
  std::vector<std::int64_t> ids;
  REQUIRE(c.io.read_i64(*c.io.find("topk_ids"), ids).ok());
  auto expert = [&](const std::vector<double>& xt, const std::vector<double>& W1, const std::vector<double>& W3,
                    const std::vector<double>& W2, int inter, int m0, int e) {
    const auto g = linear(W1, static_cast<std::size_t>(e) * inter * H, H, inter, xt, ad, m0, e);
    const auto u = linear(W3, static_cast<std::size_t>(e) * inter * H, H, inter, xt, ad, m0 + 1, e);
    std::vector<double> h(inter);
    for (int i = 0; i < inter; ++i) h[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    return linear(W2, static_cast<std::size_t>(e) * H * inter, inter, H, h, ad, m0 + 2, e);
  };
  std::vector<double> y(static_cast<std::size_t>(kTokens) * H, 0.0);
  for (int t = 0; t < kTokens; ++t) {
    const std::vector<double> xt(x.begin() + t * H, x.begin() + (t + 1) * H);
    const auto sh = expert(xt, s1, s3, s2, Is, 3, 0);
    for (int o = 0; o < H; ++o) y[t * H + o] += sh[o];
    for (int j = 0; j < K; ++j) {
      const auto ye = expert(xt, w1, w3, w2, I, 0, static_cast<int>(ids[t * K + j]));
      for (int o = 0; o < H; ++o) y[t * H + o] += w[t * K + j] * ye[o];
    }
  }
  return y;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

/// The output of the golden adapter must match PEFT's within `rel` of max |y|, and differ clearly
/// from the block without adapter.
template <class T>
void check_against_peft(const Case& c, const lora::HostAdapter<T>& ad, double rel) {
  const auto y = block_output(c, ad);
  const auto y_peft = f64(c.io, "y"), y_base = f64(c.io, "y_base");
  const double scale = max_abs(y_peft);
  CHECK(max_diff(y, y_peft) <= rel * scale);
  CHECK(max_diff(y_peft, y_base) > 0.1 * scale);
}

/// The imported adapter through the library's layer: the double reference and the host executor
/// (moe/reference_layer.hpp, moe/host_layer.hpp; the device layer is checked against the same
/// reference in lora_sim_tests) on the golden base weights, every token on the adapter, must
/// reproduce PEFT's output. `tol`: the host executor's, relative to max |y| (fp32 sums).
void check_layer_against_peft(const Case& c, const lora::HostAdapter<float>& ad, double tol) {
  using X = ds::moe::Expert<ds::quant::None, lora::LoRA<8>>;
  auto floats = [&](const char* name) {
    const auto d = f64(c.io, name);
    return std::vector<float>(d.begin(), d.end());  // the golden base weights are float32: exact
  };
  const auto x = floats("x"), w1 = floats("w1"), w3 = floats("w3"), w2 = floats("w2");
  const auto s1 = floats("shared_w1"), s3 = floats("shared_w3"), s2 = floats("shared_w2"), wts = floats("topk_w");
  std::vector<std::int64_t> ids64;
  REQUIRE(c.io.read_i64(*c.io.find("topk_ids"), ids64).ok());
  const std::vector<int> ids(ids64.begin(), ids64.end());
  const lora::AdapterRef<float> ref = ad.ref();
  const ds::moe::LayerDims dims{H, I, Is, kTokens};
  ds::moe::LayerWeights<float, X> w;
  w.w1 = w1.data();
  w.w3 = w3.data();
  w.w2 = w2.data();
  w.shared_w1 = s1.data();
  w.shared_w3 = s3.data();
  w.shared_w2 = s2.data();
  w.adapter = {&ref, 1};
  const std::vector<int> on_adapter(kTokens, 0);
  ds::moe::LayerInputs<float> in{x.data(), kTokens};
  in.adapter_ids = on_adapter.data();
  const auto y_peft = f64(c.io, "y");
  const double scale = max_abs(y_peft);
  CHECK(max_diff(ds::moe::reference::layer_from_routing(dims, E, K, w, in, ids.data(), wts.data()), y_peft) <= 1e-5 * scale);
  std::vector<float> y(static_cast<std::size_t>(kTokens) * H, NAN);
  ds::moe::LayerOutputs<float> out;
  out.y = y.data();
  const auto st = ds::moe::host::run_layer_routed(dims, E, K, w, in, ids.data(), wts.data(), out);
  INFO(st.to_string());
  REQUIRE(st.ok());
  CHECK(max_diff(std::vector<double>(y.begin(), y.end()), y_peft) <= tol * scale);
}

bool mentions(const ds::Status& st, const std::string& what) {
  INFO(st.to_string() << "  (expected to mention '" << what << "')");
  return !st.ok() && st.message().find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("peft import: per-expert Linear adapter with rank and alpha patterns matches PEFT", "[lora][peft]") {
  Case c;
  load_case("linear", c);
  CHECK(c.config.r == 4);
  CHECK(c.config.lora_alpha == 8.0);
  CHECK_FALSE(c.config.use_rslora);
  REQUIRE(c.config.rank_pattern.size() == 2);
  CHECK(c.config.rank_pattern[0].first == "shared_expert.down_proj");  // file order kept
  int r = 0;
  REQUIRE(c.config.rank_for("moe.experts.3.w2", r).ok());
  CHECK(r == 2);
  REQUIRE(c.config.rank_for("moe.shared_expert.down_proj", r).ok());
  CHECK(r == 8);
  REQUIRE(c.config.rank_for("moe.experts.3.w1", r).ok());
  CHECK(r == 4);

  lora::HostAdapter<float> ad;
  const auto st = import(c, ad);
  INFO(st.to_string());
  REQUIRE(st.ok());
  CHECK(ad.rank == 8);                                // the largest rank (shared down_proj), the others padded
  CHECK(ad.scaling == lora::scaling(8.0, 4, false));  // the config's own alpha / r
  for (int m = 0; m < lora::kMatrices; ++m) {
    long long in = 0, out = 0;
    lora::matrix_shape(static_cast<ds::quant::Matrix>(m), H, I, Is, in, out);
    const std::size_t experts = m < 3 ? E : 1;
    CHECK(ad.adapts(m));
    CHECK(ad.a_alias[m] == -1);
    CHECK(ad.a[m].size() == experts * 8 * in);
    CHECK(ad.b[m].size() == experts * out * 8);
  }
  // w2 has rank 2: A rows 2..7 and B columns 2..7 are the zero padding.
  bool padded = true;
  for (int e = 0; e < E; ++e)
    for (int k = 2; k < 8; ++k) {
      for (int i = 0; i < I; ++i) padded = padded && ad.a[2][(e * 8 + k) * I + i] == 0.0f;
      for (int o = 0; o < H; ++o) padded = padded && ad.b[2][(e * H + o) * 8 + k] == 0.0f;
    }
  CHECK(padded);
  check_against_peft(c, ad, 1e-5);
  check_layer_against_peft(c, ad, 1e-5);

  // The same adapter in bf16 (one rounding of A and B): PEFT's output within bf16's precision.
  lora::HostAdapter<ds::bf16> adb;
  REQUIRE(import(c, adb).ok());
  check_against_peft(c, adb, 2e-2);
}

TEST_CASE("peft import: fused gate_up / down parameters (target_parameters, rsLoRA) match PEFT", "[lora][peft]") {
  Case c;
  load_case("fused", c);
  CHECK(c.config.use_rslora);
  REQUIRE(c.config.target_parameters.size() == 2);
  lora::HostAdapter<float> ad;
  const auto st = import(c, ad);
  INFO(st.to_string());
  REQUIRE(st.ok());
  CHECK(ad.rank == 4);
  CHECK(ad.scaling == lora::scaling(8.0, 4, true));
  CHECK(ad.a_alias[1] == 0);  // up shares gate's A
  CHECK(ad.a[1].empty());
  CHECK(ad.a_of(1).data() == ad.a[0].data());
  CHECK(ad.ref().a[0] == ad.ref().a[1]);
  CHECK(ad.a[0].size() == static_cast<std::size_t>(E) * 4 * H);
  CHECK(ad.b[1].size() == static_cast<std::size_t>(E) * I * 4);
  CHECK(ad.a[2].size() == static_cast<std::size_t>(E) * 4 * I);
  for (int m = 3; m < 6; ++m) CHECK(ad.adapts(m));
  check_against_peft(c, ad, 1e-5);
  check_layer_against_peft(c, ad, 1e-5);

  // Only down_proj targeted: the down wrapper is then the only one, at experts.lora_*; the
  // base_layer tensors become unexpected.
  lora::PeftConfig only_down = c.config;
  only_down.target_parameters = {"experts.down_proj"};
  CHECK(mentions(import(c, ad, nullptr, &only_down), "experts.base_layer.lora_A.weight"));
}

TEST_CASE("peft import: malformed adapters are rejected naming the tensor", "[lora][peft]") {
  Case c;
  load_case("linear", c);
  const std::string stem = "base_model.model.moe.experts.1.w1.";
  lora::HostAdapter<float> ad;
  auto try_file = [&](const std::function<void(json&)>& edit) {
    const auto b = peft_golden::rewrite(c.adapter_bytes, edit);
    lora::SafeTensors st;
    const auto ps = lora::SafeTensors::parse(b.data(), b.size(), st);
    if (!ps.ok()) return ps;
    const auto is = import(c, ad, &st);
    if (!is.ok()) CHECK(ad.rank == 0);  // nothing half-imported
    return is;
  };
  SECTION("wrong shape (same byte size)") {
    const auto st = try_file([&](json& h) { h[stem + "lora_A.weight"]["shape"] = {8, 16}; });
    CHECK(mentions(st, stem + "lora_A.weight'.shape"));
  }
  SECTION("B's columns differ from A's rows") {
    const auto st = try_file([&](json& h) { h[stem + "lora_B.weight"]["shape"] = {8, 8}; });
    CHECK(mentions(st, stem + "lora_B.weight'.shape"));
  }
  SECTION("wrong dtype") {
    const auto st = try_file([&](json& h) { h[stem + "lora_B.weight"]["dtype"] = "I32"; });
    CHECK(mentions(st, stem + "lora_B.weight'.dtype"));
  }
  SECTION("missing lora_B") {
    const auto st = try_file([&](json& h) { h.erase(stem + "lora_B.weight"); });
    CHECK(mentions(st, stem + "lora_B.weight"));
    CHECK(mentions(st, "missing"));
  }
  SECTION("one expert without the matrix") {
    const auto st = try_file([&](json& h) {
      h.erase(stem + "lora_A.weight");
      h.erase(stem + "lora_B.weight");
    });
    CHECK(mentions(st, stem + "lora_A.weight"));
  }
  SECTION("an expert the layer does not have") {
    const auto st = try_file([&](json& h) {
      h["base_model.model.moe.experts.4.w1.lora_A.weight"] = h[stem + "lora_A.weight"];
      h.erase(stem + "lora_A.weight");
    });
    CHECK(mentions(st, "experts.4.w1.lora_A.weight"));
  }
  SECTION("a router adapter") {
    const auto st = try_file([&](json& h) {
      h["base_model.model.moe.gate.lora_A.weight"] = h[stem + "lora_A.weight"];
      h.erase(stem + "lora_A.weight");
    });
    CHECK(mentions(st, "moe.gate.lora_A.weight"));
  }
  SECTION("tensors of other layers are ignored") {
    const auto st = try_file([&](json& h) {
      h["base_model.model.other.w1.lora_A.weight"] = h[stem + "lora_A.weight"];
      h.erase(stem + "lora_A.weight");
    });
    CHECK(mentions(st, stem + "lora_A.weight"));  // missing now, but the other layer's tensor is no error
  }
  SECTION("rank differs from the config") {
    lora::PeftConfig no_pattern = c.config;
    no_pattern.rank_pattern.clear();
    const auto st = import(c, ad, nullptr, &no_pattern);
    CHECK(mentions(st, "experts.0.w2.lora_A.weight'.shape"));
    CHECK(mentions(st, "rank 2"));
  }
  SECTION("no tensor under the block") {
    lora::PeftExpertNames n = moe_names();
    n.block = "layers.7.mlp.";
    CHECK(mentions(lora::import_peft_experts(c.config, c.adapter, n, E, H, I, Is, ad), "no LoRA tensor"));
  }
  SECTION("layer sizes that do not match") {
    CHECK(mentions(lora::import_peft_experts(c.config, c.adapter, moe_names(), E, H, I + 8, Is, ad), "lora_B.weight'.shape"));
  }
  SECTION("DoRA is refused") {
    lora::PeftConfig dora = c.config;
    dora.use_dora = true;
    CHECK(mentions(import(c, ad, nullptr, &dora), "use_dora"));
  }
}

TEST_CASE("peft config: malformed JSON and wrong field types are rejected naming the field", "[lora][peft]") {
  const std::string good = peft_golden::text("linear/adapter_config.json");
  lora::PeftConfig cfg;
  REQUIRE(lora::PeftConfig::parse(good, cfg).ok());
  CHECK(mentions(lora::PeftConfig::parse("{\"r\": 4,", cfg), "not valid JSON"));
  CHECK(mentions(lora::PeftConfig::parse("[1, 2]", cfg), "not a JSON object"));
  CHECK(mentions(lora::PeftConfig::parse("", cfg), "not valid JSON"));
  auto with = [&](const char* field, const json& value) {
    json j = json::parse(good);
    j[field] = value;
    return lora::PeftConfig::parse(j.dump(), cfg);
  };
  CHECK(mentions(with("r", "4"), "r: must be an integer"));
  CHECK(mentions(with("r", 0), "r: must be at least 1"));
  CHECK(mentions(with("r", 4.5), "r: must be an integer"));
  CHECK(mentions(with("lora_alpha", "8"), "lora_alpha"));
  CHECK(mentions(with("use_rslora", 1), "use_rslora"));
  CHECK(mentions(with("target_modules", 5), "target_modules"));
  CHECK(mentions(with("target_modules", json::array({"w1", 2})), "target_modules"));
  CHECK(mentions(with("target_parameters", "experts.down_proj"), "target_parameters"));
  CHECK(mentions(with("rank_pattern", json{{"w2", "2"}}), "rank_pattern.w2"));
  CHECK(mentions(with("rank_pattern", json{{"w2", -2}}), "rank_pattern.w2"));
  CHECK(mentions(with("alpha_pattern", json::array()), "alpha_pattern"));
  CHECK(mentions(with("peft_type", "IA3"), "peft_type"));
  REQUIRE(with("target_modules", ".*experts.*").ok());
  CHECK(cfg.target_modules_is_regex);
  REQUIRE(with("rank_pattern", nullptr).ok());
  CHECK(cfg.rank_pattern.empty());

  // Pattern keys are dotted module-name suffixes (PEFT's regex on a key without regex syntax);
  // keys with regex syntax are refused when used, naming the key.
  REQUIRE(with("rank_pattern", json{{"experts.1.w1", 2}, {"w1", 3}}).ok());
  int r = 0;
  REQUIRE(cfg.rank_for("moe.experts.1.w1", r).ok());
  CHECK(r == 2);
  REQUIRE(cfg.rank_for("moe.experts.3.w1", r).ok());
  CHECK(r == 3);
  REQUIRE(cfg.rank_for("moe.experts.3.w11", r).ok());
  CHECK(r == 4);
  REQUIRE(cfg.rank_for("moe.experts.11.w1", r).ok());  // "experts.1.w1" is no suffix of it at a dot
  CHECK(r == 3);
  REQUIRE(with("rank_pattern", json{{"experts\\.[0-2]\\.w1", 2}}).ok());  // parsed; refused when used
  CHECK(mentions(cfg.rank_for("moe.experts.1.w1", r), "experts\\.[0-2]\\.w1"));
  CHECK(cfg.rank_for("moe.experts.1.w1", r).code() == ds::StatusCode::unsupported);
}

TEST_CASE("safetensors: reader errors name the tensor and field", "[lora][safetensors]") {
  const auto good = peft_golden::bytes("linear/adapter_model.safetensors");
  lora::SafeTensors st;
  REQUIRE(lora::SafeTensors::parse(good.data(), good.size(), st).ok());
  CHECK(st.metadata().at("format") == "pt");
  const std::string name = "base_model.model.moe.experts.0.w1.lora_A.weight";
  const lora::TensorInfo* t = st.find(name);
  REQUIRE(t != nullptr);
  CHECK(t->shape == std::vector<std::uint64_t>{4, 32});
  std::vector<float> v;
  REQUIRE(st.read_f32(*t, v).ok());
  CHECK(v.size() == 128);
  std::vector<std::int64_t> iv;
  CHECK(mentions(st.read_i64(*t, iv), name + "'.dtype"));

  auto parse = [&](const std::vector<unsigned char>& b) { return lora::SafeTensors::parse(b.data(), b.size(), st); };
  auto edited = [&](const std::function<void(json&)>& f) { return parse(peft_golden::rewrite(good, f)); };
  CHECK(mentions(edited([&](json& h) { h[name]["data_offsets"][1] = 1u << 30; }), name + "'.data_offsets"));
  CHECK(mentions(edited([&](json& h) { h[name]["data_offsets"] = {0, 0}; }), name + "'.data_offsets"));
  CHECK(mentions(edited([&](json& h) { h[name]["data_offsets"] = {16, 8}; }), "begin is after end"));
  CHECK(mentions(edited([&](json& h) { h[name]["data_offsets"] = {std::uint64_t(-1) - 3, std::uint64_t(-1)}; }), name + "'.data_offsets"));
  CHECK(mentions(edited([&](json& h) { h[name]["shape"] = {std::uint64_t(1) << 32, std::uint64_t(1) << 32, 16}; }), name + "'.shape"));
  CHECK(mentions(edited([&](json& h) { h[name]["shape"] = {4, -32}; }), name + "'.shape"));
  CHECK(mentions(edited([&](json& h) { h[name]["dtype"] = "F128"; }), name + "'.dtype"));
  CHECK(mentions(edited([&](json& h) { h[name]["extra"] = 1; }), name + "'.extra"));
  CHECK(mentions(edited([&](json& h) { h["__metadata__"]["format"] = 3; }), "__metadata__.format"));
  // Two tensors over the same bytes: the later-named is reported against the other.
  const std::string other = "base_model.model.moe.experts.0.w1.lora_B.weight";
  CHECK(mentions(edited([&](json& h) {
                   h[other]["data_offsets"][0] = h[name]["data_offsets"][0].get<std::uint64_t>() + 4;
                   h[other]["data_offsets"][1] = h[other]["data_offsets"][0].get<std::uint64_t>() + 256;
                 }),
                 "overlaps"));

  // Header length: past the end, huge, or a file shorter than the length field.
  auto with_length = [&](std::uint64_t n) {
    auto b = good;
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(n >> (8 * i));
    return parse(b);
  };
  CHECK(mentions(with_length(good.size()), "header length"));
  CHECK(mentions(with_length(~std::uint64_t(0)), "header length"));
  CHECK(mentions(with_length(200000000), "over the limit"));
  CHECK(mentions(parse({1, 2, 3}), "shorter"));
  // Invalid UTF-8 in a name, and a header that is not JSON.
  const std::string bad_name = "{\"a\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
  const unsigned char four[4] = {};
  CHECK(mentions(parse(peft_golden::assemble(bad_name, four, 4)), "UTF-8"));
  CHECK(mentions(parse(peft_golden::assemble("not json", four, 4)), "not valid JSON"));
  CHECK(mentions(parse(peft_golden::assemble("[]", four, 4)), "not a JSON object"));
  // A scalar and an empty tensor are fine.
  REQUIRE(parse(peft_golden::assemble("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                                      "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,7],\"data_offsets\":[4,4]}}",
                                      four, 4))
              .ok());
  CHECK(st.find("s")->elements == 1);
  CHECK(st.find("z")->elements == 0);
}
