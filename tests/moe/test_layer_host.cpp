// MoE layer on the host (moe/host_layer.hpp): the CPU executor (host::run_layer_routed,
// host::run_layer) against the double-precision reference (reference::layer_from_routing), with
// fresh random inputs each run. Every run poisons y with NaN first (padding columns of a strided
// y with a sentinel that must survive), uses odd sizes (H 136, I 200, shared 72), -1 ids with
// non-zero weights, a 90% hot expert, and all four activations in fp32, bf16 and fp16.
// Tolerances are scaled by the largest |y| of the case (outputs are ~0.05 with these weights).
// Also, bit for bit: y against a scalar model of the executor's documented fp32 order, and its
// weight conversion for every bf16 and fp16 encoding.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "deepshock/gate/reference.hpp"
#include "deepshock/gate/reference_stats.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/moe/reference_layer.hpp"
#include "host_problem.hpp"
#include "test_support.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {
using namespace ds_host_test;

template <class T, class Act>
void check_routed_case(const Model<T>& m, const Case& c, std::mt19937_64& rng) {
  using X = moe::Expert<ds::quant::None, ds::lora::None, Act>;
  INFO(Act::kName << " E " << c.E << " T " << c.tokens << " k " << c.k << " shared " << static_cast<int>(c.shared) << " strided "
                  << c.strided << " minus1 " << c.minus1 << " hot " << c.hot);
  const int xs = c.strided ? kH + 8 : kH, ys = c.strided ? kH + 24 : kH;
  const moe::LayerDims d = m.dims(c.shared, c.tokens + 3);
  const auto w = m.template weights<X>(c.shared);
  const std::vector<T> x = random_x<T>(c.tokens, xs, rng);
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(c, rng, ids, wts);
  std::vector<T> y = poisoned_y<T>(c.tokens, ys);
  std::vector<int> counts(static_cast<std::size_t>(c.E), -7);
  int dropped = -7;
  const moe::LayerInputs<T> in{x.data(), c.tokens, c.strided ? xs : 0, nullptr};
  moe::LayerOutputs<T> out;
  out.y = y.data();
  out.y_stride = c.strided ? ys : 0;
  out.expert_counts = counts.data();
  out.dropped_count = &dropped;
  DS_REQUIRE_OK(moe::host::run_layer_routed(d, c.E, c.k, w, in, ids.data(), wts.data(), out));
  check_y(y, c.tokens, ys, moe::reference::layer_from_routing(d, c.E, c.k, w, in, ids.data(), wts.data()));
  std::vector<int> expect(static_cast<std::size_t>(c.E), 0);
  for (int id : ids)
    if (id >= 0) ++expect[static_cast<std::size_t>(id)];
  CHECK(counts == expect);
  CHECK(dropped == -7);  // not used with given routing
}

const std::vector<Case> kCases = {
    {8, 0, 2, Shared::plain, false, false, false},    {8, 1, 1, Shared::none, false, false, false},
    {8, 7, 2, Shared::sigmoid, true, true, false},    {8, 7, 6, Shared::plain, false, true, false},
    {8, 33, 2, Shared::plain, false, false, true},    {60, 1, 6, Shared::sigmoid, false, false, false},
    {60, 7, 6, Shared::none, false, true, false},     {60, 33, 6, Shared::plain, true, true, false},
    {60, 33, 2, Shared::sigmoid, false, false, true},
};

}  // namespace

TEMPLATE_TEST_CASE("host layer with given routing matches the double reference", "[host][moe]", float, ds::bf16, ds::fp16) {
  using T = TestType;
  auto rng = ds_test::make_rng(0x1A7E5 + sizeof(T) * 131 + std::is_same_v<T, ds::bf16>);
  for (int E : {8, 60}) {
    const Model<T> m(Master(E, rng));
    const auto each_act = [&]<class Act>() {
      for (const Case& c : kCases)
        if (c.E == E) check_routed_case<T, Act>(m, c, rng);
    };
    each_act.template operator()<ds::act::SwiGLU>();
    each_act.template operator()<ds::act::GeGLU>();
    each_act.template operator()<ds::act::ClampedSwiGLU>();
    each_act.template operator()<ds::act::SiLU>();
    each_act.template operator()<ds::act::GELU>();
  }
}

