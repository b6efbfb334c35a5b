// deepshock/moe/reference_layer.hpp — the MoE layer on the host: the double-precision oracle
// and the CPU executor.
//
// This header compiles in every mode (plain host compiler, simulator, nvcc), needs no CUDA and
// launches no kernels. All pointers are host pointers. Shapes and semantics are those of
// moe/expert.hpp:
//   y[t] = sum_j w[t, j] * E_{id[t, j]}(x_t)  (j in slot order; ids outside [0, E) contribute 0)
//        + g_t * S(x_t),   E_e(x) = W2_e . act(W1_e x, W3_e x),   g_t = 1 or sigmoid(shared_gate . x_t)
//
//   * reference::layer_from_routing — the test oracle: every product and sum in double, the
//     activation's apply_ref, one expert at a time (for e, the assignments routed to e in slot
//     order), then the shared expert. Returns y [T, H] in double.
//   * host::run_layer<Gate> / host::run_layer_routed — the CPU path of the layer, with the GPU
//     kernels' numerics: products and sums in fp32 in a fixed order (hidden / intermediate index
//     ascending), the intermediate activation h rounded to T before the down projection, each
//     (token, slot) output kept in an fp32 [T*k, H] buffer, then y[t] = sum_j (slot order)
//     w[t, j] * o[t*k + j] + g_t * S(x_t) in fp32, rounded to T once. Loops over assignments and
//     rows run in parallel under OpenMP when it is enabled; every output element is computed by
//     one thread in a fixed order, so results are bitwise the same for any thread count.
//     run_layer routes on the host first: gate logits in double (gate::reference::gate_logits),
//     gate::reference::route<Gate> (weights stored as float), and Switch capacity
//     (gate::reference::apply_switch_capacity, C = ceil(T / E * capacity_factor) over all T
//     tokens, padding included, as gate::Router does). The device router computes logits in
//     fp32, so near-ties may route differently there. Both validate like the device layer and
//     return the same Status.
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
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/reference_dispatch.hpp"

namespace deepshock::moe {

namespace detail {

template <class T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return v.to_float();
}
template <class T>
inline float to_float(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return v.to_float();
}
/// float -> T, round to nearest even.
template <class T>
inline T from_float(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return T(v);
}

/// Instantiated by every entry point: the experts this header can run.
template <class ExpertT>
struct HostExpertCheck {
  static_assert(ExpertT::codec::kIdentity,
                "deepshock::moe host layer and reference: quantized codecs arrive with the quantization work; the layer reads "
                "unquantized weights only so far.");
  static_assert(ExpertT::adapter::kRank == 0,
                "deepshock::moe host layer and reference: LoRA adapters arrive with the LoRA work; the layer takes lora::None "
                "(rank 0) only so far.");
  static constexpr bool value = true;
};

}  // namespace detail

