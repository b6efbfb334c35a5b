// deepshock/gate/reference_expert_choice.hpp — host reference of expert-choice routing
// (Zhou et al. 2022), and the one definition of its capacity k_e.
//
// Plain C++ (no CUDA, no kernels): the test oracle and a CPU fallback of
// deepshock/gate/expert_choice.hpp, with the same outputs and the same rules:
//   * S = softmax(logits) per token over the E experts, max-subtracted (double here, fp32 in
//     the kernels).
//   * a non-finite logit (NaN, +-Inf) is left out of its token's softmax: its score is 0 and the
//     (token, expert) pair is never chosen. A token whose logits are all non-finite has only
//     zero scores. Finite scores that underflow to 0 stay choosable.
//   * expert e takes the k_e choosable tokens with the largest S[t, e], in descending score,
//     ties to the lower token index; where fewer than k_e are choosable, the remaining slots
//     hold token -1 and weight 0 (types.hpp's "no expert" convention).
//   * token_expert_count[t] = number of experts that chose token t (0 to E).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

namespace deepshock::gate {

/// Tokens each expert takes: k_e = min(T, ceil(T * c / E)), evaluated exactly (integer
/// arithmetic, no rounding) on the float value of c. Zhou et al. 2022 write k_e = n·c/E; rounding
/// up keeps k_e >= 1 for every T >= 1, so no expert is idle. Note that 1.1f is a little above
/// 1.1, so T = 1000, E = 11, c = 1.1f gives 101, not 100. Returns 0 when T <= 0, E <= 0 or c is
/// not a finite positive number (the entry points reject those before asking).
inline int expert_choice_capacity(int num_tokens, int num_experts, float capacity_factor) {
  if (num_tokens <= 0 || num_experts <= 0 || !(capacity_factor > 0.0f) || !std::isfinite(capacity_factor)) return 0;
  if (capacity_factor >= static_cast<float>(num_experts)) return num_tokens;  // T*c/E >= T
  // c = m * 2^-q with an integer significand m < 2^24.
  int exponent = 0;
  const float fraction = std::frexp(capacity_factor, &exponent);  // c = fraction * 2^exponent
  const auto m = static_cast<std::uint64_t>(std::ldexp(fraction, 24));
  const int q = 24 - exponent;
  const auto T = static_cast<std::uint64_t>(num_tokens);
  // a = ceil(T * c); then ceil(a / E) = ceil(T * c / E) (nested ceilings of positive integers).
  std::uint64_t a = 0;
  if (q <= 0) a = T * (m << -q);  // c is an integer below E < 2^31: T * c < 2^62
  else if (q >= 56) a = 1;        // 0 < T * m < 2^55 < 2^q
  else a = (T * m + (std::uint64_t{1} << q) - 1) >> q;
  const std::uint64_t e = static_cast<std::uint64_t>(num_experts);
  const std::uint64_t k = (a + e - 1) / e;
  return static_cast<int>(std::min<std::uint64_t>(k, static_cast<std::uint64_t>(num_tokens)));
}

}  // namespace deepshock::gate

namespace deepshock::gate::reference {

/// What expert-choice routing produces for one batch.
struct ExpertChoiceResult {
  int capacity = 0;                     ///< k_e
  std::vector<int> expert_tokens;       ///< [E, k_e] chosen tokens, best first; -1 = empty slot
  std::vector<double> expert_weights;   ///< [E, k_e] S[token, e] of each chosen token; 0 for -1
  std::vector<int> token_expert_count;  ///< [T] experts that chose each token
  std::vector<double> scores;           ///< [T, E] S (filled by expert_choice() only)
  int nonfinite_count = 0;              ///< non-finite logits seen (filled by expert_choice() only)
};

/// True when a logit takes part in routing (finite).
inline bool choosable_logit(float logit) { return std::isfinite(logit); }

/// S = softmax over each row of `logits` [T, E] in double, leaving non-finite logits out
/// (score 0). Rows without a finite logit are all zero.
inline std::vector<double> expert_choice_scores(const float* logits, int T, int E) {
  if (T <= 0 || E <= 0) return {};
  std::vector<double> s(static_cast<std::size_t>(static_cast<unsigned>(T)) * static_cast<unsigned>(E), 0.0);
  for (int t = 0; t < T; ++t) {
    const float* row = logits + static_cast<std::ptrdiff_t>(t) * E;
    double* out = s.data() + static_cast<std::ptrdiff_t>(t) * E;
    double mx = -std::numeric_limits<double>::infinity();
    for (int e = 0; e < E; ++e)
      if (choosable_logit(row[e])) mx = std::max(mx, static_cast<double>(row[e]));
    if (mx == -std::numeric_limits<double>::infinity()) continue;  // nothing finite: all zero
    double sum = 0.0;
    for (int e = 0; e < E; ++e)
      if (choosable_logit(row[e])) sum += out[e] = std::exp(static_cast<double>(row[e]) - mx);
    for (int e = 0; e < E; ++e) out[e] /= sum;
  }
  return s;
}

/// The selection step alone, on given scores `S` [T, E] (float — e.g. a kernel's own fp32
/// scores — or double): expert e takes the k choosable tokens (finite logits[t, e]) with the
/// largest S[t, e], ties to the lower token index.
template <class Score>
ExpertChoiceResult expert_choice_select(const Score* S, const float* logits, int T, int E, int k) {
  ExpertChoiceResult r;
  if (T < 0 || E <= 0 || k < 0) return r;
  r.capacity = k;
  r.expert_tokens.assign(static_cast<std::size_t>(E) * static_cast<std::size_t>(k), -1);
  r.expert_weights.assign(r.expert_tokens.size(), 0.0);
  r.token_expert_count.assign(static_cast<std::size_t>(T), 0);
  std::vector<int> order;
  for (int e = 0; e < E; ++e) {
    order.clear();
    for (int t = 0; t < T; ++t)
      if (choosable_logit(logits[static_cast<std::ptrdiff_t>(t) * E + e])) order.push_back(t);
    const auto score = [&](int t) { return S[static_cast<std::ptrdiff_t>(t) * E + e]; };
    // Stable: equal scores keep ascending token order.
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return score(a) > score(b); });
    const int taken = std::min(k, static_cast<int>(order.size()));
    for (int i = 0; i < taken; ++i) {
      const std::size_t slot = static_cast<std::size_t>(e) * static_cast<std::size_t>(k) + static_cast<std::size_t>(i);
      const int t = order[static_cast<std::size_t>(i)];
      r.expert_tokens[slot] = t;
      r.expert_weights[slot] = static_cast<double>(score(t));
      ++r.token_expert_count[static_cast<std::size_t>(t)];
    }
  }
  return r;
}

/// Expert-choice routing of `logits` [T, E] with capacity factor c, all in double.
inline ExpertChoiceResult expert_choice(const float* logits, int T, int E, float capacity_factor) {
  std::vector<double> s = expert_choice_scores(logits, T, E);
  ExpertChoiceResult r = expert_choice_select(s.data(), logits, T, E, expert_choice_capacity(T, E, capacity_factor));
  r.scores = std::move(s);
  r.nonfinite_count =
      static_cast<int>(std::count_if(logits, logits + static_cast<std::ptrdiff_t>(T) * E, [](float x) { return !choosable_logit(x); }));
  return r;
}

}  // namespace deepshock::gate::reference