namespace {
/// The executor's documented dot product: element c into lane c % 16 (c ascending), then the
/// lanes summed pairwise (s = 8, 4, 2, 1: lane l += lane l + s).
float lane_dot(const float* a, const float* b, int n) {
  float lane[16] = {};
  for (int c = 0; c < n; ++c) lane[c % 16] += a[c] * b[c];
  for (int s = 8; s > 0; s /= 2)
    for (int l = 0; l < s; ++l) lane[l] += lane[l + s];
  return lane[0];
}

/// One expert with the executor's documented numerics: h = T(act(W1 x, W3 x)), o = W2 h in fp32.
template <class T, class Act>
std::vector<float> documented_mlp(const float* w1, const float* w3, const float* w2, int I, const float* x) {
  std::vector<float> h(static_cast<std::size_t>(I)), o(kH);
  for (int i = 0; i < I; ++i) {
    const float g = lane_dot(w1 + static_cast<std::size_t>(i) * kH, x, kH);
    const float u = Act::kGated ? lane_dot(w3 + static_cast<std::size_t>(i) * kH, x, kH) : 0.0f;
    h[static_cast<std::size_t>(i)] = to_f<T>(to_t<T>(Act::apply(g, u)));
  }
  for (int n = 0; n < kH; ++n) o[static_cast<std::size_t>(n)] = lane_dot(w2 + static_cast<std::size_t>(n) * I, h.data(), I);
  return o;
}

/// Bit for bit, y equals the header's description of the executor: the dot order above, h
/// rounded to T, y = T(sum_j (slot order) w o_j + g s) in fp32. This pins the order whatever
/// the vector width, the pairing of tokens in the kernel or the other tokens of the batch.
template <class T, class Act>
void check_documented_order(const Model<T>& m, const Case& c, std::mt19937_64& rng) {
  using X = moe::Expert<ds::quant::None, ds::lora::None, Act>;
  INFO(Act::kName << " E " << c.E << " T " << c.tokens << " k " << c.k << " shared " << static_cast<int>(c.shared) << " strided "
                  << c.strided << " hot " << c.hot);
  const int xs = c.strided ? kH + 8 : kH, ys = c.strided ? kH + 24 : kH;
  const moe::LayerDims d = m.dims(c.shared, c.tokens);
  const auto w = m.template weights<X>(c.shared);
  const std::vector<T> x = random_x<T>(c.tokens, xs, rng);
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(c, rng, ids, wts);
  std::vector<T> y = poisoned_y<T>(c.tokens, ys);
  moe::LayerOutputs<T> out;
  out.y = y.data();
  out.y_stride = c.strided ? ys : 0;
  DS_REQUIRE_OK(moe::host::run_layer_routed(d, c.E, c.k, w, moe::LayerInputs<T>{x.data(), c.tokens, c.strided ? xs : 0, nullptr},
                                            ids.data(), wts.data(), out));

  const auto f = [](const std::vector<T>& v) {
    std::vector<float> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) r[i] = to_f<T>(v[i]);
    return r;
  };
  const std::vector<float> w1 = f(m.w1), w3 = f(m.w3), w2 = f(m.w2), sw1 = f(m.sw1), sw3 = f(m.sw3), sw2 = f(m.sw2), sg = f(m.sgate);
  const std::size_t per = static_cast<std::size_t>(kI) * kH;
  int mismatches = 0;
  for (int t = 0; t < c.tokens; ++t) {
    std::vector<float> xr(kH), acc(kH, 0.0f);
    for (int i = 0; i < kH; ++i) xr[static_cast<std::size_t>(i)] = to_f<T>(x[static_cast<std::size_t>(t) * xs + i]);
    for (int j = 0; j < c.k; ++j) {
      const std::size_t a = static_cast<std::size_t>(t) * c.k + j;
      if (ids[a] < 0) continue;
      const std::size_t off = static_cast<std::size_t>(ids[a]) * per;
      const std::vector<float> o = documented_mlp<T, Act>(w1.data() + off, w3.data() + off, w2.data() + off, kI, xr.data());
      for (int n = 0; n < kH; ++n) acc[static_cast<std::size_t>(n)] += wts[a] * o[static_cast<std::size_t>(n)];
    }
    if (c.shared != Shared::none) {
      const float g = c.shared == Shared::sigmoid ? gate::sigmoid(lane_dot(sg.data(), xr.data(), kH)) : 1.0f;
      const std::vector<float> s = documented_mlp<T, Act>(sw1.data(), sw3.data(), sw2.data(), kIs, xr.data());
      for (int n = 0; n < kH; ++n) acc[static_cast<std::size_t>(n)] += g * s[static_cast<std::size_t>(n)];
    }
    for (int n = 0; n < kH; ++n)
      mismatches += bits_of(y[static_cast<std::size_t>(t) * ys + n]) != bits_of(to_t<T>(acc[static_cast<std::size_t>(n)]));
  }
  CHECK(mismatches == 0);
}
}  // namespace