namespace reference {

/// One expert MLP in double: W2 . act(W1 x, W3 x) for W1, W3 [I, H], W2 [H, I], x [H] (w3
/// unused when Act is not gated). Returns [H].
template <class Act, class T>
std::vector<double> expert_mlp(const T* w1, const T* w3, const T* w2, int H, int I, const T* x) {
  std::vector<double> h(static_cast<std::size_t>(I)), o(static_cast<std::size_t>(H), 0.0);
  for (int i = 0; i < I; ++i) {
    const T* r1 = w1 + static_cast<std::size_t>(i) * H;
    double g = 0.0, u = 0.0;
    for (int c = 0; c < H; ++c) g += detail::to_double(r1[c]) * detail::to_double(x[c]);
    if constexpr (Act::kGated) {
      const T* r3 = w3 + static_cast<std::size_t>(i) * H;
      for (int c = 0; c < H; ++c) u += detail::to_double(r3[c]) * detail::to_double(x[c]);
    }
    h[static_cast<std::size_t>(i)] = Act::apply_ref(g, u);
  }
  for (int n = 0; n < H; ++n) {
    const T* r2 = w2 + static_cast<std::size_t>(n) * I;
    double acc = 0.0;
    for (int i = 0; i < I; ++i) acc += detail::to_double(r2[i]) * h[static_cast<std::size_t>(i)];
    o[static_cast<std::size_t>(n)] = acc;
  }
  return o;
}

/// The layer from a given routing (ids [T, k], weights [T, k]) in double: y [T, H], row stride H.
/// No argument checks (the caller passes a valid layer); ids outside [0, E) contribute 0.
template <class T, class ExpertT>
std::vector<double> layer_from_routing(const LayerDims& d, int E, int k, const LayerWeights<T, ExpertT>& w,
                                       const LayerInputs<T>& in, const int* topk_ids, const float* topk_weights) {
  static_assert(detail::HostExpertCheck<ExpertT>::value);
  using Act = typename ExpertT::activation;
  const int T_ = in.tokens, H = d.hidden, I = d.intermediate, Is = d.shared_intermediate;
  const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
  std::vector<double> y(static_cast<std::size_t>(T_) * H, 0.0);
  const std::size_t wsz = static_cast<std::size_t>(I) * H;
  for (int e = 0; e < E; ++e)
    for (int t = 0; t < T_; ++t)
      for (int j = 0; j < k; ++j) {
        const std::size_t a = static_cast<std::size_t>(t) * k + j;
        if (topk_ids[a] != e) continue;
        const std::vector<double> o =
            expert_mlp<Act>(w.w1 + e * wsz, Act::kGated ? w.w3 + e * wsz : nullptr, w.w2 + e * wsz, H, I, in.x + t * xs);
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
      const std::vector<double> s = expert_mlp<Act>(w.shared_w1, w.shared_w3, w.shared_w2, H, Is, x);
      for (int n = 0; n < H; ++n) y[static_cast<std::size_t>(t) * H + n] += g * s[static_cast<std::size_t>(n)];
    }
  return y;
}

}  // namespace reference

namespace host {

namespace detail {
using moe::detail::from_float;
using moe::detail::to_float;

/// One expert MLP with the kernels' numerics: fp32 sums in index order, h rounded to T.
/// `h` is scratch [I]; writes o [H].
template <class Act, class T>
void mlp_fp32(const T* w1, const T* w3, const T* w2, int H, int I, const T* x, float* h, float* o) {
  for (int i = 0; i < I; ++i) {
    const T* r1 = w1 + static_cast<std::size_t>(i) * H;
    float g = 0.0f, u = 0.0f;
    for (int c = 0; c < H; ++c) g += to_float(r1[c]) * to_float(x[c]);
    if constexpr (Act::kGated) {
      const T* r3 = w3 + static_cast<std::size_t>(i) * H;
      for (int c = 0; c < H; ++c) u += to_float(r3[c]) * to_float(x[c]);
    }
    h[i] = to_float(from_float<T>(Act::apply(g, u)));
  }
  for (int n = 0; n < H; ++n) {
    const T* r2 = w2 + static_cast<std::size_t>(n) * I;
    float acc = 0.0f;
    for (int i = 0; i < I; ++i) acc += to_float(r2[i]) * h[i];
    o[n] = acc;
  }
}

/// The experts and the combine, on checked arguments and a checked routing.
template <class T, class ExpertT>
void execute(const LayerDims& d, int k, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* ids,
             const float* wts, int E, const LayerOutputs<T>& out) {
  using Act = typename ExpertT::activation;
  const int H = d.hidden, I = d.intermediate, Is = d.shared_intermediate;
  const long long T_ = in.tokens, n = T_ * k;
  const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
  const std::size_t ys = static_cast<std::size_t>(out.y_stride == 0 ? H : out.y_stride);
  const std::size_t wsz = static_cast<std::size_t>(I) * H;
  std::vector<float> o(static_cast<std::size_t>(n) * H), s(Is > 0 ? static_cast<std::size_t>(T_) * H : 0), g(static_cast<std::size_t>(T_), 1.0f);
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic)
#endif
  for (long long a = 0; a < n; ++a) {
    const int e = ids[a];
    if (e < 0 || e >= E) continue;
    std::vector<float> h(static_cast<std::size_t>(I));
    mlp_fp32<Act>(w.w1 + e * wsz, Act::kGated ? w.w3 + e * wsz : nullptr, w.w2 + e * wsz, H, I, in.x + (a / k) * xs, h.data(),
                  o.data() + a * H);
  }
  if (Is > 0) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
    for (long long t = 0; t < T_; ++t) {
      const T* x = in.x + t * xs;
      if (w.shared_gate_kind == SharedGate::sigmoid) {
        float z = 0.0f;
        for (int c = 0; c < H; ++c) z += to_float(w.shared_gate[c]) * to_float(x[c]);
        g[static_cast<std::size_t>(t)] = gate::sigmoid(z);
      }
      std::vector<float> h(static_cast<std::size_t>(Is));
      mlp_fp32<Act>(w.shared_w1, w.shared_w3, w.shared_w2, H, Is, x, h.data(), s.data() + t * H);
    }
  }
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (long long t = 0; t < T_; ++t)
    for (int c = 0; c < H; ++c) {
      float acc = 0.0f;
      for (int j = 0; j < k; ++j) {
        const long long a = t * k + j;
        if (ids[a] >= 0 && ids[a] < E) acc += wts[a] * o[static_cast<std::size_t>(a) * H + c];
      }
      if (Is > 0) acc += g[static_cast<std::size_t>(t)] * s[static_cast<std::size_t>(t) * H + c];
      out.y[t * ys + c] = from_float<T>(acc);
    }
}

