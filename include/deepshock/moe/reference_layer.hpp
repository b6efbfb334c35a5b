// deepshock/moe/reference_layer.hpp — the MoE layer's double-precision oracle on the host.
//
// This header compiles in every mode (plain host compiler, simulator, nvcc), needs no CUDA and
// launches no kernels. All pointers are host pointers. Shapes and semantics are those of
// moe/expert.hpp:
//   y[t] = sum_j w[t, j] * E_{id[t, j]}(x_t)  (j in slot order; ids outside [0, E) contribute 0)
//        + g_t * S(x_t),   E_e(x) = W2_e . act(W1_e x + b1_e, W3_e x + b3_e) + b2_e,
//   g_t = 1 or sigmoid(shared_gate . x_t) (biases 0 where not given)
//
//   * reference::layer_from_routing — the test oracle: every product and sum in double, the
//     activation's apply_ref, one expert at a time (for e, the assignments routed to e in slot
//     order), then the shared expert. Returns y [T, H] in double.
// The CPU executor with the kernels' numerics is in moe/host_layer.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/reference.hpp"
#include "deepshock/gate/reference_stats.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/reference_dispatch.hpp"
#include "deepshock/quant/fp8.hpp"
#include "deepshock/quant/int8.hpp"

namespace deepshock::moe {

namespace detail {

template <class T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) return v;
  else return v.to_float();
}
template <class T>
inline float to_float(T v) {
  return value_to_float(v);
}
/// float -> T, round to nearest even.
template <class T>
inline T from_float(float v) {
  return value_from_float<T>(v);
}

/// The values a codec's GEMMs multiply for activations v [n] (fp32), into out [n] (V = float: the
/// host executor, out may be v; V = double: the reference): W8A8's per-row int8 or FP8's per-128
/// E4M3 codes, dequantized (quant/int8.hpp, quant/fp8.hpp). The one place both pick the rule.
template <class Codec, class V>
inline void fake_quant_act(const float* v, int n, V* out) {
  if constexpr (quant::act_fp8_v<Codec>) {
    quant::fake_quant_fp8_row(v, n, out);
  } else if constexpr (std::is_same_v<V, float>) {
    for (int i = 0; i < n && out != v; ++i) out[i] = v[i];
    quant::fake_quant_int8_row(out, n);
  } else {
    std::vector<float> f(v, v + n);
    quant::fake_quant_int8_row(f.data(), n);
    for (int i = 0; i < n; ++i) out[i] = f[static_cast<std::size_t>(i)];
  }
}

/// Instantiated by every entry point: the experts this header can run.
template <class ExpertT>
struct HostExpertCheck {
  static_assert(quant::WeightCodec<typename ExpertT::codec>,
                "deepshock::moe host layer and reference: the expert's codec is not a quant::WeightCodec.");
  static constexpr bool value = true;
};

}  // namespace detail

