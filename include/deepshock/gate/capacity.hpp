// deepshock/gate/capacity.hpp — Switch-style expert capacity on the device.
//
// Given top-1 ids [T] and a capacity C, each token's priority is its position among the tokens
// routed to the same expert, in token order (Switch Transformer); tokens at position >= C are
// dropped (their expert output is 0 and they pass on the residual). Outputs are described by
// CapacityOutputs (gate/reference_stats.hpp, which also holds switch_capacity() and the host
// reference).
//
// Design: one block per expert (one warp when T <= 512, else 128 threads) scans all ids in
// token order, in chunks of Threads x 16 tokens; each thread counts its 16 contiguous tokens and
// a block-wide exclusive scan (deepshock::block::exclusive_scan_sum) turns the counts into
// positions. One extra block marks ids outside [0, E). Integer arithmetic only, so results are
// exact and deterministic. Reads cost E x T ids (mostly from L2); E <= 1024. A final elementwise
// pass applies the drops to the optional routing outputs, so `topk_ids` may alias `top1_ids`
// without any cross-block race.
// Never allocates or synchronises; graph-capturable.
#pragma once

#include <cstddef>
#include <cstdint>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/gate/reference_stats.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/block.hpp"
#endif

namespace deepshock::gate {

namespace detail {
inline constexpr int kCapacityItems = 16;         ///< contiguous tokens per thread per chunk
inline constexpr int kCapacitySmallThreads = 32;  ///< one warp per expert when T <= 32 * Items (decode)
inline constexpr int kCapacityThreads = 128;      ///< threads per expert block otherwise
inline constexpr int kApplyThreads = 256;         ///< threads per block of the elementwise pass
}  // namespace detail

#if DEEPSHOCK_HAS_KERNELS
namespace kernels {

/// Block e < E: positions, drop flags and the kept count of expert e; adds its drops to
/// *dropped_count (zeroed beforehand). Block E: position -1, dropped 0 for ids outside [0, E).
template <int Threads, int Items>
DEEPSHOCK_KERNEL void capacity_kernel(const int* ids, int T, int E, int capacity, int* position, std::uint8_t* dropped, int* dropped_count,
                                      int* kept_counts) {
  static_assert(Items >= 1 && Items <= 32, "capacity_kernel: 1 to 32 items per thread (one flag bit each).");
  __shared__ int scratch[block::kScratchWords];
  const int e = static_cast<int>(blockIdx.x);
  const bool marker = e == E;  // the block for ids outside [0, E)
  const int tid = static_cast<int>(threadIdx.x);
  constexpr int kChunk = Threads * Items;
  int base = 0;                                   // tokens of this block's class in earlier chunks
  for (long long c0 = 0; c0 < T; c0 += kChunk) {  // 64-bit: no overflow for T near INT_MAX
    const long long first = c0 + static_cast<long long>(tid) * Items;
    unsigned flags = 0;
    int mine = 0;
    for (int j = 0; j < Items; ++j) {
      const long long t = first + j;
      if (t >= T) break;
      const int id = ids[t];
      const bool match = marker ? (id < 0 || id >= E) : id == e;
      if (match) {
        flags |= 1u << j;
        ++mine;
      }
    }
    int total = 0;
    int pos = base + block::exclusive_scan_sum(mine, total, scratch);  // ends with a barrier
    for (int j = 0; flags != 0; ++j, flags >>= 1) {
      if (!(flags & 1u)) continue;
      const long long t = first + j;
      if (marker) {
        position[t] = -1;
        dropped[t] = 0;
      } else {
        position[t] = pos;
        dropped[t] = pos >= capacity ? 1 : 0;
        ++pos;
      }
    }
    base += total;
  }
  if (!marker && tid == 0) {
    const int kept = base < capacity ? base : capacity;
    kept_counts[e] = kept;
    if (base > kept) atomicAdd(dropped_count, base - kept);
  }
}

/// Elementwise: for dropped tokens, weights[t] = 0 and ids_out[t] = -1 (either may be null).
template <int Threads>
DEEPSHOCK_KERNEL void apply_drops_kernel(const std::uint8_t* dropped, int T, float* weights, int* ids_out) {
  const long long t = static_cast<long long>(blockIdx.x) * Threads + threadIdx.x;
  if (t >= T || dropped[t] == 0) return;
  if (weights != nullptr) weights[t] = 0.0f;
  if (ids_out != nullptr) ids_out[t] = -1;
}

}  // namespace kernels

/// Switch capacity: for top-1 ids [T] (device; -1 = padding) and capacity C >= 0 (e.g.
/// switch_capacity(T, E, factor)), writes for every token
///   out.position[t]  its 0-based rank among the tokens routed to the same expert, in token
///                    order (written also for dropped tokens); -1 for ids outside [0, E);
///   out.dropped[t]   1 when position >= C, else 0 (0 for ids outside [0, E));
/// and out.kept_counts[e] = min(routed_e, C), *out.dropped_count = sum_e max(0, routed_e - C).
/// When given, out.topk_weights[t] = 0 and out.topk_ids[t] = -1 for dropped tokens (other
/// entries untouched); out.topk_ids may be the same array as top1_ids. Ids < -1 or >= E are
/// treated like padding, without an error. T = 0 writes zero counts. All pointers are device
/// pointers.
inline Status apply_switch_capacity(const int* top1_ids, int T, int E, int capacity, const CapacityOutputs& out, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_capacity_args(top1_ids, T, E, capacity, out));
  DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(out.dropped_count, 0, sizeof(int), stream));
  const dim3 grid(static_cast<unsigned>(E) + 1u);
  if (T <= detail::kCapacitySmallThreads * detail::kCapacityItems) {
    DEEPSHOCK_RETURN_IF_ERROR(launch(kernels::capacity_kernel<detail::kCapacitySmallThreads, detail::kCapacityItems>,
                                     {grid, dim3(detail::kCapacitySmallThreads), 0, stream}, top1_ids, T, E, capacity, out.position,
                                     out.dropped, out.dropped_count, out.kept_counts));
  } else {
    DEEPSHOCK_RETURN_IF_ERROR(launch(kernels::capacity_kernel<detail::kCapacityThreads, detail::kCapacityItems>,
                                     {grid, dim3(detail::kCapacityThreads), 0, stream}, top1_ids, T, E, capacity, out.position, out.dropped,
                                     out.dropped_count, out.kept_counts));
  }
  if (T == 0 || (out.topk_weights == nullptr && out.topk_ids == nullptr)) return Status::success();
  const unsigned blocks = static_cast<unsigned>((static_cast<long long>(T) + detail::kApplyThreads - 1) / detail::kApplyThreads);
  return launch(kernels::apply_drops_kernel<detail::kApplyThreads>, {dim3(blocks), dim3(detail::kApplyThreads), 0, stream}, out.dropped, T,
                out.topk_weights, out.topk_ids);
}

#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::gate
