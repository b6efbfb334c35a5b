// deepshock/platform/block.hpp — block-level primitives (reductions, scans, arg-max).
//
// Each takes a caller-provided shared-memory scratch of at least `kScratchWords` elements of
// the value type, works for any block size (partial last warp included) and returns the result
// to every thread. Every thread of the block must call them (they contain __syncthreads), and
// they end with a barrier so the scratch can be reused at once. Combination order is fixed:
// warps in a tree, then warp partials in index order, so results are deterministic.
#pragma once

#include "deepshock/core/config.hpp"
#include "deepshock/platform/cuda.hpp"
#include "deepshock/platform/warp.hpp"

#if DEEPSHOCK_HAS_KERNELS
namespace deepshock::block {

/// Scratch elements a block primitive needs (one per warp of a 1024-thread block).
inline constexpr int kScratchWords = 32;

/// Linear rank of this thread in its block.
DEEPSHOCK_DEVICE unsigned thread_rank() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
/// Number of threads in the block.
DEEPSHOCK_DEVICE unsigned num_threads() { return blockDim.x * blockDim.y * blockDim.z; }

/// Lanes of this thread's warp that exist (32 except in a partial last warp).
DEEPSHOCK_DEVICE int warp_valid_lanes() {
  const int n = static_cast<int>(num_threads());
  const int warp_base = static_cast<int>(thread_rank() & ~31u);
  return n - warp_base < 32 ? n - warp_base : 32;
}

template <class T, class Op>
DEEPSHOCK_DEVICE T reduce(T v, Op op, T* scratch) {
  const unsigned rank = thread_rank();
  const int nwarps = static_cast<int>((num_threads() + 31) / 32);
  const T w = warp::reduce(v, op, warp_valid_lanes());
  if ((rank & 31u) == 0) scratch[rank / 32] = w;
  __syncthreads();
  T r = scratch[0];
  for (int i = 1; i < nwarps; ++i) r = op(r, scratch[i]);
  __syncthreads();
  return r;
}

template <class T>
DEEPSHOCK_DEVICE T reduce_sum(T v, T* scratch) {
  return reduce(v, warp::Sum{}, scratch);
}
template <class T>
DEEPSHOCK_DEVICE T reduce_max(T v, T* scratch) {
  return reduce(v, warp::Max{}, scratch);
}
template <class T>
DEEPSHOCK_DEVICE T reduce_min(T v, T* scratch) {
  return reduce(v, warp::Min{}, scratch);
}

/// Best (score, index) over the block; ties to the lower index, NaN ranks last.
template <class T>
DEEPSHOCK_DEVICE warp::Ranked<T> argmax(warp::Ranked<T> v, warp::Ranked<T>* scratch) {
  return reduce(
      v, [](const warp::Ranked<T>& a, const warp::Ranked<T>& b) { return warp::ranks_before(a, b) ? a : b; }, scratch);
}

/// Exclusive prefix sum in thread-rank order; `total` receives the block's sum.
template <class T>
DEEPSHOCK_DEVICE T exclusive_scan_sum(T v, T& total, T* scratch) {
  const unsigned rank = thread_rank();
  const int warp_id = static_cast<int>(rank / 32);
  const int nwarps = static_cast<int>((num_threads() + 31) / 32);
  const int valid = warp_valid_lanes();
  T warp_total{};
  const T excl = warp::exclusive_scan_sum(v, warp_total, valid);
  if (static_cast<int>(rank & 31u) == valid - 1) scratch[warp_id] = warp_total;
  __syncthreads();
  T prefix{};
  T sum{};
  for (int i = 0; i < nwarps; ++i) {
    if (i == warp_id) prefix = sum;
    sum = sum + scratch[i];
  }
  total = sum;
  __syncthreads();
  return prefix + excl;
}

}  // namespace deepshock::block
#endif  // DEEPSHOCK_HAS_KERNELS
