// deepshock/gate/stats.hpp — routing statistics on the device: tokens per expert, the Switch
// auxiliary loss, the router z-loss and the aux-loss-free bias update of DeepSeek-V3.
//
// Every entry point validates its arguments (the Status names the bad one), takes a stream,
// never allocates and never synchronises the host, so a sequence of calls can be captured in a
// CUDA graph. Scratch memory is the caller's: `*_workspace_bytes(...)` says how much.
// Results are deterministic: integer atomics only; float sums in a fixed order (per-chunk
// partials in token order, then one block that combines them in double in a fixed tree).
// Semantics match the host reference in gate/reference_stats.hpp exactly; see there for the
// handling of ids outside [0, E) (ignored) and T = 0 (empty-batch values).
//
// Non-finite logits propagate as in the formulas (a NaN or +inf logit makes its row NaN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "deepshock/core/config.hpp"
#include "deepshock/core/status.hpp"
#include "deepshock/gate/reference_stats.hpp"
#include "deepshock/platform/launch.hpp"
#include "deepshock/platform/runtime.hpp"

#if DEEPSHOCK_HAS_KERNELS
#include <cmath>

#include "deepshock/platform/block.hpp"
#include "deepshock/platform/warp.hpp"
#endif

namespace deepshock::gate {

namespace detail {
inline constexpr int kStatsThreads = 256;  ///< block size of the histogram and final-pass kernels
inline constexpr int kLoadItems = 8;       ///< ids per thread per block-iteration in expert_load
inline constexpr long long kLoadMaxBlocks = 512;
inline constexpr int kRowWarps = 4;      ///< tokens (one warp each) per block in the row pass
inline constexpr int kColThreads = 128;  ///< experts per block in the column pass
inline constexpr int kAuxChunk = 128;    ///< tokens per partial sum in the column pass
inline constexpr std::size_t kWorkspaceAlign = 256;

inline std::size_t align_up(std::size_t b) { return (b + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }

/// Workspace of the aux loss: lse [T] floats, then partial P sums and partial counts
/// [chunks, E] (floats, ints), each section aligned to 256 bytes.
struct AuxLayout {
  int chunks = 0;
  std::size_t part_p = 0, part_c = 0, total = 0;  // byte offsets, total size
};
inline AuxLayout aux_layout(int T, int E) {
  AuxLayout l;
  if (T <= 0 || E <= 0) return l;
  l.chunks = static_cast<int>((static_cast<long long>(T) + kAuxChunk - 1) / kAuxChunk);
  const std::size_t part = static_cast<std::size_t>(l.chunks) * static_cast<std::size_t>(E);
  l.part_p = align_up(static_cast<std::size_t>(T) * sizeof(float));
  l.part_c = l.part_p + align_up(part * sizeof(float));
  l.total = l.part_c + align_up(part * sizeof(int));
  return l;
}

inline Status check_workspace(const void* workspace, std::size_t workspace_bytes, std::size_t need, const char* query) {
  if (need == 0) return Status::success();
  if (workspace == nullptr)
    return Status::invalid_argument("workspace", std::string("must not be null (") + query + " = " + std::to_string(need) + " bytes)");
  if (workspace_bytes < need)
    return Status::resource_exhausted("workspace_bytes", std::to_string(workspace_bytes) + " bytes given, " + query + " = " +
                                                             std::to_string(need) + " bytes needed");
  if (reinterpret_cast<std::uintptr_t>(workspace) % 16 != 0) return Status::invalid_argument("workspace", "must be aligned to 16 bytes");
  return Status::success();
}
}  // namespace detail

/// Bytes of workspace switch_aux_loss needs for T tokens and E experts (0 when T == 0).
inline std::size_t switch_aux_loss_workspace_bytes(int T, int E) { return detail::aux_layout(T, E).total; }

/// Bytes of workspace router_z_loss needs for T tokens (0 when T == 0).
inline std::size_t router_z_loss_workspace_bytes(int T) {
  return T > 0 ? detail::align_up(static_cast<std::size_t>(T) * sizeof(float)) : 0;
}

#if DEEPSHOCK_HAS_KERNELS
namespace kernels {

/// counts[e] += occurrences of e in ids[0, n) (counts zeroed beforehand). Shared histogram per
/// block, then one integer atomic per non-zero bin.
template <int Threads>
DEEPSHOCK_KERNEL void expert_load_kernel(const int* ids, long long n, int E, int* counts) {
  __shared__ int hist[kMaxStatsExperts];
  const int tid = static_cast<int>(threadIdx.x);
  for (int e = tid; e < E; e += Threads) hist[e] = 0;
  __syncthreads();
  const long long stride = static_cast<long long>(gridDim.x) * Threads;
  for (long long j = static_cast<long long>(blockIdx.x) * Threads + tid; j < n; j += stride) {
    const int id = ids[j];
    if (id >= 0 && id < E) atomicAdd(&hist[id], 1);
  }
  __syncthreads();
  for (int e = tid; e < E; e += Threads)
    if (hist[e] != 0) atomicAdd(&counts[e], hist[e]);
}

/// lse[t] = logsumexp(logits[t, :]); one warp per token, fixed reduction trees.
template <int Warps>
DEEPSHOCK_KERNEL void row_logsumexp_kernel(const float* logits, int T, int E, float* lse) {
  const long long t = static_cast<long long>(blockIdx.x) * Warps + static_cast<long long>(threadIdx.x / 32);
  if (t >= T) return;  // whole warps leave together
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const float* row = logits + t * E;
  float m = -INFINITY;
  for (int e = lane; e < E; e += 32) m = row[e] > m ? row[e] : m;
  m = warp::reduce_max(m);
  float s = 0.0f;
  for (int e = lane; e < E; e += 32) s += ::expf(row[e] - m);
  s = warp::reduce_sum(s);
  if (lane == 0) lse[t] = m + ::logf(s);
}

/// Block (chunk c, expert tile): for each expert e of the tile, the sum over the chunk's tokens
/// (in token order) of softmax(logits[t])_e, and the number of those tokens whose slot-0 id is e.
template <int Threads>
DEEPSHOCK_KERNEL void aux_partials_kernel(const float* logits, const int* topk_ids, const float* lse, int T, int E, int k, float* part_p,
                                          int* part_c) {
  __shared__ float s_lse[detail::kAuxChunk];
  __shared__ int s_id[detail::kAuxChunk];
  const int tid = static_cast<int>(threadIdx.x);
  const int chunk = static_cast<int>(blockIdx.x);
  const int t0 = chunk * detail::kAuxChunk;
  const int n = T - t0 < detail::kAuxChunk ? T - t0 : detail::kAuxChunk;
  for (int j = tid; j < n; j += Threads) {
    s_lse[j] = lse[t0 + j];
    s_id[j] = topk_ids[static_cast<long long>(t0 + j) * k];
  }
  __syncthreads();
  const int e = static_cast<int>(blockIdx.y) * Threads + tid;
  if (e >= E) return;
  float p = 0.0f;
  int c = 0;
  const float* col = logits + static_cast<long long>(t0) * E + e;
  for (int j = 0; j < n; ++j) {
    p += ::expf(col[static_cast<long long>(j) * E] - s_lse[j]);
    c += s_id[j] == e ? 1 : 0;
  }
  part_p[static_cast<long long>(chunk) * E + e] = p;
  part_c[static_cast<long long>(chunk) * E + e] = c;
}

/// One block: loss = alpha * E * sum_e (count_e / T) * (P_e / T), partials combined in double
/// in chunk order, then a fixed block tree.
template <int Threads>
DEEPSHOCK_KERNEL void aux_finalize_kernel(const float* part_p, const int* part_c, int chunks, int T, int E, float alpha, float* loss) {
  __shared__ double scratch[block::kScratchWords];
  double acc = 0.0;
  for (int e = static_cast<int>(threadIdx.x); e < E; e += Threads) {
    double p = 0.0;
    long long c = 0;
    for (int ch = 0; ch < chunks; ++ch) {
      p += static_cast<double>(part_p[static_cast<long long>(ch) * E + e]);
      c += part_c[static_cast<long long>(ch) * E + e];
    }
    acc += static_cast<double>(c) * p;
  }
  const double total = block::reduce_sum(acc, scratch);
  if (threadIdx.x == 0) *loss = static_cast<float>(static_cast<double>(alpha) * E * (total / (static_cast<double>(T) * T)));
}

/// One block: loss = mean of lse[t]^2, accumulated in double.
template <int Threads>
DEEPSHOCK_KERNEL void z_loss_finalize_kernel(const float* lse, int T, float* loss) {
  __shared__ double scratch[block::kScratchWords];
  double acc = 0.0;
  for (int t = static_cast<int>(threadIdx.x); t < T; t += Threads) {
    const double z = static_cast<double>(lse[t]);
    acc += z * z;
  }
  const double total = block::reduce_sum(acc, scratch);
  if (threadIdx.x == 0) *loss = static_cast<float>(total / T);
}

/// One block: bias[e] += gamma * sign(sum(counts) - E * counts[e]) (exact integer sign).
template <int Threads>
DEEPSHOCK_KERNEL void bias_update_kernel(const int* counts, int E, float gamma, float* bias) {
  __shared__ long long scratch[block::kScratchWords];
  long long acc = 0;
  for (int e = static_cast<int>(threadIdx.x); e < E; e += Threads) acc += counts[e];
  const long long total = block::reduce_sum(acc, scratch);
  for (int e = static_cast<int>(threadIdx.x); e < E; e += Threads) {
    const long long d = total - static_cast<long long>(E) * counts[e];
    if (d != 0) bias[e] = bias[e] + (d > 0 ? gamma : -gamma);
  }
}

}  // namespace kernels

/// Tokens per expert. `topk_ids` is [T, k] (row-major, device); `counts` [E] is overwritten with
/// the number of entries equal to each expert. Ids of -1 are ignored, and so are ids < -1 or
/// >= E (no error is reported for them). T = 0 writes zeros.
inline Status expert_load(const int* topk_ids, int T, int k, int E, int* counts, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_expert_load_args(topk_ids, T, k, E, counts));
  DEEPSHOCK_RETURN_IF_ERROR(rt::memset_async(counts, 0, static_cast<std::size_t>(E) * sizeof(int), stream));
  if (T == 0) return Status::success();
  const long long n = static_cast<long long>(T) * k;
  constexpr long long per_block = static_cast<long long>(detail::kStatsThreads) * detail::kLoadItems;
  const long long want = (n + per_block - 1) / per_block;
  const unsigned blocks = static_cast<unsigned>(want < detail::kLoadMaxBlocks ? want : detail::kLoadMaxBlocks);
  return launch(kernels::expert_load_kernel<detail::kStatsThreads>, {dim3(blocks), dim3(detail::kStatsThreads), 0, stream}, topk_ids, n, E,
                counts);
}

namespace detail {
inline Status launch_row_logsumexp(const float* logits, int T, int E, float* lse, rt::stream_t stream) {
  const unsigned blocks = static_cast<unsigned>((static_cast<long long>(T) + kRowWarps - 1) / kRowWarps);
  return launch(kernels::row_logsumexp_kernel<kRowWarps>, {dim3(blocks), dim3(32 * kRowWarps), 0, stream}, logits, T, E, lse);
}
}  // namespace detail

/// Switch auxiliary loss `alpha * E * sum_i f_i * P_i` (Fedus et al. 2021), written as one float
/// to `loss` (device). logits [T, E] and topk_ids [T, k] are row-major device arrays.
///   f_i = (number of tokens whose top-1 id, slot 0 of topk_ids, is i) / T — the top-1 dispatch
///         fraction; the other k - 1 slots are not read;
///   P_i = mean over the T tokens of softmax(logits[t])_i.
/// Every token counts in both means (a padding token with slot-0 id -1 adds to no f_i but still
/// to T and to P); pass only real tokens to exclude padding. T = 0 writes 0.
/// Needs switch_aux_loss_workspace_bytes(T, E) bytes of `workspace` (device, 16-byte aligned,
/// contents ignored).
inline Status switch_aux_loss(const float* logits, const int* topk_ids, int T, int E, int k, float alpha, float* loss, void* workspace,
                              std::size_t workspace_bytes, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_aux_loss_args(logits, topk_ids, T, E, k, alpha, loss));
  const detail::AuxLayout l = detail::aux_layout(T, E);
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_workspace(workspace, workspace_bytes, l.total, "switch_aux_loss_workspace_bytes(T, E)"));
  if (T == 0) return rt::memset_async(loss, 0, sizeof(float), stream);
  auto* ws = static_cast<unsigned char*>(workspace);
  auto* lse = reinterpret_cast<float*>(ws);
  auto* part_p = reinterpret_cast<float*>(ws + l.part_p);
  auto* part_c = reinterpret_cast<int*>(ws + l.part_c);
  DEEPSHOCK_RETURN_IF_ERROR(detail::launch_row_logsumexp(logits, T, E, lse, stream));
  const dim3 grid(static_cast<unsigned>(l.chunks), static_cast<unsigned>((E + detail::kColThreads - 1) / detail::kColThreads));
  DEEPSHOCK_RETURN_IF_ERROR(launch(kernels::aux_partials_kernel<detail::kColThreads>, {grid, dim3(detail::kColThreads), 0, stream}, logits,
                                   topk_ids, lse, T, E, k, part_p, part_c));
  return launch(kernels::aux_finalize_kernel<detail::kStatsThreads>, {dim3(1), dim3(detail::kStatsThreads), 0, stream}, part_p, part_c,
                l.chunks, T, E, alpha, loss);
}

