// deepshock/ep/device_kernels.hpp — the device kernels of an expert-parallel step
// (ep/device_ep.hpp): the plan (each assignment's copy, per destination rank the tokens that
// go there), the exclusive scans that turn it into buffer positions, and the copies into and
// out of the exchange buffers.
//
// Layouts (R ranks, T tokens, k slots, H hidden):
//   * row_flag / asg_count [R*T + 1], rank-major: row_flag[d*T + t] = 1 when token t has a slot
//     served by rank d, asg_count[d*T + t] = how many; the last element is 0. One exclusive scan
//     over the whole array gives row_pos[d*T + t] = the token's row in the send buffer, whose
//     part for rank d starts at row_pos[d*T] (rank-major), and row_pos[R*T] = the total; the
//     same for the assignments (asg_pos), which is where rank d's returned rows land.
//   * send rows [rows, H] (T), send ids / weights [rows, k]: per row the k slots' local expert
//     indices on the destination (-1: a slot served elsewhere) and routing weights.
//   * returned rows: per source, one fp32 row per valid slot of its rows, rows in the order
//     received and slots ascending.
// Every position is an integer prefix sum, so the plan is deterministic: the scans are CUB's
// DeviceScan on a GPU and a one-block scan of the library's own in the simulator.
#pragma once

#include <cstddef>
#include <cstdint>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include "deepshock/platform/block.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"
#if !DEEPSHOCK_SIM
#include <cub/device/device_scan.cuh>
#endif

namespace deepshock::ep::detail {

inline constexpr int kEpThreads = 128;

/// The placement on the device: logical expert e's copies are [copy_begin[e], copy_begin[e + 1])
/// of copy_rank / copy_local (ep/placement.hpp, in its order).
struct DevicePlacement {
  const int* copy_begin = nullptr;
  const int* copy_rank = nullptr;
  const int* copy_local = nullptr;
  int experts = 0;
};

namespace kernels {

/// Per token t (grid-stride): each slot's copy (dest, local; -1 for an empty slot) by
/// Placement::choose's rule, and the token's row_flag / asg_count entries (zeroed beforehand).
DEEPSHOCK_KERNEL void ep_plan_kernel(const int* ids, int tokens, int k, int me, DevicePlacement pl, int* dest, int* local, int* row_flag,
                                     int* asg_count) {
  const int stride = static_cast<int>(gridDim.x * blockDim.x);
  for (int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); t < tokens; t += stride)
    for (int j = 0; j < k; ++j) {
      const long long a = static_cast<long long>(t) * k + j;
      const int e = ids[a];
      if (e < 0 || e >= pl.experts) {
        dest[a] = local[a] = -1;
        continue;
      }
      const int first = pl.copy_begin[e], copies = pl.copy_begin[e + 1] - first;
      const int c = first + (me + t) % copies;
      const int d = pl.copy_rank[c];
      dest[a] = d;
      local[a] = pl.copy_local[c];
      const long long at = static_cast<long long>(d) * tokens + t;
      row_flag[at] = 1;
      asg_count[at] += 1;  // one thread per token: no race
    }
}

/// out[i] = in[0] + ... + in[i - 1] for i < n, one block (the library's own scan; CUB on a GPU).
template <int Threads>
DEEPSHOCK_KERNEL void ep_exclusive_scan_kernel(const int* in, int* out, long long n) {
  __shared__ int scratch[block::kScratchWords];
  int carry = 0;
  for (long long base = 0; base < n; base += Threads) {  // uniform trip count: every thread reaches the scan
    const long long i = base + threadIdx.x;
    const int v = i < n ? in[i] : 0;
    int total = 0;
    const int e = block::exclusive_scan_sum(v, total, scratch);
    if (i < n) out[i] = carry + e;
    carry += total;
  }
}

/// counts[2 d] = rows for rank d, counts[2 d + 1] = assignments for rank d (one thread per rank).
DEEPSHOCK_KERNEL void ep_counts_kernel(const int* row_pos, const int* asg_pos, int tokens, int ranks, std::int64_t* counts) {
  const int d = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (d >= ranks) return;
  const long long lo = static_cast<long long>(d) * tokens, hi = lo + tokens;
  counts[2 * d] = row_pos[hi] - row_pos[lo];
  counts[2 * d + 1] = asg_pos[hi] - asg_pos[lo];
}

/// Block t: token t's row into the send buffer of every rank that serves one of its slots, with
/// the slots' local expert indices (-1 elsewhere) and weights. cap = 0: rank d's rows follow
/// each other (row_pos); cap > 0 (fixed sizes): rank d's rows start at row d * cap.
template <class T>
DEEPSHOCK_KERNEL void ep_pack_kernel(const T* x, long long ldx, int tokens, int hidden, int k, int ranks, const int* dest, const int* local,
                                     const float* weights, const int* row_flag, const int* row_pos, int cap, T* rows, int* row_ids,
                                     float* row_weights) {
  const int t = static_cast<int>(blockIdx.x);
  for (int d = 0; d < ranks; ++d) {
    const long long at = static_cast<long long>(d) * tokens + t;
    if (row_flag[at] == 0) continue;
    const long long pos =
        cap == 0 ? row_pos[at] : static_cast<long long>(d) * cap + (row_pos[at] - row_pos[static_cast<long long>(d) * tokens]);
    for (int c = static_cast<int>(threadIdx.x); c < hidden; c += static_cast<int>(blockDim.x))
      rows[pos * hidden + c] = x[static_cast<long long>(t) * ldx + c];
    for (int j = static_cast<int>(threadIdx.x); j < k; j += static_cast<int>(blockDim.x)) {
      const long long a = static_cast<long long>(t) * k + j;
      const bool here = dest[a] == d;
      row_ids[pos * k + j] = here ? local[a] : -1;
      row_weights[pos * k + j] = here ? weights[a] : 0.0f;
    }
  }
}

/// count[r] = the valid slots of received row r (r < rows); count[rows] = 0.
DEEPSHOCK_KERNEL void ep_valid_slots_kernel(const int* ids, long long rows, int k, int* count) {
  const long long r = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r > rows) return;
  int c = 0;
  if (r < rows)
    for (int j = 0; j < k; ++j) c += ids[r * k + j] >= 0 ? 1 : 0;
  count[r] = c;
}

