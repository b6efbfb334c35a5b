// The fast CPU executor (cpu/layer.hpp: oneDNN GEMMs, OpenMP threads) against the double
// reference, on the same odd sizes, poisoned strided outputs and random routings as the exact
// executor's tests (host_problem.hpp); its routing against the exact executor's; bitwise equal
// results for 1 and 2 threads and for repeated runs; fused gate/up layouts with expert biases;
// expert parallelism; and the Status of everything it refuses.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "deepshock/cpu/layer.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/lora/host_adapter.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/moe/reference_layer.hpp"
#include "deepshock/quant/fp4.hpp"
#include "deepshock/quant/fp8.hpp"
#include "deepshock/quant/int4.hpp"
#include "deepshock/quant/int8.hpp"
#include "host_problem.hpp"
#include "quant_stack.hpp"
#include "test_support.hpp"

namespace {
using namespace ds_host_test;
template <class T, class X>
using Executor = moe::cpu::Executor<T, X>;

/// The same bytes (memcmp is not given the null data pointer of an empty vector).
template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// Runs `c` with a given routing on `threads` threads; checks y against the reference and the
/// expert counts; returns y.
template <class T, class Act>
std::vector<T> check_routed_case(const Model<T>& m, const Case& c, moe::cpu::ExecutorOptions options, const std::vector<T>& x,
                                 const std::vector<int>& ids, const std::vector<float>& wts) {
  const int threads = options.threads;
  using X = moe::Expert<ds::quant::None, ds::lora::None, Act>;
  INFO(Act::kName << " E " << c.E << " T " << c.tokens << " k " << c.k << " shared " << static_cast<int>(c.shared) << " strided "
                  << c.strided << " minus1 " << c.minus1 << " hot " << c.hot << " threads " << threads << " gemv rows "
                  << options.gemv_max_rows << " portable " << options.portable_gemv);
  const int xs = c.strided ? kH + 8 : kH, ys = c.strided ? kH + 24 : kH;
  const moe::LayerDims d = m.dims(c.shared, c.tokens + 3);
  const auto w = m.template weights<X>(c.shared);
  Executor<T, X> ex(d, c.E, c.k, options);
  DS_REQUIRE_OK(ex.status());
  CHECK(ex.threads() == threads);
  std::vector<T> y = poisoned_y<T>(c.tokens, ys);
  std::vector<int> counts(static_cast<std::size_t>(c.E), -7);
  const moe::LayerInputs<T> in{x.data(), c.tokens, c.strided ? xs : 0, nullptr};
  moe::LayerOutputs<T> out;
  out.y = y.data();
  out.y_stride = c.strided ? ys : 0;
  out.expert_counts = counts.data();
  DS_REQUIRE_OK(ex.run_routed(w, in, ids.data(), wts.data(), out));
  check_y(y, c.tokens, ys, moe::reference::layer_from_routing(d, c.E, c.k, w, in, ids.data(), wts.data()));
  std::vector<int> expect(static_cast<std::size_t>(c.E), 0);
  for (int id : ids)
    if (id >= 0) ++expect[static_cast<std::size_t>(id)];
  CHECK(counts == expect);
  // A second run on the same executor (its primitives now cached) gives the same bytes.
  std::vector<T> y2 = poisoned_y<T>(c.tokens, ys);
  out.y = y2.data();
  DS_REQUIRE_OK(ex.run_routed(w, in, ids.data(), wts.data(), out));
  CHECK(same_bytes(y, y2));
  return y;
}

const std::vector<Case> kCases = {
    {8, 0, 2, Shared::plain, false, false, false},    {8, 1, 1, Shared::none, false, false, false},
    {8, 7, 2, Shared::sigmoid, true, true, false},    {8, 33, 2, Shared::plain, false, false, true},
    {60, 1, 6, Shared::sigmoid, false, false, false}, {60, 33, 6, Shared::plain, true, true, false},
};

}  // namespace