/// Router z-loss `mean_t (logsumexp_e logits[t, e])^2` (Zoph et al. 2022), written as one float
/// to `loss` (device). logits [T, E] row-major on the device. T = 0 writes 0.
/// Needs router_z_loss_workspace_bytes(T) bytes of `workspace` (device, 16-byte aligned).
inline Status router_z_loss(const float* logits, int T, int E, float* loss, void* workspace, std::size_t workspace_bytes,
                            rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_z_loss_args(logits, T, E, loss));
  DEEPSHOCK_RETURN_IF_ERROR(
      detail::check_workspace(workspace, workspace_bytes, router_z_loss_workspace_bytes(T), "router_z_loss_workspace_bytes(T)"));
  if (T == 0) return rt::memset_async(loss, 0, sizeof(float), stream);
  auto* lse = static_cast<float*>(workspace);
  DEEPSHOCK_RETURN_IF_ERROR(detail::launch_row_logsumexp(logits, T, E, lse, stream));
  return launch(kernels::z_loss_finalize_kernel<detail::kStatsThreads>, {dim3(1), dim3(detail::kStatsThreads), 0, stream}, lse, T, loss);
}

/// Aux-loss-free load balancing (DeepSeek-V3), in place on the device array bias [E]:
/// `bias[i] += gamma * sign(mean_load - counts[i])`, mean_load = sum(counts) / E, sign(0) = 0
/// (that entry is not written). The sign is computed exactly in 64-bit integers as
/// sign(sum(counts) - E * counts[i]); counts [E] (device, e.g. from expert_load) must be >= 0.
/// The counts must be global: under expert parallelism a rank's router counts only its own
/// experts, so sum the counts over ranks (all-reduce) before updating the bias.
inline Status aux_free_bias_update(const int* counts, int E, float gamma, float* bias, rt::stream_t stream) {
  DEEPSHOCK_RETURN_IF_ERROR(detail::check_bias_update_args(counts, E, gamma, bias));
  return launch(kernels::bias_update_kernel<detail::kStatsThreads>, {dim3(1), dim3(detail::kStatsThreads), 0, stream}, counts, E, gamma,
                bias);
}

#endif  // DEEPSHOCK_HAS_KERNELS

}  // namespace deepshock::gate
