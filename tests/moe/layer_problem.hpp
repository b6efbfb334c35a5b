// Random MoE layer problems for the layer tests (moe/layer_tests.inc, lora/lora_tests.inc):
// weights and inputs on host and device (Problem, QuantProblem for a codec), random routing,
// the check of y against the double reference with per-type tolerances, and routed_case (one
// run_routed checked end to end). Every run poisons y and the workspace with 0xFF bytes (NaN in
// float, bf16 and fp16). Tolerances per type: fp32 1e-4, fp16 1e-2, bf16 2e-2 (absolute, plus
// the same relative part), as peers use. Compiled against the simulator or by nvcc; the includer
// includes its backend header first.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <typeinfo>
#include <vector>

#include "deepshock/gate/policies.hpp"
#include "deepshock/moe/host_layer.hpp"
#include "deepshock/moe/layer.hpp"
#include "deepshock/moe/reference_layer.hpp"
#include "deepshock/platform/runtime.hpp"
#include "device_test_helpers.hpp"
#include "quant_stack.hpp"
#include "test_support.hpp"

namespace {
namespace ds = deepshock;
namespace moe = deepshock::moe;
namespace gate = deepshock::gate;
namespace rt = deepshock::rt;
using ds_test::check_rejects;
using ds_test::download;
using ds_test::poisoned_nonnull;
using ds_test::upload_nonnull;

/// Element tolerance: |y - ref| <= tol + tol * |ref|. For bf16 that is the peers' atol 2e-2 plus
/// the same relative part: their references compute in bf16 as the kernel does, this one keeps
/// the intermediate activation in double, so the kernel's rounding of h and y to 8 bits shows
/// as ~0.5% of |y|, and |y| reaches ~4 here (measured worst absolute error 0.022 over the suite).
template <class T>
double tol_of() {
  if constexpr (std::is_same_v<T, float>) return 1e-4;
  else if constexpr (std::is_same_v<T, ds::fp16>) return 1e-2;
  else return 2e-2;
}
/// Bound on sum|y - ref| / sum|ref|: the element tolerance above follows the peers; this one
/// catches systematic errors that hide inside it (bf16 rounds inputs, weights and the
/// intermediate to 8 bits: about 2e-3 relative per value, averaged).
template <class T>
double mean_rel_bound() {
  if constexpr (std::is_same_v<T, float>) return 1e-5;
  else if constexpr (std::is_same_v<T, ds::fp16>) return 1e-3;
  else return 5e-3;
}
template <class T>
T from_f(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return T(v);
}

template <class T>
struct Buf {
  std::vector<T> host;
  rt::DeviceBuffer<T> dev;
  const T* d() const { return host.empty() ? nullptr : dev.data(); }
  const T* h() const { return host.empty() ? nullptr : host.data(); }
};
template <class T>
Buf<T> random_buf(std::size_t n, float scale, std::mt19937_64& rng) {
  Buf<T> b;
  const std::vector<float> u = ds_test::uniform(n, rng, -scale, scale);
  b.host.resize(n);
  for (std::size_t i = 0; i < n; ++i) b.host[i] = from_f<T>(u[i]);
  REQUIRE(b.dev.allocate(std::max<std::size_t>(n, 1)).ok());
  if (n > 0) REQUIRE(b.dev.copy_from_host(b.host.data(), n).ok());
  return b;
}

/// Random weights and inputs of one layer (host copies and device copies).
template <class T, class ExpertT>
struct Problem {
  using value_type = T;
  moe::LayerDims dims;
  int E = 0, tokens = 0, x_stride = 0;
  moe::SharedGate shared_kind = moe::SharedGate::none;
  Buf<T> x, w_gate, w1, w3, w2, s1, s3, s2, sg;
  std::vector<float> bias;
  rt::DeviceBuffer<float> bias_dev;
  /// Optional biases (make_biases): the experts' projections (b1, b3, b2 and the shared
  /// expert's) and the gate projection's.
  Buf<float> b1, b3, b2, sb1, sb3, sb2, gate_b;

