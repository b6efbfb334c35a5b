// LoRA test problems shared by the LoRA suites (lora_tests.inc) and the batcher's layer suite
// (tests/serve): random adapter sets on the host and the device, per-token adapter ids, and the
// check of one LoRA layer case against the double reference.
#pragma once

#include "../moe/layer_problem.hpp"
#include "deepshock/lora/host_adapter.hpp"
#include "deepshock/lora/merge.hpp"

namespace {
namespace lora = deepshock::lora;
using quant_matrix = deepshock::quant::Matrix;

/// Random adapters for a layer: adapter i has rank ranks[i] and adapts the matrices in masks[i]
/// (lora::target bits). A ~ U(+-3 / sqrt(in)) (unit-variance A x for x ~ U(-1, 1)) and
/// B ~ U(+-1 / sqrt(r)), scaling in [0.5, 2]: a LoRA term of the order of the base layer's, so
/// that a wrong row, expert, rank or adapter shows far above the tolerances.
template <class T>
struct AdapterSet {
  std::vector<lora::HostAdapter<T>> host;
  std::vector<rt::DeviceBuffer<T>> dev;  // per adapter: 2 * kMatrices buffers (A, B)
  std::vector<lora::AdapterRef<T>> refs_h, refs_d_host;
  rt::DeviceBuffer<lora::AdapterRef<T>> refs_d;

  AdapterSet(const moe::LayerDims& d, int experts, const std::vector<int>& ranks, const std::vector<unsigned>& masks,
             std::mt19937_64& rng) {
    std::uniform_real_distribution<float> s(0.5f, 2.0f);
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      lora::HostAdapter<T> a;
      a.rank = ranks[i];
      a.scaling = s(rng);
      for (int m = 0; m < lora::kMatrices; ++m) {
        if ((masks[i] & (1u << m)) == 0) continue;
        const auto mat = static_cast<quant_matrix>(m);
        const bool sh = m >= static_cast<int>(quant_matrix::shared_w1);
        if (sh && d.shared_intermediate == 0) continue;
        long long in = 0, out = 0;
        lora::matrix_shape(mat, d.hidden, d.intermediate, d.shared_intermediate, in, out);
        const std::size_t ex = sh ? 1 : static_cast<std::size_t>(experts), r = static_cast<std::size_t>(a.rank);
        const float sa = 3.0f / std::sqrt(float(in)), sb = 1.0f / std::sqrt(float(r));
        for (float v : ds_test::uniform(ex * r * static_cast<std::size_t>(in), rng, -sa, sa)) a.a[m].push_back(from_f<T>(v));
        for (float v : ds_test::uniform(ex * static_cast<std::size_t>(out) * r, rng, -sb, sb)) a.b[m].push_back(from_f<T>(v));
      }
      host.push_back(std::move(a));
    }
    for (const auto& a : host) {
      refs_h.push_back(a.ref());
      lora::AdapterRef<T> r;
      r.rank = a.rank;
      r.scaling = a.scaling;
      for (int m = 0; m < lora::kMatrices; ++m) {
        dev.push_back(ds_test::upload_nonnull(a.a[m]));
        dev.push_back(ds_test::upload_nonnull(a.b[m]));
        if (a.adapts(m)) {
          r.a[m] = dev[dev.size() - 2].data();
          r.b[m] = dev.back().data();
        }
      }
      refs_d_host.push_back(r);
    }
    refs_d = ds_test::upload_nonnull(refs_d_host);
    REQUIRE(rt::device_synchronize().ok());
  }
  int count() const { return static_cast<int>(host.size()); }
  /// The layer's adapter parameters: the table on the device or on the host.
  template <class W>
  void set(W& w, bool device) const {
    w.adapter.adapters = device ? refs_d.data() : refs_h.data();
    w.adapter.count = count();
  }
};

