// deepshock/fair/reference.hpp — group fairness metrics and FA*IR on the host (plain C++, double).
//
// This header compiles in every mode (host compiler, simulator, nvcc) and needs no CUDA. It holds
// what the kernels of fair/metrics.hpp and fair/postprocess.hpp share with the host:
//   * limits, argument structs and argument checks (one message per bad argument, naming it), so
//     the device entry points and the reference reject exactly the same calls;
//   * the tally layout and `finish_metrics`, which turns integer tallies into rates and gaps;
//   * the FA*IR tables (Zehlike et al., CIKM 2017), computed on the host only;
//   * reference implementations (namespace reference): the test oracle and the CPU fallback.
//
// Metric definitions (as Fairlearn defines them). Per group g, with n_g members, s_g selected,
// P_g labelled positive, TP_g selected positives, FP_g selected negatives:
//   selection rate s_g / n_g, TPR TP_g / P_g, FPR FP_g / (n_g - P_g);
//   demographic-parity difference = max_g rate - min_g rate, ratio = min / max;
//   equalized-odds difference = max(TPR gap, FPR gap), gap = max_g - min_g.
// A rate whose denominator is 0 (an empty group; no positives or no negatives) is NaN and is left
// out of every max / min. A gap over no defined rate is NaN; the ratio is NaN when max is 0
// (0/0: every group selects nobody) or undefined. The equalized-odds difference ignores a NaN
// gap unless both are NaN. Without labels, TPR, FPR and their gaps are NaN.
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

namespace deepshock::fair {

/// Most groups the metrics, thresholds and policy accept (the kernel keeps tallies in shared memory).
inline constexpr int kMaxGroups = 1024;
/// Longest fair top-k list (the kernel keeps 2k candidate ids in shared memory).
inline constexpr int kMaxFairK = 4096;
/// Most elements one metrics call takes (per-block shared tallies are 32-bit).
inline constexpr long long kMaxMetricsElements = 1LL << 40;

/// Fields of the tally array: field f of group g lives at [f * G + g]; the word after the last
/// field, [kTallyFields * G], counts elements whose group id is outside [0, G).
enum TallyField : int { kCount = 0, kSelected, kPositives, kTruePositives, kFalsePositives, kTallyFields };
/// Length of the tally array (unsigned 64-bit words) for G groups.
inline constexpr std::size_t tally_words(int G) { return static_cast<std::size_t>(kTallyFields) * static_cast<std::size_t>(G) + 1; }

/// Inputs of the group metrics. Device pointers for the kernels, host pointers for the reference.
/// Decisions come either from `predictions` (non-zero = selected) or from `score >= threshold`
/// (a NaN score is never selected); exactly one of the two arrays is given.
struct MetricsInput {
  const float* score = nullptr;               ///< [n] scores; null when predictions are given
  const std::uint8_t* predictions = nullptr;  ///< [n] decisions; null when scores are given
  const int* group = nullptr;                 ///< [n] group ids, expected in [0, num_groups)
  const std::uint8_t* label = nullptr;        ///< [n] optional ground truth, non-zero = positive
  long long n = 0;                            ///< number of elements (0 is valid)
  int num_groups = 0;                         ///< G, in [1, kMaxGroups]
  float threshold = 0.5f;                     ///< decision threshold on score (not NaN)
};

/// Per-group tallies and rates, and the gaps across groups (see the top of this file).
struct GroupMetrics {
  std::vector<unsigned long long> count, selected, positives, true_positives, false_positives;
  std::vector<double> selection_rate, tpr, fpr;
  double dp_difference = 0, dp_ratio = 0, tpr_difference = 0, fpr_difference = 0, eo_difference = 0;
  int nonempty_groups = 0;
};

/// Strict total order of candidates used by FA*IR: higher score first, NaN after every number,
/// then the lower index. Shared by the kernel and the reference.
DEEPSHOCK_HOST_DEVICE bool ranks_before(float sa, int ia, float sb, int ib) {
  const bool a_nan = !(sa == sa), b_nan = !(sb == sb);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && sa != sb) return sa > sb;
  return ia < ib;
}