TEMPLATE_TEST_CASE("fast CPU executor with given routing matches the double reference, for any thread count and GEMM path", "[cpu][moe]",
                   float, ds::bf16, ds::fp16) {
  using T = TestType;
  auto rng = ds_test::make_rng(0xC9E7 + sizeof(T));
  for (int E : {8, 60}) {
    const Model<T> m(Master(E, rng));
    const auto each_act = [&]<class Act>() {
      for (const Case& c : kCases) {
        if (c.E != E) continue;
        const int xs = c.strided ? kH + 8 : kH;
        const std::vector<T> x = random_x<T>(c.tokens, xs, rng);
        std::vector<int> ids;
        std::vector<float> wts;
        random_routing(c, rng, ids, wts);
        const std::vector<T> y1 = check_routed_case<T, Act>(m, c, {1}, x, ids, wts);
        const std::vector<T> y2 = check_routed_case<T, Act>(m, c, {2}, x, ids, wts);
        INFO("1 vs 2 threads: E " << c.E << " T " << c.tokens);
        CHECK(same_bytes(y1, y2));
        // Every expert on oneDNN (no GEMV), the GEMV's portable loop, and the GEMV up to its
        // largest row count: the reference still.
        check_routed_case<T, Act>(m, c, {2, 0}, x, ids, wts);
        check_routed_case<T, Act>(m, c, {2, ds::cpu::kGemvMaxRows, true}, x, ids, wts);
        check_routed_case<T, Act>(m, c, {2, ds::cpu::kGemvMaxRows}, x, ids, wts);  // up to 8 rows on the GEMV, in chunks of 4
        if (c.tokens == 33) {
          // Every slot on one expert: 2 T rows, more than d.max_tokens, so its GEMMs write the
          // layer's buffers directly instead of the threads' C tiles.
          const std::vector<int> one(ids.size(), E / 2);
          check_routed_case<T, Act>(m, c, {2, 0}, x, one, wts);
        }
      }
    };
    each_act.template operator()<ds::act::SwiGLU>();
    each_act.template operator()<ds::act::ClampedSwiGLU>();
    each_act.template operator()<ds::act::GELU>();
  }
}

namespace {
/// gate/up fused as one [E, 2I, H] matrix (`Layout`: halves or interleaved rows) with expert
/// biases b1, b3, b2 (gpt-oss's form): the fast executor against the reference.
template <class T, class Layout>
void check_fused_layout(std::mt19937_64& rng) {
  using Act = ds::act::ClampedSwiGLU;
  using X = moe::Expert<ds::quant::None, ds::lora::None, Act, Layout>;
  constexpr int E = 8, k = 2, tokens = 19;
  const Master master(E, rng);
  const Model<T> m(master);
  // The fused matrix: gate row i of expert e at first_gate(I) + i * step, up row i at first_up(I) + i * step.
  std::vector<T> w13(static_cast<std::size_t>(E) * 2 * kI * kH);
  for (int e = 0; e < E; ++e)
    for (int i = 0; i < kI; ++i)
      for (int h = 0; h < kH; ++h) {
        const std::size_t src = (static_cast<std::size_t>(e) * kI + i) * kH + h;
        const std::size_t base = static_cast<std::size_t>(e) * 2 * kI;
        w13[(base + Layout::first_gate(kI) + static_cast<std::size_t>(i) * Layout::kStep) * kH + h] = m.w1[src];
        w13[(base + Layout::first_up(kI) + static_cast<std::size_t>(i) * Layout::kStep) * kH + h] = m.w3[src];
      }
  const std::vector<float> b1 = ds_test::uniform(static_cast<std::size_t>(E) * kI, rng, -0.1f, 0.1f);
  const std::vector<float> b3 = ds_test::uniform(static_cast<std::size_t>(E) * kI, rng, -0.1f, 0.1f);
  const std::vector<float> b2 = ds_test::uniform(static_cast<std::size_t>(E) * kH, rng, -0.1f, 0.1f);
  moe::LayerWeights<T, X> w;
  w.w1 = w13.data();
  w.w2 = m.w2.data();
  w.b1 = b1.data();
  w.b3 = b3.data();
  w.b2 = b2.data();
  const Case c{E, tokens, k, Shared::none, false, true, false};
  const std::vector<T> x = random_x<T>(tokens, kH, rng);
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(c, rng, ids, wts);
  const moe::LayerDims d{kH, kI, 0, tokens};
  Executor<T, X> ex(d, E, k);
  DS_REQUIRE_OK(ex.status());
  std::vector<T> y = poisoned_y<T>(tokens, kH);
  moe::LayerOutputs<T> out;
  out.y = y.data();
  const moe::LayerInputs<T> in{x.data(), tokens, 0, nullptr};
  DS_REQUIRE_OK(ex.run_routed(w, in, ids.data(), wts.data(), out));
  check_y(y, tokens, kH, moe::reference::layer_from_routing(d, E, k, w, in, ids.data(), wts.data()));
}
}  // namespace

