// deepshock/gate/reference_stats.hpp — routing statistics and Switch capacity on the host.
//
// This header compiles in every mode (plain host compiler, simulator, nvcc) and needs no CUDA.
// It holds what the kernels in gate/stats.hpp and gate/capacity.hpp share with the host:
//   * limits and the argument checks (one message per bad argument, e.g. "topk_ids: must not be
//     null"), so the device entry points and the reference reject exactly the same calls;
//   * `CapacityOutputs` and `switch_capacity()`;
//   * plain reference implementations (namespace deepshock::gate::reference) with double
//     accumulation: the test oracle and the CPU fallback. They take host pointers, validate like
//     the device entry points and return the same Status.
//
// Semantics (the device entry points document the same):
//   * ids of -1 mean "no expert" and are ignored; ids < -1 or >= E are ignored too (no error:
//     a kernel cannot report per-element errors without a host synchronisation).
//   * T = 0 is valid: outputs take their empty-batch values (counts 0, losses 0).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "deepshock/core/status.hpp"

namespace deepshock::gate {

/// Largest expert count the statistics and capacity functions accept (as deepshock::Experts).
inline constexpr int kMaxStatsExperts = 1024;
/// Largest top-k (row length of topk_ids) they accept (as deepshock::TopK).
inline constexpr int kMaxStatsTopK = 32;

/// Outputs of the Switch capacity step (device pointers for the kernels, host pointers for the
/// reference). Token t routed to expert e = top1_ids[t] gets position[t] = its 0-based rank
/// among the tokens routed to e, in token order; it is dropped when position[t] >= capacity.
struct CapacityOutputs {
  int* position = nullptr;          ///< [T] rank within its expert (kept or not); -1 for ids outside [0, E)
  std::uint8_t* dropped = nullptr;  ///< [T] 1 if dropped, else 0 (0 for ids outside [0, E))
  int* dropped_count = nullptr;     ///< [1] total tokens dropped
  int* kept_counts = nullptr;       ///< [E] tokens kept per expert, min(routed, capacity)
  /// Optional [T]: the entries of dropped tokens become 0 (the token passes on the residual).
  float* topk_weights = nullptr;
  /// Optional [T]: the entries of dropped tokens become -1. May be the same array as the
  /// `top1_ids` input (in-place update).
  int* topk_ids = nullptr;
};

/// Switch capacity `C = ceil(T / E * capacity_factor)`, evaluated exactly in this order in
/// double precision: `std::ceil(double(T) / double(E) * capacity_factor)` (the Switch
/// Transformer's C = ceil(T / E x factor)). Returns -1 for invalid input (T < 0, E < 1, a negative or non-finite factor),
/// which apply_switch_capacity rejects; results beyond INT_MAX saturate.
inline int switch_capacity(int T, int E, double capacity_factor) {
  if (T < 0 || E < 1 || !std::isfinite(capacity_factor) || capacity_factor < 0.0) return -1;
  const double c = std::ceil(static_cast<double>(T) / static_cast<double>(E) * capacity_factor);
  if (c >= static_cast<double>(std::numeric_limits<int>::max())) return std::numeric_limits<int>::max();
  return static_cast<int>(c);
}

namespace detail {
inline Status check_tokens(int T) {
  if (T < 0) return Status::invalid_argument("T", "must be >= 0, got " + std::to_string(T));
  return Status::success();
}
inline Status check_experts(int E) {
  if (E < 1 || E > kMaxStatsExperts)
    return Status::invalid_argument("E", "must be in [1, " + std::to_string(kMaxStatsExperts) + "], got " + std::to_string(E));
  return Status::success();
}
inline Status check_topk(int k) {
  if (k < 1 || k > kMaxStatsTopK)
    return Status::invalid_argument("k", "must be in [1, " + std::to_string(kMaxStatsTopK) + "], got " + std::to_string(k));
  return Status::success();
}
/// Null is an error when the array is required (inputs may be null when they are empty).
inline Status check_pointer(const void* p, const char* name, bool required) {
  if (required && p == nullptr) return Status::invalid_argument(name, "must not be null");
  return Status::success();
}
inline Status check_finite(float v, const char* name) {
  if (!std::isfinite(v)) return Status::invalid_argument(name, "must be finite");
  return Status::success();
}

inline Status check_expert_load_args(const int* topk_ids, int T, int k, int E, const int* counts) {
  DEEPSHOCK_RETURN_IF_ERROR(check_tokens(T));
  DEEPSHOCK_RETURN_IF_ERROR(check_topk(k));
  DEEPSHOCK_RETURN_IF_ERROR(check_experts(E));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(topk_ids, "topk_ids", T > 0));
  return check_pointer(counts, "counts", true);
}
inline Status check_aux_loss_args(const float* logits, const int* topk_ids, int T, int E, int k, float alpha, const float* loss) {
  DEEPSHOCK_RETURN_IF_ERROR(check_tokens(T));
  DEEPSHOCK_RETURN_IF_ERROR(check_experts(E));
  DEEPSHOCK_RETURN_IF_ERROR(check_topk(k));
  DEEPSHOCK_RETURN_IF_ERROR(check_finite(alpha, "alpha"));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(logits, "logits", T > 0));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(topk_ids, "topk_ids", T > 0));
  return check_pointer(loss, "loss", true);
}
inline Status check_z_loss_args(const float* logits, int T, int E, const float* loss) {
  DEEPSHOCK_RETURN_IF_ERROR(check_tokens(T));
  DEEPSHOCK_RETURN_IF_ERROR(check_experts(E));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(logits, "logits", T > 0));
  return check_pointer(loss, "loss", true);
}
inline Status check_bias_update_args(const int* counts, int E, float gamma, const float* bias) {
  DEEPSHOCK_RETURN_IF_ERROR(check_experts(E));
  DEEPSHOCK_RETURN_IF_ERROR(check_finite(gamma, "gamma"));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(counts, "counts", true));
  return check_pointer(bias, "bias", true);
}
inline Status check_capacity_args(const int* top1_ids, int T, int E, int capacity, const CapacityOutputs& out) {
  DEEPSHOCK_RETURN_IF_ERROR(check_tokens(T));
  DEEPSHOCK_RETURN_IF_ERROR(check_experts(E));
  if (capacity < 0) return Status::invalid_argument("capacity", "must be >= 0, got " + std::to_string(capacity));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(top1_ids, "top1_ids", T > 0));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(out.position, "position", T > 0));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(out.dropped, "dropped", T > 0));
  DEEPSHOCK_RETURN_IF_ERROR(check_pointer(out.dropped_count, "dropped_count", true));
  return check_pointer(out.kept_counts, "kept_counts", true);
}
}  // namespace detail

