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
//   static Operand operand(const Params&, Matrix m, long long rows, long long first, int step)
//                                            // a layer matrix's data for the GEMM: `rows` stored
//                                            // rows per expert; output channel n of the GEMM is
//                                            // stored row first + n * step of its expert (fused
//                                            // gate/up layouts take every other row: step 2)
//   static Status validate(const Params&, bool gated, bool shared)     // the layer's check;
//                                            // errors name the field ("codec.w1_scale: ...")
// and, where kIdentity is false, the GEMM's hooks (host and device):
//   static constexpr int kPack;              // values per stored element (2: two 4-bit codes
//                                            // in a byte); K is counted in values
//   static constexpr int kGroup;             // 0: one factor per output channel, applied to the
//                                            // fp32 accumulator in the epilogue (scale());
//                                            // G > 0: factors per output channel and group of G
//                                            // values along K, applied while decoding (the
//                                            // mainloop stages them in shared memory per k-tile)
//   struct Factors;                          // the decoding data of one (channel, group)
//   template <class T> static std::uint32_t pair(const storage<T>* row, int k, const Factors&)
//                                            // values k, k + 1 (k even) of a stored row as two
//                                            // T in one register (low half: k), the operand of
//                                            // a tensor-core fragment
//   template <class T> static void decode_row(const Params&, Matrix, const storage<T>* base,
//                                             RowRef, float* out)
//                                            // host: a stored row as the GEMM multiplies it
//   template <class T> static void decode_row_ref(const Params&, Matrix, const storage<T>* base,
//                                                 RowRef, double* out)
//                                            // host: the dequantized row in double (reference)
// Epilogue-scaled codecs (kGroup == 0) also give
//   static float value(storage<T> q)                 // one stored element as a number (fp32 path)
//   static float scale(const Operand&, int g, int n) // the factor of output column n of group g
// so the result is the GEMM of the dequantized weights w = value(q) * scale up to fp32 rounding;
// group codecs decode each weight to T (one rounding, stated by the codec) and the GEMM
// multiplies those decoded weights exactly as it multiplies unquantized ones.
//
// Codecs so far:
//   None          unquantized weights, read as they are
//   Int8Channel   int8 weights, one fp32 scale per output channel, symmetric (W8A16)
//   Int8ChannelA8 the same weights with int8 activations per token (W8A8, int8 tensor cores)
//   Int4Group     4-bit weights, 16-bit scales (and zero points) per group of G along K
//                 (W4A16; quant/int4.hpp)
//   Mxfp4, Nvfp4  E2M1 weights with E8M0 scales per 32 / E4M3 scales per 16 values along K (and,
//                 Nvfp4, an fp32 factor per expert matrix) (W4A16; quant/fp4.hpp)
//   Fp8Block      E4M3 weights with an fp32 scale per 128 x 128 block (DeepSeek-V3; W8A16,
//                 quant/fp8.hpp)
#pragma once

#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/numeric.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock::quant {

/// The weight matrices of a MoE layer (LayerWeights), as codecs name them.
enum class Matrix { w1, w3, w2, shared_w1, shared_w3, shared_w2 };

/// One row of a stacked [experts, rows, cols] weight matrix, as the host decoders take it.
struct RowRef {
  long long expert = 0;                                   ///< 0 for the shared expert
  long long rows = 0;                                     ///< stored rows per expert
  long long row = 0;                                      ///< the row inside its expert
  long long cols = 0;                                     ///< values per row (K)
  long long flat() const { return expert * rows + row; }  ///< the row among all experts' rows
};

/// Data of each of a layer's six weight matrices: the Params of codecs whose per-matrix data is
/// one struct D (scale and zero pointers).
template <class D>
struct PerMatrix {
  D w1, w3, w2, shared_w1, shared_w3, shared_w2;
  const D& of(Matrix m) const {
    switch (m) {
      case Matrix::w1: return w1;
      case Matrix::w3: return w3;
      case Matrix::w2: return w2;
      case Matrix::shared_w1: return shared_w1;
      case Matrix::shared_w3: return shared_w3;
      case Matrix::shared_w2: break;
    }
    return shared_w2;
  }
};