TEMPLATE_TEST_CASE("fast CPU executor: fused gate/up layouts with expert biases", "[cpu][moe]", float, ds::bf16) {
  auto rng = ds_test::make_rng(0xF05E + sizeof(TestType));
  check_fused_layout<TestType, moe::gate_up::Halves>(rng);
  check_fused_layout<TestType, moe::gate_up::Interleaved>(rng);
}

namespace {
/// Routing by `Gate` on the host: the same ids and weights as the exact executor (both route
/// with the double reference), y against the reference on those ids; with an expert range.
template <class Gate, class T>
void check_gate_run(const gate::PolicyParams& params, gate::RouterOptions options, Shared shared, std::mt19937_64& rng) {
  using X = moe::Expert<>;
  constexpr int E = Gate::kExperts, k = Gate::kTopK, tokens = 21;
  const int begin = options.expert_begin, end = options.expert_end < 0 ? E : options.expert_end, local = end - begin;
  INFO(Gate::kName << " E " << E << " k " << k << " experts [" << begin << ", " << end << ")");
  const Model<T> m(Master(E, rng));
  const moe::LayerDims d = m.dims(shared, tokens);
  auto w = m.template weights<X>(shared);
  const std::size_t per = static_cast<std::size_t>(kI) * kH;  // the rank's experts only
  w.w1 = m.w1.data() + begin * per;
  w.w3 = m.w3.data() + begin * per;
  w.w2 = m.w2.data() + begin * per;
  std::vector<float> bias;
  if constexpr (Gate::kUsesBias) {
    bias = ds_test::uniform(E, rng, -0.05f, 0.05f);
    w.gate_bias = bias.data();
    w.gate_bias_size = E;
  }
  const std::vector<T> x = random_x<T>(tokens, kH, rng);
  std::vector<std::uint8_t> mask(tokens, 0);
  mask[3] = mask[10] = 1;  // padding: routed nowhere
  const moe::LayerInputs<T> in{x.data(), tokens, 0, mask.data()};
  std::vector<T> y_fast = poisoned_y<T>(tokens, kH), y_exact = poisoned_y<T>(tokens, kH);
  std::vector<int> ids_fast(tokens * k, -7), ids_exact(tokens * k, -7), counts_fast(E, -7), counts_exact(E, -7);
  std::vector<float> w_fast(tokens * k), w_exact(tokens * k);
  moe::LayerOutputs<T> of{y_fast.data(), 0, ids_fast.data(), w_fast.data(), counts_fast.data()};
  moe::LayerOutputs<T> oe{y_exact.data(), 0, ids_exact.data(), w_exact.data(), counts_exact.data()};
  Executor<T, X> ex(d, local, k);
  DS_REQUIRE_OK(ex.status());
  DS_REQUIRE_OK(ex.template run<Gate>(params, options, w, in, of));
  DS_REQUIRE_OK(moe::host::run_layer<Gate>(d, params, options, w, in, oe));
  CHECK(ids_fast == ids_exact);
  CHECK(w_fast == w_exact);
  CHECK(counts_fast == counts_exact);
  std::vector<int> local_ids(ids_fast);
  for (int& id : local_ids) id = id >= begin && id < end ? id - begin : -1;
  check_y(y_fast, tokens, kH, moe::reference::layer_from_routing(d, local, k, w, in, local_ids.data(), w_fast.data()));
  for (int j = 0; j < k; ++j) CHECK(ids_fast[3 * k + j] == -1);
}
}  // namespace

TEST_CASE("fast CPU executor: host routing by the presets' gates, padding and expert ranges", "[cpu][moe]") {
  auto rng = ds_test::make_rng(0x6A7E5);
  using namespace deepshock::gate;
  using ds::Experts, ds::TopK, ds::Groups;
  check_gate_run<SoftmaxTopK<Experts<8>, TopK<2>>, ds::bf16>(default_params<SoftmaxTopK<Experts<8>, TopK<2>>>(), {}, Shared::none, rng);
  check_gate_run<SoftmaxTopK<Experts<60>, TopK<4>>, float>(PolicyParams{false}, {}, Shared::sigmoid, rng);
  using V3 = DeepSeekV3<Experts<64>, TopK<6>, Groups<8, 2>>;
  check_gate_run<V3, ds::bf16>(default_params<V3>(), RouterOptions{2.5f}, Shared::plain, rng);
  check_gate_run<V3, float>(default_params<V3>(), RouterOptions{2.5f, 16, 48}, Shared::plain, rng);  // experts [16, 48) here
}

