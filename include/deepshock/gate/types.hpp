// deepshock/gate/types.hpp — compile-time routing parameters and the run-time options and
// outputs shared by every router.
//
// Conventions (all routers):
//   * ids are int32, weights float32, counts int32; [T, k] arrays are row-major.
//   * an id of -1 marks "no expert" (a masked padding token, an expert outside this rank's
//     expert-parallel range, or fewer than k selectable experts); its weight is 0.
//   * ties between equal selection keys go to the lower expert (or token) index; results are
//     bitwise reproducible run to run.
//   * non-finite logits (NaN, +-Inf) are never selected while a finite one remains; they are
//     counted in `nonfinite_count` when that pointer is given.
#pragma once

#include <cstdint>

namespace deepshock {

/// Number of routed experts, 2 to 1024 (any value, not only powers of two).
template <int E>
struct Experts {
  static_assert(E >= 2 && E <= 1024, "deepshock::Experts<E>: the expert count must be between 2 and 1024.");
  static constexpr int value = E;
};

/// Experts chosen per token, 1 to 32.
template <int K>
struct TopK {
  static_assert(K >= 1 && K <= 32, "deepshock::TopK<K>: top-k must be between 1 and 32.");
  static constexpr int value = K;
};

/// Group-limited routing: experts split into `G` equal contiguous groups, of which each token
/// keeps the best `Keep` before choosing its experts.
template <int G, int Keep>
struct Groups {
  static_assert(G >= 1 && G <= 64, "deepshock::Groups<G, Keep>: between 1 and 64 groups.");
  static_assert(Keep >= 1 && Keep <= G, "deepshock::Groups<G, Keep>: keep between 1 and G groups.");
  static constexpr int count = G;
  static constexpr int keep = Keep;
};
/// No grouping.
using NoGroups = Groups<1, 1>;

}  // namespace deepshock

namespace deepshock::gate {

/// Run-time options common to token-choice routers.
struct RouterOptions {
  /// Multiplies every routed weight (DeepSeek-V2: 16, V3: 2.5).
  float routed_scaling_factor = 1.0f;
  /// Expert-parallel range [expert_begin, expert_end): ids outside become -1 (weight 0) after
  /// global selection and normalisation; counts cover only the range. expert_end = -1 means E.
  int expert_begin = 0;
  int expert_end = -1;
  /// Optional device array [T]: a non-zero entry marks a padding token (ids -1, weights 0,
  /// not counted).
  const std::uint8_t* token_mask = nullptr;
  /// Router::run's decode path (projection kernel, then routing kernel): launch the routing
  /// kernel as a programmatic dependent launch (LaunchConfig::dependent, Hopper and newer), so
  /// that it is scheduled during the projection's tail; it waits for the projection before
  /// reading the logits, so the results are the same. false: plain stream order.
  bool dependent_launch = true;
  /// Router::run projects every T with the same fused kernel (tensor cores where the inputs
  /// allow, else FMA), never with the decode path's split projection, whose summation order
  /// differs: a token's logits, hence its experts and weights, then do not depend on how many
  /// tokens share the call. What a server that batches requests (serve/) or an expert-parallel
  /// layer checked against one rank (ep/) needs for bitwise batch invariance; it costs
  /// decode-size runs the decode path's spread over the weights.
  bool batch_invariant = false;
};

/// Device pointers a token-choice router writes.
struct RoutingOutputs {
  int* topk_ids = nullptr;         ///< [T, k], required
  float* topk_weights = nullptr;   ///< [T, k], required
  int* expert_counts = nullptr;    ///< [E] tokens per expert (zeroed by the router); optional
  int* nonfinite_count = nullptr;  ///< [1] number of non-finite logits seen; optional
  // Switch (capacity) only; optional: without them the router keeps them in its workspace.
  std::uint8_t* dropped = nullptr;  ///< [T] 1 where the token was dropped for capacity
  int* dropped_count = nullptr;     ///< [1] tokens dropped
};

}  // namespace deepshock::gate
