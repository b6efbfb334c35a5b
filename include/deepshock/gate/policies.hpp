// deepshock/gate/policies.hpp — the gating policy catalogue.
//
// A policy is a small type: its compile-time parameters (E, k, groups) and traits select the
// steps of token-choice routing, its run-time `Params` hold the numbers, and its math hooks are
// shared by the fused router kernel, the simulator and the host reference:
//
//   logits l[E] ──score──▶ s[E] ──+bias──▶ key[E] ──groups──▶ top-k on key ──▶ weights from s
//
//   scoring     softmax over E (max-subtracted), sigmoid, or the raw logits
//   bias        DeepSeek-V3's correction bias, added to the selection key only
//   groups      E/G contiguous experts per group; group score = max key (V2) or the sum of the
//               two largest keys (V3); the best `keep` groups stay, the others are masked
//   weights     the chosen scores as they are, renormalised to sum 1 (+ eps), or a softmax over
//               the chosen logits divided by a temperature; then x routed_scaling_factor
//
// Catalogue: SoftmaxTopK (Mixtral, Qwen), TopKSoftmax (temperature), SigmoidTopK,
// DeepSeekV2 (softmax, group max), DeepSeekV3 (sigmoid + bias, group top-2 sum, renorm),
// Switch (top-1 softmax with a capacity), NoisyTopK (Shazeer 2017, Philox noise).
// Expert choice lives in gate/expert_choice.hpp (experts choose tokens: another kernel family).
#pragma once

#include <cmath>
#include <cstdint>

#include "deepshock/core/config.hpp"
#include "deepshock/core/philox.hpp"
#include "deepshock/gate/types.hpp"

namespace deepshock::gate {

enum class Scoring : std::uint8_t { softmax, sigmoid, logits };
enum class GroupScore : std::uint8_t { none, max, top2_sum };
enum class WeightRule : std::uint8_t {
  score,            ///< w = s (optionally renormalised, see Params::renormalize)
  softmax_selected  ///< w = softmax over the chosen keys / temperature
};

/// What every policy shares: the compile-time shape and its checks.
template <class ExpertsT, class TopKT, class GroupsT = NoGroups>
struct PolicyShape {
  static constexpr int kExperts = ExpertsT::value;
  static constexpr int kTopK = TopKT::value;
  static constexpr int kGroups = GroupsT::count;
  static constexpr int kKeepGroups = GroupsT::keep;
  static constexpr int kGroupSize = kExperts / kGroups;
  static_assert(kTopK <= kExperts, "deepshock::gate: top-k must not exceed the number of experts.");
  static_assert(kExperts % kGroups == 0, "deepshock::gate: the experts must split into groups of equal size.");
  static_assert(kTopK <= kKeepGroups * kGroupSize, "deepshock::gate: the kept groups must hold at least k experts.");
};

/// Defaults for the hooks: no bias, no groups, no noise, weights from scores.
struct PolicyDefaults {
  static constexpr bool kRenormalizable = true;  ///< Params::renormalize applies (not to Switch)
  static constexpr bool kUsesBias = false;
  static constexpr bool kNoisy = false;
  static constexpr bool kCapacity = false;
  static constexpr GroupScore kGroupScore = GroupScore::none;
  static constexpr WeightRule kWeightRule = WeightRule::score;
};

/// Run-time numbers a policy may use; each policy documents which.
struct PolicyParams {
  bool renormalize = true;       ///< divide the chosen weights by their sum (+ renorm_eps)
  float renorm_eps = 0.0f;       ///< DeepSeek-V3 kernels add 1e-20
  float temperature = 1.0f;      ///< TopKSoftmax
  float capacity_factor = 1.0f;  ///< Switch
  std::uint64_t seed = 0;        ///< NoisyTopK: Philox key; (seed, token, expert) fixes each draw
};

// ---- math hooks, shared by kernel and reference (F = float in kernels, double in the reference) --
namespace math {
#if DEEPSHOCK_DEVICE_PASS
DEEPSHOCK_HOST_DEVICE float exp(float x) { return ::expf(x); }
DEEPSHOCK_HOST_DEVICE double exp(double x) { return ::exp(x); }
DEEPSHOCK_HOST_DEVICE float log1p(float x) { return ::log1pf(x); }
DEEPSHOCK_HOST_DEVICE double log1p(double x) { return ::log1p(x); }
DEEPSHOCK_HOST_DEVICE bool isfinite(float x) { return ::isfinite(x); }
DEEPSHOCK_HOST_DEVICE float fma(float a, float b, float c) { return ::fmaf(a, b, c); }
#else
DEEPSHOCK_HOST_DEVICE float exp(float x) { return std::exp(x); }
DEEPSHOCK_HOST_DEVICE double exp(double x) { return std::exp(x); }
DEEPSHOCK_HOST_DEVICE float log1p(float x) { return std::log1p(x); }
DEEPSHOCK_HOST_DEVICE double log1p(double x) { return std::log1p(x); }
DEEPSHOCK_HOST_DEVICE bool isfinite(float x) { return std::isfinite(x); }
DEEPSHOCK_HOST_DEVICE float fma(float a, float b, float c) { return std::fma(a, b, c); }
#endif
}  // namespace math

template <class F>
DEEPSHOCK_HOST_DEVICE F sigmoid(F x) {
  return F(1) / (F(1) + math::exp(-x));
}
template <class F>
DEEPSHOCK_HOST_DEVICE F softplus(F x) {
  // log(1 + e^x) without overflow: x + log1p(e^-x) for x > 0.
  return x > F(0) ? x + math::log1p(math::exp(-x)) : math::log1p(math::exp(x));
}
/// Standard normal draw for (token, expert) under `seed`: Philox4x32-10 with counter
/// {expert, token, 0, 0} and key = seed, Box-Muller on the first two words. Identical on host
/// and device.
DEEPSHOCK_HOST_DEVICE float gate_noise(std::uint64_t seed, int token, int expert) {
  const u32x4 r = Philox4x32::generate(u32x4{{static_cast<std::uint32_t>(expert), static_cast<std::uint32_t>(token), 0u, 0u}},
                                       u32x2{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}});
  return box_muller(r.v[0], r.v[1]).x;
}