/// Runs check(data, "codec.<matrix>") on each matrix a layer reads (w3 only when gated, the
/// shared expert's only when there is one) and returns the first error: a codec's validate().
template <class D, class Check>
Status for_each_matrix(const PerMatrix<D>& p, bool gated, bool shared, Check&& check) {
  const struct {
    const D* d;
    const char* name;
    bool needed;
  } fields[] = {{&p.w1, "codec.w1", true},
                {&p.w3, "codec.w3", gated},
                {&p.w2, "codec.w2", true},
                {&p.shared_w1, "codec.shared_w1", shared},
                {&p.shared_w3, "codec.shared_w3", shared && gated},
                {&p.shared_w2, "codec.shared_w2", shared}};
  for (const auto& f : fields)
    if (f.needed) DEEPSHOCK_RETURN_IF_ERROR(check(*f.d, std::string(f.name)));
  return Status::success();
}

namespace detail {
/// The checks every host quantizer makes, in one order: sizes (>= 0, cols whole groups of
/// `group`), then for a non-empty matrix the pointers, the row strides (ld >= cols, ldq >= cols /
/// pack stored elements) and finite weights. `empty` tells the caller there is nothing to do.
inline Status check_quantizer_args(const float* w, long long rows, long long cols, long long ld, const void* q, long long ldq, int pack,
                                   const void* scale, int group, bool& empty) {
  empty = true;
  if (rows < 0 || cols < 0) return Status::invalid_argument("rows/cols", "must be >= 0");
  if (group > 1 && cols % group != 0)
    return Status::invalid_argument("cols",
                                    "must be a multiple of the group size " + std::to_string(group) + ", got " + std::to_string(cols));
  if (rows == 0 || cols == 0) return Status::success();
  if (w == nullptr) return Status::invalid_argument("w", "must not be null");
  if (q == nullptr) return Status::invalid_argument("q", "must not be null");
  if (scale == nullptr) return Status::invalid_argument("scale", "must not be null");
  if (ld < cols) return Status::invalid_argument("ld", "must be >= cols (" + std::to_string(cols) + "), got " + std::to_string(ld));
  if (ldq < cols / pack)
    return Status::invalid_argument("ldq", "must be >= " + std::string(pack == 1 ? "cols" : "cols / 2") + " (" +
                                               std::to_string(cols / pack) + "), got " + std::to_string(ldq));
  for (long long r = 0; r < rows; ++r)
    for (long long c = 0; c < cols; ++c)
      if (!std::isfinite(w[r * ld + c]))
        return Status::invalid_argument("w", "w[" + std::to_string(r) + ", " + std::to_string(c) + "] is not finite");
  empty = false;
  return Status::success();
}

/// The GEMM's checks of a group codec's operand of an N x K problem: whole groups along K
/// (group > 1), contiguous output channels (step 1), scales present, and for per-channel scale
/// rows (align > 0) as many stored rows per expert as output channels, starting `align`-byte
/// aligned in rows of multiples of 8 (the mainloop stages 8 channels' scales per copy).
inline Status check_group_operand(const char* codec, int group, long long k, int step, const void* scale, long long rows, long long n,
                                  int align) {
  if (group > 1 && k % group != 0)
    return Status::invalid_argument("k", "must be a multiple of the group size " + std::to_string(group) + " (" + codec + "), got " +
                                             std::to_string(k));
  if (step != 1)
    return Status::invalid_argument("gate_up", std::string(codec) +
                                                   " needs contiguous output channels (gate_up::Separate or Halves, not Interleaved)");
  if (scale == nullptr) return Status::invalid_argument("codec.scale", "must not be null");
  if (align == 0) return Status::success();
  if (rows < n)
    return Status::invalid_argument("codec.rows", "the scales' rows per expert (" + std::to_string(rows) +
                                                      ") must cover the N = " + std::to_string(n) + " output channels");
  if (reinterpret_cast<std::uintptr_t>(scale) % static_cast<std::uintptr_t>(align) != 0 || rows % 8 != 0)
    return Status::invalid_argument("codec.scale", "rows of scales must start " + std::to_string(align) +
                                                       "-byte aligned (aligned pointer, a multiple of 8 rows per expert)");
  return Status::success();
}

/// Host decoders for codecs that decode a row into float and double alike (the weight defined
/// in T): Derived::decode_into<T>(params, m, base, row, out) does the work.
template <class Derived>
struct RowDecoders {
  /// Host: row r of a matrix as the GEMM multiplies it.
  template <class T, class P, class W>
  static void decode_row(const P& p, Matrix m, const W* base, const RowRef& r, float* out) {
    Derived::template decode_into<T>(p, m, base, r, out);
  }
  /// Host: the dequantized row in double (the reference).
  template <class T, class P, class W>
  static void decode_row_ref(const P& p, Matrix m, const W* base, const RowRef& r, double* out) {
    Derived::template decode_into<T>(p, m, base, r, out);
  }
};
}  // namespace detail

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
  using scale_bits = float;  ///< the stored per-channel scale
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

  static constexpr int kPack = 1;
  static constexpr int kGroup = 0;
  struct Factors {};

  DEEPSHOCK_HOST_DEVICE static float value(std::int8_t q) { return static_cast<float>(q); }
  /// Values k, k + 1 of a stored row as two T in one 32-bit register (k in the low half).
  template <class T>
  DEEPSHOCK_HOST_DEVICE static std::uint32_t pair(const std::int8_t* row, int k, const Factors&) {
    const T lo(static_cast<float>(row[k])), hi(static_cast<float>(row[k + 1]));
    return static_cast<std::uint32_t>(lo.bits) | (static_cast<std::uint32_t>(hi.bits) << 16);
  }
  DEEPSHOCK_HOST_DEVICE static float scale(const Operand& o, int g, int n) {
    return o.scale[static_cast<long long>(g) * o.stride + static_cast<long long>(n) * o.step];
  }

  /// Host: row r as value(q) * scale (float; the GEMM scales its fp32 sums instead, which
  /// differs in rounding only).
  template <class T>
  static void decode_row(const Params& p, Matrix m, const std::int8_t* base, const RowRef& r, float* out) {
    const std::int8_t* q = base + r.flat() * r.cols;
    const float s = row_scales(p, m)[r.flat()];
    for (long long c = 0; c < r.cols; ++c) out[c] = value(q[c]) * s;
  }
  template <class T>
  static void decode_row_ref(const Params& p, Matrix m, const std::int8_t* base, const RowRef& r, double* out) {
    const std::int8_t* q = base + r.flat() * r.cols;
    const double s = row_scales(p, m)[r.flat()];
    for (long long c = 0; c < r.cols; ++c) out[c] = static_cast<double>(q[c]) * s;
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
    } fields[] = {{p.w1_scale, "codec.w1_scale", true},
                  {p.w3_scale, "codec.w3_scale", gated},
                  {p.w2_scale, "codec.w2_scale", true},
                  {p.shared_w1_scale, "codec.shared_w1_scale", shared},
                  {p.shared_w3_scale, "codec.shared_w3_scale", shared && gated},
                  {p.shared_w2_scale, "codec.shared_w2_scale", shared}};
    for (const auto& f : fields)
      if (f.needed && f.ptr == nullptr)
        return Status::invalid_argument(f.name, "must not be null (int8_channel weights need their scales)");
    return Status::success();
  }
};

