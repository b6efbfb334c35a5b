// deepshock/moe/gemm/epilogue.hpp — what the grouped GEMM does with its accumulators: the
// policies that store one output (store) or two neighbouring columns at once (store2). An
// epilogue states how many values it combines per output element (kInputs: 1, or 2 for a gated
// activation's gate and up); how many weight matrices the GEMM multiplies to produce them is the
// launch's business (GemmBatch::kOperands, gemm/arguments.hpp).
//   ActEpilogue<Act, T, Lora>   GEMM 1: T(act(gate, up)) into the intermediate h (gated: W1 | W3)
//   DownEpilogue<Atomic, Lora>  GEMM 2: scale * acc into the fp32 output rows (or atomically added)
// Lora: lora::NoExpand, or lora::Expand (lora/expand.hpp), which adds an adapter's B u to the
// sums first (before the activation, before the routing weight).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/lora/expand.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/cuda.hpp"
#endif

namespace deepshock::moe {

/// GEMM 1 epilogue: h[p, n] = T(Act::apply(gate + lora, up + lora)).
template <class Act, class T, class Lora = lora::NoExpand>
struct ActEpilogue {
  static constexpr int kInputs = Act::kGated ? 2 : 1;  ///< gate (and up) per output
  T* out = nullptr;
  long long ld = 0;
  Lora lora{};
  DEEPSHOCK_HOST_DEVICE static T convert(float v) {
    if constexpr (std::is_same_v<T, float>) return v;
    else return T(v);
  }
  DEEPSHOCK_HOST_DEVICE void store(int p, int n, float gate, float up) const {
    if constexpr (Lora::kActive) lora.add(p, n, gate, up);
    out[static_cast<long long>(p) * ld + n] = convert(Act::apply(gate, up));
  }
  /// Columns n and n + 1 (n even, ld even): one 4-byte store for the 16-bit types.
  DEEPSHOCK_HOST_DEVICE void store2(int p, int n, float g0, float u0, float g1, float u1) const {
    if constexpr (Lora::kActive) lora.add2(p, n, g0, u0, g1, u1);
    if constexpr (std::is_same_v<T, float>) {
      store(p, n, g0, u0);
      store(p, n + 1, g1, u1);
    } else {
      const std::uint32_t v = static_cast<std::uint32_t>(convert(Act::apply(g0, u0)).bits) |
                              (static_cast<std::uint32_t>(convert(Act::apply(g1, u1)).bits) << 16);
      T* dst = out + static_cast<long long>(p) * ld + n;
#if DEEPSHOCK_SIM || !DEEPSHOCK_HAS_KERNELS
      std::memcpy(dst, &v, sizeof v);
#else
      *reinterpret_cast<std::uint32_t*>(dst) = v;
#endif
    }
  }
};

/// GEMM 2 epilogue: out[d, n] = s * (acc + lora) (or += atomically) with d = dest_row[p] (p if
/// null) and s = scale[scale_index[p]] (scale_index null: d; scale null: 1).
template <bool Atomic, class Lora = lora::NoExpand>
struct DownEpilogue {
  static constexpr int kInputs = 1;
  float* out = nullptr;
  long long ld = 0;
  const int* dest_row = nullptr;
  const int* scale_index = nullptr;
  const float* scale = nullptr;
  Lora lora{};
#if DEEPSHOCK_HAS_KERNELS
  /// Destination row of sorted row p and its scale.
  DEEPSHOCK_DEVICE float* target(int p, int n, float& s) const {
    const int d = dest_row != nullptr ? dest_row[p] : p;
    s = scale == nullptr ? 1.0f : scale[scale_index != nullptr ? scale_index[p] : d];
    return out + static_cast<long long>(d) * ld + n;
  }
  DEEPSHOCK_DEVICE void store(int p, int n, float acc, float) const {
    if constexpr (Lora::kActive) {
      float unused = 0.0f;
      lora.add(p, n, acc, unused);
    }
    float s;
    float* dst = target(p, n, s);
    if constexpr (Atomic) atomicAdd(dst, s * acc);
    else *dst = s * acc;
  }
  /// Columns n and n + 1 (n even, ld even): one 8-byte store (ordered) or two atomics.
  DEEPSHOCK_DEVICE void store2(int p, int n, float a0, float, float a1, float) const {
    if constexpr (Lora::kActive) {
      float unused0 = 0.0f, unused1 = 0.0f;
      lora.add2(p, n, a0, unused0, a1, unused1);
    }
    float s;
    float* dst = target(p, n, s);
    if constexpr (Atomic) {
      atomicAdd(dst, s * a0);
      atomicAdd(dst + 1, s * a1);
    } else {
      *reinterpret_cast<float2*>(dst) = make_float2(s * a0, s * a1);
    }
  }
#endif
};

}  // namespace deepshock::moe