namespace reference {

/// One expert's LoRA terms for one token (host pointers): gate, up and down A [r, in] and
/// B [out, r] (null: not adapted), the scaling, and the unquantized input row x [H] the adapters
/// read (the layer's input, also for codecs that quantize the activations).
template <class L>
struct ExpertLora {
  const L* a[3] = {nullptr, nullptr, nullptr};
  const L* b[3] = {nullptr, nullptr, nullptr};
  int rank = 0;
  double scaling = 0.0;
  const L* x = nullptr;
};

/// Token t's LoRA terms for expert e (e < 0: the shared expert) of layer weights w, or an empty
/// one (no adapter: the id is -1 or outside the table).
template <class T, class ExpertT>
ExpertLora<T> expert_lora(const LayerDims& d, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, int t, int e, const T* x) {
  ExpertLora<T> l;
  if constexpr (ExpertT::adapter::kRank > 0) {
    const int id = in.adapter_ids != nullptr ? in.adapter_ids[t] : -1;
    if (id < 0 || id >= w.adapter.count) return l;
    const lora::AdapterRef<T>& a = w.adapter.adapters[id];
    l.rank = a.rank;
    l.scaling = a.scaling;
    l.x = x;
    const bool sh = e < 0;
    using M = quant::Matrix;
    const M ms[3] = {sh ? M::shared_w1 : M::w1, sh ? M::shared_w3 : M::w3, sh ? M::shared_w2 : M::w2};
    for (int i = 0; i < 3; ++i) {
      const int m = static_cast<int>(ms[i]);
      if (!lora::targets<typename ExpertT::adapter>(ms[i]) || a.a[m] == nullptr || a.b[m] == nullptr) continue;
      long long in_m = 0, out_m = 0;
      lora::matrix_shape(ms[i], d.hidden, d.intermediate, d.shared_intermediate, in_m, out_m);
      const long long ex = sh ? 0 : e;
      l.a[i] = a.a[m] + ex * a.rank * in_m;
      l.b[i] = a.b[m] + ex * out_m * a.rank;
    }
  }
  return l;
}

/// One expert MLP in double: W2 . act(W1 x, W3 x) for W1, W3 [I, H], W2 [H, I], x [H] (w3
/// unused when Act is not gated). Returns [H]. U: the weights' element type (T, or double for
/// dequantized weights). `quant_h` (optional): applied to h before the down projection (W8A8
/// codecs, whose down projection reads h quantized per row).
/// `bias` (optional): the expert's b1 / b3 [I] and b2 [H], added to the sums.
/// `lora` (optional): LoRA terms, PEFT's s B (A v) added to the gate, up and down sums; the down
/// adapter reads h before quant_h.
template <class Act, class U, class T, class L = T>
std::vector<double> expert_mlp(const U* w1, const U* w3, const U* w2, int H, int I, const T* x, void (*quant_h)(double*, int) = nullptr,
                               const ExpertBias& bias = {}, const ExpertLora<L>& lora = {}) {
  std::vector<double> h(static_cast<std::size_t>(I)), o(static_cast<std::size_t>(H), 0.0);
  const int r = lora.rank;
  // u = s A v for adapted matrix i (empty: not adapted), and row n's term B[n] . u.
  auto shrink = [&](int i, const auto* v, int n) {
    std::vector<double> u;
    if (lora.a[i] == nullptr) return u;
    u.assign(static_cast<std::size_t>(r), 0.0);
    for (int k = 0; k < r; ++k) {
      double acc = 0.0;
      for (int c = 0; c < n; ++c) acc += detail::to_double(lora.a[i][static_cast<std::size_t>(k) * n + c]) * detail::to_double(v[c]);
      u[static_cast<std::size_t>(k)] = lora.scaling * acc;
    }
    return u;
  };
  auto expand = [&](int i, const std::vector<double>& u, int n) {
    double acc = 0.0;
    for (int k = 0; k < static_cast<int>(u.size()); ++k)
      acc += detail::to_double(lora.b[i][static_cast<std::size_t>(n) * r + k]) * u[static_cast<std::size_t>(k)];
    return acc;
  };
  const std::vector<double> ug = shrink(0, lora.x, H), uu = Act::kGated ? shrink(1, lora.x, H) : std::vector<double>{};
  for (int i = 0; i < I; ++i) {
    const U* r1 = w1 + static_cast<std::size_t>(i) * H;
    double g = bias.b1 != nullptr ? double(bias.b1[i]) : 0.0, u = 0.0;
    for (int c = 0; c < H; ++c) g += detail::to_double(r1[c]) * detail::to_double(x[c]);
    g += expand(0, ug, i);
    if constexpr (Act::kGated) {
      const U* r3 = w3 + static_cast<std::size_t>(i) * H;
      if (bias.b3 != nullptr) u = bias.b3[i];
      for (int c = 0; c < H; ++c) u += detail::to_double(r3[c]) * detail::to_double(x[c]);
      u += expand(1, uu, i);
    }
    h[static_cast<std::size_t>(i)] = Act::apply_ref(g, u);
  }
  const std::vector<double> ud = shrink(2, h.data(), I);
  if (quant_h != nullptr) quant_h(h.data(), I);
  for (int n = 0; n < H; ++n) {
    const U* r2 = w2 + static_cast<std::size_t>(n) * I;
    double acc = bias.b2 != nullptr ? double(bias.b2[n]) : 0.0;
    for (int i = 0; i < I; ++i) acc += detail::to_double(r2[i]) * h[static_cast<std::size_t>(i)];
    o[static_cast<std::size_t>(n)] = acc + expand(2, ud, n);
  }
  return o;
}

/// The layer from a given routing (ids [T, k], weights [T, k]) in double: y [T, H], row stride H.
/// No argument checks (the caller passes a valid layer); ids outside [0, E) contribute 0.
template <class T, class ExpertT>
std::vector<double> layer_from_routing(const LayerDims& d, int E, int k, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in,
                                       const int* topk_ids, const float* topk_weights) {
  static_assert(detail::HostExpertCheck<ExpertT>::value);
  using Act = typename ExpertT::activation;
  const int T_ = in.tokens, H = d.hidden, I = d.intermediate, Is = d.shared_intermediate;
  const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
  std::vector<double> y(static_cast<std::size_t>(T_) * H, 0.0);
  const std::size_t wsz = static_cast<std::size_t>(I) * H;
  using Codec = typename ExpertT::codec;
  using GateUp = typename ExpertT::gate_up_layout;
  using quant::Matrix;
  // Rows first, first + step, ... (`rows` of them) of expert e's stored rows (e_rows per expert)
  // as doubles: the stored values, or the codec's dequantized ones.
  auto rows_of = [&](const auto* m, Matrix which, long long e, long long e_rows, long long first, long long step, long long rows,
                     long long cols) {
    std::vector<double> v(static_cast<std::size_t>(rows * cols));
    for (long long r = 0; r < rows; ++r) {
      const quant::RowRef ref{e, e_rows, first + r * step, cols};
      double* out = v.data() + r * cols;
      if constexpr (Codec::kIdentity) {
        (void)which;
        for (long long c = 0; c < cols; ++c) out[c] = detail::to_double(m[ref.flat() * cols + c]);
      } else {
        Codec::template decode_row_ref<T>(w.codec, which, m, ref, out);
      }
    }
    return v;
  };
  // Expert e's (e = -1: the shared expert's) MLP on x: the stored weights as they are, or
  // dequantized, or the gate/up rows picked out of a fused tensor.
  auto mlp = [&](int e, int t, const T* x) {
    const bool sh = e < 0;
    const ExpertLora<T> lr = expert_lora(d, w, in, t, e, x);
    const long long N = sh ? Is : I, e_rows = GateUp::kFused ? 2 * N : N, ex = sh ? 0 : e;
    const ExpertBias bias = sh ? ExpertBias{w.shared_b1, w.shared_b3, w.shared_b2} : expert_bias(w, e, I, H);
    if constexpr (Codec::kIdentity && !GateUp::kFused) {
      if (sh) return expert_mlp<Act>(w.shared_w1, w.shared_w3, w.shared_w2, H, Is, x, nullptr, bias, lr);
      return expert_mlp<Act>(w.w1 + e * wsz, Act::kGated ? w.w3 + e * wsz : nullptr, w.w2 + e * wsz, H, I, x, nullptr, bias, lr);
    } else {
      const auto* w1 = sh ? w.shared_w1 : w.w1;
      const auto* w3 = GateUp::kFused ? w1 : (sh ? w.shared_w3 : w.w3);
      const Matrix m1 = sh ? Matrix::shared_w1 : Matrix::w1, m3 = GateUp::kFused ? m1 : (sh ? Matrix::shared_w3 : Matrix::w3);
      const std::vector<double> g = rows_of(w1, m1, ex, e_rows, GateUp::first_gate(N), GateUp::kStep, N, H);
      const std::vector<double> u =
          Act::kGated ? rows_of(w3, m3, ex, e_rows, GateUp::first_up(N), GateUp::kStep, N, H) : std::vector<double>{};
      const std::vector<double> d = rows_of(sh ? w.shared_w2 : w.w2, sh ? Matrix::shared_w2 : Matrix::w2, ex, H, 0, 1, H, N);
      if constexpr (quant::act_int8_v<Codec> || quant::act_fp8_v<Codec>) {
        // W8A8 / FP8: x and h as the codes the GEMMs read, dequantized, by the kernels' rule bit
        // for bit (x is exact in fp32).
        std::vector<float> xf(static_cast<std::size_t>(H));
        std::vector<double> xq(static_cast<std::size_t>(H));
        for (int c = 0; c < H; ++c) xf[static_cast<std::size_t>(c)] = detail::to_float(x[c]);
        detail::fake_quant_act<Codec>(xf.data(), H, xq.data());
        // h as the layer holds it (rounded to T by GEMM 1's epilogue), then quantized by the rule.
        auto quant_h = [](double* h, int n) {
          std::vector<float> f(static_cast<std::size_t>(n));
          for (int i = 0; i < n; ++i) f[static_cast<std::size_t>(i)] = detail::to_float(detail::from_float<T>(static_cast<float>(h[i])));
          detail::fake_quant_act<Codec>(f.data(), n, h);
        };
        return expert_mlp<Act>(g.data(), Act::kGated ? u.data() : nullptr, d.data(), H, static_cast<int>(N), xq.data(), +quant_h, bias, lr);
      } else {
        return expert_mlp<Act>(g.data(), Act::kGated ? u.data() : nullptr, d.data(), H, static_cast<int>(N), x, nullptr, bias, lr);
      }
    }
  };
  for (int e = 0; e < E; ++e)
    for (int t = 0; t < T_; ++t)
      for (int j = 0; j < k; ++j) {
        const std::size_t a = static_cast<std::size_t>(t) * k + j;
        if (topk_ids[a] != e) continue;
        const std::vector<double> o = mlp(e, t, in.x + t * xs);
        for (int n = 0; n < H; ++n) y[static_cast<std::size_t>(t) * H + n] += double(topk_weights[a]) * o[static_cast<std::size_t>(n)];
      }
  if (Is > 0)
    for (int t = 0; t < T_; ++t) {
      const T* x = in.x + t * xs;
      double g = 1.0;
      if (w.shared_gate_kind == SharedGate::sigmoid) {
        double z = 0.0;
        for (int c = 0; c < H; ++c) z += detail::to_double(w.shared_gate[c]) * detail::to_double(x[c]);
        g = gate::sigmoid(z);
      }
      const std::vector<double> s = mlp(-1, t, x);
      for (int n = 0; n < H; ++n) y[static_cast<std::size_t>(t) * H + n] += g * s[static_cast<std::size_t>(n)];
    }
  return y;
}

}  // namespace reference

}  // namespace deepshock::moe
