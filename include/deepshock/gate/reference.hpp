// deepshock/gate/reference.hpp — plain C++ reference of token-choice routing, in double.
//
// The oracle of the router tests and a CPU fallback. It follows the same steps and the same
// policy hooks as the kernels (gate/policies.hpp), with double arithmetic and explicit sorting;
// ties go to the lower index, exactly as in the kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "deepshock/gate/policies.hpp"
#include "deepshock/gate/types.hpp"

namespace deepshock::gate::reference {

/// Routing result on the host: ids/weights [T, k], counts [E].
struct Routing {
  std::vector<int> ids;
  std::vector<double> weights;
  std::vector<int> counts;
  long long nonfinite = 0;
  /// Per token: the smallest relative gap, in the reference's double arithmetic, between a
  /// chosen and an unchosen selection key (and group score). Float kernels can only be
  /// expected to reproduce the ids of tokens whose margin is clearly above float rounding.
  std::vector<double> margin;
};

/// logits[t, e] = sum_h x[t, h] * w[e, h] (+ w_gate_bias[e], optional) in double (In = float,
/// bf16 or fp16).
template <class In>
std::vector<double> gate_logits(const In* x, const In* w, int T, int H, int E, const float* w_gate_bias = nullptr) {
  auto f = [](In v) -> double {
    if constexpr (std::is_same_v<In, float>) return v;
    else return v.to_float();
  };
  std::vector<double> out(static_cast<std::size_t>(T) * E, 0.0);
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e) {
      double acc = 0.0;
      for (int h = 0; h < H; ++h) acc += f(x[static_cast<std::size_t>(t) * H + h]) * f(w[static_cast<std::size_t>(e) * H + h]);
      out[static_cast<std::size_t>(t) * E + e] = acc + (w_gate_bias != nullptr ? double(w_gate_bias[e]) : 0.0);
    }
  return out;
}

