// deepshock/fair/postprocess.hpp — fairness post-processing: per-group thresholds for
// demographic parity, the `GroupThreshold` score policy, and FA*IR fair top-k re-ranking.
//
//   * per_group_thresholds (host): on calibration data, one threshold per group so that each
//     group's selection rate is as close as possible to a common target rate r (a deterministic
//     single threshold per group; Fairlearn's ThresholdOptimizer instead mixes two thresholds at
//     random to hit r exactly). overall_selection_rate gives a natural r: the rate a single global
//     threshold achieves on the same data.
//   * GroupThreshold (host and device): a policy (policy/concept.hpp) mapping a score x of an
//     element in group g to x - thresholds[g]; the element is selected when the result is >= 0.
//   * fair_topk (device): FA*IR (Zehlike et al., CIKM 2017) on [rows, n] candidate lists, one
//     thread block per row, with a table from fair_mtable / fair_adjusted_mtable
//     (fair/reference.hpp) computed once on the host and copied to the device.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/fair/reference.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/block.hpp"
#endif

namespace deepshock::fair {

/// Fraction of scores[0, n) with score >= threshold (host arrays; NaN scores are not selected).
inline Status overall_selection_rate(const float* scores, long long n, float threshold, double& rate) {
  if (n < 1) return Status::invalid_argument("n", "must be >= 1, got " + std::to_string(n));
  if (scores == nullptr) return Status::invalid_argument("scores", "must not be null");
  if (std::isnan(threshold)) return Status::invalid_argument("threshold", "must not be NaN");
  long long sel = 0;
  for (long long j = 0; j < n; ++j) sel += scores[j] >= threshold ? 1 : 0;
  rate = static_cast<double>(sel) / static_cast<double>(n);
  return Status::success();
}

/// Per-group thresholds for a common selection rate `target_rate` in [0, 1], from calibration
/// data on the host: scores [n] (finite) and group ids [n] in [0, G). For a group of size n_g,
/// the selection counts a threshold can produce are 0 and c(v) = #{scores >= v} for each distinct
/// score v of the group (ties move together). The count c closest to target_rate * n_g is chosen;
/// at equal distance the smaller count (the higher threshold). Its threshold is v itself (so
/// `score >= threshold` selects exactly c(v)), or, for c = 0, the next float above the group's
/// maximum. A group without calibration samples gets `empty_group_threshold`.
/// `achieved_rates` (optional, [G]) receives c / n_g, NaN for an empty group.
inline Status per_group_thresholds(const float* scores, const int* groups, long long n, int G, double target_rate,
                                   float empty_group_threshold, float* thresholds, double* achieved_rates = nullptr) {
  if (n < 0) return Status::invalid_argument("n", "must be >= 0, got " + std::to_string(n));
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_groups(G, "G"));
  if (!(target_rate >= 0.0 && target_rate <= 1.0))
    return Status::invalid_argument("target_rate", "must be in [0, 1], got " + std::to_string(target_rate));
  if (n > 0 && scores == nullptr) return Status::invalid_argument("scores", "must not be null");
  if (n > 0 && groups == nullptr) return Status::invalid_argument("groups", "must not be null");
  if (thresholds == nullptr) return Status::invalid_argument("thresholds", "must not be null");
  std::vector<std::vector<float>> by_group(static_cast<std::size_t>(G));
  for (long long j = 0; j < n; ++j) {
    if (groups[j] < 0 || groups[j] >= G)
      return Status::invalid_argument("groups", "element " + std::to_string(j) + " is " + std::to_string(groups[j]) + ", outside [0, " +
                                                    std::to_string(G) + ")");
    if (!std::isfinite(scores[j])) return Status::invalid_argument("scores", "element " + std::to_string(j) + " is not finite");
    by_group[static_cast<std::size_t>(groups[j])].push_back(scores[j]);
  }
  for (std::size_t g = 0; g < by_group.size(); ++g) {
    std::vector<float>& s = by_group[g];
    if (s.empty()) {
      thresholds[g] = empty_group_threshold;
      if (achieved_rates) achieved_rates[g] = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    std::sort(s.begin(), s.end(), [](float a, float b) { return a > b; });
    const double ng = static_cast<double>(s.size()), want = target_rate * ng;
    std::size_t best_c = 0;  // count 0: threshold just above the maximum
    float best_t = std::nextafter(s[0], std::numeric_limits<float>::infinity());
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (i + 1 < s.size() && s[i + 1] == s[i]) continue;  // c(v) counts every tie of v
      const std::size_t c = i + 1;
      if (std::fabs(static_cast<double>(c) - want) < std::fabs(static_cast<double>(best_c) - want)) best_c = c, best_t = s[i];
    }
    thresholds[g] = best_t;
    if (achieved_rates) achieved_rates[g] = static_cast<double>(best_c) / ng;
  }
  return Status::success();
}