namespace reference {

/// Tokens per expert: counts[e] = number of entries of topk_ids [T, k] equal to e. Ids outside
/// [0, E) (-1 included) are ignored.
inline Status expert_load(const int* topk_ids, int T, int k, int E, int* counts) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_expert_load_args(topk_ids, T, k, E, counts));
  for (int e = 0; e < E; ++e) counts[e] = 0;
  const std::size_t n = static_cast<std::size_t>(T) * static_cast<std::size_t>(k);
  for (std::size_t j = 0; j < n; ++j)
    if (topk_ids[j] >= 0 && topk_ids[j] < E) ++counts[topk_ids[j]];
  return Status::success();
}

/// log(sum_e exp(row[e])) in double, stable (max subtracted first).
inline double logsumexp(const float* row, int E) {
  double m = -std::numeric_limits<double>::infinity();
  for (int e = 0; e < E; ++e) m = row[e] > m ? row[e] : m;
  double s = 0.0;
  for (int e = 0; e < E; ++e) s += std::exp(static_cast<double>(row[e]) - m);
  return m + std::log(s);
}

/// Switch auxiliary loss `alpha * E * sum_i f_i * P_i` with f_i = (tokens whose slot-0 id is i)
/// / T and P_i = mean over all T tokens of softmax(logits[t])_i. All T tokens count in both
/// means (padding included, as HF's Switch); T = 0 gives 0.
inline Status switch_aux_loss(const float* logits, const int* topk_ids, int T, int E, int k, float alpha, double& loss) {
  float dummy = 0.0f;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_aux_loss_args(logits, topk_ids, T, E, k, alpha, &dummy));
  loss = 0.0;
  if (T == 0) return Status::success();
  std::vector<double> P(static_cast<std::size_t>(E), 0.0), f(static_cast<std::size_t>(E), 0.0);
  for (int t = 0; t < T; ++t) {
    const float* row = logits + static_cast<std::size_t>(t) * static_cast<std::size_t>(E);
    const double lse = logsumexp(row, E);
    for (int e = 0; e < E; ++e) P[static_cast<std::size_t>(e)] += std::exp(static_cast<double>(row[e]) - lse);
    const int id = topk_ids[static_cast<std::size_t>(t) * static_cast<std::size_t>(k)];
    if (id >= 0 && id < E) f[static_cast<std::size_t>(id)] += 1.0;
  }
  double sum = 0.0;
  for (int e = 0; e < E; ++e) sum += (f[static_cast<std::size_t>(e)] / T) * (P[static_cast<std::size_t>(e)] / T);
  loss = static_cast<double>(alpha) * E * sum;
  return Status::success();
}

