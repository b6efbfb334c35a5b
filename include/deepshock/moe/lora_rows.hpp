// deepshock/moe/lora_rows.hpp — LoRA adapters in the host executors, one row at a time: the
// exact one (moe/host_layer.hpp) and the fast one (cpu/layer.hpp) share this rule: u = s (A v)
// in fp32 for each row
// (the gate and up adapters on x as given, the down adapter on h as rounded to T, before any
// activation quantization), and B[i] . u added to the fp32 sum of output i after the biases (the
// down adapter's before the routing weight). A token's adapter (LayerInputs::adapter_ids) goes
// with it to every expert it visits; id -1 or an id outside the table means none; each adapter
// costs its own run-time rank (clamped to the capacity), not the capacity.
#pragma once

#include <algorithm>

#include "deepshock/core/numeric.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/moe/expert.hpp"

namespace deepshock::moe::detail {

/// One row's adapter on one matrix: A and B of the row's expert, the rank and the scaling;
/// false where there is none.
template <class T>
struct LoraRow {
  const T* a = nullptr;  ///< A of the expert [r, in]
  const T* b = nullptr;  ///< B of the expert [out, r]
  int r = 0;
  float s = 0.0f;
  explicit operator bool() const { return a != nullptr; }
};

/// Token t's adapter on matrix m of expert e (0 for the shared expert's matrices): none where
/// the policy does not target m, the token has no adapter, or the adapter leaves m alone.
template <class Adapter, class T>
LoraRow<T> lora_row(const typename Adapter::template Params<T>& table, const int* adapter_ids, const LayerDims& d, long long t,
                    quant::Matrix m, long long e) {
  if constexpr (Adapter::kRank > 0) {
    if (!lora::targets<Adapter>(m) || adapter_ids == nullptr) return {};
    const int id = adapter_ids[t];
    if (id < 0 || id >= table.count) return {};
    const lora::AdapterRef<T>& ad = table.adapters[id];
    const int mi = static_cast<int>(m);
    if (ad.a[mi] == nullptr || ad.b[mi] == nullptr) return {};
    long long in_m = 0, out_m = 0;
    lora::matrix_shape(m, d.hidden, d.intermediate, d.shared_intermediate, in_m, out_m);
    const int r = std::min(ad.rank, Adapter::kRank);
    return {ad.a[mi] + e * r * in_m, ad.b[mi] + e * out_m * r, r, ad.scaling};
  } else {
    (void)table, (void)adapter_ids, (void)d, (void)t, (void)m, (void)e;
    return {};
  }
}

/// u[q] = s (A[q] . v) for q < r, fp32 sums in index order.
template <class T>
void lora_shrink(const LoraRow<T>& l, const float* v, long long len, float* u) {
  for (int q = 0; q < l.r; ++q) {
    const T* a = l.a + q * len;
    float acc = 0.0f;
    for (long long c = 0; c < len; ++c) acc += value_to_float(a[c]) * v[c];
    u[q] = l.s * acc;
  }
}

/// B[row] . u.
template <class T>
float lora_expand(const LoraRow<T>& l, long long row, const float* u) {
  const T* b = l.b + row * l.r;
  float acc = 0.0f;
  for (int q = 0; q < l.r; ++q) acc += value_to_float(b[q]) * u[q];
  return acc;
}

}  // namespace deepshock::moe::detail