  Problem(moe::LayerDims d, int experts, int T_, std::mt19937_64& rng, moe::SharedGate sk = moe::SharedGate::none, int xs = 0)
      : dims(d), E(experts), tokens(T_), x_stride(xs == 0 ? d.hidden : xs), shared_kind(sk) {
    const std::size_t H = d.hidden, I = d.intermediate, Is = d.shared_intermediate;
    // Scales that keep pre-activations and outputs of order 1 (x ~ U(-1, 1) has variance 1/3,
    // U(-3/sqrt(n), 3/sqrt(n)) weights have variance 3/n): the tolerances then mean something.
    const float sh = 3.0f / std::sqrt(float(H)), si = 3.0f / std::sqrt(float(I));
    x = random_buf<T>(std::size_t(T_) * x_stride, 1.0f, rng);
    w_gate = random_buf<T>(std::size_t(E) * H, sh, rng);
    w1 = random_buf<T>(std::size_t(E) * I * H, sh, rng);
    if (ExpertT::kGated) w3 = random_buf<T>(std::size_t(E) * I * H, sh, rng);
    w2 = random_buf<T>(std::size_t(E) * H * I, si, rng);
    if (Is > 0) {
      s1 = random_buf<T>(Is * H, sh, rng);
      if (ExpertT::kGated) s3 = random_buf<T>(Is * H, sh, rng);
      s2 = random_buf<T>(H * Is, 3.0f / std::sqrt(float(Is)), rng);
      if (sk == moe::SharedGate::sigmoid) sg = random_buf<T>(H, sh, rng);
    }
    REQUIRE(rt::device_synchronize().ok());
  }
  /// A DeepSeek-V3 correction bias (multiples of 1/64 in [-1/8, 1/8]).
  void make_bias(std::mt19937_64& rng) {
    std::uniform_int_distribution<int> d(-8, 8);
    bias.resize(static_cast<std::size_t>(E));
    for (float& b : bias) b = static_cast<float>(d(rng)) / 64.0f;
    REQUIRE(bias_dev.allocate(bias.size()).ok());
    REQUIRE(bias_dev.copy_from_host(bias.data(), bias.size()).ok());
  }
  /// gpt-oss-style biases: gate / up biases in U(-8, 8), so that the clamped SwiGLU's limits
  /// (7) are reached, down biases and gate-projection biases in U(-1, 1).
  void make_biases(std::mt19937_64& rng) {
    const std::size_t H = dims.hidden, I = dims.intermediate, Is = dims.shared_intermediate;
    b1 = random_buf<float>(std::size_t(E) * I, 8.0f, rng);
    if (ExpertT::kGated) b3 = random_buf<float>(std::size_t(E) * I, 8.0f, rng);
    b2 = random_buf<float>(std::size_t(E) * H, 1.0f, rng);
    if (Is > 0) {
      sb1 = random_buf<float>(Is, 8.0f, rng);
      if (ExpertT::kGated) sb3 = random_buf<float>(Is, 8.0f, rng);
      sb2 = random_buf<float>(H, 1.0f, rng);
    }
    gate_b = random_buf<float>(std::size_t(E), 1.0f, rng);
    REQUIRE(rt::device_synchronize().ok());
  }
  /// The biases of make_biases into `w` (any expert type: QuantProblem shares them).
  template <class W>
  void set_biases(W& w, bool device) const {
    auto pick = [device](const Buf<float>& b) { return device ? b.d() : b.h(); };
    w.b1 = pick(b1);
    w.b3 = pick(b3);
    w.b2 = pick(b2);
    w.shared_b1 = pick(sb1);
    w.shared_b3 = pick(sb3);
    w.shared_b2 = pick(sb2);
    w.w_gate_bias = pick(gate_b);
  }
  moe::LayerWeights<T, ExpertT> weights(bool device) const {
    moe::LayerWeights<T, ExpertT> w;
    set_biases(w, device);
    if (!bias.empty()) {
      w.gate_bias = device ? bias_dev.data() : bias.data();
      w.gate_bias_size = static_cast<int>(bias.size());
    }
    auto pick = [device](const Buf<T>& b) { return device ? b.d() : b.h(); };
    w.w_gate = pick(w_gate);
    w.w1 = pick(w1);
    w.w3 = pick(w3);
    w.w2 = pick(w2);
    w.shared_w1 = pick(s1);
    w.shared_w3 = pick(s3);
    w.shared_w2 = pick(s2);
    w.shared_gate = pick(sg);
    w.shared_gate_kind = shared_kind;
    return w;
  }
  moe::LayerInputs<T> inputs(bool device) const {
    return moe::LayerInputs<T>{device ? x.d() : x.h(), tokens, x_stride == dims.hidden ? 0 : x_stride, nullptr};
  }
};

/// Random routing: k distinct experts per token (a `hot` fraction of tokens put expert 0 first),
/// some slots -1, weights in (0, 1).
void random_routing(int T, int E, int k, double hot, double none, std::mt19937_64& rng, std::vector<int>& ids, std::vector<float>& w) {
  ids.assign(std::size_t(T) * k, -1);
  w.assign(std::size_t(T) * k, 0.0f);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int> perm(E);
  for (int t = 0; t < T; ++t) {
    for (int e = 0; e < E; ++e) perm[e] = e;
    std::shuffle(perm.begin(), perm.end(), rng);
    if (u(rng) < hot) std::iter_swap(perm.begin(), std::find(perm.begin(), perm.end(), 0));
    for (int j = 0; j < k; ++j) {
      if (u(rng) < none) continue;
      ids[std::size_t(t) * k + j] = perm[j];
      w[std::size_t(t) * k + j] = float(0.05 + 0.9 * u(rng));
    }
  }
}

/// Assignments per expert of ids (-1 = none): what expert_counts must hold.
std::vector<int> expert_histogram(const std::vector<int>& ids, int E) {
  std::vector<int> c(static_cast<std::size_t>(E), 0);
  for (int id : ids)
    if (id >= 0) ++c[static_cast<std::size_t>(id)];
  return c;
}

/// check_y's `scale` for a codec: FP8 activations (E4M3, three mantissa bits) turn the last-bit
/// differences of h between the kernels' fp32 sums and the reference's double ones into whole
/// code steps where h sits on a rounding boundary: one flipped code moves y by up to 1/16 of that
/// h value times its W2 column, so a few per token reach 0.03 (measured: 0.034 at seed
/// 1796520409); three times the bf16 tolerance there, while check_y's mean relative bound still
/// catches systematic errors. int8 activations (1/127 of the row's range per step) need none.
template <class Codec>
constexpr double act_quant_scale() {
  return ds::quant::act_fp8_v<Codec> ? 3.0 : 1.0;
}

/// Checks y (device, [T, y_stride]) against the reference in double; padding columns must keep
/// the poison (NaN bits). `scale`: the magnitude the absolute part of the tolerance is relative
/// to (1: outputs of order 1; layers whose terms are larger pass their output's RMS, since an
/// element that cancels to near 0 keeps the rounding errors of its large terms).
template <class T>
void check_y(const std::vector<T>& y, const std::vector<double>& ref, int T_, int H, int ys, double scale = 1.0) {
  const double tol = tol_of<T>() * scale;
  int bad = 0;
  double worst = 0.0;
  for (int t = 0; t < T_; ++t) {
    for (int h = 0; h < H; ++h) {
      const double got = double(static_cast<float>(y[std::size_t(t) * ys + h]));
      const double want = ref[std::size_t(t) * H + h];
      const double err = std::fabs(got - want);
      if (!(err <= tol + tol_of<T>() * std::fabs(want))) {
        if (bad++ < 5) UNSCOPED_INFO("y[" << t << "," << h << "] = " << got << ", reference " << want);
      }
      if (err > worst || std::isnan(err)) worst = std::isnan(err) ? INFINITY : err;
    }
    for (int h = H; h < ys; ++h)
      if (!std::isnan(static_cast<float>(y[std::size_t(t) * ys + h]))) ++bad;
  }
  double sum_err = 0.0, sum_ref = 0.0;
  for (int t = 0; t < T_; ++t)
    for (int h = 0; h < H; ++h) {
      sum_err += std::fabs(double(static_cast<float>(y[std::size_t(t) * ys + h])) - ref[std::size_t(t) * H + h]);
      sum_ref += std::fabs(ref[std::size_t(t) * H + h]);
    }
  const double mean_rel = sum_ref > 0.0 ? sum_err / sum_ref : sum_err;
  INFO("worst abs error " << worst << " (tolerance " << tol << "), mean relative error " << mean_rel << " (bound " << mean_rel_bound<T>()
                          << "), mean |y| " << sum_ref / std::max(1, T_ * H));
  CHECK(bad == 0);
  CHECK(mean_rel <= mean_rel_bound<T>());
  if (std::getenv("DS_PRINT_ERRORS") != nullptr) WARN("mean relative error " << mean_rel << ", worst " << worst);
}

/// A Problem's weights quantized with the codec of `QExpert` (its host quantizer), on host and
/// device; the router weights, inputs and shared gate stay the Problem's. `QExpert` is the
/// quantized twin of the Problem's expert type.
template <class T, class FExpert, class QExpert>
struct QuantProblem {
  using value_type = T;
  using Codec = typename QExpert::codec;
  using Mat = ds_test::QuantStack<Codec, T>;
  const Problem<T, FExpert>& base;
  moe::LayerDims dims;
  int tokens = 0;
  Mat w1, w3, w2, s1, s3, s2;
  explicit QuantProblem(const Problem<T, FExpert>& P) : base(P), dims(P.dims), tokens(P.tokens) {
    const int H = dims.hidden, I = dims.intermediate, Is = dims.shared_intermediate;
    quantize(P.w1, P.E, I, H, w1);
    quantize(P.w3, P.E, I, H, w3);
    quantize(P.w2, P.E, H, I, w2);
    quantize(P.s1, 1, Is, H, s1);
    quantize(P.s3, 1, Is, H, s3);
    quantize(P.s2, 1, H, Is, s2);
    REQUIRE(rt::device_synchronize().ok());
  }
  static void quantize(const Buf<T>& b, long long experts, long long rows, long long cols, Mat& m) {
    if (b.host.empty()) return;
    std::vector<float> f(b.host.size());
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(b.host[i]);
    m.make(f, experts, rows, cols);
  }
  moe::LayerWeights<T, QExpert> weights(bool device) const {
    const moe::LayerWeights<T, FExpert> f = base.weights(device);
    moe::LayerWeights<T, QExpert> w;
    w.w_gate = f.w_gate;
    w.gate_bias = f.gate_bias;
    w.gate_bias_size = f.gate_bias_size;
    w.shared_gate = f.shared_gate;
    w.shared_gate_kind = f.shared_gate_kind;
    base.set_biases(w, device);
    w.w1 = w1.data(device);
    w.w3 = w3.data(device);
    w.w2 = w2.data(device);
    w.shared_w1 = s1.data(device);
    w.shared_w3 = s3.data(device);
    w.shared_w2 = s2.data(device);
    w.codec = {w1.params(device), w3.params(device), w2.params(device), s1.params(device), s3.params(device), s2.params(device)};
    return w;
  }
  moe::LayerInputs<T> inputs(bool device) const { return base.inputs(device); }
};

/// run_routed with random routing; returns y (host) and checks it against the reference (`scale`:
/// check_y's).
template <class Layer, class Prob, class T = typename Prob::value_type>
std::vector<T> routed_case(const Prob& P, double hot, double none, std::mt19937_64& rng, int y_stride = 0, double scale = 1.0) {
  const int k = Layer::kTopK, E = Layer::kExperts, H = P.dims.hidden;
  std::vector<int> ids;
  std::vector<float> wts;
  random_routing(P.tokens, E, k, hot, none, rng, ids, wts);
  auto ids_d = upload_nonnull(ids);
  auto w_d = upload_nonnull(wts);
  Layer layer(P.dims);
  DS_REQUIRE_OK(layer.status());
  const int ys = y_stride == 0 ? H : y_stride;
  rt::DeviceBuffer<T> y;
  REQUIRE(y.allocate(std::max<std::size_t>(std::size_t(P.tokens) * ys, 1)).ok());
  REQUIRE(y.fill_bytes(0xFF).ok());
  rt::DeviceBuffer<int> counts;
  REQUIRE(counts.allocate(E).ok());
  auto ws = poisoned_nonnull<unsigned char>(layer.workspace_bytes());
  moe::LayerOutputs<T> out;
  out.y = y.data();
  out.y_stride = y_stride;
  out.expert_counts = counts.data();
  DS_REQUIRE_OK(
      layer.run_routed(P.inputs(true), ids_d.data(), w_d.data(), P.weights(true), out, ws.data(), layer.workspace_bytes(), nullptr));
  std::vector<T> yh = download(y, std::size_t(P.tokens) * ys);
  const std::vector<double> ref =
      moe::reference::layer_from_routing(P.dims, E, k, P.weights(false), P.inputs(false), ids.data(), wts.data());
  check_y(yh, ref, P.tokens, H, ys, scale);
  CHECK(download(counts, E) == expert_histogram(ids, E));
  return yh;
}

using gate_mixtral = gate::SoftmaxTopK<ds::Experts<8>, ds::TopK<2>>;
using SwiGLU = moe::Expert<>;
using GeGLU = moe::Expert<ds::quant::None, ds::lora::None, ds::act::GeGLU>;
using SiLU = moe::Expert<ds::quant::None, ds::lora::None, ds::act::SiLU>;
using GELU = moe::Expert<ds::quant::None, ds::lora::None, ds::act::GELU>;
using SwiGLU_int8 = moe::Expert<ds::quant::Int8Channel>;
using SwiGLU_w8a8 = moe::Expert<ds::quant::Int8ChannelA8>;
using SwiGLU_u4g32 = moe::Expert<ds::quant::Int4Group<32>>;
using SwiGLU_i4g64zp = moe::Expert<ds::quant::Int4Group<64, ds::quant::Int4Zero::asymmetric, ds::bf16>>;
using SwiGLU_u4g128 = moe::Expert<ds::quant::Int4Group<128>>;
using SwiGLU_mxfp4 = moe::Expert<ds::quant::Mxfp4>;
using SwiGLU_nvfp4 = moe::Expert<ds::quant::Nvfp4>;
using SwiGLU_fp8 = moe::Expert<ds::quant::Fp8Block>;
using SwiGLU_fp8a8 = moe::Expert<ds::quant::Fp8BlockA8>;                                  // ... with FP8 activations (DeepSeek-V3's recipe)
using ClampedF = moe::Expert<ds::quant::None, ds::lora::None, ds::act::ClampedSwiGLU>;    // gpt-oss's experts, unquantized
using ClampedMx = moe::Expert<ds::quant::Mxfp4, ds::lora::None, ds::act::ClampedSwiGLU>;  // ... and as it ships them

/// A problem's gate and up projections fused into one tensor per Layout ([E, 2I, H] and the
/// shared expert's [2 Is, H]; with their per-row scales for a quantized codec), read in place by
/// an Expert<Codec, Adapter, SwiGLU, Layout>.
template <class Prob, class Codec, class Layout, class Adapter = ds::lora::None>
struct FusedProblem {
  using value_type = typename Prob::value_type;
  using T = value_type;
  using SepExpert = moe::Expert<Codec>;
  using FusedExpert = moe::Expert<Codec, Adapter, ds::act::SwiGLU, Layout>;
  using W = typename moe::LayerWeights<T, SepExpert>::W;
  const Prob& base;
  moe::LayerDims dims;
  int tokens = 0;
  static constexpr int kPack = ds::quant::pack_v<Codec>, kGroup = ds::quant::group_v<Codec>;
  std::vector<W> w13, s13;
  std::vector<float> w13_scale, s13_scale;    // Int8Channel: per fused row
  std::vector<std::uint16_t> w13_gs, s13_gs;  // Int4Group: [E][K / G][2N] (symmetric codecs only here)
  rt::DeviceBuffer<W> w13_d, s13_d;
  rt::DeviceBuffer<float> w13_scale_d, s13_scale_d;
  rt::DeviceBuffer<std::uint16_t> w13_gs_d, s13_gs_d;