/// The gate's own checks (as gate::Router's, with the layer's argument names).
template <class Gate, class T, class ExpertT>
Status check_gate(const gate::PolicyParams& p, const gate::RouterOptions& o, const LayerWeights<T, ExpertT>& w) {
  constexpr int E = Gate::kExperts;
  if constexpr (Gate::kUsesBias) {
    if (w.gate_bias == nullptr) return Status::invalid_argument("gate_bias", std::string(Gate::kName) + " needs the correction bias");
    if (w.gate_bias_size != E)
      return Status::invalid_argument("gate_bias", "expected " + std::to_string(E) + " values (one per expert), got " +
                                                       std::to_string(w.gate_bias_size));
  } else if (w.gate_bias != nullptr) {
    return Status::invalid_argument("gate_bias", std::string(Gate::kName) + " takes no correction bias");
  }
  const int end = o.expert_end == -1 ? E : o.expert_end;
  if (o.expert_begin < 0 || o.expert_begin >= end || end > E)
    return Status::invalid_argument("options.expert_begin/expert_end", "need 0 <= begin < end <= " + std::to_string(E) + ", got [" +
                                                                           std::to_string(o.expert_begin) + ", " +
                                                                           std::to_string(o.expert_end) + ")");
  if (!std::isfinite(o.routed_scaling_factor)) return Status::invalid_argument("options.routed_scaling_factor", "must be finite");
  if (Gate::kWeightRule == gate::WeightRule::softmax_selected && !(p.temperature > 0.0f && std::isfinite(p.temperature)))
    return Status::invalid_argument("params.temperature", "must be finite and > 0");
  if (!(p.renorm_eps >= 0.0f && std::isfinite(p.renorm_eps))) return Status::invalid_argument("params.renorm_eps", "must be finite and >= 0");
  if (Gate::kCapacity && !(p.capacity_factor > 0.0f && std::isfinite(p.capacity_factor)))
    return Status::invalid_argument("params.capacity_factor", "must be finite and > 0");
  return Status::success();
}
}  // namespace detail

/// The layer with caller-supplied routing: ids [T, k] (-1 = none), weights [T, k]. Writes y and,
/// where given, expert_counts (valid assignments per expert); out.topk_ids / topk_weights /
/// dropped_count are not used (as the device layer's run_routed). An id < -1 or >= E is an error, reported
/// before anything is written.
template <class T, class ExpertT>
Status run_layer_routed(const LayerDims& d, int E, int k, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in,
                        const int* topk_ids, const float* topk_weights, const LayerOutputs<T>& out) {
  static_assert(moe::detail::HostExpertCheck<ExpertT>::value);
  DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_dims<T>(d));
  DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_run(d, w, in, out, /*routed=*/true, /*need_align=*/false));
  if (E < 1 || E > kMaxDispatchExperts)
    return Status::invalid_argument("E", "must be in [1, " + std::to_string(kMaxDispatchExperts) + "], got " + std::to_string(E));
  if (k < 1 || k > kMaxDispatchTopK)
    return Status::invalid_argument("k", "must be in [1, " + std::to_string(kMaxDispatchTopK) + "], got " + std::to_string(k));
  const long long n = static_cast<long long>(in.tokens) * k;
  if (n > 0 && topk_ids == nullptr) return Status::invalid_argument("topk_ids", "must not be null");
  if (n > 0 && topk_weights == nullptr) return Status::invalid_argument("topk_weights", "must not be null");
  for (long long a = 0; a < n; ++a)
    if (topk_ids[a] < -1 || topk_ids[a] >= E)
      return Status::invalid_argument("topk_ids", "entry " + std::to_string(a) + " (token " + std::to_string(a / k) + ", slot " +
                                                      std::to_string(a % k) + ") is " + std::to_string(topk_ids[a]) +
                                                      "; ids must be -1 or in [0, " + std::to_string(E) + ")");
  if (out.expert_counts != nullptr) {
    for (int e = 0; e < E; ++e) out.expert_counts[e] = 0;
    for (long long a = 0; a < n; ++a)
      if (topk_ids[a] >= 0) ++out.expert_counts[topk_ids[a]];
  }
  if (n > 0) detail::execute(d, k, w, in, topk_ids, topk_weights, E, out);
  return Status::success();
}