namespace {
/// Quantized experts (every codec; routed and shared): weights quantized by the codec's own host
/// quantizer, the fast executor against the double reference on the same stored weights. H and
/// I are whole groups (128) and blocks; T = 13 tokens, one expert hot.
template <class Codec, class T>
void check_codec(std::mt19937_64& rng) {
  using X = moe::Expert<Codec>;
  constexpr int E = 8, k = 2, H = 256, I = 128, Is = 128, tokens = 13;
  INFO(Codec::kName << (std::is_same_v<T, float> ? " fp32" : " bf16"));
  auto mat = [&](long long experts, long long rows, long long cols) {
    ds_test::QuantStack<Codec, T> q;
    q.make(scaled_uniform(static_cast<std::size_t>(experts * rows * cols), static_cast<int>(cols), rng), experts, rows, cols);
    return q;
  };
  const auto w1 = mat(E, I, H), w3 = mat(E, I, H), w2 = mat(E, H, I), s1 = mat(1, Is, H), s3 = mat(1, Is, H), s2 = mat(1, H, Is);
  moe::LayerWeights<T, X> w;
  w.w1 = w1.data(false);
  w.w3 = w3.data(false);
  w.w2 = w2.data(false);
  w.shared_w1 = s1.data(false);
  w.shared_w3 = s3.data(false);
  w.shared_w2 = s2.data(false);
  w.codec = {w1.params(false), w3.params(false), w2.params(false), s1.params(false), s3.params(false), s2.params(false)};
  const Case c{E, tokens, k, Shared::plain, false, true, true};
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(c, rng, ids, wts);
  const std::vector<T> x = convert<T>(ds_test::uniform(static_cast<std::size_t>(tokens) * H, rng));
  const moe::LayerDims d{H, I, Is, tokens};
  const moe::LayerInputs<T> in{x.data(), tokens, 0, nullptr};
  const std::vector<double> ref = moe::reference::layer_from_routing(d, E, k, w, in, ids.data(), wts.data());
  double scale = 1e-6;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  // Codes of x and h flip where fp32 and double round differently: three times the tolerance for
  // the codecs that quantize the activations (as the device layer's tests allow).
  const double f = tol_factor<T>() * (ds::quant::act_int8_v<Codec> || ds::quant::act_fp8_v<Codec> ? 3.0 : 1.0);
  for (const moe::cpu::ExecutorOptions o :
       {moe::cpu::ExecutorOptions{2}, moe::cpu::ExecutorOptions{2, 0}, moe::cpu::ExecutorOptions{1, 4, true}}) {
    INFO("gemv rows " << o.gemv_max_rows << " portable " << o.portable_gemv);
    Executor<T, X> ex(d, E, k, o);
    DS_REQUIRE_OK(ex.status());
    std::vector<T> y(static_cast<std::size_t>(tokens) * H, nan_t<T>());
    moe::LayerOutputs<T> out;
    out.y = y.data();
    DS_REQUIRE_OK(ex.run_routed(w, in, ids.data(), wts.data(), out));
    std::vector<float> got(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) got[i] = to_f<T>(y[i]);
    const std::string msg = ds_test::compare(got, ref, {f * scale, f});
    INFO(msg);
    CHECK(msg.empty());
  }
}
}  // namespace

TEST_CASE("fast CPU executor with quantized experts: every codec against the double reference", "[cpu][moe]") {
  namespace q = ds::quant;
  auto rng = ds_test::make_rng(0xC0DEC);
  check_codec<q::Int8Channel, ds::bf16>(rng);
  check_codec<q::Int8Channel, float>(rng);
  check_codec<q::Int8ChannelA8, ds::bf16>(rng);
  check_codec<q::Int8ChannelA8, float>(rng);
  check_codec<q::Int4Group<128>, ds::bf16>(rng);
  check_codec<q::Int4Group<128, q::Int4Zero::asymmetric>, ds::bf16>(rng);
  check_codec<q::Mxfp4, ds::bf16>(rng);
  check_codec<q::Nvfp4, ds::bf16>(rng);
  check_codec<q::Fp8Block, ds::bf16>(rng);
  check_codec<q::Fp8BlockA8, ds::bf16>(rng);
}

