// deepshock/quant/codec.hpp — weight codecs: how expert weights are stored and turned back into
// the activation type inside the grouped GEMM (fused dequantization).
//
// A codec is a small policy type (checked by the WeightCodec concept below):
//   template <class T> using storage = ...;  // element type of the weights in memory, for
//                                            // activations of type T
//   struct Operand { ... };                  // run-time data of one weight matrix in the GEMM
//                                            // (device pointers: scales), trivially copyable
//   struct Params { ... };                   // run-time data of a layer's matrices (LayerWeights)
//   static constexpr bool kIdentity;         // storage<T> is T and nothing is decoded
//   static constexpr const char* kName;
//   static Operand operand(const Params&, Matrix m, long long stride, long long first, int step)
//                                            // a layer matrix's data for the GEMM: its output
//                                            // channel n of expert g is row g * stride + first +
//                                            // n * step of m's per-row data (fused gate/up layouts
//                                            // take every other row: step 2)
//   static Status validate(const Params&, bool gated, bool shared)     // the layer's check;
//                                            // errors name the field ("codec.w1_scale: ...")
// and, where kIdentity is false, the GEMM's hooks (host and device):
//   static std::uint32_t pair(const storage<T>* p)   // stored elements p[0], p[1] -> two T in
//                                                    // one register (low half: p[0]), the
//                                                    // operand of a tensor-core fragment
//   static float value(storage<T> q)                 // one stored element as a number (fp32 path)
//   static float scale(const Operand&, int g, int n) // the factor of output column n of group
//                                                    // g's matrix, applied in the epilogue
//   static const float* row_scales(const Params&, Matrix)  // host: matrix m's scale per row
// The GEMM multiplies the decoded values (exact in T) and scales the fp32 accumulator per
// output channel, so the result is the GEMM of the dequantized weights w = value(q) * scale up
// to fp32 rounding.
//
// Codecs so far:
//   None          unquantized weights, read as they are
//   Int8Channel   int8 weights, one fp32 scale per output channel, symmetric (W8A16)
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock::quant {

/// The weight matrices of a MoE layer (LayerWeights), as codecs name them.
enum class Matrix { w1, w3, w2, shared_w1, shared_w3, shared_w2 };

/// Unquantized weights: stored in the activation type, read as they are.
struct None {
  template <class T>
  using storage = T;
  struct Operand {};
  struct Params {};
  static constexpr bool kIdentity = true;
  static constexpr const char* kName = "none";
  static Operand operand(const Params&, Matrix, long long, long long, int) { return {}; }
  static Status validate(const Params&, bool, bool) { return Status::success(); }
};

/// int8 weights with one fp32 scale per output channel (row of the [N, K] matrix), symmetric:
/// w[n, k] = q[n, k] * scale[n]. Activations stay in T (W8A16); the GEMM converts each int8 to T
/// (exact: |q| <= 127) after the shared-memory load and applies the scale to the fp32 accumulator.
/// Quantizer and reference decoding: quant/int8.hpp.
struct Int8Channel {
  template <class T>
  using storage = std::int8_t;
  /// One matrix of the grouped GEMM: output channel n of group g has scale[g * stride + n * step].
  struct Operand {
    const float* scale = nullptr;
    long long stride = 0;
    int step = 1;
  };
  /// A layer's matrices: scales of w1, w3, w2 ([E, I], [E, I], [E, H]) and of the shared expert,
  /// one per row of the stored matrix (a fused gate/up w1 [E, 2I, H] has w1_scale [E, 2I] and
  /// no w3_scale).
  struct Params {
    const float* w1_scale = nullptr;
    const float* w3_scale = nullptr;
    const float* w2_scale = nullptr;
    const float* shared_w1_scale = nullptr;
    const float* shared_w3_scale = nullptr;
    const float* shared_w2_scale = nullptr;
  };
  static constexpr bool kIdentity = false;
  static constexpr const char* kName = "int8_channel";

  DEEPSHOCK_HOST_DEVICE static float value(std::int8_t q) { return static_cast<float>(q); }
  /// Two int8 as two T in one 32-bit register (p[0] in the low half).
  template <class T>
  DEEPSHOCK_HOST_DEVICE static std::uint32_t pair(const std::int8_t* p) {
    const T lo(static_cast<float>(p[0])), hi(static_cast<float>(p[1]));
    return static_cast<std::uint32_t>(lo.bits) | (static_cast<std::uint32_t>(hi.bits) << 16);
  }
  DEEPSHOCK_HOST_DEVICE static float scale(const Operand& o, int g, int n) {
    return o.scale[static_cast<long long>(g) * o.stride + static_cast<long long>(n) * o.step];
  }

  static const float* row_scales(const Params& p, Matrix m) {
    switch (m) {
      case Matrix::w1: return p.w1_scale;
      case Matrix::w3: return p.w3_scale;
      case Matrix::w2: return p.w2_scale;
      case Matrix::shared_w1: return p.shared_w1_scale;
      case Matrix::shared_w3: return p.shared_w3_scale;
      case Matrix::shared_w2: return p.shared_w2_scale;
    }
    return nullptr;
  }
  static Operand operand(const Params& p, Matrix m, long long stride, long long first, int step) {
    const float* s = row_scales(p, m);
    return {s == nullptr ? nullptr : s + first, stride, step};
  }
  static Status validate(const Params& p, bool gated, bool shared) {
    const struct {
      const float* ptr;
      const char* name;
      bool needed;
    } fields[] = {{p.w1_scale, "codec.w1_scale", true},          {p.w3_scale, "codec.w3_scale", gated},
                  {p.w2_scale, "codec.w2_scale", true},          {p.shared_w1_scale, "codec.shared_w1_scale", shared},
                  {p.shared_w3_scale, "codec.shared_w3_scale", shared && gated}, {p.shared_w2_scale, "codec.shared_w2_scale", shared}};
    for (const auto& f : fields)
      if (f.needed && f.ptr == nullptr) return Status::invalid_argument(f.name, "must not be null (int8_channel weights need their scales)");
    return Status::success();
  }
};

/// What the grouped GEMM requires of a codec (one readable failure for a wrong one).
template <class C>
concept WeightCodec = requires(const typename C::Params& params) {
  { C::kIdentity } -> std::convertible_to<bool>;
  { C::kName } -> std::convertible_to<const char*>;
  typename C::Operand;
  typename C::Params;
  typename C::template storage<float>;
  { C::operand(params, Matrix::w1, 0LL, 0LL, 1) } -> std::same_as<typename C::Operand>;
  { C::validate(params, true, true) } -> std::same_as<Status>;
} && std::is_trivially_copyable_v<typename C::Operand> && std::is_trivially_copyable_v<typename C::Params> &&
                      (C::kIdentity || requires(const typename C::Operand& o, typename C::template storage<bf16> q,
                                                const typename C::template storage<bf16>* p) {
                        { C::value(q) } -> std::same_as<float>;
                        { C::template pair<bf16>(p) } -> std::same_as<std::uint32_t>;
                        { C::scale(o, 0, 0) } -> std::same_as<float>;
                        { C::row_scales(typename C::Params{}, Matrix::w1) } -> std::same_as<const float*>;
                      });

}  // namespace deepshock::quant