/// Arguments of FA*IR re-ranking: each of `rows` rows holds n candidates; the output is the
/// fair top-k of each row as column indices. With `presorted` the given column order is the
/// ranking (scores are not read and may be null); otherwise candidates are ordered by
/// ranks_before on `scores`. `mtable[i-1]` is m(i), the protected count prefix i needs.
struct FairTopkArgs {
  const float* scores = nullptr;               ///< [rows, n] row-major (unused when presorted)
  const std::uint8_t* is_protected = nullptr;  ///< [rows, n] non-zero = protected candidate
  const int* mtable = nullptr;                 ///< [k] minimum protected counts per prefix
  int rows = 0, n = 0, k = 0;
  bool presorted = false;
  int* out_index = nullptr;          ///< [rows, k] chosen column indices, best first
  std::uint8_t* feasible = nullptr;  ///< optional [rows]: 1 if every prefix meets m(i)
};

namespace detail {
inline Status check_groups(int G, const char* name = "num_groups") {
  if (G < 1 || G > kMaxGroups)
    return Status::invalid_argument(name, "must be in [1, " + std::to_string(kMaxGroups) + "], got " + std::to_string(G));
  return Status::success();
}
inline Status check_metrics_input(const MetricsInput& in) {
  if (in.n < 0 || in.n > kMaxMetricsElements) return Status::invalid_argument("n", "must be in [0, 2^40], got " + std::to_string(in.n));
  DEEPSHOCK_RETURN_IF_ERROR(check_groups(in.num_groups));
  if (in.score != nullptr && in.predictions != nullptr)
    return Status::invalid_argument("score", "must be null when predictions are given (one source of decisions)");
  if (in.n > 0 && in.group == nullptr) return Status::invalid_argument("group", "must not be null");
  if (in.n > 0 && in.score == nullptr && in.predictions == nullptr)
    return Status::invalid_argument("score", "must not be null unless predictions are given");
  if (in.predictions == nullptr && std::isnan(in.threshold)) return Status::invalid_argument("threshold", "must not be NaN");
  return Status::success();
}
inline Status check_probability(double v, const char* name) {
  if (!(v > 0.0 && v < 1.0)) return Status::invalid_argument(name, "must be in the open interval (0, 1), got " + std::to_string(v));
  return Status::success();
}
inline Status check_table_args(int k, double p, double alpha) {
  if (k < 1 || k > kMaxFairK)
    return Status::invalid_argument("k", "must be in [1, " + std::to_string(kMaxFairK) + "], got " + std::to_string(k));
  DEEPSHOCK_RETURN_IF_ERROR(check_probability(p, "p"));
  return check_probability(alpha, "alpha");
}
inline Status check_fair_topk_args(const FairTopkArgs& a) {
  if (a.rows < 0) return Status::invalid_argument("rows", "must be >= 0, got " + std::to_string(a.rows));
  if (a.n < 1) return Status::invalid_argument("n", "must be >= 1, got " + std::to_string(a.n));
  if (a.k < 1 || a.k > a.n || a.k > kMaxFairK)
    return Status::invalid_argument("k", "must be in [1, min(n, " + std::to_string(kMaxFairK) + ")], got " + std::to_string(a.k) +
                                             " with n = " + std::to_string(a.n));
  if (a.mtable == nullptr) return Status::invalid_argument("mtable", "must not be null");
  if (a.rows == 0) return Status::success();
  if (!a.presorted && a.scores == nullptr) return Status::invalid_argument("scores", "must not be null unless presorted");
  if (a.is_protected == nullptr) return Status::invalid_argument("is_protected", "must not be null");
  if (a.out_index == nullptr) return Status::invalid_argument("out_index", "must not be null");
  return Status::success();
}

/// Entries below this are dropped from the binomial rows (they are far below any alpha used and
/// would otherwise turn into slow subnormal arithmetic).
inline constexpr double kTiny = 1e-290;

/// m_a(i) for i = 1..k: the smallest m with F(m; i, p) > a, F the binomial CDF. Rows of the
/// binomial pmf come from the all-positive recurrence pmf_i(x) = q pmf_{i-1}(x) + p pmf_{i-1}(x-1)
/// (relative error <= i ulp, no cancellation), kept on the window of entries >= kTiny.
inline void mtable_for(int k, double p, double a, int* m) {
  const double q = 1.0 - p;
  std::vector<double> row(static_cast<std::size_t>(k) + 2, 0.0);
  row[0] = 1.0;
  int lo = 0, hi = 0;  // live window of row; entries outside it are 0
  for (int i = 1; i <= k; ++i) {
    for (int x = hi + 1; x > lo; --x) row[x] = q * row[x] + p * row[x - 1];
    row[lo] *= q;
    ++hi;
    while (lo < hi && row[lo] < kTiny) row[lo++] = 0.0;
    while (hi > lo && row[hi] < kTiny) row[hi--] = 0.0;
    double F = 0.0;  // the dropped mass below lo is < k * kTiny, i.e. 0 against any a
    int x = lo;
    for (; x <= hi; ++x) {
      F += row[x];
      if (F > a) break;
    }
    m[i - 1] = std::min(x, i);
  }
}

/// Probability that a ranking whose k positions are independently protected with probability p
/// fails some prefix test of table m (X_i < m[i-1] for some i, X_i the protected count of the
/// first i positions). Exact dynamic program over X_i: states below m(i) are removed (their mass
/// is the failure) and the rest move on; O(k * width) with width <= k.
inline double failure_probability(const int* m, int k, double p) {
  const double q = 1.0 - p;
  std::vector<double> s(static_cast<std::size_t>(k) + 2, 0.0);
  s[0] = 1.0;
  int lo = 0, hi = 0;
  double fail = 0.0;
  for (int i = 1; i <= k; ++i) {
    for (int x = hi + 1; x > lo; --x) s[x] = q * s[x] + p * s[x - 1];
    s[lo] *= q;
    ++hi;
    while (lo <= hi && lo < m[i - 1]) {
      fail += s[lo];
      s[lo++] = 0.0;
    }
    if (lo > hi) break;                              // every path failed
    while (hi > lo && s[hi] < kTiny) s[hi--] = 0.0;  // far above the table: negligible mass
  }
  return std::min(fail, 1.0);
}
}  // namespace detail