TEST_CASE("fast CPU executor refuses what it cannot run, with the argument named", "[cpu][moe]") {
  using X = moe::Expert<>;
  auto rng = ds_test::make_rng(0xBAD);
  const Model<ds::bf16> m(Master(8, rng));
  const moe::LayerDims d = m.dims(Shared::none, 4);
  const auto w = m.weights<X>(Shared::none);
  const std::vector<ds::bf16> x = random_x<ds::bf16>(5, kH, rng);
  std::vector<ds::bf16> y(5 * kH);
  std::vector<int> ids(10, 0);
  std::vector<float> wts(10, 0.5f);
  moe::LayerOutputs<ds::bf16> out;
  out.y = y.data();
  Executor<ds::bf16, X> ex(d, 8, 2);
  DS_REQUIRE_OK(ex.status());
  check_rejects(Executor<ds::bf16, X>(d, 8, 2, {0, ds::cpu::kGemvMaxRows + 1}).status(), ds::StatusCode::invalid_argument,
                "options.gemv_max_rows");
  check_rejects(ex.run_routed(w, moe::LayerInputs<ds::bf16>{x.data(), 5, 0, nullptr}, ids.data(), wts.data(), out),
                ds::StatusCode::out_of_range, "tokens");
  ids[3] = 8;
  check_rejects(ex.run_routed(w, moe::LayerInputs<ds::bf16>{x.data(), 4, 0, nullptr}, ids.data(), wts.data(), out),
                ds::StatusCode::invalid_argument, "topk_ids");
  ids[3] = 0;
  check_rejects(ex.run_routed(w, moe::LayerInputs<ds::bf16>{x.data(), 4, 0, nullptr}, ids.data(), nullptr, out),
                ds::StatusCode::invalid_argument, "topk_weights");
  using namespace deepshock::gate;
  check_rejects(ex.run<SoftmaxTopK<ds::Experts<8>, ds::TopK<1>>>(PolicyParams{}, {}, w, moe::LayerInputs<ds::bf16>{x.data(), 4, 0, nullptr},
                                                                 out),
                ds::StatusCode::invalid_argument, "Gate");
  check_rejects(ex.run<SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>>(PolicyParams{}, RouterOptions{1.0f, 0, 4}, w,
                                                                 moe::LayerInputs<ds::bf16>{x.data(), 4, 0, nullptr}, out),
                ds::StatusCode::invalid_argument, "options.expert_begin/expert_end");
  check_rejects(Executor<ds::bf16, X>(d, 0, 2).status(), ds::StatusCode::invalid_argument, "experts");
  check_rejects(Executor<ds::bf16, X>(d, 8, 0).status(), ds::StatusCode::invalid_argument, "k");
  // LoRA: the adapter table is checked as by the exact executor.
  using XL = moe::Expert<ds::quant::None, ds::lora::LoRA<8>>;
  Executor<ds::bf16, XL> exl(d, 8, 2);
  DS_REQUIRE_OK(exl.status());
  auto wl = m.weights<XL>(Shared::none);
  wl.adapter.count = -1;
  std::vector<int> aids(4, 0);
  moe::LayerInputs<ds::bf16> inl{x.data(), 4, 0, nullptr};
  inl.adapter_ids = aids.data();
  check_rejects(exl.run_routed(wl, inl, ids.data(), wts.data(), out), ds::StatusCode::invalid_argument, "adapter.count");
}

