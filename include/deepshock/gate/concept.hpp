// deepshock/gate/concept.hpp — what a gating policy is (gate/policies.hpp has the catalogue).
//
// A policy is a type with compile-time traits; the router kernel, the simulator and the host
// reference read them (no run-time polymorphism):
//
//   struct MyGate : PolicyShape<Experts<E>, TopK<k>, Groups<G, keep>>, PolicyDefaults {
//     static constexpr Scoring kScoring = ...;          // softmax, sigmoid or the raw logits
//     static constexpr const char* kName = "MyGate";
//     // PolicyDefaults gives (and a policy may override) kGroupScore, kWeightRule, kUsesBias,
//     // kNoisy, kCapacity, kRenormalizable; default_params() is optional.
//   };
//
// Router and Layer check their Gate argument against GatePolicy, so a wrong type fails with one
// readable message instead of a cascade from the kernels.
#pragma once

#include <concepts>

#include "deepshock/gate/policies.hpp"

namespace deepshock::gate {

template <class P>
concept GatePolicy = requires {
  { P::kName } -> std::convertible_to<const char*>;
  { P::kExperts } -> std::convertible_to<int>;
  { P::kTopK } -> std::convertible_to<int>;
  { P::kGroups } -> std::convertible_to<int>;
  { P::kKeepGroups } -> std::convertible_to<int>;
  { P::kGroupSize } -> std::convertible_to<int>;
  { P::kScoring } -> std::convertible_to<Scoring>;
  { P::kGroupScore } -> std::convertible_to<GroupScore>;
  { P::kWeightRule } -> std::convertible_to<WeightRule>;
  { P::kUsesBias } -> std::convertible_to<bool>;
  { P::kNoisy } -> std::convertible_to<bool>;
  { P::kCapacity } -> std::convertible_to<bool>;
  { P::kRenormalizable } -> std::convertible_to<bool>;
};

}  // namespace deepshock::gate
