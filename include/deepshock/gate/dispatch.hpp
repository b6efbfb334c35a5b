// deepshock/gate/dispatch.hpp — routing for configurations known only at run time.
//
// The router is a template on (policy, E, k, groups); a user who reads the model's config at run
// time calls route_dynamic / route_logits_dynamic with a DynamicConfig, and a closed switch maps
// it onto one of a curated set of compiled instantiations: the routers of the model shapes in
// the published models (deepshock/models/presets.hpp). Anything else returns `unsupported` (listing what is compiled), and
// inconsistent values (k > E, groups that do not divide E, ...) return `invalid_argument`.
// To add a configuration, add a row to kDynamicConfigs and a case to the switch in for_config.
#pragma once

#include <array>
#include <string>

#include "deepshock/core/status.hpp"
#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/router.hpp"

namespace deepshock::gate {

enum class PolicyKind : std::uint8_t { softmax_topk, topk_softmax, sigmoid_topk, deepseek_v2, deepseek_v3, switch_top1, noisy_topk };

inline const char* to_string(PolicyKind k) {
  switch (k) {
    case PolicyKind::softmax_topk: return "softmax_topk";
    case PolicyKind::topk_softmax: return "topk_softmax";
    case PolicyKind::sigmoid_topk: return "sigmoid_topk";
    case PolicyKind::deepseek_v2: return "deepseek_v2";
    case PolicyKind::deepseek_v3: return "deepseek_v3";
    case PolicyKind::switch_top1: return "switch_top1";
    case PolicyKind::noisy_topk: return "noisy_topk";
  }
  return "?";
}

/// A routing configuration read at run time.
struct DynamicConfig {
  PolicyKind kind = PolicyKind::softmax_topk;
  int experts = 0;
  int topk = 0;
  int groups = 1;
  int keep_groups = 1;
  const char* model = "";              ///< informative: which model uses it
  bool renormalize = true;             ///< the model's default (see config_params)
  float routed_scaling_factor = 1.0f;  ///< the model's default (see config_options)
  friend bool operator==(const DynamicConfig& a, const DynamicConfig& b) {
    return a.kind == b.kind && a.experts == b.experts && a.topk == b.topk && a.groups == b.groups && a.keep_groups == b.keep_groups;
  }
};

/// The compiled configurations.
inline constexpr std::array<DynamicConfig, 6> kDynamicConfigs{{
    {PolicyKind::softmax_topk, 8, 2, 1, 1, "Mixtral-8x7B", true, 1.0f},
    {PolicyKind::softmax_topk, 64, 6, 1, 1, "DeepSeek-V2-Lite", false, 1.0f},
    {PolicyKind::deepseek_v2, 160, 6, 8, 3, "DeepSeek-V2", false, 16.0f},
    {PolicyKind::deepseek_v3, 256, 8, 8, 4, "DeepSeek-V3", true, 2.5f},
    {PolicyKind::softmax_topk, 128, 8, 1, 1, "Qwen3-30B-A3B", true, 1.0f},
    {PolicyKind::softmax_topk, 60, 4, 1, 1, "Qwen1.5-MoE-A2.7B", false, 1.0f},
}};

/// The model's default policy parameters for a row of kDynamicConfigs (renormalisation; V3's
/// 1e-20 epsilon).
inline PolicyParams config_params(const DynamicConfig& c) {
  PolicyParams p;
  p.renormalize = c.renormalize;
  p.renorm_eps = c.kind == PolicyKind::deepseek_v3 ? 1e-20f : 0.0f;
  return p;
}
/// The model's default router options (the routed scaling factor).
inline RouterOptions config_options(const DynamicConfig& c) {
  RouterOptions o;
  o.routed_scaling_factor = c.routed_scaling_factor;
  return o;
}

/// Checks a run-time configuration for consistency (not for being compiled).
inline Status validate(const DynamicConfig& c) {
  if (c.experts < 2 || c.experts > 1024)
    return Status::invalid_argument("experts", "must be between 2 and 1024, got " + std::to_string(c.experts));
  if (c.topk < 1 || c.topk > 32) return Status::invalid_argument("topk", "must be between 1 and 32, got " + std::to_string(c.topk));
  if (c.topk > c.experts)
    return Status::invalid_argument("topk", "k = " + std::to_string(c.topk) + " exceeds the expert count " + std::to_string(c.experts));
  if (c.groups < 1 || c.experts % c.groups != 0)
    return Status::invalid_argument("groups",
                                    std::to_string(c.groups) + " groups do not split " + std::to_string(c.experts) + " experts evenly");
  if (c.keep_groups < 1 || c.keep_groups > c.groups)
    return Status::invalid_argument("keep_groups", "must be between 1 and groups (" + std::to_string(c.groups) + ")");
  if (c.topk > c.keep_groups * (c.experts / c.groups)) return Status::invalid_argument("topk", "the kept groups hold fewer than k experts");
  return Status::success();
}

#if DEEPSHOCK_HAS_KERNELS
namespace detail {
/// Calls f(Policy{}) for the compiled policy matching `c`.
template <class F>
Status for_config(const DynamicConfig& c, F&& f) {
  DEEPSHOCK_RETURN_IF_ERROR(validate(c));
  if (c == kDynamicConfigs[0]) return f(SoftmaxTopK<Experts<8>, TopK<2>>{});
  if (c == kDynamicConfigs[1]) return f(SoftmaxTopK<Experts<64>, TopK<6>>{});
  if (c == kDynamicConfigs[2]) return f(DeepSeekV2<Experts<160>, TopK<6>, Groups<8, 3>>{});
  if (c == kDynamicConfigs[3]) return f(DeepSeekV3<Experts<256>, TopK<8>, Groups<8, 4>>{});
  if (c == kDynamicConfigs[4]) return f(SoftmaxTopK<Experts<128>, TopK<8>>{});
  if (c == kDynamicConfigs[5]) return f(SoftmaxTopK<Experts<60>, TopK<4>>{});
  std::string list;
  for (const DynamicConfig& d : kDynamicConfigs)
    list += std::string(list.empty() ? "" : ", ") + to_string(d.kind) + " E=" + std::to_string(d.experts) + " k=" + std::to_string(d.topk) +
            (d.groups > 1 ? " groups=" + std::to_string(d.groups) + "/" + std::to_string(d.keep_groups) : "");
  return Status::unsupported(std::string("routing configuration ") + to_string(c.kind) + " E=" + std::to_string(c.experts) +
                             " k=" + std::to_string(c.topk) + " is not compiled; compiled: " + list);
}
}  // namespace detail

/// Routing on precomputed logits for a run-time configuration.
inline Status route_logits_dynamic(const DynamicConfig& c, const PolicyParams& params, const RouterOptions& options, const LogitInputs& in,
                                   const RoutingOutputs& out, void* workspace, std::size_t workspace_size, rt::stream_t stream) {
  return detail::for_config(c, [&](auto policy) {
    return Router<decltype(policy)>(params, options).run_logits(in, out, workspace, workspace_size, stream);
  });
}

/// Fused gate projection + routing for a run-time configuration.
template <class In>
Status route_dynamic(const DynamicConfig& c, const PolicyParams& params, const RouterOptions& options, const GateInputs<In>& in,
                     const RoutingOutputs& out, void* workspace, std::size_t workspace_size, rt::stream_t stream) {
  return detail::for_config(c, [&](auto policy) {
    return Router<decltype(policy)>(params, options).run(in, out, workspace, workspace_size, stream);
  });
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::gate