/// Router z-loss `mean_t (logsumexp_e logits[t, e])^2`; T = 0 gives 0.
inline Status router_z_loss(const float* logits, int T, int E, double& loss) {
  float dummy = 0.0f;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_z_loss_args(logits, T, E, &dummy));
  loss = 0.0;
  if (T == 0) return Status::success();
  double sum = 0.0;
  for (int t = 0; t < T; ++t) {
    const double z = logsumexp(logits + static_cast<std::size_t>(t) * static_cast<std::size_t>(E), E);
    sum += z * z;
  }
  loss = sum / T;
  return Status::success();
}

/// Aux-loss-free balancing (DeepSeek-V3): bias[i] += gamma * sign(mean_load - counts[i]) with
/// sign(0) = 0 (the entry is left untouched). The sign is taken exactly in integers,
/// sign(sum(counts) - E * counts[i]); the update is one float addition of +-gamma.
inline Status aux_free_bias_update(const int* counts, int E, float gamma, float* bias) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_bias_update_args(counts, E, gamma, bias));
  long long total = 0;
  for (int e = 0; e < E; ++e) total += counts[e];
  for (int e = 0; e < E; ++e) {
    const long long d = total - static_cast<long long>(E) * counts[e];
    if (d != 0) bias[e] = bias[e] + (d > 0 ? gamma : -gamma);
  }
  return Status::success();
}

/// Switch capacity in token order (see CapacityOutputs). Tokens with ids outside [0, E)
/// (padding -1 included) get position -1, dropped 0, and their optional entries are left as
/// they are. `out.topk_ids` may alias `top1_ids`.
inline Status apply_switch_capacity(const int* top1_ids, int T, int E, int capacity, const CapacityOutputs& out) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_capacity_args(top1_ids, T, E, capacity, out));
  std::vector<int> routed(static_cast<std::size_t>(E), 0);
  int dropped_total = 0;
  for (int t = 0; t < T; ++t) {
    const int id = top1_ids[t];
    if (id < 0 || id >= E) {
      out.position[t] = -1;
      out.dropped[t] = 0;
      continue;
    }
    const int pos = routed[static_cast<std::size_t>(id)]++;
    const bool drop = pos >= capacity;
    out.position[t] = pos;
    out.dropped[t] = drop ? 1 : 0;
    if (drop) {
      ++dropped_total;
      if (out.topk_weights) out.topk_weights[t] = 0.0f;
      if (out.topk_ids) out.topk_ids[t] = -1;
    }
  }
  for (int e = 0; e < E; ++e)
    out.kept_counts[e] = routed[static_cast<std::size_t>(e)] < capacity ? routed[static_cast<std::size_t>(e)] : capacity;
  *out.dropped_count = dropped_total;
  return Status::success();
}

}  // namespace reference
}  // namespace deepshock::gate
