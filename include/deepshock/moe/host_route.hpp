// deepshock/moe/host_route.hpp — what every CPU executor of the layer shares: argument checks and
// the routing on the host.
//
// The exact executor (moe/host_layer.hpp) and the fast one (cpu/layer.hpp) differ only in how
// they run the experts. Both take their arguments through these checks, so they accept and
// refuse the same inputs with the same Status, and both route with the double reference
// (gate::reference), so they choose the same experts for the same tokens:
//
//   check_routed — a caller-supplied routing: ids [T, k] in {-1} or [0, E), weights [T, k].
//   route<Gate>  — gate logits in double (plus the optional w_gate_bias), the policy, Switch
//                  capacity; writes the routing outputs that were asked for, maps the ids to the
//                  local experts under expert parallelism and hands them to the executor.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/reference.hpp"
#include "deepshock/gate/reference_stats.hpp"
#include "deepshock/moe/expert.hpp"
#include "deepshock/moe/reference_layer.hpp"

namespace deepshock::moe::host::detail {

/// The adapter table (host memory here, so it can be read): every entry as lora::check_adapter.
template <class T, class ExpertT>
Status check_adapters(const LayerWeights<T, ExpertT>& w) {
  using Adapter = typename ExpertT::adapter;
  if constexpr (Adapter::kRank > 0)
    for (int i = 0; i < w.adapter.count; ++i)
      DEEPSHOCK_RETURN_IF_ERROR(lora::check_adapter(w.adapter.adapters[i], Adapter::kRank, Adapter::kTargets,
                                                    "adapter.adapters[" + std::to_string(i) + "]", /*need_align=*/false));
  (void)w;
  return Status::success();
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
  if (!(p.renorm_eps >= 0.0f && std::isfinite(p.renorm_eps)))
    return Status::invalid_argument("params.renorm_eps", "must be finite and >= 0");
  if (Gate::kCapacity && !(p.capacity_factor > 0.0f && std::isfinite(p.capacity_factor)))
    return Status::invalid_argument("params.capacity_factor", "must be finite and > 0");
  return Status::success();
}

/// Everything a routed run checks: the layer's arguments, the adapters, E and k, and every id
/// (an id < -1 or >= E is an error, reported before anything is written). Then writes
/// out.expert_counts where given (valid assignments per expert).
template <class T, class ExpertT>
Status check_routed(const LayerDims& d, int E, int k, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const int* topk_ids,
                    const float* topk_weights, const LayerOutputs<T>& out) {
  DEEPSHOCK_RETURN_IF_ERROR((moe::detail::check_layer_dims<T, typename ExpertT::codec>(d)));
  DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_run(d, w, in, out, /*routed=*/true, /*need_align=*/false));
  DEEPSHOCK_RETURN_IF_ERROR(check_adapters(w));
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
  return Status::success();
}

/// The gate's checks and the layer's, then the routing by `Gate` on the host (NoisyTopK is
/// training-only: unsupported). Writes out.topk_ids / topk_weights / expert_counts /
/// dropped_count where given, then calls exec(ids, weights, local_experts) with ids mapped to
/// the local experts [expert_begin, expert_end) (others: -1), unless there are no tokens.
template <class Gate, class T, class ExpertT, class Exec>
Status route(const char* who, const LayerDims& d, const gate::PolicyParams& params, const gate::RouterOptions& options,
             const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const LayerOutputs<T>& out, Exec&& exec) {
  if constexpr (Gate::kNoisy) {
    return Status::unsupported(std::string(who) + ": " + Gate::kName +
                               " is a training-time gate (it needs the noise weights); the layer serves inference gates only");
  } else {
    constexpr int E = Gate::kExperts, k = Gate::kTopK;
    DEEPSHOCK_RETURN_IF_ERROR((moe::detail::check_layer_dims<T, typename ExpertT::codec>(d)));
    DEEPSHOCK_RETURN_IF_ERROR(moe::detail::check_layer_run(d, w, in, out, /*routed=*/false, /*need_align=*/false));
    DEEPSHOCK_RETURN_IF_ERROR(check_adapters(w));
    DEEPSHOCK_RETURN_IF_ERROR((check_gate<Gate>(params, options, w)));
    const int T_ = in.tokens, H = d.hidden;
    const std::size_t xs = static_cast<std::size_t>(in.x_stride == 0 ? H : in.x_stride);
    std::vector<T> xp(static_cast<std::size_t>(T_) * H);  // gate_logits reads rows of stride H
    for (int t = 0; t < T_; ++t)
      for (int c = 0; c < H; ++c) xp[static_cast<std::size_t>(t) * H + c] = in.x[t * xs + c];
    const std::vector<double> logits = gate::reference::gate_logits<T>(xp.data(), w.w_gate, T_, H, E, w.w_gate_bias);
    const gate::reference::Routing r = gate::reference::route<Gate>(logits, T_, nullptr, w.gate_bias, params, options, in.token_mask);
    std::vector<int> ids(r.ids);
    std::vector<float> wts(r.weights.begin(), r.weights.end());
    std::vector<int> counts(r.counts);
    int dropped = 0;
    if constexpr (Gate::kCapacity) {
      static_assert(k == 1, "deepshock::moe::host: capacity is defined for top-1 (Switch) gates only.");
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
    if (T_ == 0) return Status::success();
    // Expert parallelism as in the device layer: the weights hold experts [begin, end) only.
    const int begin = options.expert_begin, end = options.expert_end < 0 ? E : options.expert_end;
    if (begin != 0 || end != E)
      for (int& id : ids) id = id >= begin && id < end ? id - begin : -1;
    return exec(ids.data(), wts.data(), end - begin);
  }
}

}  // namespace deepshock::moe::host::detail