namespace {
/// Random host adapters of the given ranks on the matrices of `mask` (lora::target bits): A and
/// B scaled so that the LoRA term is of the base layer's order (as the device LoRA tests draw them).
template <class T>
std::vector<ds::lora::HostAdapter<T>> random_adapters(const moe::LayerDims& d, int experts, const std::vector<int>& ranks, unsigned mask,
                                                      std::mt19937_64& rng) {
  namespace lora = ds::lora;
  std::uniform_real_distribution<float> s(0.5f, 2.0f);
  std::vector<lora::HostAdapter<T>> out;
  for (const int rank : ranks) {
    lora::HostAdapter<T> a;
    a.rank = rank;
    a.scaling = s(rng);
    for (int m = 0; m < lora::kMatrices; ++m) {
      const auto mat = static_cast<ds::quant::Matrix>(m);
      const bool sh = m >= static_cast<int>(ds::quant::Matrix::shared_w1);
      if ((mask & lora::target::bit(mat)) == 0 || (sh && d.shared_intermediate == 0)) continue;
      long long in = 0, o = 0;
      lora::matrix_shape(mat, d.hidden, d.intermediate, d.shared_intermediate, in, o);
      const std::size_t ex = sh ? 1 : static_cast<std::size_t>(experts), r = static_cast<std::size_t>(rank);
      const float sa = 3.0f / std::sqrt(static_cast<float>(in)), sb = 1.0f / std::sqrt(static_cast<float>(rank));
      a.a[m] = convert<T>(ds_test::uniform(ex * r * static_cast<std::size_t>(in), rng, -sa, sa));
      a.b[m] = convert<T>(ds_test::uniform(ex * static_cast<std::size_t>(o) * r, rng, -sb, sb));
    }
    out.push_back(std::move(a));
  }
  return out;
}

/// LoRA through the fast executor: adapters of mixed ranks (capacity 16), tokens without one (-1
/// and an id outside the table), routed and shared experts, against the double reference and
/// the exact executor; the adapters must move y (they are not skipped), and 1 and 2 threads agree.
template <class T, unsigned Targets>
void check_lora(std::mt19937_64& rng, Shared shared) {
  using X = moe::Expert<ds::quant::None, ds::lora::LoRA<16, Targets>>;
  constexpr int E = 8, k = 2, tokens = 21;
  INFO((std::is_same_v<T, float> ? "fp32" : "bf16") << " targets " << Targets << " shared " << static_cast<int>(shared));
  const Model<T> m(Master(E, rng));
  const moe::LayerDims d = m.dims(shared, tokens);
  auto w = m.template weights<X>(shared);
  const auto adapters = random_adapters<T>(d, E, {16, 3, 8, 1}, Targets, rng);
  std::vector<ds::lora::AdapterRef<T>> refs;
  for (const auto& a : adapters) refs.push_back(a.ref());
  w.adapter.adapters = refs.data();
  w.adapter.count = static_cast<int>(refs.size());
  const Case c{E, tokens, k, shared, false, true, false};
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(c, rng, ids, wts);
  std::vector<int> aids(tokens);
  for (int t = 0; t < tokens; ++t) aids[static_cast<std::size_t>(t)] = t % 6 - 1;  // -1, 0..3, and 4 (outside the table)
  const std::vector<T> x = random_x<T>(tokens, kH, rng);
  moe::LayerInputs<T> in{x.data(), tokens, 0, nullptr};
  in.adapter_ids = aids.data();
  const std::vector<double> ref = moe::reference::layer_from_routing(d, E, k, w, in, ids.data(), wts.data());
  std::vector<T> ys[2];
  for (const int threads : {1, 2}) {
    Executor<T, X> ex(d, E, k, {threads});
    DS_REQUIRE_OK(ex.status());
    std::vector<T>& y = ys[threads - 1];
    y = poisoned_y<T>(tokens, kH);
    moe::LayerOutputs<T> out;
    out.y = y.data();
    DS_REQUIRE_OK(ex.run_routed(w, in, ids.data(), wts.data(), out));
    check_y(y, tokens, kH, ref);
  }
  CHECK(same_bytes(ys[0], ys[1]));
  // The adapters matter: without them the reference differs on the adapted tokens by far more
  // than the tolerance, and not at all on the others.
  moe::LayerInputs<T> none = in;
  none.adapter_ids = nullptr;
  const std::vector<double> base = moe::reference::layer_from_routing(d, E, k, w, none, ids.data(), wts.data());
  double moved = 0.0, scale = 1e-6;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < kH; ++h) {
      const std::size_t i = static_cast<std::size_t>(t) * kH + static_cast<std::size_t>(h);
      const int a = aids[static_cast<std::size_t>(t)];
      if (a < 0 || a >= static_cast<int>(refs.size())) REQUIRE(ref[i] == base[i]);
      else moved = std::max(moved, std::abs(ref[i] - base[i]));
    }
  CHECK(moved > 0.05 * scale);
}
}  // namespace

TEST_CASE("fast CPU executor with LoRA adapters of mixed ranks against the double reference", "[cpu][moe][lora]") {
  namespace target = ds::lora::target;
  auto rng = ds_test::make_rng(0x10FA);
  check_lora<ds::bf16, target::all>(rng, Shared::plain);
  check_lora<float, target::all>(rng, Shared::sigmoid);
  check_lora<ds::bf16, target::w2 | target::shared_w1>(rng, Shared::plain);  // the down projection alone, the shared gate alone
  check_lora<float, target::routed>(rng, Shared::none);
}
