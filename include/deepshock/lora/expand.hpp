// deepshock/lora/expand.hpp — the expand half of a fused LoRA update: B u added to a grouped
// GEMM's fp32 sums in its epilogue (moe/gemm/epilogue.hpp), after the codec's scale and the bias,
// before the activation (GEMM 1) or before the routing weight (GEMM 2). u = s A x comes from the
// shrink kernel (lora/shrink.hpp), one fp32 row of kRank values per GEMM row.
//
// Why in the epilogue: B is [out, r] per (expert, adapter), r / K of the weight bytes the GEMM
// already streams (8 / 2048 at rank 8 and DeepSeek's hidden size), and each output element needs
// r multiply-adds against K for the base GEMM; adding it where the sum is still in registers costs
// no extra pass over the [rows, out] output, works for every codec and tile shape (the epilogue is
// shared by all of them), and a row's cost follows its adapter's own rank r_a.
#pragma once

#include "deepshock/core/config.hpp"
#include "deepshock/lora/adapter.hpp"

namespace deepshock::lora {

/// GEMM row p's adapter: the adapter (-1: none) and the expert whose (A, B) pair it uses (0 for
/// the shared expert). Written by the shrink kernel, read by the expand epilogue.
struct RowAdapter {
  int adapter = -1;
  int expert = 0;
};

/// No LoRA term (lora::None, or a GEMM whose matrices the adapter type does not target).
struct NoExpand {
  static constexpr bool kActive = false;
  DEEPSHOCK_HOST_DEVICE void add(int, int, float&, float&) const {}
  DEEPSHOCK_HOST_DEVICE void add2(int, int, float&, float&, float&, float&) const {}
};

/// Adds B_{e,a} u_p to output columns n (and n + 1) of GEMM row p, for the one or two weight
/// matrices of the GEMM (gate and up for a gated GEMM 1). Rank: the policy's capacity (the row
/// stride of u); each row's adapter uses its own rank. u[i] null: matrix i not adapted here.
template <class T, int Rank>
struct Expand {
  static constexpr bool kActive = true;
  const AdapterRef<T>* adapters = nullptr;  ///< the adapter table (LoRA::Params::adapters)
  const RowAdapter* rows = nullptr;         ///< [GEMM rows]
  const float* u[2] = {nullptr, nullptr};   ///< [GEMM rows, Rank]: s A x per matrix
  int matrix[2] = {0, 0};                   ///< quant::Matrix of each operand
  long long out = 0;                        ///< output rows per expert of B (the GEMM's N)

  /// Columns n .. n + C - 1 of row p (C = 1 or 2), for operands 0 and 1.
  template <int C>
  DEEPSHOCK_HOST_DEVICE void add_cols(int p, int n, float (&v0)[C], float (&v1)[C]) const {
    if (rows == nullptr) return;
    const RowAdapter ra = rows[p];
    if (ra.adapter < 0) return;
    const AdapterRef<T>& ad = adapters[ra.adapter];
    const int r = ad.rank < Rank ? ad.rank : Rank;
    for (int i = 0; i < 2; ++i) {
      const T* b = ad.b[matrix[i]];
      if (u[i] == nullptr || b == nullptr || ad.a[matrix[i]] == nullptr) continue;
      const float* up = u[i] + static_cast<long long>(p) * Rank;
      float(&v)[C] = i == 0 ? v0 : v1;
      for (int c = 0; c < C; ++c) {
        const T* bn = b + (static_cast<long long>(ra.expert) * out + n + c) * r;
        float s = 0.0f;
        for (int k = 0; k < r; ++k) s += static_cast<float>(bn[k]) * up[k];
        v[c] += s;
      }
    }
  }
  DEEPSHOCK_HOST_DEVICE void add(int p, int n, float& g, float& u1) const {
    float a[1] = {g}, b[1] = {u1};
    add_cols<1>(p, n, a, b);
    g = a[0];
    u1 = b[0];
  }
  DEEPSHOCK_HOST_DEVICE void add2(int p, int n, float& g0, float& u0, float& g1, float& u1) const {
    float a[2] = {g0, g1}, b[2] = {u0, u1};
    add_cols<2>(p, n, a, b);
    g0 = a[0];
    g1 = a[1];
    u0 = b[0];
    u1 = b[1];
  }
};

}  // namespace deepshock::lora
