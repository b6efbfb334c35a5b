// deepshock/ep/layouts.hpp — the two layouts in which engines hand expert-parallel rows to the
// expert computation, and the conversions between them (device kernels, no host sync).
//
//   * contiguous segments: rows sorted by expert, expert e's rows at [offsets[e], offsets[e+1])
//     of a [n, W] array (what moe::dispatch produces and deepshock's grouped GEMMs read);
//   * masked: a [E, max_m, W] array with device counts [E]: expert e's rows are
//     masked[e, 0 : counts[e]), the rest of its max_m rows undefined (the layout of DeepEP's
//     low-latency mode and of the masked grouped GEMMs engines pair with it). Fixed shapes, so a
//     step in this layout can be captured in a CUDA graph.
//
//   ep::to_masked(rows, offsets, E, max_m, W, masked, counts, overflow, stream);
//   ep::from_masked(masked, counts, E, max_m, W, rows, offsets, stream);
//
// W is a row's width in elements of any trivially copyable type, so FP8 activations travel as
// they are: the E4M3 codes as one call (W = H bytes) and their 1x128 scales as another (W = H /
// 128 floats), with the same offsets and counts — no requantisation. to_masked keeps the first
// max_m rows of a larger expert and adds the rows it drops to *overflow (device int; the caller
// sizes max_m, e.g. from the rank's token budget, and checks it when convenient). from_masked
// writes offsets [E + 1] (an exclusive scan of counts in one block) and the rows in expert order.
// E is at most kMaxLayoutExperts (one block scans the counts).
#pragma once

#include <cstddef>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

namespace deepshock::ep {

inline constexpr int kMaxLayoutExperts = 1024;

namespace detail {
inline constexpr int kLayoutThreads = 128;

namespace kernels {

/// Block (e, i): row i of expert e, if it exists, from its segment into masked[e, i]; block
/// (e, 0) also writes counts[e] and adds the dropped rows to *overflow.
template <class U>
DEEPSHOCK_KERNEL void to_masked_kernel(const U* rows, const int* offsets, int max_m, long long width, U* masked, int* counts,
                                       int* overflow) {
  const int e = static_cast<int>(blockIdx.x), i = static_cast<int>(blockIdx.y);
  const int n = offsets[e + 1] - offsets[e];
  if (i == 0 && threadIdx.x == 0) {
    counts[e] = n < max_m ? n : max_m;
    if (n > max_m && overflow != nullptr) atomicAdd(overflow, n - max_m);
  }
  if (i >= n) return;
  const U* src = rows + (static_cast<long long>(offsets[e]) + i) * width;
  U* dst = masked + (static_cast<long long>(e) * max_m + i) * width;
  for (long long c = threadIdx.x; c < width; c += blockDim.x) dst[c] = src[c];
}

/// One block: offsets = exclusive scan of counts (each clamped to [0, max_m]), offsets[E] = total.
DEEPSHOCK_KERNEL void masked_offsets_kernel(const int* counts, int E, int max_m, int* offsets) {
  __shared__ int scratch[block::kScratchWords];
  int carry = 0;
  for (int base = 0; base < E; base += static_cast<int>(blockDim.x)) {
    const int e = base + static_cast<int>(threadIdx.x);
    int c = e < E ? counts[e] : 0;
    c = c < 0 ? 0 : (c > max_m ? max_m : c);
    int total = 0;
    const int x = block::exclusive_scan_sum(c, total, scratch);
    if (e < E) offsets[e] = carry + x;
    carry += total;
  }
  if (threadIdx.x == 0) offsets[E] = carry;
}

/// Block (e, i): masked[e, i] to its place in the segments, for i < the expert's count.
template <class U>
DEEPSHOCK_KERNEL void from_masked_kernel(const U* masked, const int* offsets, int max_m, long long width, U* rows) {
  const int e = static_cast<int>(blockIdx.x), i = static_cast<int>(blockIdx.y);
  if (i >= offsets[e + 1] - offsets[e]) return;
  const U* src = masked + (static_cast<long long>(e) * max_m + i) * width;
  U* dst = rows + (static_cast<long long>(offsets[e]) + i) * width;
  for (long long c = threadIdx.x; c < width; c += blockDim.x) dst[c] = src[c];
}

}  // namespace kernels

inline Status check_layout(int E, int max_m, long long width) {
  if (E < 1 || E > kMaxLayoutExperts)
    return Status::invalid_argument("E", "must be in [1, " + std::to_string(kMaxLayoutExperts) + "], got " + std::to_string(E));
  if (max_m < 1 || max_m > 65535) return Status::invalid_argument("max_m", "must be in [1, 65535], got " + std::to_string(max_m));
  if (width < 1) return Status::invalid_argument("width", "must be >= 1, got " + std::to_string(width));
  return Status::success();
}
}  // namespace detail

/// Contiguous segments -> masked (see the file comment). rows [offsets[E], width], offsets
/// [E + 1] (device); masked [E, max_m, width], counts [E] written; overflow (optional device int)
/// accumulates the rows beyond max_m.
template <class U>
Status to_masked(const U* rows, const int* offsets, int E, int max_m, long long width, U* masked, int* counts, int* overflow,
                 rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_layout(E, max_m, width));
  if (offsets == nullptr) return Status::invalid_argument("offsets", "must not be null");
  if (rows == nullptr) return Status::invalid_argument("rows", "must not be null");
  if (masked == nullptr) return Status::invalid_argument("masked", "must not be null");
  if (counts == nullptr) return Status::invalid_argument("counts", "must not be null");
  return launch(detail::kernels::to_masked_kernel<U>,
                {dim3(static_cast<unsigned>(E), static_cast<unsigned>(max_m)), dim3(detail::kLayoutThreads), 0, stream}, rows, offsets,
                max_m, width, masked, counts, overflow);
}

/// Masked -> contiguous segments: offsets [E + 1] written (counts clamped to [0, max_m]), then
/// rows [offsets[E], width] in expert order.
template <class U>
Status from_masked(const U* masked, const int* counts, int E, int max_m, long long width, U* rows, int* offsets, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_layout(E, max_m, width));
  if (masked == nullptr) return Status::invalid_argument("masked", "must not be null");
  if (counts == nullptr) return Status::invalid_argument("counts", "must not be null");
  if (rows == nullptr) return Status::invalid_argument("rows", "must not be null");
  if (offsets == nullptr) return Status::invalid_argument("offsets", "must not be null");
  DEEPSHOCK_RETURN_IF_ERROR(launch(detail::kernels::masked_offsets_kernel, {dim3(1), dim3(256), 0, stream}, counts, E, max_m, offsets));
  return launch(detail::kernels::from_masked_kernel<U>,
                {dim3(static_cast<unsigned>(E), static_cast<unsigned>(max_m)), dim3(detail::kLayoutThreads), 0, stream}, masked, offsets,
                max_m, width, rows);
}

}  // namespace deepshock::ep
#endif  // DEEPSHOCK_HAS_KERNELS
