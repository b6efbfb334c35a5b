// deepshock/moe/expert.hpp — the expert type, the layer's sizes, weights, inputs and outputs,
// and the argument checks shared by the device layer (moe/layer.hpp) and the host executor and
// reference (moe/reference_layer.hpp). Compiles everywhere; needs no CUDA.
//
// Shapes (row-major, nn.Linear layout: [out, in]):
//   x [T, H] (row stride x_stride), y [T, H] (row stride y_stride)
//   w1, w3 [E, I, H]  gate and up projections;  w2 [E, H, I]  down projection
//   shared_w1, shared_w3 [Is, H], shared_w2 [H, Is]  shared expert(s) (several shared experts of
//   the same shape are one shared expert with Is = count x their intermediate size)
//   shared_gate [H]  Qwen's sigmoid gate of the shared expert (SharedGate::sigmoid)
//   b1, b3 [E, I], b2 [E, H]; shared_b1, shared_b3 [Is], shared_b2 [H]  optional fp32 biases of
//   the projections (gpt-oss; zero where null)
// An expert computes E_e(x) = W2_e . act(W1_e x + b1_e, W3_e x + b3_e) + b2_e; the layer computes
//   y[t] = sum_j w[t, j] * E_{id[t, j]}(x_t)  (j in slot order; ids of -1 contribute 0)
//        + g_t * S(x_t),   g_t = 1 (SharedGate::none) or sigmoid(shared_gate . x_t) (sigmoid).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/gate/types.hpp"
#include "deepshock/lora/adapter.hpp"
#include "deepshock/moe/activation.hpp"
#include "deepshock/quant/codec.hpp"