namespace detail {
/// The hooks of a quantized codec (kIdentity false): decoding on the device and on the host.
template <class C>
concept DecodingHooks = requires(const typename C::Params& params, const typename C::Factors& f,
                                 const typename C::template storage<bf16>* p, float* out, double* out_ref) {
  { C::kPack } -> std::convertible_to<int>;
  { C::kGroup } -> std::convertible_to<int>;
  { C::template pair<bf16>(p, 0, f) } -> std::same_as<std::uint32_t>;
  C::template decode_row<bf16>(params, Matrix::w1, p, RowRef{}, out);
  C::template decode_row_ref<bf16>(params, Matrix::w1, p, RowRef{}, out_ref);
};
template <class C>
concept DecodingCodec = DecodingHooks<C> && C::kGroup >= 0 && (C::kPack == 1 || C::kPack == 2);

/// Epilogue-scaled codecs (kGroup == 0) also give a stored element's value and a channel's scale.
template <class C>
concept EpilogueScaledCodec = requires(const typename C::Operand& o, typename C::template storage<bf16> q) {
  { C::value(q) } -> std::same_as<float>;
  { C::scale(o, 0, 0) } -> std::same_as<float>;
};
/// Whether a codec declares kEpilogueScale = true.
template <class C>
inline constexpr bool epilogue_flag_v = requires {
  requires C::kEpilogueScale;
};
/// Group codecs (kGroup > 0) name their scales' storage type and build a (channel, group)'s
/// Factors from its stored scale and zero; with kEpilogueScale they also give scale().
template <class C>
concept GroupHooks = requires(const typename C::Operand& o, typename C::scale_bits s) {
  { C::factors(s, std::uint8_t{0}) } -> std::same_as<typename C::Factors>;
  { C::kZeros } -> std::convertible_to<bool>;
  requires(!epilogue_flag_v<C> || requires {
    { C::scale(o, 0, 0) } -> std::same_as<float>;
  });
};
}  // namespace detail

