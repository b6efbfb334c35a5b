// deepshock/quant/codec.hpp — the weight-codec slot of an expert.
//
// A codec says how expert weights are stored and turned back into the activation type inside
// the GEMM's weight-tile loads (fused dequantization). The slot exists from the start so that
// `moe::Expert<Codec, Adapter, Act>` and the layer's weight structs keep their shape when
// quantized codecs (int8, group-wise int4, fp8 with block scales) arrive. A codec provides
//   template <class T> using storage = ...;   // element type in memory for activation type T
//   struct Params { ... };                    // run-time data (scale pointers), carried in the
//                                             // layer's weight struct
//   static constexpr bool kIdentity;          // true: storage<T> is T and no decoding happens
//   static constexpr const char* kName;
// Only `None` exists so far; the grouped GEMMs accept identity codecs only and say so with a
// static_assert.
#pragma once

namespace deepshock::quant {

/// Unquantized weights: stored in the activation type, read as they are.
struct None {
  template <class T>
  using storage = T;
  struct Params {};
  static constexpr bool kIdentity = true;
  static constexpr const char* kName = "none";
};

}  // namespace deepshock::quant