TEST_CASE("ClampedSwiGLU (gpt-oss): fp32 and double forms agree; the clamps act at 7", "[host][moe]") {
  using A = ds::act::ClampedSwiGLU;
  for (double g = -12.0; g <= 12.0; g += 0.125)
    for (double u = -12.0; u <= 12.0; u += 0.375) {
      const double ref = A::apply_ref(g, u);
      INFO("g " << g << " u " << u);
      CHECK(std::fabs(double(A::apply(float(g), float(u))) - ref) <= 1e-6 * (std::fabs(ref) + 1.0));
    }
  // The gate is clamped from above only, the up projection from both sides, then shifted by 1.
  CHECK(A::apply_ref(9.0, 0.5) == A::apply_ref(7.0, 0.5));
  CHECK(A::apply_ref(-9.0, 0.5) != A::apply_ref(-7.0, 0.5));
  CHECK(A::apply_ref(2.0, -9.0) == A::apply_ref(2.0, -7.0));
  CHECK(A::apply_ref(2.0, 30.0) == A::apply_ref(2.0, 7.0));
  CHECK(A::apply_ref(2.0, -1.0) == 0.0);  // u + 1 = 0
  CHECK(std::fabs(A::apply_ref(1.0, 0.0) - 1.0 / (1.0 + std::exp(-1.702))) < 1e-15);
}

TEMPLATE_TEST_CASE("host layer computes in its documented fp32 order, bit for bit", "[host][moe]", float, ds::bf16, ds::fp16) {
  using T = TestType;
  auto rng = ds_test::make_rng(0x0D0C + sizeof(T) * 17 + std::is_same_v<T, ds::bf16>);
  for (int E : {8, 60}) {
    const Model<T> m(Master(E, rng));
    const auto each_act = [&]<class Act>() {
      if (E == 8) {
        check_documented_order<T, Act>(m, {8, 33, 2, Shared::sigmoid, false, true, true}, rng);
        check_documented_order<T, Act>(m, {8, 5, 1, Shared::none, true, false, false}, rng);
      } else {
        check_documented_order<T, Act>(m, {60, 7, 6, Shared::plain, true, true, false}, rng);
      }
    };
    each_act.template operator()<ds::act::SwiGLU>();
    each_act.template operator()<ds::act::GELU>();
  }
}

TEST_CASE("host layer converts every bf16 and fp16 encoding to float exactly", "[host][moe]") {
  const auto check = []<class T>() {
    INFO(sizeof(T) << "-byte " << (std::is_same_v<T, ds::bf16> ? "bf16" : "fp16"));
    std::vector<T> v(65536 + 3);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = T::from_bits(static_cast<std::uint16_t>(i));
    std::vector<float> got(v.size());
    // From element 1, an odd count: the chunked loop and its tail.
    const int n = static_cast<int>(v.size()) - 1;
    const float* r = moe::host::detail::row_as_float(v.data() + 1, n, got.data());
    int bad = 0;
    for (int i = 0; i < n; ++i)
      bad += ds::detail::float_to_bits(r[i]) != ds::detail::float_to_bits(v[static_cast<std::size_t>(i) + 1].to_float());
    CHECK(bad == 0);
  };
  check.operator()<ds::bf16>();
  check.operator()<ds::fp16>();
}