/// Block r: received row r's valid slot rows, slots ascending, to out[pos[r]...] (fp32). With
/// fixed sizes (cap_rows > 0) source s's rows are [s cap_rows, (s + 1) cap_rows) and its
/// returned rows start at s * cap_ret.
DEEPSHOCK_KERNEL void ep_return_pack_kernel(const int* ids, const float* slot_rows, const int* pos, int hidden, int k, int cap_rows,
                                            long long cap_ret, float* out) {
  const long long r = blockIdx.x;
  long long o = pos[r];
  if (cap_rows > 0) {
    const long long s = r / cap_rows;
    o = s * cap_ret + (pos[r] - pos[s * cap_rows]);
  }
  for (int j = 0; j < k; ++j) {
    if (ids[r * k + j] < 0) continue;
    const float* src = slot_rows + (r * k + j) * hidden;
    for (int c = static_cast<int>(threadIdx.x); c < hidden; c += static_cast<int>(blockDim.x)) out[o * hidden + c] = src[c];
    ++o;
  }
}

/// Block t, at home: each valid slot's returned row into slot position t*k + j, and the slot
/// positions the combine reads (-1: empty slot). Rank d's rows for this rank start at
/// asg_pos[d*T] of the return buffer (rank-major; with fixed sizes at d * cap_ret), token t's
/// asg_pos[d*T + t] - asg_pos[d*T] rows further.
DEEPSHOCK_KERNEL void ep_scatter_kernel(const float* returned, const int* dest, const int* asg_pos, int tokens, int hidden, int k,
                                        long long cap_ret, float* slot_rows, int* position) {
  const int t = static_cast<int>(blockIdx.x);
  for (int j = 0; j < k; ++j) {
    const long long a = static_cast<long long>(t) * k + j;
    const int d = dest[a];
    if (threadIdx.x == 0) position[a] = d < 0 ? -1 : j;
    if (d < 0) continue;
    int before = 0;  // this token's earlier slots on the same rank
    for (int i = 0; i < j; ++i) before += dest[static_cast<long long>(t) * k + i] == d ? 1 : 0;
    const long long first = asg_pos[static_cast<long long>(d) * tokens];
    const long long src = (cap_ret > 0 ? d * cap_ret : first) + (asg_pos[static_cast<long long>(d) * tokens + t] - first) + before;
    for (int c = static_cast<int>(threadIdx.x); c < hidden; c += static_cast<int>(blockDim.x))
      slot_rows[a * hidden + c] = returned[src * hidden + c];
  }
}

}  // namespace kernels

/// Exclusive scans of int arrays: CUB's DeviceScan on a GPU (temporary storage reserved once for
/// the largest n), the one-block kernel in the simulator.
class ExclusiveScan {
 public:
  Status reserve(long long max_n) {
#if !DEEPSHOCK_SIM
    std::size_t bytes = 0;
    if (cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const int*>(nullptr), static_cast<int*>(nullptr), max_n) != cudaSuccess)
      return Status::runtime_error("cub::DeviceScan::ExclusiveSum: the storage query failed");
    if (bytes > temp_.size()) return temp_.allocate(bytes);
#else
    (void)max_n;
#endif
    return Status::success();
  }
  /// out[0, n) = exclusive sums of in[0, n) on `stream` (n >= 1).
  Status run(const int* in, int* out, long long n, rt::stream_t stream) {
#if !DEEPSHOCK_SIM
    std::size_t bytes = temp_.size();
    return rt::from_cuda(cub::DeviceScan::ExclusiveSum(temp_.data(), bytes, in, out, n, stream), "cub::DeviceScan::ExclusiveSum");
#else
    return launch(kernels::ep_exclusive_scan_kernel<256>, {dim3(1), dim3(256), 0, stream}, in, out, n);
#endif
  }

 private:
#if !DEEPSHOCK_SIM
  rt::DeviceBuffer<unsigned char> temp_;
#endif
};

}  // namespace deepshock::ep::detail
#endif  // DEEPSHOCK_HAS_KERNELS
