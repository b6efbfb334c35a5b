// deepshock/lora/adapter.hpp — the adapter policy of an expert (LoRA), its concept, and the
// layout of one adapter's weights. Compiles everywhere; needs no CUDA.
//
// Semantics (PEFT's): a LoRA adapter adds a low-rank update to a linear map,
//   y = W x + s * B (A x),   A [r, in], B [out, r],   s = alpha / r, or alpha / sqrt(r) (rsLoRA).
// On a MoE layer each adapted matrix has one (A, B) pair per expert. The policy type fixes the
// rank capacity (kRank: a compile-time bound, the size of the per-row scratch) and which of the
// six matrices can carry an update (kTargets); each adapter has its own run-time rank r <= kRank,
// and a token with adapter a costs r_a, not kRank: nothing is padded to the capacity.
//
// Layout of one adapter (AdapterRef: what the kernels read, device pointers in a device array;
// the host executor and the reference take the same struct with host pointers). For matrix m of
// `experts` experts (the shared expert: 1), in -> out:
//   a[m]  A [experts, r, in]   expert e's A at a[m] + e * r * in, row-major
//   b[m]  B [experts, out, r]  expert e's B at b[m] + e * out * r, row-major
// in the layer's activation type T. Matrix order is quant::Matrix's: w1, w3, w2, shared_w1,
// shared_w3, shared_w2 (w1 / w3: in = H, out = I; w2: in = I, out = H). A null a[m] means the
// adapter leaves matrix m alone. Gate and up may share one A (a[w1] == a[w3], PEFT's fused
// gate_up parameters). Expert parallelism: the pointers hold the rank's experts only, as the
// layer's weights do.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>

#include "deepshock/core/status.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::lora {

/// The adapted matrices of an expert, in quant::Matrix order.
inline constexpr int kMatrices = 6;
/// The largest rank capacity a policy may declare (the per-row scratch is kRank fp32 values).
inline constexpr int kMaxRank = 256;

/// Which matrices an adapter type may update (a bit set over quant::Matrix): part of the type,
/// so that a layer whose adapters touch only the down projection launches nothing for the others.
namespace target {
constexpr unsigned bit(quant::Matrix m) { return 1u << static_cast<int>(m); }
inline constexpr unsigned w1 = bit(quant::Matrix::w1), w3 = bit(quant::Matrix::w3), w2 = bit(quant::Matrix::w2);
inline constexpr unsigned shared_w1 = bit(quant::Matrix::shared_w1), shared_w3 = bit(quant::Matrix::shared_w3),
                          shared_w2 = bit(quant::Matrix::shared_w2);
inline constexpr unsigned routed = w1 | w3 | w2;
inline constexpr unsigned shared = shared_w1 | shared_w3 | shared_w2;
inline constexpr unsigned all = routed | shared;
}  // namespace target

/// One adapter of a layer (see the file comment for the layout).
template <class T>
struct AdapterRef {
  int rank = 0;                ///< r, 1 <= r <= the policy's kRank
  float scaling = 0.0f;        ///< s (lora::scaling)
  const T* a[kMatrices] = {};  ///< A [experts, r, in] per matrix; null: matrix not adapted
  const T* b[kMatrices] = {};  ///< B [experts, out, r] per matrix; null exactly where a is
};

/// PEFT's scaling: alpha / r, or alpha / sqrt(r) with rsLoRA.
inline float scaling(double alpha, int rank, bool rslora) {
  return static_cast<float>(rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / rank);
}

/// No adapter.
struct None {
  static constexpr int kRank = 0;
  static constexpr unsigned kTargets = 0;
  template <class T>
  struct Params {};
  static constexpr const char* kName = "none";
};

/// LoRA adapters of rank at most Rank on the matrices in Targets (lora::target bits), many per
/// batch: the layer's inputs carry an adapter id per token (LayerInputs::adapter_ids, -1 = none)
/// that indexes Params::adapters.
template <int Rank, unsigned Targets = target::all>
struct LoRA {
  static_assert(Rank >= 1 && Rank <= kMaxRank, "deepshock::lora::LoRA: the rank capacity must be between 1 and 256.");
  static_assert(Targets != 0 && (Targets & ~target::all) == 0,
                "deepshock::lora::LoRA: Targets must be a non-empty set of lora::target bits.");
  static constexpr int kRank = Rank;
  static constexpr unsigned kTargets = Targets;
  /// Run-time data, carried in LayerWeights::adapter.
  template <class T>
  struct Params {
    const AdapterRef<T>* adapters = nullptr;  ///< [count] (device memory for the device layer)
    int count = 0;
  };
  static constexpr const char* kName = "lora";
};

/// What the layer needs of an adapter policy: a rank capacity (0: no adapter), the targets, and
/// per-type run-time data.
template <class A>
concept AdapterPolicy = requires {
  { A::kRank } -> std::convertible_to<int>;
  { A::kTargets } -> std::convertible_to<unsigned>;
  { A::kName } -> std::convertible_to<const char*>;
  typename A::template Params<float>;
}
&&A::kRank >= 0 && A::kRank <= kMaxRank && ((A::kRank == 0) == (A::kTargets == 0));

/// True when adapter policy A can update matrix m.
template <class A>
constexpr bool targets(quant::Matrix m) {
  return (A::kTargets & target::bit(m)) != 0;
}

/// The sizes of matrix m: in (the reduction) and out (the rows of W), for a layer of hidden size
/// H, intermediate I and shared intermediate Is.
inline void matrix_shape(quant::Matrix m, long long H, long long I, long long Is, long long& in, long long& out) {
  const bool down = m == quant::Matrix::w2 || m == quant::Matrix::shared_w2;
  const bool sh = m == quant::Matrix::shared_w1 || m == quant::Matrix::shared_w3 || m == quant::Matrix::shared_w2;
  const long long inner = sh ? Is : I;
  in = down ? inner : H;
  out = down ? H : inner;
}

/// Host check of one adapter against a policy with capacity `capacity` and target set `targets`
/// (the device kernels cannot check a table in device memory without synchronising; they clamp
/// the rank to the capacity and skip null matrices). `name` names the adapter in the Status.
/// `need_align`: device tables (16-byte vector loads of A rows).
template <class T>
inline Status check_adapter(const AdapterRef<T>& a, int capacity, unsigned targets, const std::string& name, bool need_align) {
  if (a.rank < 1 || a.rank > capacity)
    return Status::invalid_argument(name + ".rank", "must be between 1 and the adapter type's capacity " + std::to_string(capacity) +
                                                        ", got " + std::to_string(a.rank));
  if (!std::isfinite(a.scaling)) return Status::invalid_argument(name + ".scaling", "must be finite");
  static constexpr const char* kNames[kMatrices] = {"w1", "w3", "w2", "shared_w1", "shared_w3", "shared_w2"};
  for (int m = 0; m < kMatrices; ++m) {
    const std::string what = name + "." + kNames[m];
    if ((a.a[m] == nullptr) != (a.b[m] == nullptr))
      return Status::invalid_argument(what, "give both A and B, or neither (matrix not adapted)");
    if (a.a[m] != nullptr && (targets & (1u << m)) == 0)
      return Status::invalid_argument(what, "the adapter type does not target this matrix (lora::LoRA's Targets)");
    if (need_align && a.a[m] != nullptr && (reinterpret_cast<std::uintptr_t>(a.a[m]) & 15u) != 0)
      return Status::invalid_argument(what, "A must be 16-byte aligned for vector loads");
  }
  return Status::success();
}

}  // namespace deepshock::lora