/// Unadjusted FA*IR table m_{alpha,p}(i) = F^{-1}(alpha; i, p) for prefixes i = 1..k, written to
/// m[0..k): the smallest count m with BinomCDF(m; i, p) > alpha (the paper's fair-representation
/// test passes when F(tau_p; i, p) > alpha). Example (paper's Table 2), p = 0.5, alpha = 0.1,
/// k = 12: 0 0 0 1 1 1 2 2 3 3 3 4. Needs k in [1, kMaxFairK], p and alpha in (0, 1).
inline Status fair_mtable(int k, double p, double alpha, int* m) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_table_args(k, p, alpha));
  if (m == nullptr) return Status::invalid_argument("m", "must not be null");
  detail::mtable_for(k, p, alpha, m);
  return Status::success();
}

/// Probability that a fair ranking (each position protected with probability p) fails at least
/// one prefix test of table m[0..k) (see detail::failure_probability).
inline Status fair_failure_probability(const int* m, int k, double p, double& probability) {
  if (k < 1 || k > kMaxFairK) return Status::invalid_argument("k", "must be in [1, " + std::to_string(kMaxFairK) + "]");
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_probability(p, "p"));
  if (m == nullptr) return Status::invalid_argument("m", "must not be null");
  probability = detail::failure_probability(m, k, p);
  return Status::success();
}

/// A FA*IR table adjusted for multiple testing.
struct FairTable {
  std::vector<int> m;                ///< m(i) for prefixes i = 1..k (m[i-1])
  double alpha_c = 0.0;              ///< a corrected significance at which `m` is the table
  double failure_probability = 0.0;  ///< P(a fair ranking fails some prefix of m), <= alpha
};

/// The multiple-testing adjustment of FA*IR: testing k prefixes at level alpha rejects a fair
/// ranking with probability above alpha, so the table uses a corrected alpha_c <= alpha. As a
/// function of alpha_c the table is a step function (it steps at the values F(x; i, p)) and its
/// failure probability is non-decreasing, so the result is the largest table whose failure
/// probability (computed exactly by the dynamic program) is <= alpha, found by binary search on
/// alpha_c in [0, alpha] until the tables at the two ends of the bracket differ in one entry by
/// one (then no table lies between them). alpha_c is the lower end of that bracket: every level
/// from it up to (not including) the next step gives the same table. When the unadjusted table
/// already fails with probability <= alpha, alpha_c = alpha. Cost O(k * k) per step, about 25-40
/// steps; k = 4096 takes well under a second.
inline Status fair_adjusted_mtable(int k, double p, double alpha, FairTable& out) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_table_args(k, p, alpha));
  std::vector<int> hi_m(static_cast<std::size_t>(k)), lo_m(static_cast<std::size_t>(k), 0), mid_m(static_cast<std::size_t>(k));
  detail::mtable_for(k, p, alpha, hi_m.data());
  const double f_alpha = detail::failure_probability(hi_m.data(), k, p);
  if (f_alpha <= alpha) {
    out = FairTable{hi_m, alpha, f_alpha};
    return Status::success();
  }
  double lo = 0.0, hi = alpha, f_lo = 0.0;  // invariant: fail(lo) <= alpha < fail(hi); table(0) = zeros
  const auto steps_between = [&] {
    long long d = 0;
    for (int i = 0; i < k; ++i) d += hi_m[static_cast<std::size_t>(i)] - lo_m[static_cast<std::size_t>(i)];
    return d;
  };
  for (int iter = 0; iter < 400 && steps_between() > 1; ++iter) {
    const double mid = lo + (hi - lo) / 2;
    if (!(mid > lo && mid < hi)) break;  // bracket at double resolution
    detail::mtable_for(k, p, mid, mid_m.data());
    if (mid_m == lo_m) {
      lo = mid;
    } else if (mid_m == hi_m) {
      hi = mid;
    } else if (const double f = detail::failure_probability(mid_m.data(), k, p); f <= alpha) {
      lo = mid, f_lo = f, lo_m.swap(mid_m);
    } else {
      hi = mid, hi_m.swap(mid_m);
    }
  }
  out = FairTable{lo_m, lo, f_lo};
  return Status::success();
}