namespace deepshock::moe {

/// How a gated expert's gate (W1) and up (W3) projections are stored. Checkpoints and engines
/// keep them fused — transformers v5's gate_up_proj and vLLM's w13 [E, 2I, H] as two halves,
/// gpt-oss with interleaved rows — and the layer reads such a tensor in place (no copy): pass it
/// as LayerWeights::w1 (shared expert: shared_w1 [2 Is, H]) and leave w3 null. Gate row i of an
/// expert is fused row kFirstGate(I) + i * kStep, up row i is kFirstUp(I) + i * kStep; a codec's
/// per-row data (int8 scales) follows the fused rows.
namespace gate_up {
/// Two tensors: w1 and w3 [E, I, H].
struct Separate {
  static constexpr bool kFused = false;
  static constexpr int kStep = 1;
  static constexpr long long first_gate(long long) { return 0; }
  static constexpr long long first_up(long long) { return 0; }
  static constexpr const char* kName = "separate";
};
/// One tensor [E, 2I, H]: each expert's I gate rows, then its I up rows.
struct Halves {
  static constexpr bool kFused = true;
  static constexpr int kStep = 1;
  static constexpr long long first_gate(long long) { return 0; }
  static constexpr long long first_up(long long I) { return I; }
  static constexpr const char* kName = "halves";
};
/// One tensor [E, 2I, H] with gate and up rows interleaved: gate row i at 2i, up row i at 2i + 1.
struct Interleaved {
  static constexpr bool kFused = true;
  static constexpr int kStep = 2;
  static constexpr long long first_gate(long long) { return 0; }
  static constexpr long long first_up(long long) { return 1; }
  static constexpr const char* kName = "interleaved";
};
}  // namespace gate_up

/// An expert MLP: weight codec (quantization), adapter (LoRA), activation and the storage of the
/// gate/up projections, all policy types.
template <class Codec = quant::None, class Adapter = lora::None, class Act = act::SwiGLU, class GateUp = gate_up::Separate>
struct Expert {
  static_assert(lora::AdapterPolicy<Adapter>,
                "deepshock::moe::Expert: Adapter is not an adapter policy (lora::None, lora::LoRA; lora/adapter.hpp).");
  using codec = Codec;
  using adapter = Adapter;
  using activation = Act;
  using gate_up_layout = GateUp;
  static constexpr bool kGated = Act::kGated;
  static_assert(!GateUp::kFused || Act::kGated, "deepshock::moe::Expert: a fused gate/up layout needs a gated activation (SwiGLU, GeGLU).");
};

/// Combine policies: how expert outputs are summed into y.
/// Ordered (the default): each (token, slot) output is written once, then y[t] is summed in slot
/// order with the shared expert last: bitwise reproducible.
struct OrderedCombine {
  static constexpr bool kDeterministic = true;
  static constexpr const char* kName = "ordered";
};
/// Atomic (opt-in): the down-projection epilogue adds w * E(x) into an fp32 accumulator with
/// atomicAdd: no [T*k, H] buffer, but the summation order (and so the last bits) varies.
struct AtomicCombine {
  static constexpr bool kDeterministic = false;
  static constexpr const char* kName = "atomic";
};

/// How the shared expert's output is weighted.
enum class SharedGate : int {
  none = 0,     ///< weight 1 (DeepSeek)
  sigmoid = 1,  ///< sigmoid(shared_gate . x_t) (Qwen-MoE)
};

/// Run-time sizes of a layer.
struct LayerDims {
  int hidden = 0;               ///< H
  int intermediate = 0;         ///< I, per routed expert
  int shared_intermediate = 0;  ///< Is, 0 = no shared expert
  int max_tokens = 0;           ///< the largest T a run may take (sizes the workspace)
};

/// Weights of a layer (device pointers for the device layer, host pointers for the host executor).
/// The expert matrices are in the codec's storage type (T for quant::None; int8 for
/// quant::Int8Channel, whose scales travel in `codec`).
template <class T, class ExpertT = Expert<>>
struct LayerWeights {
  using W = typename ExpertT::codec::template storage<T>;
  const T* w_gate = nullptr;         ///< [E, H] router weights (not used by run_routed)
  const float* gate_bias = nullptr;  ///< [E] correction bias: DeepSeekV3 only (chooses experts, does not weigh them)
  int gate_bias_size = 0;
  /// [E] optional bias of the gate projection, any policy: logits = x . W_g^T + w_gate_bias, so
  /// it both chooses and weighs (gpt-oss's router). Not used by run_routed.
  const float* w_gate_bias = nullptr;
  const W* w1 = nullptr;           ///< [E, I, H]; a fused gate/up layout: [E, 2I, H] (see gate_up)
  const W* w3 = nullptr;           ///< [E, I, H]: gated activations with separate gate/up only (null otherwise)
  const W* w2 = nullptr;           ///< [E, H, I]
  const W* shared_w1 = nullptr;    ///< [Is, H]; a fused gate/up layout: [2 Is, H]
  const W* shared_w3 = nullptr;    ///< [Is, H]: gated activations with separate gate/up only
  const W* shared_w2 = nullptr;    ///< [H, Is]
  const T* shared_gate = nullptr;  ///< [H]: SharedGate::sigmoid only
  SharedGate shared_gate_kind = SharedGate::none;
  /// Optional fp32 biases of the expert projections (gpt-oss), added to the fp32 sums: b1 / b3
  /// before the activation, b2 before the routing weight multiplies the expert's output. They
  /// are separate [E, I] arrays whatever gate_up layout w1 uses (an importer de-interleaves a
  /// fused checkpoint bias, quant/gpt_oss.hpp). Expert parallelism: the rank's experts only, as w1.
  const float* b1 = nullptr;                ///< [E, I]
  const float* b3 = nullptr;                ///< [E, I]: gated activations only
  const float* b2 = nullptr;                ///< [E, H]
  const float* shared_b1 = nullptr;         ///< [Is]
  const float* shared_b3 = nullptr;         ///< [Is]: gated activations only
  const float* shared_b2 = nullptr;         ///< [H]
  typename ExpertT::codec::Params codec{};  ///< codec data (empty for quant::None)
  /// Adapter data: for lora::LoRA the table of adapters (device memory for the device layer)
  /// that LayerInputs::adapter_ids index; empty for lora::None.
  typename ExpertT::adapter::template Params<T> adapter{};
};

/// One expert's optional biases (host pointers into LayerWeights' arrays): b1, b3 [I], b2 [H].
struct ExpertBias {
  const float* b1 = nullptr;
  const float* b3 = nullptr;
  const float* b2 = nullptr;
};
/// Routed expert e's biases in `w` (I: its intermediate size, H: hidden).
template <class T, class ExpertT>
ExpertBias expert_bias(const LayerWeights<T, ExpertT>& w, long long e, long long I, long long H) {
  return {w.b1 != nullptr ? w.b1 + e * I : nullptr, w.b3 != nullptr ? w.b3 + e * I : nullptr, w.b2 != nullptr ? w.b2 + e * H : nullptr};
}

/// Activations in.
template <class T>
struct LayerInputs {
  const T* x = nullptr;                      ///< [T, H]
  int tokens = 0;                            ///< T, 0 <= T <= max_tokens
  int x_stride = 0;                          ///< row stride of x in elements; 0 = H
  const std::uint8_t* token_mask = nullptr;  ///< [T] optional: non-zero = padding (routed nowhere)
  /// [T] optional, LoRA experts only: token t's adapter, an index into LayerWeights::adapter's
  /// table; -1 (and, on the device, any id outside [0, count)) = no adapter. Null: none for all.
  const int* adapter_ids = nullptr;
};

/// Results out. Only y is required; routing results are written where a pointer is given.
template <class T>
struct LayerOutputs {
  T* y = nullptr;                 ///< [T, H]
  int y_stride = 0;               ///< row stride of y in elements; 0 = H
  int* topk_ids = nullptr;        ///< [T, k] optional
  float* topk_weights = nullptr;  ///< [T, k] optional
  int* expert_counts = nullptr;   ///< [E] optional: valid assignments per expert
  int* dropped_count = nullptr;   ///< [1] optional: tokens dropped for capacity (Switch)
};

namespace detail {

/// Elements per 16-byte vector load of T.
template <class T>
inline constexpr int kVecElems = static_cast<int>(16 / sizeof(T));

template <class T>
inline constexpr bool layer_type_v = std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, fp16>;

inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

/// v values of type T (Pack values per stored element: 2 for 4-bit codes) fill whole 16-byte vectors.
template <class T, int Pack = 1>
inline Status check_vec_size(const char* name, long long v) {
  constexpr int vec = kVecElems<T> * Pack;
  if (v % vec != 0)
    return Status::invalid_argument(name, "must be a multiple of " + std::to_string(vec) + " (16-byte vector loads of this type), got " +
                                              std::to_string(v));
  return Status::success();
}

/// Largest hidden / intermediate size (keeps the GEMM grids' n-tile dimension far below 65535).
inline constexpr int kMaxLayerDim = 1 << 20;

/// Checks the sizes (at construction): 16-byte vectors of the activations and of the codec's
/// stored weights, and whole groups of a group-wise codec along both reductions (H and I).
template <class T, class Codec = quant::None>
inline Status check_layer_dims(const LayerDims& d) {
  using W = typename Codec::template storage<T>;
  for (const auto& [name, v] :
       {std::pair<const char*, int>{"hidden", d.hidden}, {"intermediate", d.intermediate}, {"shared_intermediate", d.shared_intermediate}})
    if (v > kMaxLayerDim)
      return Status::invalid_argument(name, "must be at most " + std::to_string(kMaxLayerDim) + ", got " + std::to_string(v));
  if (d.hidden < 1) return Status::invalid_argument("hidden", "must be at least 1, got " + std::to_string(d.hidden));
  if (d.intermediate < 1) return Status::invalid_argument("intermediate", "must be at least 1, got " + std::to_string(d.intermediate));
  if (d.shared_intermediate < 0)
    return Status::invalid_argument("shared_intermediate", "must be >= 0, got " + std::to_string(d.shared_intermediate));
  if (d.max_tokens < 0) return Status::invalid_argument("max_tokens", "must be >= 0, got " + std::to_string(d.max_tokens));
  DEEPSHOCK_RETURN_IF_ERROR(check_vec_size<T>("hidden", d.hidden));
  DEEPSHOCK_RETURN_IF_ERROR(check_vec_size<T>("intermediate", d.intermediate));
  DEEPSHOCK_RETURN_IF_ERROR(check_vec_size<T>("shared_intermediate", d.shared_intermediate));
  if constexpr (!std::is_same_v<W, T>) {
    constexpr int P = quant::pack_v<Codec>;
    DEEPSHOCK_RETURN_IF_ERROR((check_vec_size<W, P>("hidden", d.hidden)));
    DEEPSHOCK_RETURN_IF_ERROR((check_vec_size<W, P>("intermediate", d.intermediate)));
    DEEPSHOCK_RETURN_IF_ERROR((check_vec_size<W, P>("shared_intermediate", d.shared_intermediate)));
  }
  if constexpr (quant::grouped_v<Codec>) {
    for (const auto& [name, v] : {std::pair<const char*, int>{"hidden", d.hidden},
                                  {"intermediate", d.intermediate},
                                  {"shared_intermediate", d.shared_intermediate}})
      if (v % Codec::kGroup != 0)
        return Status::invalid_argument(name, "must be a multiple of the group size " + std::to_string(Codec::kGroup) + " (" +
                                                  Codec::kName + " weights), got " + std::to_string(v));
  }
  return Status::success();
}

inline Status check_ptr(const void* p, const char* name, bool need_align) {
  if (p == nullptr) return Status::invalid_argument(name, "must not be null");
  if (need_align && !aligned16(p)) return Status::invalid_argument(name, "must be 16-byte aligned for vector loads");
  return Status::success();
}

/// Checks one run's expert weights, inputs and outputs. `routed`: the caller supplies the
/// routing (run_routed), so w_gate is not needed. `need_align`: device runs (vector loads).
template <class T, class ExpertT>
inline Status check_layer_run(const LayerDims& d, const LayerWeights<T, ExpertT>& w, const LayerInputs<T>& in, const LayerOutputs<T>& out,
                              bool routed, bool need_align) {
  constexpr bool gated = ExpertT::kGated;
  constexpr bool fused = ExpertT::gate_up_layout::kFused;
  if (in.tokens < 0) return Status::invalid_argument("tokens", "must be >= 0, got " + std::to_string(in.tokens));
  if (in.tokens > d.max_tokens)
    return Status::out_of_range("tokens", std::to_string(in.tokens) + " is above the planned maximum " + std::to_string(d.max_tokens) +
                                              " (LayerDims::max_tokens)");
  if (in.x_stride != 0 && in.x_stride < d.hidden)
    return Status::invalid_argument("x_stride",
                                    "must be 0 or >= hidden (" + std::to_string(d.hidden) + "), got " + std::to_string(in.x_stride));
  if (out.y_stride != 0 && out.y_stride < d.hidden)
    return Status::invalid_argument("y_stride",
                                    "must be 0 or >= hidden (" + std::to_string(d.hidden) + "), got " + std::to_string(out.y_stride));
  if (need_align) DEEPSHOCK_RETURN_IF_ERROR(check_vec_size<T>("x_stride", in.x_stride));
  if (w.w3 != nullptr && !gated) return Status::invalid_argument("w3", "must be null: the activation is not gated");
  if (w.shared_w3 != nullptr && !gated) return Status::invalid_argument("shared_w3", "must be null: the activation is not gated");
  if (fused && (w.w3 != nullptr || w.shared_w3 != nullptr))
    return Status::invalid_argument(w.w3 != nullptr ? "w3" : "shared_w3",
                                    std::string("must be null: gate and up are fused in w1 (gate_up::") + ExpertT::gate_up_layout::kName +
                                        ")");
  if (d.shared_intermediate == 0 && (w.shared_w1 != nullptr || w.shared_w2 != nullptr || w.shared_w3 != nullptr))
    return Status::invalid_argument("shared_w1", "shared expert weights given but LayerDims::shared_intermediate is 0");
  if (w.shared_gate_kind != SharedGate::none && w.shared_gate_kind != SharedGate::sigmoid)
    return Status::invalid_argument("shared_gate_kind", "unknown value " + std::to_string(static_cast<int>(w.shared_gate_kind)));
  if (w.shared_gate_kind == SharedGate::none && w.shared_gate != nullptr)
    return Status::invalid_argument("shared_gate", "must be null unless shared_gate_kind is SharedGate::sigmoid");
  if (w.shared_gate_kind == SharedGate::sigmoid && d.shared_intermediate == 0)
    return Status::invalid_argument("shared_gate_kind", "SharedGate::sigmoid needs a shared expert (shared_intermediate > 0)");
  if (!gated && (w.b3 != nullptr || w.shared_b3 != nullptr))
    return Status::invalid_argument(w.b3 != nullptr ? "b3" : "shared_b3", "must be null: the activation is not gated (no up projection)");
  if (d.shared_intermediate == 0) {
    // Plain arrays: nvcc's front end rejects a braced list of pairs in a range-for of a template.
    const char* const names[3] = {"shared_b1", "shared_b3", "shared_b2"};
    const float* const given[3] = {w.shared_b1, w.shared_b3, w.shared_b2};
    for (int i = 0; i < 3; ++i)
      if (given[i] != nullptr)
        return Status::invalid_argument(names[i], "a shared expert bias given but LayerDims::shared_intermediate is 0");
  }
  if (in.tokens == 0) return Status::success();
  DEEPSHOCK_RETURN_IF_ERROR(check_ptr(in.x, "x", need_align));
  if (out.y == nullptr) return Status::invalid_argument("y", "must not be null");
  if (!routed) DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.w_gate, "w_gate", false));
  DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.w1, "w1", need_align));
  if (gated && !fused) DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.w3, "w3", need_align));
  DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.w2, "w2", need_align));
  if (d.shared_intermediate > 0) {
    DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.shared_w1, "shared_w1", need_align));
    if (gated && !fused) DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.shared_w3, "shared_w3", need_align));
    DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.shared_w2, "shared_w2", need_align));
    if (w.shared_gate_kind == SharedGate::sigmoid) DEEPSHOCK_RETURN_IF_ERROR(check_ptr(w.shared_gate, "shared_gate", false));
  }
  using Adapter = typename ExpertT::adapter;
  if constexpr (Adapter::kRank == 0) {
    if (in.adapter_ids != nullptr)
      return Status::invalid_argument("adapter_ids", "must be null: the expert type has no adapter (lora::None)");
  } else {
    if (w.adapter.count < 0) return Status::invalid_argument("adapter.count", "must be >= 0, got " + std::to_string(w.adapter.count));
    if (w.adapter.count > 0 && w.adapter.adapters == nullptr)
      return Status::invalid_argument("adapter.adapters", "must not be null when count > 0");
  }
  return ExpertT::codec::validate(w.codec, gated && !fused, d.shared_intermediate > 0);
}

}  // namespace detail

}  // namespace deepshock::moe