namespace {
/// run_layer<Gate>: routing equals gate::reference::route (+ Switch capacity) on the same
/// logits, y equals the reference from that routing.
template <class Gate, class T, class Act>
void check_gated(const gate::PolicyParams& p, const gate::RouterOptions& o, const float* bias, int tokens, bool mask,
                 std::mt19937_64& rng) {
  using X = moe::Expert<ds::quant::None, ds::lora::None, Act>;
  constexpr int E = Gate::kExperts, k = Gate::kTopK;
  INFO(Gate::kName << " " << Act::kName << " T " << tokens);
  const Model<T> m(Master(E, rng));
  const int xs = kH + 8;
  const moe::LayerDims d = m.dims(Shared::sigmoid, tokens);
  auto w = m.template weights<X>(Shared::sigmoid);
  w.gate_bias = bias;
  w.gate_bias_size = bias != nullptr ? E : 0;
  const std::vector<T> x = random_x<T>(tokens, xs, rng);
  std::vector<std::uint8_t> token_mask(static_cast<std::size_t>(tokens), 0);
  for (int t = 0; t < tokens; t += 5) token_mask[static_cast<std::size_t>(t)] = mask;
  const moe::LayerInputs<T> in{x.data(), tokens, xs, token_mask.data()};
  std::vector<T> y = poisoned_y<T>(tokens, kH);
  std::vector<int> ids(static_cast<std::size_t>(tokens) * k, -7), counts(E, -7);
  std::vector<float> wts(ids.size(), ds_test::poison_float());
  int dropped = -7;
  const moe::LayerOutputs<T> out{y.data(), 0, ids.data(), wts.data(), counts.data(), &dropped};
  // An expert-parallel rank holds the weights of its experts [begin, end) only.
  auto rank_w = w;
  const std::size_t slice = static_cast<std::size_t>(o.expert_begin) * d.intermediate * d.hidden;
  rank_w.w1 += slice;
  if (rank_w.w3 != nullptr) rank_w.w3 += slice;
  rank_w.w2 += slice;
  DS_REQUIRE_OK((moe::host::run_layer<Gate>(d, p, o, rank_w, in, out)));

  std::vector<T> xp(static_cast<std::size_t>(tokens) * kH);
  for (int t = 0; t < tokens; ++t) std::copy_n(x.begin() + static_cast<long>(t) * xs, kH, xp.begin() + static_cast<long>(t) * kH);
  const auto r = gate::reference::route<Gate>(gate::reference::gate_logits<T>(xp.data(), m.w_gate.data(), tokens, kH, E), tokens, nullptr,
                                              bias, p, o, token_mask.data());
  std::vector<int> want_ids = r.ids, want_counts = r.counts;
  std::vector<float> want_wts(r.weights.begin(), r.weights.end());
  int want_dropped = 0;
  if constexpr (Gate::kCapacity) {
    std::vector<int> pos(static_cast<std::size_t>(tokens));
    std::vector<std::uint8_t> flags(static_cast<std::size_t>(tokens));
    const gate::CapacityOutputs co{pos.data(), flags.data(), &want_dropped, want_counts.data(), want_wts.data(), want_ids.data()};
    DS_REQUIRE_OK(
        gate::reference::apply_switch_capacity(want_ids.data(), tokens, E, gate::switch_capacity(tokens, E, p.capacity_factor), co));
    CHECK(want_dropped > 0);
  }
  CHECK(ids == want_ids);
  CHECK((wts.empty() || std::memcmp(wts.data(), want_wts.data(), wts.size() * sizeof(float)) == 0));
  CHECK(counts == want_counts);
  CHECK(dropped == want_dropped);
  for (int t = 0; t < tokens; ++t)
    if (mask && t % 5 == 0) CHECK(ids[static_cast<std::size_t>(t) * k] == -1);
  check_y(y, tokens, kH, moe::reference::layer_from_routing(d, E, k, w, in, ids.data(), wts.data()));
}
}  // namespace

