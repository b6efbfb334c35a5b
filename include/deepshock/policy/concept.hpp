// deepshock/policy/concept.hpp — what a logits policy is.
//
// Safety filters, fairness adjustments and privacy noise are small policy types that compose
// into one fused pass over a [rows, vocab] matrix of logits or scores (policy/pipeline.hpp):
//
//   struct MyPolicy {
//     static constexpr const char* kName = "MyPolicy";
//     struct Params { ... };   // trivially copyable: device pointers and numbers
//     // Host: checks Params for `rows` x `vocab` logits; errors name the field ("ban_bits: ...").
//     static Status validate(const Params& p, int rows, int vocab);
//     // Host and device: the new value of element (row, col), given its current value x.
//     DEEPSHOCK_HOST_DEVICE static float apply(const Params& p, int row, int col, float x);
//   };
//
// `apply` must be a pure function of its arguments and of the memory Params points to, so the
// GPU kernel, the simulator and the host reference compute identical results, in any order.
// Per-row state that needs a pass of its own (token counts, matched banned-sequence prefixes)
// is prepared into Params before the fused pass.
#pragma once

#include <concepts>
#include <type_traits>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"

namespace deepshock::policy {

namespace detail {
template <class P>
concept LogitsPolicyMembers = requires(const typename P::Params& p, int row, int col, float x) {
  { P::kName } -> std::convertible_to<const char*>;
  { P::validate(p, row, col) } -> std::same_as<Status>;
  { P::apply(p, row, col, x) } -> std::same_as<float>;
};
}  // namespace detail

template <class P>
concept LogitsPolicy = detail::LogitsPolicyMembers<P> && std::is_trivially_copyable_v<typename P::Params>;

}  // namespace deepshock::policy