/// Group-dependent decision threshold as a score policy: apply(x) = x - thresholds[g], where g is
/// group[row] (Axis::row: one group per row, e.g. one person per row) or group[col]
/// (Axis::column: one group per candidate column). A result >= 0 means "selected", which agrees
/// with `x >= thresholds[g]` for finite values (a float difference of distinct floats is never
/// 0 without flush-to-zero). A group id outside [0, num_groups) gives NaN (never selected): the
/// policy cannot report it, so check ids beforehand.
struct GroupThreshold {
  static constexpr const char* kName = "GroupThreshold";
  enum class Axis : int { row = 0, column = 1 };
  struct Params {
    const float* thresholds = nullptr;  ///< [num_groups] device (host for the reference)
    const int* group = nullptr;         ///< [rows] for Axis::row, [vocab] for Axis::column
    int num_groups = 0;                 ///< in [1, kMaxGroups]
    Axis axis = Axis::column;
  };
  static Status validate(const Params& p, int rows, int vocab) {
    if (rows < 0) return Status::invalid_argument("rows", "must be >= 0, got " + std::to_string(rows));
    if (vocab < 0) return Status::invalid_argument("vocab", "must be >= 0, got " + std::to_string(vocab));
    if (p.axis != Axis::row && p.axis != Axis::column) return Status::invalid_argument("axis", "must be Axis::row or Axis::column");
    DEEPSHOCK_RETURN_IF_ERROR(detail::check_groups(p.num_groups));
    if (p.thresholds == nullptr) return Status::invalid_argument("thresholds", "must not be null");
    if (p.group == nullptr && (p.axis == Axis::row ? rows : vocab) > 0) return Status::invalid_argument("group", "must not be null");
    return Status::success();
  }
  DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x) {
    const int g = p.axis == Axis::row ? p.group[row] : p.group[col];
    if (g < 0 || g >= p.num_groups) return std::numeric_limits<float>::quiet_NaN();
    return x - p.thresholds[g];
  }
};

#if DEEPSHOCK_HAS_KERNELS
namespace detail {
inline constexpr int kFairThreads = 256;
}  // namespace detail

namespace kernels {

/// One block per row. Phase 1 (all threads): each candidate's rank within its group — a block
/// scan of the protected flags when presorted, else a count of the same-group candidates that
/// rank before it (O(n) per candidate) — and the ids of each group's first k candidates in
/// shared memory (lists[0..k): non-protected, lists[k..2k): protected). Phase 2 (thread 0): the
/// greedy merge of fair/reference.hpp, k steps, writing out_index and feasible.
template <int Threads>
DEEPSHOCK_KERNEL void fair_topk_kernel(const float* scores, const std::uint8_t* is_protected, const int* mtable, int n, int k,
                                       int presorted, int* out_index, std::uint8_t* feasible) {
  __shared__ int scratch[block::kScratchWords];
  int* lists = dynamic_smem<int>();
  const int tid = static_cast<int>(threadIdx.x);
  const long long row = blockIdx.x;
  const std::uint8_t* pr = is_protected + row * n;
  const float* s = presorted ? nullptr : scores + row * n;
  int num_protected = 0;
  if (presorted) {
    for (int t0 = 0; t0 < n; t0 += Threads) {  // uniform trip count: every thread reaches the scan
      const int j = t0 + tid;
      const int flag = j < n && pr[j] != 0 ? 1 : 0;
      int total = 0;
      const int before = block::exclusive_scan_sum(flag, total, scratch);
      if (j < n) {
        const int rank = flag ? num_protected + before : j - (num_protected + before);
        if (rank < k) lists[flag * k + rank] = j;
      }
      num_protected += total;
    }
  } else {
    int mine = 0;
    for (int j = tid; j < n; j += Threads) {
      const bool f = pr[j] != 0;
      const float sj = s[j];
      int rank = 0;
      for (int l = 0; l < n; ++l) rank += ((pr[l] != 0) == f && ranks_before(s[l], l, sj, j)) ? 1 : 0;
      if (rank < k) lists[(f ? k : 0) + rank] = j;
      mine += f ? 1 : 0;
    }
    num_protected = block::reduce_sum(mine, scratch);
  }
  __syncthreads();
  if (tid != 0) return;
  // Heads of the two lists as two scalars (indexing a head[2] array by g would put it in local
  // memory).
  const int avail_n = n - num_protected < k ? n - num_protected : k, avail_p = num_protected < k ? num_protected : k;
  int head_n = 0, head_p = 0;
  bool ok = true;
  for (int i = 0; i < k; ++i) {
    const bool has_p = head_p < avail_p, has_n = head_n < avail_n;
    int g = 0;
    if (!has_p) {
      g = 0;
    } else if (!has_n || head_p < mtable[i]) {
      g = 1;
    } else {
      const int a = lists[k + head_p], b = lists[head_n];
      g = (presorted ? a < b : ranks_before(s[a], a, s[b], b)) ? 1 : 0;
    }
    out_index[row * k + i] = g ? lists[k + head_p] : lists[head_n];
    if (g) ++head_p;
    else ++head_n;
    if (head_p < mtable[i]) ok = false;
  }
  if (feasible != nullptr) feasible[row] = ok ? 1 : 0;
}

}  // namespace kernels

/// FA*IR fair top-k on the device: `a` holds device arrays (FairTopkArgs in fair/reference.hpp);
/// the result equals fair::reference::fair_topk on the same data, bit for bit. `mtable` [k] is a
/// device copy of a table from fair_mtable / fair_adjusted_mtable (any table is accepted; one
/// that check_mtable rejects may leave rows infeasible). Cost per row: O(n^2 / 256) comparisons
/// unless presorted (then O(n)), plus k sequential merge steps; shared memory 8k bytes.
/// rows = 0 does nothing. Never synchronises the host.
inline Status fair_topk(const FairTopkArgs& a, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_fair_topk_args(a));
  if (a.rows == 0) return Status::success();
  const std::size_t smem = 2 * static_cast<std::size_t>(a.k) * sizeof(int);
  return launch(kernels::fair_topk_kernel<detail::kFairThreads>,
                {dim3(static_cast<unsigned>(a.rows)), dim3(detail::kFairThreads), smem, stream}, a.scores, a.is_protected, a.mtable, a.n,
                a.k, a.presorted ? 1 : 0, a.out_index, a.feasible);
}
#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::fair