/// Checks that m[0..k) is a table FA*IR can always satisfy given enough protected candidates:
/// m(1) in {0, 1} and each step up by 0 or 1. Tables from fair_mtable / fair_adjusted_mtable pass.
inline Status check_mtable(const int* m, int k) {
  if (m == nullptr) return Status::invalid_argument("mtable", "must not be null");
  for (int i = 0; i < k; ++i) {
    const int prev = i == 0 ? 0 : m[i - 1];
    if (m[i] < prev || m[i] > prev + 1)
      return Status::invalid_argument("mtable", "entry " + std::to_string(i) + " is " + std::to_string(m[i]) + " after " +
                                                    std::to_string(prev) + " (steps must be 0 or 1)");
  }
  return Status::success();
}

/// Rates and gaps from the integer tallies (layout of TallyField; a host copy of what
/// fair::group_tallies wrote). `has_labels` says whether labels were given. Fails naming `group`
/// when some element's group id was outside [0, G) (the tallies then miss those elements), and
/// naming `tallies` when they are inconsistent (e.g. selected > count: not a tally array).
inline Status finish_metrics(const unsigned long long* tallies, int G, bool has_labels, GroupMetrics& out) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_groups(G));
  if (tallies == nullptr) return Status::invalid_argument("tallies", "must not be null");
  const std::size_t ng = static_cast<std::size_t>(G);
  if (const unsigned long long bad = tallies[kTallyFields * ng]; bad != 0)
    return Status::invalid_argument("group", std::to_string(bad) + " element(s) have a group id outside [0, " + std::to_string(G) + ")");
  const auto field = [&](int f) { return std::vector<unsigned long long>(tallies + f * ng, tallies + (f + 1) * ng); };
  out.count = field(kCount), out.selected = field(kSelected), out.positives = field(kPositives);
  out.true_positives = field(kTruePositives), out.false_positives = field(kFalsePositives);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.selection_rate.assign(ng, nan), out.tpr.assign(ng, nan), out.fpr.assign(ng, nan);
  out.nonempty_groups = 0;
  for (std::size_t g = 0; g < ng; ++g) {
    const unsigned long long n = out.count[g], pos = out.positives[g];
    if (out.selected[g] > n || pos > n || out.true_positives[g] > pos || out.false_positives[g] > n - pos ||
        (has_labels && out.true_positives[g] + out.false_positives[g] != out.selected[g]) ||
        (!has_labels && (pos | out.true_positives[g] | out.false_positives[g]) != 0))
      return Status::invalid_argument("tallies", "group " + std::to_string(g) + " has inconsistent counts");
    if (n == 0) continue;
    ++out.nonempty_groups;
    out.selection_rate[g] = static_cast<double>(out.selected[g]) / static_cast<double>(n);
    if (has_labels && pos > 0) out.tpr[g] = static_cast<double>(out.true_positives[g]) / static_cast<double>(pos);
    if (has_labels && n - pos > 0) out.fpr[g] = static_cast<double>(out.false_positives[g]) / static_cast<double>(n - pos);
  }
  struct Range {
    double lo, hi;
  };
  const auto range = [&](const std::vector<double>& v) {
    Range r{nan, nan};
    for (double x : v)
      if (!std::isnan(x)) r = std::isnan(r.lo) ? Range{x, x} : Range{std::min(r.lo, x), std::max(r.hi, x)};
    return r;
  };
  const Range sr = range(out.selection_rate), tr = range(out.tpr), fr = range(out.fpr);
  out.dp_difference = sr.hi - sr.lo;  // NaN - NaN = NaN when no group is defined
  out.dp_ratio = sr.hi > 0.0 ? sr.lo / sr.hi : nan;
  out.tpr_difference = tr.hi - tr.lo;
  out.fpr_difference = fr.hi - fr.lo;
  out.eo_difference = std::isnan(out.tpr_difference)   ? out.fpr_difference
                      : std::isnan(out.fpr_difference) ? out.tpr_difference
                                                       : std::max(out.tpr_difference, out.fpr_difference);
  return Status::success();
}

