// deepshock/lora/adapter.hpp — the adapter slot of an expert.
//
// An adapter adds a low-rank update to a linear map, y = W x + s * B (A x) (PEFT semantics,
// PEFT's semantics), fused into the expert GEMMs. The slot exists from the start so that
// `moe::Expert<Codec, Adapter, Act>` keeps its shape when LoRA arrives. An adapter provides
//   static constexpr int kRank;          // compile-time rank, 0 = no adapter
//   struct Params { ... };               // run-time data (A/B pointers, scaling, adapter ids),
//                                        // carried in the layer's weight struct
//   static constexpr const char* kName;
// Only `None` (rank 0) exists so far; the grouped GEMMs accept rank 0 only and say so with a
// static_assert.
#pragma once

namespace deepshock::lora {

/// No adapter.
struct None {
  static constexpr int kRank = 0;
  struct Params {};
  static constexpr const char* kName = "none";
};

}  // namespace deepshock::lora