/// W8A8: Int8Channel's weights (int8, one fp32 scale per output channel) with the activations
/// quantized per token (per row of x, and of h for the down projection) dynamically, by the same
/// rule as the weights — scale = amax(|row|) / 127, codes rne(v / scale) clamped to [-127, 127]
/// — just before the GEMM that reads them (moe/act_quant.hpp). The GEMM multiplies int8 by int8
/// on the tensor cores (mma.sync m16n8k32 s8, exact int32 sums per k-tile) and applies
/// scale_token x scale_channel in the epilogue. No per-tensor scale: a token's result does not
/// depend on its batch.
struct Int8ChannelA8 : Int8Channel {
  static constexpr const char* kName = "w8a8_int8";
  static constexpr bool kActInt8 = true;
};

/// Whether a codec quantizes the activations to int8 per row (W8A8).
template <class C>
inline constexpr bool act_int8_v = requires {
  requires C::kActInt8;
};
/// Whether a codec quantizes the activations to FP8 E4M3 per token in 1 x 128 groups and
/// multiplies on the FP8 tensor cores (quant::Fp8BlockA8, quant/fp8.hpp).
template <class C>
inline constexpr bool act_fp8_v = requires {
  requires C::kActFp8;
};

namespace detail {
/// The members every codec has.
template <class C>
concept CodecMembers = requires(const typename C::Params& params) {
  { C::kIdentity } -> std::convertible_to<bool>;
  { C::kName } -> std::convertible_to<const char*>;
  typename C::Operand;
  typename C::Params;
  typename C::template storage<float>;
  { C::operand(params, Matrix::w1, 0LL, 0LL, 1) } -> std::same_as<typename C::Operand>;
  { C::validate(params, true, true) } -> std::same_as<Status>;
};
}  // namespace detail

/// What the grouped GEMM requires of a codec (one readable failure for a wrong one).
template <class C>
concept WeightCodec = detail::CodecMembers<C> && std::is_trivially_copyable_v<typename C::Operand> &&
    std::is_trivially_copyable_v<typename C::Params> &&
    (C::kIdentity || (detail::DecodingCodec<C> && (C::kGroup > 0 ? detail::GroupHooks<C> : detail::EpilogueScaledCodec<C>)));

/// Values per stored element and the in-mainloop group size of a codec (1 and 0 for identity
/// codecs), for code that handles every codec.
template <class C>
inline constexpr int pack_v = [] {
  if constexpr (C::kIdentity) return 1;
  else return C::kPack;
}();
template <class C>
inline constexpr int group_v = [] {
  if constexpr (C::kIdentity) return 0;
  else return C::kGroup;
}();
/// Whether a codec decodes group-wise factors in the mainloop (kGroup > 0).
template <class C>
inline constexpr bool grouped_v = group_v<C> > 0;
/// Whether a codec's factors multiply the GEMM's fp32 sums in the epilogue: per-channel codecs
/// (kGroup == 0), and group codecs with a per-matrix factor besides (kEpilogueScale: Nvfp4).
template <class C>
inline constexpr bool epilogue_scaled_v = !C::kIdentity && (group_v<C> == 0 || detail::epilogue_flag_v<C>);
/// Output channels that share one stored scale: 1, unless a group codec declares kScaleShare
/// (Fp8Block: 128, one scale per 128 x 128 block, read through Codec::block_scale()).
template <class C>
inline constexpr int scale_share_v = [] {
  if constexpr (requires { C::kScaleShare; }) return C::kScaleShare;
  else return 1;
}();
/// The element type of a group codec's stored scales (16-bit for Int4Group, 8-bit for the FP4
/// codecs).
template <class C>
using scale_bits_t = typename C::scale_bits;

}  // namespace deepshock::quant