namespace reference {

/// Tallies as fair::group_tallies computes them (host arrays; `tallies` is resized to tally_words(G)).
inline Status group_tallies(const MetricsInput& in, std::vector<unsigned long long>& tallies) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_metrics_input(in));
  const int G = in.num_groups;
  tallies.assign(tally_words(G), 0);
  const auto at = [&](int f, int g) -> unsigned long long& {
    return tallies[static_cast<std::size_t>(f) * static_cast<std::size_t>(G) + static_cast<std::size_t>(g)];
  };
  for (long long j = 0; j < in.n; ++j) {
    const int g = in.group[j];
    if (g < 0 || g >= G) {
      ++tallies.back();
      continue;
    }
    const bool sel = in.predictions ? in.predictions[j] != 0 : in.score[j] >= in.threshold;
    ++at(kCount, g);
    if (sel) ++at(kSelected, g);
    if (in.label == nullptr) continue;
    const bool pos = in.label[j] != 0;
    if (pos) ++at(kPositives, g);
    if (sel && pos) ++at(kTruePositives, g);
    if (sel && !pos) ++at(kFalsePositives, g);
  }
  return Status::success();
}

/// Tallies, then finish_metrics (host arrays).
inline Status group_metrics(const MetricsInput& in, GroupMetrics& out) {
  std::vector<unsigned long long> t;
  DEEPSHOCK_RETURN_IF_ERROR(group_tallies(in, t));
  return finish_metrics(t.data(), in.num_groups, in.label != nullptr, out);
}

/// FA*IR (the paper's Algorithm 1) on host arrays: each group's candidates sorted by the ranking
/// order (stable sort by ranks_before, or the given order when presorted), then a greedy merge.
/// At position i (1-based), with t protected chosen so far: if t < m(i) the best remaining
/// protected candidate is taken; otherwise the better of the two group heads (ranks_before, or
/// the lower column when presorted). A group that has run out yields to the other; a row whose
/// protected candidates run out while the table still asks for one gets feasible = 0 (its list
/// is completed with the best non-protected candidates). Accepts any table.
inline Status fair_topk(const FairTopkArgs& a) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_fair_topk_args(a));
  const std::size_t n = static_cast<std::size_t>(a.n), k = static_cast<std::size_t>(a.k);
  for (std::size_t r = 0; r < static_cast<std::size_t>(a.rows); ++r) {
    const float* s = a.presorted ? nullptr : a.scores + r * n;
    const std::uint8_t* pr = a.is_protected + r * n;
    const auto before = [&](int x, int y) { return s ? ranks_before(s[x], x, s[y], y) : x < y; };
    std::vector<int> lists[2];  // [0] non-protected, [1] protected, each in ranking order
    for (std::size_t j = 0; j < n; ++j) lists[pr[j] != 0 ? 1 : 0].push_back(static_cast<int>(j));
    for (auto& l : lists) std::stable_sort(l.begin(), l.end(), before);
    std::size_t head[2] = {0, 0};
    bool ok = true;
    for (std::size_t i = 0; i < k; ++i) {
      const bool has_p = head[1] < lists[1].size(), has_n = head[0] < lists[0].size();
      const bool need = static_cast<long long>(head[1]) < a.mtable[i];
      const int g = !has_p ? 0 : !has_n ? 1 : (need || before(lists[1][head[1]], lists[0][head[0]])) ? 1 : 0;
      a.out_index[r * k + i] = lists[g][head[g]++];
      if (static_cast<long long>(head[1]) < a.mtable[i]) ok = false;
    }
    if (a.feasible) a.feasible[r] = ok ? 1 : 0;
  }
  return Status::success();
}

}  // namespace reference
}  // namespace deepshock::fair