/// Token adapter ids in [-1, count), shuffled: one token without an adapter (-1), one with the
/// out-of-table id `count` (no adapter on the device, in the host executor and in the reference),
/// then adapters 0, 1, ... once each as far as T allows, the rest drawn at random.
inline std::vector<int> random_adapter_ids(int T, int count, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> d(-1, count - 1);
  std::vector<int> ids(static_cast<std::size_t>(T));
  for (int t = 0; t < T; ++t) ids[std::size_t(t)] = t == 0 ? -1 : t == 1 ? count : t - 2 < count ? t - 2 : d(rng);
  std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

/// Relative RMS of a - b over b.
inline double rel_rms(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

/// One LoRA layer case: P's base weights (quantized by QExpert's codec when it has one), the
/// adapters, run_routed on the device and host::run_layer_routed against the double reference;
/// the reference without adapters must differ clearly (the adapters are not silently skipped).
template <class L, class Prob>
void check_lora_layer(const Prob& P, const AdapterSet<typename Prob::value_type>& A, std::mt19937_64& rng) {
  using T = typename Prob::value_type;
  const int k = L::kTopK, E = L::kExperts, H = P.dims.hidden, Tn = P.tokens;
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(Tn, E, k, 0.3, 0.1, rng, ids, wts);
  const std::vector<int> aids = random_adapter_ids(Tn, A.count(), rng);
  auto ids_d = upload_nonnull(ids);
  auto w_d = upload_nonnull(wts);
  auto aids_d = upload_nonnull(aids);
  auto wd = P.weights(true);
  A.set(wd, true);
  auto wh = P.weights(false);
  A.set(wh, false);
  auto in_d = P.inputs(true);
  in_d.adapter_ids = aids_d.data();
  auto in_h = P.inputs(false);
  in_h.adapter_ids = aids.data();

  L layer(P.dims);
  DS_REQUIRE_OK(layer.status());
  INFO(layer.kernel_plan(in_d, wd, false));
  rt::DeviceBuffer<T> y;
  REQUIRE(y.allocate(std::size_t(Tn) * H).ok());
  REQUIRE(y.fill_bytes(0xFF).ok());
  auto ws = poisoned_nonnull<unsigned char>(layer.workspace_bytes());
  moe::LayerOutputs<T> out;
  out.y = y.data();
  DS_REQUIRE_OK(layer.run_routed(in_d, ids_d.data(), w_d.data(), wd, out, ws.data(), layer.workspace_bytes(), nullptr));
  const std::vector<T> yd = download(y, std::size_t(Tn) * H);
  const std::vector<double> ref = moe::reference::layer_from_routing(P.dims, E, k, wh, in_h, ids.data(), wts.data());
  // The adapters add terms of the base layer's order: |y| is about 2.3 here against about 1
  // without them, and the bf16 roundings of h and y grow with it, so the absolute part of the
  // tolerance scales with y's RMS (check_y's `scale`, at least 1).
  double ss = 0.0;
  for (double v : ref) ss += v * v;
  const double scale = std::max(1.0, std::sqrt(ss / double(ref.size()))) * act_quant_scale<typename L::Codec>();
  {
    INFO("device layer vs reference");
    check_y(yd, ref, Tn, H, H, scale);
  }
  std::vector<T> yh(std::size_t(Tn) * H, from_f<T>(NAN));
  moe::LayerOutputs<T> oh;
  oh.y = yh.data();
  DS_REQUIRE_OK(moe::host::run_layer_routed(P.dims, E, k, wh, in_h, ids.data(), wts.data(), oh));
  {
    INFO("host executor vs reference");
    check_y(yh, ref, Tn, H, H, scale);
  }
  auto in_none = in_h;
  in_none.adapter_ids = nullptr;
  const std::vector<double> ref_none = moe::reference::layer_from_routing(P.dims, E, k, wh, in_none, ids.data(), wts.data());
  // The adapters matter: over the tokens that have one, they move y by far more than the
  // tolerances (relative RMS 0.6 to 0.7 typically).
  std::vector<double> on, on_none;
  for (int t = 0; t < Tn; ++t)
    if (aids[std::size_t(t)] >= 0 && aids[std::size_t(t)] < A.count()) {
      on.insert(on.end(), ref.begin() + std::ptrdiff_t(t) * H, ref.begin() + std::ptrdiff_t(t + 1) * H);
      on_none.insert(on_none.end(), ref_none.begin() + std::ptrdiff_t(t) * H, ref_none.begin() + std::ptrdiff_t(t + 1) * H);
    }
  REQUIRE_FALSE(on.empty());
  INFO("relative RMS of the adapters' contribution on their tokens " << rel_rms(on, on_none));
  CHECK(rel_rms(on, on_none) > 0.1);
  // Tokens without an adapter (-1 or out of the table) get exactly the base layer's reference.
  for (int t = 0; t < Tn; ++t)
    if (aids[std::size_t(t)] < 0 || aids[std::size_t(t)] >= A.count())
      for (int h = 0; h < H; ++h) REQUIRE(ref[std::size_t(t) * H + h] == ref_none[std::size_t(t) * H + h]);
}

/// A single tile shape for both regimes: the codec sweep instantiates one GEMM kernel per
/// epilogue instead of two (the epilogue, where the expand lives, is the same code for every
/// tile shape).
using OneTile = moe::GemmTuningOf<moe::GemmTile<16, 64, 128, 1, 4, 4>, moe::GemmTile<16, 64, 128, 1, 4, 4>>;
constexpr unsigned kAll = lora::target::all;

/// The codec sweep's case: QExpert's codec over P's weights, the adapters on every matrix.
template <class QExpert>
void check_lora_codec(std::mt19937_64& rng, int T, const std::vector<int>& ranks, std::vector<unsigned> masks) {
  // FP8's 128 x 128 weight blocks need whole blocks; the others take 32-value groups.
  const int d = std::is_base_of_v<ds::quant::Fp8Block, typename QExpert::codec> ? 128 : 64;
  Problem<ds::bf16, SwiGLU> P({d, d, d, 96}, 8, T, rng);
  QuantProblem<ds::bf16, SwiGLU, QExpert> Q(P);
  AdapterSet<ds::bf16> A(P.dims, 8, ranks, masks, rng);
  using L = moe::Layer<gate_mixtral, QExpert, ds::bf16, moe::OrderedCombine, OneTile>;
  check_lora_layer<L>(Q, A, rng);
}

}  // namespace