/// Routes T tokens. `noise_logits` [T, E] for NoisyTopK, `bias` [E] for DeepSeekV3 (host
/// pointers), `token_mask` [T] optional.
template <class Policy>
Routing route(const std::vector<double>& logits, int T, const std::vector<double>* noise_logits, const float* bias, const PolicyParams& p,
              const RouterOptions& o, const std::uint8_t* token_mask = nullptr) {
  constexpr int E = Policy::kExperts, K = Policy::kTopK;
  const int begin = o.expert_begin, end = o.expert_end < 0 ? E : o.expert_end;
  Routing r;
  r.ids.assign(static_cast<std::size_t>(T) * K, -1);
  r.weights.assign(static_cast<std::size_t>(T) * K, 0.0);
  r.counts.assign(E, 0);
  r.margin.assign(static_cast<std::size_t>(T), INFINITY);
  std::vector<double> s(E), key(E);
  std::vector<char> valid(E);
  std::vector<int> order(E);
  for (int t = 0; t < T; ++t) {
    if (token_mask != nullptr && token_mask[t] != 0) continue;
    for (int e = 0; e < E; ++e) {
      double l = logits[static_cast<std::size_t>(t) * E + e];
      bool ok = std::isfinite(l);
      r.nonfinite += !ok;
      if constexpr (Policy::kNoisy) {
        const double ln = (*noise_logits)[static_cast<std::size_t>(t) * E + e];
        r.nonfinite += !std::isfinite(ln);
        ok = ok && std::isfinite(ln);
        if (ok) l += double(gate_noise(p.seed, t, e)) * softplus(ln);
        ok = ok && std::isfinite(l);  // an overflowing noisy logit is excluded, not counted
      }
      valid[e] = ok;
      s[e] = ok ? l : 0.0;
    }
    if constexpr (Policy::kScoring == Scoring::softmax) {
      double m = -INFINITY, sum = 0.0;
      for (int e = 0; e < E; ++e)
        if (valid[e]) m = std::max(m, s[e]);
      for (int e = 0; e < E; ++e) {
        s[e] = valid[e] ? std::exp(s[e] - m) : 0.0;
        sum += s[e];
      }
      for (int e = 0; e < E; ++e) s[e] = sum > 0 ? s[e] / sum : 0.0;
    } else if constexpr (Policy::kScoring == Scoring::sigmoid) {
      for (int e = 0; e < E; ++e)
        if (valid[e]) s[e] = sigmoid(s[e]);
    }
    for (int e = 0; e < E; ++e) key[e] = s[e] + (Policy::kUsesBias && valid[e] ? double(bias[e]) : 0.0);
    if constexpr (Policy::kGroupScore != GroupScore::none && Policy::kGroups > 1) {
      constexpr int G = Policy::kGroups, GS = Policy::kGroupSize;
      std::vector<double> gscore(G);
      for (int g = 0; g < G; ++g) {
        std::vector<double> members;
        for (int e = g * GS; e < (g + 1) * GS; ++e)
          if (valid[e]) members.push_back(key[e]);
        std::sort(members.rbegin(), members.rend());
        if (members.empty()) gscore[g] = -INFINITY;
        else if (Policy::kGroupScore == GroupScore::max || members.size() == 1) gscore[g] = members[0];
        else gscore[g] = members[0] + members[1];
      }
      std::vector<int> gorder(G);
      std::iota(gorder.begin(), gorder.end(), 0);
      std::stable_sort(gorder.begin(), gorder.end(), [&](int a, int b) { return gscore[a] > gscore[b]; });
      std::vector<char> kept(G, 0);
      for (int i = 0; i < Policy::kKeepGroups; ++i) kept[gorder[i]] = 1;
      if (Policy::kKeepGroups < G) {
        const double a = gscore[gorder[Policy::kKeepGroups - 1]], b = gscore[gorder[Policy::kKeepGroups]];
        if (std::isfinite(a) && std::isfinite(b)) r.margin[t] = std::min(r.margin[t], (a - b) / std::max(1e-30, std::abs(a)));
      }
      for (int e = 0; e < E; ++e)
        if (!kept[e / GS]) valid[e] = 0;
    }
    double scale = 1e-30;  // margins are relative to the row's largest |key|
    for (int e = 0; e < E; ++e)
      if (valid[e]) scale = std::max(scale, std::abs(key[e]));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      if (valid[a] != valid[b]) return valid[a] > valid[b];
      return key[a] > key[b];
    });
    for (int i = 0; i + 1 < E && i < K; ++i) {  // gap at every rank, since the order is compared too
      const int a = order[i], b = order[i + 1];
      if (valid[a] && valid[b]) r.margin[t] = std::min(r.margin[t], (key[a] - key[b]) / scale);
    }
    double w[32] = {};
    int ids[32];
    double sum = 0.0, mx = -INFINITY;
    for (int i = 0; i < K; ++i) {
      ids[i] = valid[order[i]] ? order[i] : -1;
      w[i] = ids[i] < 0 ? 0.0 : (Policy::kWeightRule == WeightRule::score ? s[ids[i]] : key[ids[i]]);
      if (ids[i] >= 0) mx = std::max(mx, w[i]);
    }
    if constexpr (Policy::kWeightRule == WeightRule::softmax_selected) {
      for (int i = 0; i < K; ++i) {
        w[i] = ids[i] >= 0 ? std::exp((w[i] - mx) / double(p.temperature)) : 0.0;
        sum += w[i];
      }
      for (int i = 0; i < K; ++i) w[i] = ids[i] >= 0 ? w[i] / sum : 0.0;
    } else if (Policy::kRenormalizable && p.renormalize) {
      for (int i = 0; i < K; ++i) sum += w[i];
      const double denom = sum + double(p.renorm_eps);
      for (int i = 0; i < K; ++i) w[i] = ids[i] >= 0 && denom > 0 ? w[i] / denom : 0.0;
    }
    for (int i = 0; i < K; ++i) {
      const bool local = ids[i] >= begin && ids[i] < end;
      r.ids[static_cast<std::size_t>(t) * K + i] = local ? ids[i] : -1;
      r.weights[static_cast<std::size_t>(t) * K + i] = local ? w[i] * double(o.routed_scaling_factor) : 0.0;
      if (local) ++r.counts[ids[i]];
    }
  }
  return r;
}

}  // namespace deepshock::gate::reference
