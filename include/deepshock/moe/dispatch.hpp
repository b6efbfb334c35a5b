// deepshock/moe/dispatch.hpp — MoE token dispatch on the device: a stable counting sort of the
// (token, slot) assignments by expert.
//
// From topk_ids [T, k] (int32, -1 = no expert; ids outside [0, E) are treated as -1) it writes
// per-expert counts, their exclusive scan, and the expert-major permutation of the valid
// assignments (sorted_token, sorted_slot) with its inverse (slot_position). Within an expert the
// order is the flat slot order t * k + j (token order, then slot order): stable. No activation
// rows are copied. Semantics and DispatchOutputs are in moe/reference_dispatch.hpp, which also
// holds the host reference.
//
// Design (N = T * k assignments, split into C = ceil(N / kDispatchChunk) contiguous chunks):
//   1. count_kernel, one block per chunk: a shared-memory histogram over the chunk's ids
//      (integer shared atomics: exact, order-independent), written to the workspace as
//      chunk_counts[c * E + e].
//   2. scan_kernel, one block, thread e per expert: sums expert e's chunk counts (expert_counts),
//      a block-wide exclusive scan over experts (expert_offsets, offsets[E] = total,
//      invalid_count = N - total), then rewrites chunk_counts[c * E + e] in place as the
//      exclusive offset of (expert e, chunk c) in (expert, chunk) order: the first position of
//      chunk c's assignments to e.
//   3. place_kernel, one block per chunk: per-expert running positions in shared memory,
//      seeded from the workspace. The chunk is read in rounds of Threads consecutive
//      assignments (thread i takes the i-th, coalesced); within a warp, __match_any_sync groups
//      lanes with the same expert and a lane's rank is the number of lower peers; the warps of
//      a round then take turns in warp order (one barrier each), each reading its positions and
//      advancing the counters. Processing is thus in exact slot order: stable and deterministic
//      without any ordering of atomics.
// With one chunk (N <= 2048 assignments: decode and small batches) the three steps run in one
// block of one kernel (dispatch_single_kernel), since at decode every launch boundary costs
// more than the work. The scan also writes the grouped GEMM's m-tile offsets when asked
// (DispatchOutputs::tile_offsets), so the MoE layer needs no separate tile scan.
// Costs: two reads of the ids, one write of each output; empty experts cost only their count
// (E x C workspace ints and the scan). Workspace: dispatch_workspace_bytes(T, k, E).
// Never allocates or synchronises with the host; graph-capturable. Every kernel starts with
// pdl::wait(), so each may be launched as a programmatic dependent launch (platform/launch.hpp),
// as they are where the caller asks (dependent_launch; the MoE layer does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/moe/reference_dispatch.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/block.hpp"
#endif

