// deepshock/serve/moe_cost.hpp — when is it worth waiting for more tokens? The MoE-aware part of
// the batcher (serve/batcher.hpp).
//
// A MoE layer's step reads the weights of every expert its tokens touch. With T tokens, each
// choosing k of E experts (uniformly, for the estimate), the expected number of experts touched
// is E (1 - (1 - k / E)^T): it grows almost linearly for small T and saturates at E, so the
// weight bytes read per token fall as T grows — by up to E / k times between T = 1 and a large
// batch. A step's cost is modelled as
//   cost(T) = fixed + per_expert * touched(T) + per_token * T      (microseconds)
// (launch and routing overhead; streaming one expert's weights; the per-token arithmetic), the
// three terms fitted to measured steps by least squares (StepCostModel::observe) or given.
//
// The decision (should_wait): a step of T tokens could start now; waiting the remaining delay
// budget r brings a Poisson number of requests at the measured arrival rate. Waiting pays when
// the expected cost per token after waiting is lower by more than `margin` (a fraction) than
// now. When arrivals are unlikely in the time left, or the batch already touches most experts
// and the per-token arithmetic dominates, the step runs at once instead of idling until the
// delay budget runs out — which is what a fixed queue delay does.
#pragma once

#include <algorithm>
#include <cmath>
#include <set>

namespace deepshock::serve {

/// Expected experts touched by `tokens` tokens each choosing k of E experts uniformly at random.
inline double expected_experts(int experts, int k, double tokens) {
  if (experts <= 0 || k <= 0 || tokens <= 0.0) return 0.0;
  const double p = std::min(1.0, static_cast<double>(k) / experts);
  return experts * (1.0 - std::pow(1.0 - p, tokens));
}

/// The linear step-cost model above, with an online least-squares fit.
class StepCostModel {
 public:
  StepCostModel() = default;
  StepCostModel(int experts, int k, double fixed_us, double per_expert_us, double per_token_us)
      : experts_(experts), k_(k), c_{fixed_us, per_expert_us, per_token_us} {}

  int experts() const { return experts_; }
  int k() const { return k_; }
  double fixed_us() const { return c_[0]; }
  double per_expert_us() const { return c_[1]; }
  double per_token_us() const { return c_[2]; }

  /// Modelled cost of a step of `tokens` tokens (microseconds).
  double cost(double tokens) const { return tokens <= 0.0 ? 0.0 : c_[0] + c_[1] * expected_experts(experts_, k_, tokens) + c_[2] * tokens; }

  /// Adds a measured step (its valid tokens: padding touches no expert); once three distinct
  /// sizes are seen, the coefficients are the
  /// least-squares fit over every observation so far (clamped at zero: a cost never falls).
  void observe(int tokens, double us) {
    if (tokens <= 0 || !(us >= 0.0)) return;
    const double f[3] = {1.0, expected_experts(experts_, k_, tokens), static_cast<double>(tokens)};
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) ata_[i][j] += f[i] * f[j];
      atb_[i] += f[i] * us;
    }
    if (sizes_.size() < 3) sizes_.insert(tokens);
    if (sizes_.size() >= 3) solve();
  }

 private:
  /// Solves the 3 x 3 normal equations by Gaussian elimination with partial pivoting; keeps the
  /// old coefficients when the system is singular (sizes that do not separate the terms).
  void solve() {
    double m[3][4], scale = 0.0;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) scale = std::max(scale, std::fabs(ata_[i][j]));
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) m[i][j] = ata_[i][j];
      m[i][3] = atb_[i];
    }
    for (int col = 0; col < 3; ++col) {
      int piv = col;
      for (int r = col + 1; r < 3; ++r)
        if (std::fabs(m[r][col]) > std::fabs(m[piv][col])) piv = r;
      if (std::fabs(m[piv][col]) <= 1e-9 * scale) return;  // relative: the sums grow with the steps
      for (int j = 0; j < 4; ++j) std::swap(m[col][j], m[piv][j]);
      for (int r = 0; r < 3; ++r) {
        if (r == col) continue;
        const double f = m[r][col] / m[col][col];
        for (int j = col; j < 4; ++j) m[r][j] -= f * m[col][j];
      }
    }
    for (int i = 0; i < 3; ++i) c_[i] = std::max(0.0, m[i][3] / m[i][i]);
  }

  int experts_ = 1, k_ = 1;
  double c_[3] = {0.0, 0.0, 0.0};
  double ata_[3][3] = {}, atb_[3] = {};
  std::set<int> sizes_;  // distinct sizes seen, up to three (three determine the three terms)
};

/// Whether a step of `tokens` tokens should wait `remaining_us` more (see the file comment).
/// Requests arrive as a Poisson process of `requests_per_us` requests per microsecond, each of
/// `rows_per_request` rows; j of them arrive in the remaining time with probability
/// P(j) = e^-m m^j / j! (m = requests_per_us * remaining_us), and the step then holds
/// min(budget, tokens + j rows). Waiting pays when the expected cost per token after waiting,
/// sum_j P(j) cost(T_j) / T_j, is lower than now by more than `margin` (a fraction): weighting
/// by P(0) keeps a batcher from idling when arrivals are unlikely (a closed loop whose clients
/// all wait on it, or a quiet period).
inline bool should_wait(const StepCostModel& model, int tokens, int budget, double requests_per_us, double rows_per_request,
                        double remaining_us, double margin) {
  if (tokens <= 0) return true;
  if (tokens >= budget || remaining_us <= 0.0 || !(requests_per_us > 0.0) || !(rows_per_request > 0.0)) return false;
  const double mean = requests_per_us * remaining_us;
  const double now_per_token = model.cost(tokens) / tokens;
  if (!(now_per_token > 0.0)) return true;                 // no model yet (all terms zero): wait as a fixed delay does
  double expected = 0.0, mass = 0.0, p = std::exp(-mean);  // P(0)
  for (int j = 0; j < 4096 && mass < 0.9999; ++j) {
    const double t = std::min(static_cast<double>(budget), tokens + j * rows_per_request);
    expected += p * model.cost(t) / t;
    mass += p;
    p *= mean / (j + 1);
    if (t >= budget) {  // every further count fills the budget too
      expected += (1.0 - mass) * model.cost(t) / t;
      mass = 1.0;
      break;
    }
  }
  expected += (1.0 - std::min(1.0, mass)) * now_per_token;  // the tail left out: counted as no gain
  return expected < (1.0 - margin) * now_per_token;
}

}  // namespace deepshock::serve