TEST_CASE("host layer routes like gate::reference and matches the reference layer", "[host][moe]") {
  auto rng = ds_test::make_rng(0x6A7E);
  SECTION("SoftmaxTopK, fp32, padding mask") {
    using G = gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>;
    check_gated<G, float, ds::act::SwiGLU>(gate::default_params<G>(), {}, nullptr, 33, true, rng);
  }
  SECTION("SoftmaxTopK, bf16, expert-parallel range [2, 6), scaling 1.5") {
    using G = gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>;
    gate::RouterOptions o;
    o.routed_scaling_factor = 1.5f;
    o.expert_begin = 2;
    o.expert_end = 6;
    check_gated<G, ds::bf16, ds::act::GELU>(gate::default_params<G>(), o, nullptr, 7, false, rng);
  }
  SECTION("DeepSeekV3 with bias and groups, bf16") {
    using G = gate::DeepSeekV3<ds::Experts<16>, ds::TopK<4>, ds::Groups<4, 2>>;
    const std::vector<float> bias = ds_test::uniform(16, rng, -0.1f, 0.1f);
    gate::RouterOptions o;
    o.routed_scaling_factor = 2.5f;
    check_gated<G, ds::bf16, ds::act::GeGLU>(gate::default_params<G>(), o, bias.data(), 33, false, rng);
  }
  SECTION("Switch drops tokens beyond the capacity, fp16") {
    using G = gate::Switch<ds::Experts<8>>;
    gate::PolicyParams p = gate::default_params<G>();
    p.capacity_factor = 0.5f;  // C = ceil(33 / 8 * 0.5) = 3: at most 24 of 33 tokens kept
    check_gated<G, ds::fp16, ds::act::SiLU>(p, {}, nullptr, 33, false, rng);
  }
  SECTION("T = 0 zeroes the counts") {
    using G = gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>;
    check_gated<G, float, ds::act::SwiGLU>(gate::default_params<G>(), {}, nullptr, 0, false, rng);
  }
}

TEST_CASE("host layer results are bitwise reproducible, for any thread count", "[host][moe]") {
  auto rng = ds_test::make_rng(0xDE7);
  using X = moe::Expert<>;
  const Model<ds::bf16> m(Master(8, rng));
  const Case c{8, 33, 2, Shared::sigmoid, false, true, true};
  const moe::LayerDims d = m.dims(c.shared, c.tokens);
  const auto w = m.weights<X>(c.shared);
  const std::vector<ds::bf16> x = random_x<ds::bf16>(c.tokens, kH, rng);
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(c, rng, ids, wts);
  const auto run = [&] {
    std::vector<ds::bf16> y = poisoned_y<ds::bf16>(c.tokens, kH);
    moe::LayerOutputs<ds::bf16> out;
    out.y = y.data();
    DS_REQUIRE_OK(moe::host::run_layer_routed(d, c.E, c.k, w, moe::LayerInputs<ds::bf16>{x.data(), c.tokens, 0, nullptr}, ids.data(),
                                              wts.data(), out));
    std::vector<std::uint16_t> bits(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) bits[i] = y[i].bits;
    return bits;
  };
  const auto first = run();
  CHECK(run() == first);
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
  for (int n : {1, 3}) {
    omp_set_num_threads(n);
    CHECK(run() == first);
  }
  omp_set_num_threads(threads);
#endif
}