namespace deepshock::moe {

namespace detail {
inline constexpr int kDispatchThreads = 256;                               ///< threads of the chunk kernels
inline constexpr int kDispatchRounds = 8;                                  ///< rounds of Threads assignments per chunk
inline constexpr int kDispatchChunk = kDispatchThreads * kDispatchRounds;  ///< assignments per chunk

inline long long dispatch_chunks(long long n) { return (n + kDispatchChunk - 1) / kDispatchChunk; }
}  // namespace detail

/// Workspace bytes dispatch needs for [T, k] ids and E experts (0 when T = 0; 0 for invalid
/// arguments, which dispatch rejects anyway).
inline std::size_t dispatch_workspace_bytes(int T, int k, int E) {
  if (T < 0 || k < 1 || E < 1) return 0;
  const long long n = static_cast<long long>(T) * k;
  return static_cast<std::size_t>(detail::dispatch_chunks(n)) * static_cast<std::size_t>(E) * sizeof(int);
}

#if DEEPSHOCK_HAS_KERNELS
namespace kernels {

/// Block c: chunk_counts[c * E + e] = assignments to e among ids[c * Chunk, (c + 1) * Chunk).
/// hist[e] (shared memory) = assignments to local expert e among ids[begin, end), by the
/// block's `threads` threads (integer shared atomics: exact, order-independent). Every thread of
/// the block must call it; it ends with a barrier.
DEEPSHOCK_DEVICE void count_assignments(const int* ids, long long begin, long long end, int first, int E, int* hist, int threads) {
  const int tid = static_cast<int>(threadIdx.x);
  for (int e = tid; e < E; e += threads) hist[e] = 0;
  __syncthreads();
  for (long long a = begin + tid; a < end; a += threads) {
    const int id = detail::local_expert(ids[a], first, E);
    if (id >= 0) atomicAdd(&hist[id], 1);
  }
  __syncthreads();
}

template <int Threads, int Rounds>
DEEPSHOCK_KERNEL void dispatch_count_kernel(const int* ids, long long n, int first, int E, int* chunk_counts) {
  __shared__ int hist[kMaxDispatchExperts];
  pdl::wait();
  pdl::launch_dependents();
  const int tid = static_cast<int>(threadIdx.x);
  const long long c = blockIdx.x;
  const long long begin = c * (static_cast<long long>(Threads) * Rounds);
  const long long end = begin + static_cast<long long>(Threads) * Rounds < n ? begin + static_cast<long long>(Threads) * Rounds : n;
  count_assignments(ids, begin, end, first, E, hist, Threads);
  for (int e = tid; e < E; e += Threads) chunk_counts[c * E + e] = hist[e];
}

/// Places assignments [begin, end) in slot order, advancing the per-expert positions `next`
/// (shared memory). The block's `warps` warps read Threads = 32 x warps consecutive
/// assignments per round (coalesced); within a warp __match_any_sync groups lanes with the same
/// expert and a lane's rank is the number of lower peers; the warps of a round then take turns
/// in warp order (one barrier each). Every thread of the block must call it.
DEEPSHOCK_DEVICE void place_assignments(const int* ids, long long begin, long long end, int k, int first, int E, int* next, int warps,
                                        const DispatchOutputs& out) {
  const int tid = static_cast<int>(threadIdx.x);
  const int warp_id = tid / 32;
  const unsigned lane = static_cast<unsigned>(tid) & 31u;
  const int threads = 32 * warps;
  for (long long base = begin; base < end; base += threads) {  // uniform trip count in the block
    const long long a = base + tid;
    const int id = a < end ? detail::local_expert(ids[a], first, E) : -1;
    const unsigned peers = __match_any_sync(0xffffffffu, id);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    const bool last = (peers >> lane) == 1u;  // highest lane of its group
    int pos = -1;
    for (int w = 0; w < warps; ++w) {
      if (w == warp_id && id >= 0) pos = next[id] + rank;
      __syncwarp(0xffffffffu);
      if (w == warp_id && id >= 0 && last) next[id] = pos + 1;
      __syncthreads();
    }
    if (a < end) {
      out.slot_position[a] = pos;
      if (pos >= 0) {
        out.sorted_token[pos] = static_cast<int>(a / k);
        out.sorted_slot[pos] = static_cast<int>(a);
      }
    }
  }
}

/// Thread e < E holds expert e's count: writes counts, offsets, the invalid count and (when
/// asked) the tile offsets; returns e's offset. Every thread of the block must call it.
DEEPSHOCK_DEVICE int scan_experts(int count, int E, long long n, const DispatchOutputs& out, int* scratch) {
  const int e = static_cast<int>(threadIdx.x);
  int total = 0;
  const int offset = block::exclusive_scan_sum(count, total, scratch);
  if (e < E) {
    out.expert_counts[e] = count;
    out.expert_offsets[e] = offset;
  }
  if (e == 0) {
    out.expert_offsets[E] = total;
    if (out.invalid_count != nullptr) *out.invalid_count = static_cast<int>(n - total);
  }
  if (out.tile_offsets != nullptr) {  // uniform in the block
    const int tiles = e < E ? (count + out.tile_rows - 1) / out.tile_rows : 0;
    int all = 0;
    const int first = block::exclusive_scan_sum(tiles, all, scratch);
    if (e < E) out.tile_offsets[e] = first;
    if (e == 0) out.tile_offsets[E] = all;
  }
  return offset;
}

/// One block of at least E threads (a multiple of 32, <= 1024): expert counts and offsets, the
/// invalid count, the tile offsets (when asked), and chunk_counts rewritten as (expert,
/// chunk)-order exclusive offsets.
DEEPSHOCK_KERNEL void __launch_bounds__(1024)
    dispatch_scan_kernel(int* chunk_counts, long long chunks, int E, long long n, DispatchOutputs out) {
  __shared__ int scratch[block::kScratchWords];
  pdl::wait();
  pdl::launch_dependents();
  const int e = static_cast<int>(threadIdx.x);
  int count = 0;
  if (e < E)
    for (long long c = 0; c < chunks; ++c) count += chunk_counts[c * E + e];
  const int offset = scan_experts(count, E, n, out, scratch);
  if (e < E) {
    int running = offset;
    for (long long c = 0; c < chunks; ++c) {
      const int v = chunk_counts[c * E + e];
      chunk_counts[c * E + e] = running;
      running += v;
    }
  }
}

/// Block c: places chunk c's assignments in slot order, starting each expert at the offset the
/// scan left in chunk_offsets[c * E + e].
template <int Threads, int Rounds>
DEEPSHOCK_KERNEL void dispatch_place_kernel(const int* ids, long long n, int k, int first, int E, const int* chunk_offsets,
                                            DispatchOutputs out) {
  static_assert(Threads % 32 == 0, "dispatch_place_kernel: whole warps only.");
  __shared__ int next[kMaxDispatchExperts];
  pdl::wait();
  pdl::launch_dependents();
  const int tid = static_cast<int>(threadIdx.x);
  const long long c = blockIdx.x;
  for (int e = tid; e < E; e += Threads) next[e] = chunk_offsets[c * E + e];
  __syncthreads();
  const long long begin = c * (static_cast<long long>(Threads) * Rounds);
  const long long end = begin + static_cast<long long>(Threads) * Rounds < n ? begin + static_cast<long long>(Threads) * Rounds : n;
  place_assignments(ids, begin, end, k, first, E, next, Threads / 32, out);
}

/// n <= kDispatchChunk: count, scan and place in one block of at least E threads (a multiple of
/// 32, <= 1024); the same integers as the three kernels above with one chunk.
DEEPSHOCK_KERNEL void __launch_bounds__(1024)
    dispatch_single_kernel(const int* ids, long long n, int k, int first, int E, DispatchOutputs out) {
  __shared__ int next[kMaxDispatchExperts];
  __shared__ int scratch[block::kScratchWords];
  pdl::wait();
  pdl::launch_dependents();
  const int tid = static_cast<int>(threadIdx.x), threads = static_cast<int>(blockDim.x);
  count_assignments(ids, 0, n, first, E, next, threads);
  const int count = tid < E ? next[tid] : 0;
  const int offset = scan_experts(count, E, n, out, scratch);  // ends with a barrier: every count is read
  if (tid < E) next[tid] = offset;
  __syncthreads();
  place_assignments(ids, 0, n, k, first, E, next, threads / 32, out);
}

}  // namespace kernels

/// Stable counting sort of the assignments topk_ids [T, k] (device) by expert; writes `out`
/// (device pointers; semantics in moe/reference_dispatch.hpp). `workspace` is device memory of
/// at least dispatch_workspace_bytes(T, k, E) bytes (may be null when that is 0); its contents
/// on entry do not matter. Bad arguments return invalid_argument naming them; a small workspace
/// returns resource_exhausted. Never allocates or synchronises; graph-capturable; results are
/// bitwise reproducible. first_expert: an expert-parallel rank dispatches the global ids
/// [first_expert, first_expert + E) as its local experts 0..E-1 (no separate id mapping pass).
/// dependent_launch: launch the kernels with LaunchConfig::dependent (Hopper: each may start
/// during the previous kernel's tail and waits for it before reading anything; same results).
inline Status dispatch(const int* topk_ids, int T, int k, int E, DispatchOutputs out, void* workspace, std::size_t workspace_bytes,
                       rt::stream_t stream, int first_expert = 0, bool dependent_launch = false) {
  long long n = 0;
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_dispatch_args(topk_ids, T, k, E, out, n, first_expert));
  const std::size_t need = dispatch_workspace_bytes(T, k, E);
  if (workspace_bytes < need)
    return Status::resource_exhausted("workspace_bytes",
                                      "needs " + std::to_string(need) + " bytes, got " + std::to_string(workspace_bytes));
  if (need > 0 && workspace == nullptr) return Status::invalid_argument("workspace", "must not be null");
  int* chunk_counts = static_cast<int*>(workspace);
  const long long chunks = detail::dispatch_chunks(n);
  constexpr int kThreads = detail::kDispatchThreads;
  constexpr int kRounds = detail::kDispatchRounds;
  const unsigned scan_threads = static_cast<unsigned>((E + 31) / 32 * 32);
  if (chunks == 1) {
    const unsigned threads = scan_threads > static_cast<unsigned>(kThreads) ? scan_threads : static_cast<unsigned>(kThreads);
    return launch(kernels::dispatch_single_kernel, {dim3(1), dim3(threads), 0, stream, dependent_launch}, topk_ids, n, k, first_expert, E,
                  out);
  }
  if (chunks > 0)
    DEEPSHOCK_RETURN_IF_ERROR(launch(kernels::dispatch_count_kernel<kThreads, kRounds>,
                                     {dim3(static_cast<unsigned>(chunks)), dim3(kThreads), 0, stream, dependent_launch}, topk_ids, n,
                                     first_expert, E, chunk_counts));
  DEEPSHOCK_RETURN_IF_ERROR(
      launch(kernels::dispatch_scan_kernel, {dim3(1), dim3(scan_threads), 0, stream, dependent_launch}, chunk_counts, chunks, E, n, out));
  if (chunks == 0) return Status::success();
  return launch(kernels::dispatch_place_kernel<kThreads, kRounds>,
                {dim3(static_cast<unsigned>(chunks)), dim3(kThreads), 0, stream, dependent_launch}, topk_ids, n, k, first_expert, E,
                chunk_counts, out);
}

#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::moe
