// The demo's LoRA adapters (--lora R --adapters N): N random adapters of mixed ranks on every
// expert matrix (routed and shared), and a per-token adapter id, in the library's host layout
// (lora::HostAdapter). Drawn from the seed like the model's tensors.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "deepshock/lora/adapter.hpp"
#include "deepshock/lora/host_adapter.hpp"
#include "model.hpp"

namespace demo {

/// The compile-time rank capacity of the demo's LoRA layers: adapters of any rank up to it share
/// one instantiation, each costing its own rank.
inline constexpr int kLoraCapacity = 64;

struct LoraModel {
  std::vector<deepshock::lora::HostAdapter<bf16>> adapters;
  std::vector<int> ids;  ///< [T]: token t's adapter, -1 for none
  /// The ranks: R, R/2, R/4, R, R/2, ... (at least 1), so that one batch mixes ranks.
  static int rank_of(int i, int R) { return std::max(1, R >> (i % 3)); }
};

/// `count` adapters of top rank R for preset p, and ids cycling through -1, 0, ..., count - 1.
/// A ~ U(+-1/sqrt(in)) as PEFT initialises it; B ~ U(+-1/sqrt(r)) instead of PEFT's zeros (a
/// fresh adapter is the identity, a trained one is not); alpha = 2r (s = 2), so an adapter moves
/// the layer's output by a fraction comparable to its weights' share.
inline LoraModel make_lora(const Preset& p, int tokens, int R, int count, std::uint64_t seed) {
  namespace lora = deepshock::lora;
  LoraModel lm;
  for (int i = 0; i < count; ++i) {
    lora::HostAdapter<bf16> a;
    a.rank = LoraModel::rank_of(i, R);
    a.scaling = lora::scaling(2.0 * a.rank, a.rank, false);
    for (int m = 0; m < lora::kMatrices; ++m) {
      const auto mat = static_cast<deepshock::quant::Matrix>(m);
      const bool sh = m >= static_cast<int>(deepshock::quant::Matrix::shared_w1);
      if (sh && p.shared == 0) continue;
      long long in = 0, out = 0;
      lora::matrix_shape(mat, p.hidden, p.inter, p.shared, in, out);
      const std::size_t ex = sh ? 1 : static_cast<std::size_t>(p.experts), r = static_cast<std::size_t>(a.rank);
      HostTensor ta, tb;
      fill_uniform(ta, ex * r * static_cast<std::size_t>(in), seed, 200 + 16 * i + m, 1.0f / std::sqrt(float(in)));
      fill_uniform(tb, ex * static_cast<std::size_t>(out) * r, seed, 300 + 16 * i + m, 1.0f / std::sqrt(float(r)));
      a.a[m].assign(ta.p.get(), ta.p.get() + ta.n);
      a.b[m].assign(tb.p.get(), tb.p.get() + tb.n);
    }
    lm.adapters.push_back(std::move(a));
  }
  lm.ids.resize(static_cast<std::size_t>(tokens));
  for (int t = 0; t < tokens; ++t) lm.ids[static_cast<std::size_t>(t)] = t % (count + 1) - 1;
  return lm;
}

}  // namespace demo