/// The layer with host routing by `Gate` (gate/policies.hpp; NoisyTopK is training-only and
/// returns unsupported). The padding mask is in.token_mask (options.token_mask is not read).
/// Writes y and, where given, topk_ids / topk_weights [T, k], expert_counts [E] (valid
/// assignments per expert after drops) and dropped_count (Switch capacity drops; 0 otherwise).
template <class Gate, class T, class ExpertT>
Status run_layer(const LayerDims& d, const gate::PolicyParams& params, const gate::RouterOptions& options,
                 const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const LayerOutputs<T>& out) {
  static_assert(moe::detail::HostExpertCheck<ExpertT>::value);
  if constexpr (Gate::kNoisy) {
    return Status::unsupported(std::string("deepshock::moe::host::run_layer: ") + Gate::kName +
                               " is a training-time gate (it needs the noise weights); the layer serves inference gates only");
  } else {
    constexpr int E = Gate::kExperts, k = Gate::kTopK;
    DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_dims<T>(d));
    DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_run(d, w, in, out, /*routed=*/false, /*need_align=*/false));
    DEEPSHOCK_RETURN_IF_ERROR((detail::check_gate<Gate>(params, options, w)));
    const int T_ = in.tokens, H = d.hidden;
    const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
    std::vector<T> xp(static_cast<std::size_t>(T_) * H);  // gate_logits reads rows of stride H
    for (int t = 0; t < T_; ++t)
      for (int c = 0; c < H; ++c) xp[static_cast<std::size_t>(t) * H + c] = in.x[t * xs + c];
    const std::vector<double> logits = gate::reference::gate_logits<T>(xp.data(), w.w_gate, T_, H, E);
    const gate::reference::Routing r = gate::reference::route<Gate>(logits, T_, nullptr, w.gate_bias, params, options, in.token_mask);
    std::vector<int> ids(r.ids);
    std::vector<float> wts(r.weights.begin(), r.weights.end());
    std::vector<int> counts(r.counts);
    int dropped = 0;
    if constexpr (Gate::kCapacity) {
      static_assert(k == 1, "deepshock::moe::host::run_layer: capacity is defined for top-1 (Switch) gates only.");
      std::vector<int> position(static_cast<std::size_t>(T_));
      std::vector<std::uint8_t> dropped_flags(static_cast<std::size_t>(T_));
      gate::CapacityOutputs co;
      co.position = position.data();
      co.dropped = dropped_flags.data();
      co.dropped_count = &dropped;
      co.kept_counts = counts.data();
      co.topk_weights = wts.data();
      co.topk_ids = ids.data();
      const int capacity = gate::switch_capacity(T_, E, params.capacity_factor);
      DEEPSHOCK_RETURN_IF_ERROR(gate::reference::apply_switch_capacity(ids.data(), T_, E, capacity, co));
    }
    for (std::size_t a = 0; a < ids.size(); ++a) {
      if (out.topk_ids != nullptr) out.topk_ids[a] = ids[a];
      if (out.topk_weights != nullptr) out.topk_weights[a] = wts[a];
    }
    if (out.expert_counts != nullptr)
      for (int e = 0; e < E; ++e) out.expert_counts[e] = counts[static_cast<std::size_t>(e)];
    if (out.dropped_count != nullptr) *out.dropped_count = dropped;
    if (T_ > 0) detail::execute(d, k, w, in, ids.data(), wts.data(), E, out);
    return Status::success();
  }
}

}  // namespace host
}  // namespace deepshock::moe