TEST_CASE("host layer rejects bad arguments with a Status naming the argument", "[host][moe]") {
  using ds::StatusCode;
  auto rng = ds_test::make_rng(0xBAD);
  const Model<float> m(Master(8, rng));
  const std::vector<float> x = random_x<float>(4, kH, rng);
  std::vector<float> y = poisoned_y<float>(4, kH);
  std::vector<int> ids = {0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<float> wts(8, 0.5f);
  std::vector<int> counts(8, -7);
  moe::LayerOutputs<float> out;
  out.y = y.data();
  out.expert_counts = counts.data();
  const moe::LayerInputs<float> in{x.data(), 4, 0, nullptr};
  const moe::LayerDims d = m.dims(Shared::plain, 4);
  const auto w = m.weights<moe::Expert<>>(Shared::plain);
  using SiLUExpert = moe::Expert<ds::quant::None, ds::lora::None, ds::act::SiLU>;
  using G = gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>;
  const auto p = gate::default_params<G>();

  check_rejects(moe::host::run_layer_routed(m.dims(Shared::plain, 3), 8, 2, w, in, ids.data(), wts.data(), out), StatusCode::out_of_range,
                "tokens");
  auto no_w1 = w;
  no_w1.w1 = nullptr;
  check_rejects(moe::host::run_layer_routed(d, 8, 2, no_w1, in, ids.data(), wts.data(), out), StatusCode::invalid_argument, "w1");
  auto silu_w3 = m.weights<SiLUExpert>(Shared::plain);
  silu_w3.w3 = m.w3.data();
  check_rejects(moe::host::run_layer_routed(d, 8, 2, silu_w3, in, ids.data(), wts.data(), out), StatusCode::invalid_argument, "w3");
  moe::LayerDims odd = d;
  odd.hidden = 6;  // fp32 vectors hold 4
  check_rejects(moe::host::run_layer_routed(odd, 8, 2, w, in, ids.data(), wts.data(), out), StatusCode::invalid_argument, "hidden");
  auto gate_no_shared = m.weights<moe::Expert<>>(Shared::none);
  gate_no_shared.shared_gate_kind = moe::SharedGate::sigmoid;
  gate_no_shared.shared_gate = m.sgate.data();
  check_rejects(moe::host::run_layer_routed(m.dims(Shared::none, 4), 8, 2, gate_no_shared, in, ids.data(), wts.data(), out),
                StatusCode::invalid_argument, "shared_gate_kind");
  auto gate_vector_alone = w;
  gate_vector_alone.shared_gate = m.sgate.data();  // kind none
  check_rejects(moe::host::run_layer_routed(d, 8, 2, gate_vector_alone, in, ids.data(), wts.data(), out), StatusCode::invalid_argument,
                "shared_gate");
  check_rejects(moe::host::run_layer_routed(d, 8, 2, w, in, ids.data(), nullptr, out), StatusCode::invalid_argument, "topk_weights");
  for (int bad : {8, -2}) {
    ids[5] = bad;
    const ds::Status st = moe::host::run_layer_routed(d, 8, 2, w, in, ids.data(), wts.data(), out);
    check_rejects(st, StatusCode::invalid_argument, "topk_ids");
    CHECK(st.message().find("entry 5") != std::string::npos);
    CHECK(st.message().find(std::to_string(bad)) != std::string::npos);
  }
  const auto all_nan = [&] { return std::all_of(y.begin(), y.end(), [](float v) { return std::isnan(v); }); };
  CHECK(all_nan());  // nothing written by a rejected call
  CHECK(counts == std::vector<int>(8, -7));

  // Gate arguments of run_layer.
  check_rejects(moe::host::run_layer<G>(
                    d, p, {},
                    [&] {
                      auto v = w;
                      v.w_gate = nullptr;
                      return v;
                    }(),
                    in, out),
                StatusCode::invalid_argument, "w_gate");
  const std::vector<float> bias(8, 0.0f);
  check_rejects(moe::host::run_layer<G>(
                    d, p, {},
                    [&] {
                      auto v = w;
                      v.gate_bias = bias.data();
                      v.gate_bias_size = 8;
                      return v;
                    }(),
                    in, out),
                StatusCode::invalid_argument, "gate_bias");
  using V3 = gate::DeepSeekV3<ds::Experts<8>, ds::TopK<2>, ds::Groups<4, 2>>;
  check_rejects(moe::host::run_layer<V3>(d, gate::default_params<V3>(), {}, w, in, out), StatusCode::invalid_argument, "gate_bias");
  check_rejects(moe::host::run_layer<V3>(
                    d, gate::default_params<V3>(), {},
                    [&] {
                      auto v = w;
                      v.gate_bias = bias.data();
                      v.gate_bias_size = 7;
                      return v;
                    }(),
                    in, out),
                StatusCode::invalid_argument, "gate_bias");
  gate::RouterOptions range;
  range.expert_end = 9;
  check_rejects(moe::host::run_layer<G>(d, p, range, w, in, out), StatusCode::invalid_argument, "options.expert_begin/expert_end");
  using Noisy = gate::NoisyTopK<ds::Experts<8>, ds::TopK<2>>;
  CHECK(moe::host::run_layer<Noisy>(d, gate::default_params<Noisy>(), {}, w, in, out).code() == StatusCode::unsupported);
  CHECK(all_nan());
}