  FusedProblem(const Prob& P, int E) : base(P), dims(P.dims), tokens(P.tokens) {
    const moe::LayerWeights<T, SepExpert> h = P.weights(false);
    const long long H = dims.hidden, I = dims.intermediate, Is = dims.shared_intermediate;
    // Stored rows: H / kPack elements (two 4-bit codes share a byte).
    fuse(h.w1, h.w3, E, I, H / kPack, w13, w13_d);
    if (Is > 0) fuse(h.shared_w1, h.shared_w3, 1, Is, H / kPack, s13, s13_d);
    if constexpr (kGroup > 0) {
      static_assert(!Codec::kZeros, "FusedProblem: symmetric int4 codecs only");
      // Group-major scales: group j of an expert is a row of N channels; fused, a row of 2N.
      fuse_groups(h.codec.w1.scale, h.codec.w3.scale, E, I, H / kGroup, w13_gs, w13_gs_d);
      if (Is > 0) fuse_groups(h.codec.shared_w1.scale, h.codec.shared_w3.scale, 1, Is, H / kGroup, s13_gs, s13_gs_d);
    } else if constexpr (!Codec::kIdentity) {
      fuse(h.codec.w1_scale, h.codec.w3_scale, E, I, 1, w13_scale, w13_scale_d);
      if (Is > 0) fuse(h.codec.shared_w1_scale, h.codec.shared_w3_scale, 1, Is, 1, s13_scale, s13_scale_d);
    }
    REQUIRE(rt::device_synchronize().ok());
  }
  /// Group-major scales [E][groups][N] of gate (a) and up (b) into [E][groups][2N] in the
  /// layout's row order.
  static void fuse_groups(const std::uint16_t* a, const std::uint16_t* b, long long E, long long N, long long groups,
                          std::vector<std::uint16_t>& out, rt::DeviceBuffer<std::uint16_t>& dev) {
    out.resize(static_cast<std::size_t>(E * groups * 2 * N));
    for (long long e = 0; e < E; ++e)
      for (long long j = 0; j < groups; ++j)
        for (long long i = 0; i < N; ++i) {
          const long long src = (e * groups + j) * N + i, dst = (e * groups + j) * 2 * N;
          out[static_cast<std::size_t>(dst + Layout::first_gate(N) + i * Layout::kStep)] = a[src];
          out[static_cast<std::size_t>(dst + Layout::first_up(N) + i * Layout::kStep)] = b[src];
        }
    REQUIRE(dev.allocate(out.size()).ok());
    REQUIRE(dev.copy_from_host(out.data(), out.size()).ok());
  }
  /// Rows of a (gate) and b (up), E experts of N rows of K, into the layout's fused order.
  template <class U>
  static void fuse(const U* a, const U* b, long long E, long long N, long long K, std::vector<U>& out, rt::DeviceBuffer<U>& dev) {
    out.resize(static_cast<std::size_t>(E * 2 * N * K));
    for (long long e = 0; e < E; ++e)
      for (long long i = 0; i < N; ++i)
        for (long long c = 0; c < K; ++c) {
          out[static_cast<std::size_t>((e * 2 * N + Layout::first_gate(N) + i * Layout::kStep) * K + c)] = a[(e * N + i) * K + c];
          out[static_cast<std::size_t>((e * 2 * N + Layout::first_up(N) + i * Layout::kStep) * K + c)] = b[(e * N + i) * K + c];
        }
    REQUIRE(dev.allocate(out.size()).ok());
    REQUIRE(dev.copy_from_host(out.data(), out.size()).ok());
  }
  moe::LayerWeights<T, FusedExpert> weights(bool device) const {
    const moe::LayerWeights<T, SepExpert> sep = base.weights(device);
    moe::LayerWeights<T, FusedExpert> w;
    w.w_gate = sep.w_gate;
    w.gate_bias = sep.gate_bias;
    w.gate_bias_size = sep.gate_bias_size;
    w.shared_gate = sep.shared_gate;
    w.shared_gate_kind = sep.shared_gate_kind;
    w.w1 = device ? w13_d.data() : w13.data();
    w.w2 = sep.w2;
    w.shared_w1 = s13.empty() ? nullptr : device ? s13_d.data() : s13.data();
    w.shared_w2 = sep.shared_w2;
    w.codec = sep.codec;
    if constexpr (kGroup > 0) {
      w.codec.w1 = {device ? w13_gs_d.data() : w13_gs.data(), nullptr};
      w.codec.w3 = {};
      w.codec.shared_w1 = {s13_gs.empty() ? nullptr : device ? s13_gs_d.data() : s13_gs.data(), nullptr};
      w.codec.shared_w3 = {};
    } else if constexpr (!Codec::kIdentity) {
      w.codec.w1_scale = device ? w13_scale_d.data() : w13_scale.data();
      w.codec.w3_scale = nullptr;
      w.codec.shared_w1_scale = s13_scale.empty() ? nullptr : device ? s13_scale_d.data() : s13_scale.data();
      w.codec.shared_w3_scale = nullptr;
    }
    return w;
  }
  moe::LayerInputs<T> inputs(bool device) const { return base.inputs(device); }
};

}  // namespace