// ---- the catalogue -------------------------------------------------------------------------

/// Mixtral / Qwen-MoE: p = softmax(l); top-k of p; renormalise if `renormalize` (Qwen's
/// norm_topk_prob). Weights x routed_scaling_factor.
template <class ExpertsT, class TopKT>
struct SoftmaxTopK : PolicyShape<ExpertsT, TopKT>, PolicyDefaults {
  static constexpr Scoring kScoring = Scoring::softmax;
  static constexpr const char* kName = "SoftmaxTopK";
};

/// Top-k on the logits, then w = softmax(l_chosen / temperature) (the seed's DynamicGate).
template <class ExpertsT, class TopKT>
struct TopKSoftmax : PolicyShape<ExpertsT, TopKT>, PolicyDefaults {
  static constexpr Scoring kScoring = Scoring::logits;
  static constexpr WeightRule kWeightRule = WeightRule::softmax_selected;
  static constexpr const char* kName = "TopKSoftmax";
};

/// s = sigmoid(l); top-k of s; renormalise if `renormalize` (off by default: the plain
/// sigmoid router of production models does not renormalise).
template <class ExpertsT, class TopKT>
struct SigmoidTopK : PolicyShape<ExpertsT, TopKT>, PolicyDefaults {
  static constexpr Scoring kScoring = Scoring::sigmoid;
  static constexpr const char* kName = "SigmoidTopK";
  static constexpr PolicyParams default_params() { return PolicyParams{false, 0.0f, 1.0f, 1.0f, 0}; }
};

/// DeepSeek-V2: s = softmax(l); group score = max s in the group; keep `Keep` groups; top-k;
/// weights = s (no renormalisation by default) x routed_scaling_factor (16 for V2-236B).
template <class ExpertsT, class TopKT, class GroupsT>
struct DeepSeekV2 : PolicyShape<ExpertsT, TopKT, GroupsT>, PolicyDefaults {
  static constexpr Scoring kScoring = Scoring::softmax;
  static constexpr GroupScore kGroupScore = GroupScore::max;
  static constexpr const char* kName = "DeepSeekV2";
  static constexpr PolicyParams default_params() { return PolicyParams{false, 0.0f, 1.0f, 1.0f, 0}; }
};

/// DeepSeek-V3: s = sigmoid(l); key = s + bias (bias only chooses); group score = sum of the two
/// largest keys in the group; keep `Keep` groups; top-k on key; weights = s of the chosen,
/// divided by their sum + 1e-20, x routed_scaling_factor (2.5).
template <class ExpertsT, class TopKT, class GroupsT>
struct DeepSeekV3 : PolicyShape<ExpertsT, TopKT, GroupsT>, PolicyDefaults {
  static_assert(GroupsT::count == 1 || ExpertsT::value / GroupsT::count >= 2,
                "deepshock::gate::DeepSeekV3: the top-2 group score needs at least two experts per group.");
  static constexpr Scoring kScoring = Scoring::sigmoid;
  static constexpr bool kUsesBias = true;
  static constexpr GroupScore kGroupScore = GroupsT::count > 1 ? GroupScore::top2_sum : GroupScore::none;
  static constexpr const char* kName = "DeepSeekV3";
  static constexpr PolicyParams default_params() { return PolicyParams{true, 1e-20f, 1.0f, 1.0f, 0}; }
};

/// Switch Transformer: p = softmax(l), top-1, weight p (no renormalisation). Tokens beyond the
/// expert capacity C = ceil(T / E * capacity_factor), by position in token order, are dropped
/// (id -1, weight 0) and reported.
template <class ExpertsT>
struct Switch : PolicyShape<ExpertsT, TopK<1>>, PolicyDefaults {
  static constexpr Scoring kScoring = Scoring::softmax;
  static constexpr bool kRenormalizable = false;  // a renormalised top-1 weight would always be 1
  static constexpr bool kCapacity = true;
  static constexpr const char* kName = "Switch";
  static constexpr PolicyParams default_params() { return PolicyParams{false, 0.0f, 1.0f, 1.0f, 0}; }
};

/// Noisy top-k (Shazeer 2017): h = l + N(0,1) * softplus(l_noise), with l_noise = x . W_noise^T
/// and the normal draw from gate_noise(seed, token, expert); top-k of h; w = softmax over the
/// chosen h. For training. The draws are identical on CPU and GPU for a seed (integer Philox +
/// the library's Box-Muller); softplus and the softmax use each platform's expf/log1pf, so the
/// noisy logits agree to float rounding, not bit for bit.
template <class ExpertsT, class TopKT>
struct NoisyTopK : PolicyShape<ExpertsT, TopKT>, PolicyDefaults {
  static constexpr Scoring kScoring = Scoring::logits;
  static constexpr bool kNoisy = true;
  static constexpr WeightRule kWeightRule = WeightRule::softmax_selected;
  static constexpr const char* kName = "NoisyTopK";
};

/// A policy's default run-time parameters (renormalisation on, eps 0, temperature 1, ...),
/// unless it declares its own `default_params()`.
template <class Policy>
constexpr PolicyParams default_params() {
  if constexpr (requires { Policy::default_params(); }) return Policy::default_params();
  else return PolicyParams{};
}

}  // namespace deepshock::gate
